"""OGB node-property graphs through the ``ogb`` package: ``dataset=ogbn-arxiv`` and friends.

Hu et al., NeurIPS 2020, "Open Graph Benchmark". :class:`OGBNodeDataset` reads a graph with
``ogb.nodeproppred.PygNodePropPredDataset`` from OGB's own folder layout, e.g. for
``ogbn-arxiv``::

    ogbn_arxiv/RELEASE_v1.txt
    ogbn_arxiv/raw/{edge,node-feat,node-label,num-node-list,num-edge-list,node_year}.csv.gz
    ogbn_arxiv/split/time/{train,valid,test}.csv.gz

(the extracted download). The folder is copied from ``$G2M_DATA_DIR`` into g2m's cache when
it is there, else OGB downloads it; offline, the error lists these files and where to put
them. OGB's official split becomes the graph's ``train_mask``/``val_mask``/``test_mask``, which
``split=ogb`` uses; its labels (``[N, 1]``) become ``[N]``, unlabelled (NaN) nodes ``-1``.

Two things of the ``ogb`` package are worked around rather than inherited: its processed file
is a pickled ``Data`` that ``torch.load``'s ``weights_only`` default refuses, so it is read
with PyG's classes allow-listed; and it asks on stdin before re-downloading a folder without
its ``RELEASE`` file or a download over 1 GB, which a batch job cannot answer, so g2m checks
the folder first and turns a refused download into the offline error.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from g2m.data.files import _pyg_safe_globals
from g2m.data.source import DataLocation, GraphSource
from g2m.data.staging import dataset_lock, stage_raw_files, unavailable
from g2m.errors import ConfigError, DataError

MASK_KEYS = ("train_mask", "val_mask", "test_mask")

if TYPE_CHECKING:
    from torch_geometric.data import Data


def ogb_master() -> dict[str, dict[str, str]]:
    """OGB's table of node-property datasets (``ogb/nodeproppred/master.csv``)."""
    try:
        import ogb.nodeproppred
        import pandas as pd
    except ImportError as err:
        raise ConfigError('OGB datasets need the ogb package: pip install "g2m[ogb]"') from err
    path = Path(ogb.nodeproppred.__file__).parent / "master.csv"
    return pd.read_csv(path, index_col=0, keep_default_na=False).to_dict()


def expected_files(name: str, meta: dict[str, str]) -> list[str]:
    """The files OGB's loader reads for ``name``, relative to the cache (or data folder)."""
    folder = name.replace("-", "_")
    if meta["binary"] == "True":
        files = [f"{folder}/raw/data.npz", f"{folder}/raw/node-label.npz"]
    else:
        raw = ["edge", "num-node-list", "num-edge-list", "node-label"]
        raw += ["node-feat"] * (meta["has_node_attr"] == "True")
        raw += ["edge-feat"] * (meta["has_edge_attr"] == "True")
        if meta["additional node files"] != "None":
            raw += meta["additional node files"].split(",")
        files = [f"{folder}/raw/{f}.csv.gz" for f in raw]
    files += [f"{folder}/split/{meta['split']}/{p}.csv.gz" for p in ("train", "valid", "test")]
    return files + [f"{folder}/RELEASE_v{meta['version']}.txt"]


def clear_empty_folder(folder: Path, missing: list[str]) -> None:
    """Remove the empty folders a failed download left (OGB would otherwise ask on stdin
    whether to re-download); refuse a folder that holds files but not all of them."""
    if not folder.exists():
        return
    if any(p.is_file() for p in folder.rglob("*")):
        raise DataError(
            f"{folder} is an incomplete OGB folder (missing {', '.join(missing)}); complete it "
            "or delete it, then run again."
        )
    for sub in sorted(folder.rglob("*"), reverse=True):
        sub.rmdir()
    folder.rmdir()


def ogb_labels(y: torch.Tensor) -> torch.Tensor:
    """``[N]`` class ids from OGB's ``[N, 1]`` labels; NaN (unlabelled) becomes -1."""
    y = y.view(-1)
    if y.dtype.is_floating_point:
        y = torch.where(y.isnan(), torch.full_like(y, -1), y).long()
    return y


class OGBNodeDataset(GraphSource):
    """A homogeneous OGB node-property graph with single-label classes (``ogbn-arxiv``,
    ``ogbn-products``, ``ogbn-papers100M``).

    Args:
        name: OGB's dataset name (``ogbn-arxiv``).
        options: ``largest_component``, ``standardize_edges`` (:class:`GraphSource`).
    """

    def __init__(self, name: str, **options: bool):
        super().__init__(name, **options)
        master = ogb_master()
        if name not in master:
            nodes = sorted(n for n in master if n.startswith("ogbn-"))
            raise ConfigError(f"dataset.name={name!r} is not an OGB node dataset: {nodes}.")
        self.meta = master[name]
        if (
            self.meta["is hetero"] == "True"
            or self.meta["task type"] != "multiclass classification"
        ):
            raise ConfigError(
                f"{name} is a {'heterogeneous' if self.meta['is hetero'] == 'True' else ''} "
                f"{self.meta['task type']} dataset; g2m distils single-label classification on "
                "homogeneous graphs (ogbn-arxiv, ogbn-products, ogbn-papers100M)."
            )

    def read(self, location: DataLocation) -> Data:
        cache = location.cache_dir
        with dataset_lock(cache, self.name):
            missing = stage_raw_files(
                expected_files(self.name, self.meta), cache, location.data_dir
            )
            if missing:
                clear_empty_folder(cache / self.name.replace("-", "_"), missing)
            dataset, split = self._load(location, missing)
        data = dataset[0]
        num_nodes = data.num_nodes
        for key, part in (("train_mask", "train"), ("val_mask", "valid"), ("test_mask", "test")):
            mask = torch.zeros(num_nodes, dtype=torch.bool)
            mask[split[part]] = True
            data[key] = mask
        data.y = ogb_labels(data.y)
        from torch_geometric.data import Data

        return Data(
            **{k: data[k] for k in ("x", "edge_index", "y", *MASK_KEYS)}, num_nodes=num_nodes
        )

    def _load(self, location: DataLocation, missing: list[str]) -> tuple[Any, dict]:
        from ogb.nodeproppred import PygNodePropPredDataset

        try:
            with torch.serialization.safe_globals(_pyg_safe_globals()):
                dataset = PygNodePropPredDataset(self.name, root=str(location.cache_dir))
                return dataset, dataset.get_idx_split()
        except (OSError, EOFError, SystemExit) as err:  # offline, or its prompt unanswered
            if not missing:
                raise DataError(f"{self.name} could not be read ({err}).") from err
            clear_empty_folder(location.cache_dir / self.name.replace("-", "_"), missing)
            raise unavailable(
                self.name, missing, location.cache_dir, location.data_dir, err
            ) from err
