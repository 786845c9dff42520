"""Raw-file staging: local files are copied (never written), offline failures are clear."""

from __future__ import annotations

import stat
import urllib.error

import pytest

from g2m.data import DatasetUnavailableError, catalog, load_graph
from g2m.data.sources import stage_raw_files


def test_staging_copies_and_leaves_the_source_untouched(tmp_path):
    local = tmp_path / "shared"
    (local / "X" / "raw").mkdir(parents=True)
    (local / "X" / "raw" / "a.bin").write_bytes(b"payload")
    local.chmod(stat.S_IRUSR | stat.S_IXUSR)  # read-only source folder
    try:
        missing = stage_raw_files(["X/raw/a.bin", "X/raw/b.bin"], tmp_path / "cache", local)
    finally:
        local.chmod(stat.S_IRWXU)
    assert missing == ["X/raw/b.bin"]
    assert (tmp_path / "cache" / "X" / "raw" / "a.bin").read_bytes() == b"payload"
    assert sorted(p.name for p in (local / "X" / "raw").iterdir()) == ["a.bin"]
    assert not [p for p in (tmp_path / "cache" / "X" / "raw").iterdir() if p.name != "a.bin"]


def test_offline_without_files_names_what_is_missing(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(catalog, "download_url", offline)
    with pytest.raises(DatasetUnavailableError) as err:
        load_graph("cora", "cpf", tmp_path / "cache", tmp_path / "empty")
    message = str(err.value)
    assert "CPF_npz/cora.npz" in message
    assert "G2M_DATA_DIR" in message


def test_unknown_dataset_lists_the_choices(tmp_path):
    with pytest.raises(ValueError, match="Available: .*cora/cpf"):
        load_graph("pubmed", "cpf", tmp_path, None)


def test_corrupted_npz_is_reported_with_its_path(tmp_path):
    broken = tmp_path / "cache" / "CPF_npz" / "cora.npz"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="cora.npz is not a readable .npz"):
        load_graph("cora", "cpf", tmp_path / "cache", None)
