"""The benchmark graphs g2m knows, each under the split protocols it is published with.

==============  ==========================  =============================================
name            protocols                   source
==============  ==========================  =============================================
cora, citeseer  ``cpf``, ``public``,        CPF ``.npz`` (LCC) / PyG ``Planetoid``
                ``geom-gcn``
a-photo,        ``cpf``, ``random``         gnn-benchmark ``.npz``: LCC for ``cpf`` (GLNN),
a-computer                                  the whole graph (PyG ``Amazon``) for ``random``
texas, cornell, ``geom-gcn``                PyG ``WebKB`` (10 fixed 60/20/20 splits)
wisconsin
synthetic,      ``cpf``                     :mod:`g2m.data.synthetic` (generated; the
synthetic-                                  second at ogbn-products' size, on the GPU)
products
==============  ==========================  =============================================

Graphs loaded for ``public`` and ``geom-gcn`` carry PyG's ``train_mask``/``val_mask``/
``test_mask`` (``[N]`` or ``[N, 10]``); ``cpf`` graphs are standardised and split later;
``random`` is FF-G2M's Amazon protocol (20 per class / 500 / 1000, :mod:`g2m.data.splits`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from torch_geometric.data import Data, download_url

from g2m.data.cpf import read_sparse_graph_npz, standardize
from g2m.data.sources import fetch_with_fallback
from g2m.errors import ConfigError, DataError

GNN_BENCHMARK_URL = "https://github.com/shchur/gnn-benchmark/raw/master/data/npz"

CPF_FILES = {
    "cora": "CPF_npz/cora.npz",
    "citeseer": "CPF_npz/citeseer.npz",
    "a-photo": "Photo/raw/amazon_electronics_photo.npz",
    "a-computer": "Computers/raw/amazon_electronics_computers.npz",
}
PLANETOID_NAMES = {"cora": "Cora", "citeseer": "CiteSeer"}
AMAZON_NAMES = {"a-photo": "Photo", "a-computer": "Computers"}
PLANETOID_RAW = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")
WEBKB_NAMES = {"texas": "Texas", "cornell": "Cornell", "wisconsin": "Wisconsin"}


def _load_cpf(name: str, cache_dir: Path, local_dir: Path | None) -> Data:
    rel = CPF_FILES[name]
    path = cache_dir / rel

    def load() -> Data:
        if not path.is_file():
            download_url(f"{GNN_BENCHMARK_URL}/{Path(rel).name}", str(path.parent), log=False)
        return standardize(read_sparse_graph_npz(path))

    return fetch_with_fallback(name, [rel], cache_dir, local_dir, load)


def _load_planetoid(name: str, split: str, cache_dir: Path, local_dir: Path | None) -> Data:
    from torch_geometric.datasets import Planetoid

    pyg_name = PLANETOID_NAMES[name]
    raw_dir = f"{pyg_name}/geom-gcn/raw" if split == "geom-gcn" else f"{pyg_name}/raw"
    files = [f"{raw_dir}/ind.{pyg_name.lower()}.{suffix}" for suffix in PLANETOID_RAW]
    if split == "geom-gcn":
        files += [f"{raw_dir}/{pyg_name.lower()}_split_0.6_0.2_{i}.npz" for i in range(10)]
    load = partial(Planetoid, str(cache_dir), pyg_name, split=split)
    return fetch_with_fallback(name, files, cache_dir, local_dir, load)[0]


def _load_amazon(name: str, cache_dir: Path, local_dir: Path | None) -> Data:
    from torch_geometric.datasets import Amazon

    load = partial(Amazon, str(cache_dir), AMAZON_NAMES[name])
    return fetch_with_fallback(name, [CPF_FILES[name]], cache_dir, local_dir, load)[0]


def _load_webkb(name: str, cache_dir: Path, local_dir: Path | None) -> Data:
    from torch_geometric.datasets import WebKB

    files = [f"{name}/raw/out1_graph_edges.txt", f"{name}/raw/out1_node_feature_label.txt"]
    files += [f"{name}/raw/{name}_split_0.6_0.2_{i}.npz" for i in range(10)]
    load = partial(WebKB, str(cache_dir), WEBKB_NAMES[name])
    return fetch_with_fallback(name, files, cache_dir, local_dir, load)[0]


def _registry() -> dict[tuple[str, str], Callable[[Path, Path | None], Data]]:
    table: dict[tuple[str, str], Callable[[Path, Path | None], Data]] = {}
    for name in CPF_FILES:
        table[(name, "cpf")] = partial(_load_cpf, name)
    for name in PLANETOID_NAMES:
        table[(name, "public")] = partial(_load_planetoid, name, "public")
        table[(name, "geom-gcn")] = partial(_load_planetoid, name, "geom-gcn")
    for name in AMAZON_NAMES:
        table[(name, "random")] = partial(_load_amazon, name)
    for name in WEBKB_NAMES:
        table[(name, "geom-gcn")] = partial(_load_webkb, name)
    return table


LOADERS = _registry()


def available() -> list[str]:
    """Every valid ``name/protocol`` pair, for error messages and docs."""
    return sorted(f"{name}/{protocol}" for name, protocol in LOADERS) + [
        "synthetic/cpf",
        "synthetic-products/cpf",
    ]


def load_benchmark(name: str, protocol: str, cache_dir: Path, local_dir: Path | None) -> Data:
    """Load benchmark ``name`` for split ``protocol`` (files staged into ``cache_dir``)."""
    loader = LOADERS.get((name, protocol))
    if loader is None:
        raise ConfigError(
            f"Unknown dataset/protocol '{name}/{protocol}'. Available: {', '.join(available())}."
        )
    return loader(Path(cache_dir), Path(local_dir) if local_dir else None)


def check_graph(data: Data, name: str) -> Data:
    """Reject graphs that would silently poison training (NaN/Inf features, bad labels)."""
    if not bool(data.x.isfinite().all()):
        bad = int((~data.x.isfinite()).any(dim=1).sum())
        raise DataError(f"Dataset '{name}': {bad} nodes have NaN or Inf features.")
    if data.y.dim() != 1 or int(data.y.min()) < 0:
        raise DataError(f"Dataset '{name}': labels must be a 1-D tensor of class ids >= 0.")
    return data


def load_graph(
    name: str,
    protocol: str,
    cache_dir: Path,
    local_dir: Path | None = None,
    synthetic: dict | None = None,
) -> Data:
    """Load a benchmark (staging local raw files), or generate a CSBM graph: ``synthetic``
    and any dataset config with a ``generator`` block (``synthetic-products``)."""
    if name == "synthetic" or synthetic is not None:
        from g2m.data.synthetic import make_csbm

        return check_graph(make_csbm(**(synthetic or {})), name)
    return check_graph(load_benchmark(name, protocol, cache_dir, local_dir), name)
