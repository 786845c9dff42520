"""Raw-file staging: local files are copied (never written), offline failures are clear."""

from __future__ import annotations

import stat
import subprocess
import sys
import time
import urllib.error

import pytest
import torch_geometric.data

from g2m.data import DatasetUnavailableError
from g2m.data.staging import fetch_with_fallback, stage_raw_files
from g2m.errors import ConfigError
from tests.conftest import compose_config, load_catalog


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

    monkeypatch.setattr(torch_geometric.data, "download_url", offline)
    with pytest.raises(DatasetUnavailableError) as err:
        load_catalog("cora", tmp_path / "cache", tmp_path / "empty")
    message = str(err.value)
    assert "CPF_npz/cora.npz" in message
    assert "G2M_DATA_DIR" in message


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(ConfigError, match="Could not find 'dataset/pubmed'.*cora"):
        compose_config(["dataset=pubmed"])


def test_corrupted_npz_is_reported_with_its_path(tmp_path):
    broken = tmp_path / "cache" / "CPF_npz" / "cora.npz"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="cora.npz is not a readable .npz"):
        load_catalog("file", tmp_path / "cache", None, f"dataset.path={broken}")


# One process writes a "processed" file slowly; each process reads it back in full. Without
# the dataset lock a second process finds the file half-written (PyG's processed/ race).
_SLOW_PROCESSING = """
import sys, time
from pathlib import Path
from g2m.data.staging import fetch_with_fallback

cache, rank = Path(sys.argv[1]), sys.argv[2]
(cache / f"ready-{rank}").touch()
while not (cache / "go").exists():
    time.sleep(0.01)

def load():
    processed = cache / "processed.bin"
    if not processed.exists():
        with open(processed, "wb") as out:
            out.write(b"a" * 10)
            out.flush()
            time.sleep(1.0)
            out.write(b"b" * 10)
    return processed.read_bytes()

data = fetch_with_fallback("toy", [], cache, None, load)
sys.exit(0 if len(data) == 20 else 3)
"""


@pytest.mark.slow
def test_concurrent_runs_never_read_a_half_processed_dataset(tmp_path):
    runs = [
        subprocess.Popen([sys.executable, "-c", _SLOW_PROCESSING, str(tmp_path), str(rank)])
        for rank in range(3)
    ]
    while len(list(tmp_path.glob("ready-*"))) < 3 and all(r.poll() is None for r in runs):
        time.sleep(0.01)
    (tmp_path / "go").touch()
    assert [run.wait() for run in runs] == [0, 0, 0]


def test_the_dataset_lock_is_held_while_loading(tmp_path):
    probe = (
        "import sys; from filelock import FileLock, Timeout\n"
        "try:\n    FileLock(sys.argv[1], timeout=0).acquire()\n"
        "except Timeout:\n    sys.exit(7)\n"
    )

    def load():
        lock_file = tmp_path / ".toy.lock"
        return subprocess.run([sys.executable, "-c", probe, str(lock_file)]).returncode

    assert fetch_with_fallback("toy", [], tmp_path, None, load) == 7
    assert fetch_with_fallback("toy", [], tmp_path, None, lambda: "free") == "free"
