"""lfd_graph_stats.py: the LFD weight statistics on a path graph computed by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import load_script


def _load_script():
    return load_script(Path(__file__).with_name("lfd_graph_stats.py"))


def test_path_graph_statistics():
    # 0 - 1 - 2 with classes 0, 0, 1: four directed edges, two of them within a class
    edge_index = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    stats = _load_script().lfd_weight_stats(edge_index, torch.tensor([0, 0, 1]))
    assert stats["mean_degree"] == pytest.approx(4 / 3)
    assert stats["self_share"] == pytest.approx(3 / 7)  # 3 self-loops among 7 LFD terms
    assert stats["homophily_with_self_loops"] == pytest.approx(5 / 7)
    assert stats["top10_degree_weight"] == pytest.approx(3 / 7)  # node 1: degree 2 + 1
