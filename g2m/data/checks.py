"""Checks that turn an arbitrary graph into one g2m can train on, or say why not.

Every loader's graph passes through :func:`prepare_graph` once. What can be fixed without
changing the task is fixed and said once in the log; what cannot is refused with a
:class:`~g2m.errors.DataError` that names the problem and what is accepted.

==========================================  =============================================
input                                       what happens
==========================================  =============================================
sparse, integer or boolean features         converted to dense float32
NaN or Inf features                         refused
directed edges                              made undirected (the reverse edges added)
self-loops, duplicate edges                 removed (teachers add their own self-loops)
``edge_index`` ids outside ``0..N-1``       refused
isolated nodes                              counted in the log (they keep their features)
labels not ``0..C-1`` (e.g. ``{3, 7, 9}``)  remapped; the original ids are kept as
                                            ``classes`` (and in the student artifact)
``y = -1``                                  unlabelled: never in train, val or test
``y`` of shape ``[N, 1]``                   squeezed to ``[N]``
multi-label ``y [N, K]`` or float ``y``     refused (single-label classification only)
fewer than two classes                      refused
==========================================  =============================================

The order follows CPF's standardisation (Yang et al., WWW 2021: unweighted, undirected, no
self-loops, then the largest connected component), so a benchmark file prepared here is
the graph the published protocol uses.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.transforms import LargestConnectedComponents
from torch_geometric.utils import coalesce, remove_self_loops, to_undirected

from g2m.data.source import LoadedGraph
from g2m.errors import DataError

log = logging.getLogger("g2m")

MASKS = ("train_mask", "val_mask", "test_mask")
UNLABELLED = -1


def dense_features(x: Tensor | None, name: str, notes: list[str]) -> Tensor:
    """``[N, F]`` float32 features from dense, sparse, integer or boolean input."""
    if x is None:
        raise DataError(f"Dataset '{name}' has no node features: set data.x to an [N, F] tensor.")
    if x.layout != torch.strided:
        x = x.to_dense()
        notes.append("sparse features converted to a dense tensor")
    if x.dim() != 2:
        raise DataError(
            f"Dataset '{name}': features must be a 2-D [nodes, features] tensor, "
            f"got shape {list(x.shape)}."
        )
    if x.dtype != torch.float32:
        notes.append(f"features converted from {str(x.dtype).removeprefix('torch.')} to float32")
        x = x.float()
    if not bool(x.isfinite().all()):
        bad = int((~x.isfinite()).any(dim=1).sum())
        raise DataError(f"Dataset '{name}': {bad} nodes have NaN or Inf features.")
    return x


def integer_labels(y: Tensor | None, num_nodes: int, name: str) -> Tensor:
    """``[N]`` int64 labels; refuses multi-label, float and misshapen ``y``."""
    if y is None:
        raise DataError(
            f"Dataset '{name}' has no labels: set data.y to an [N] tensor of class ids."
        )
    if y.dim() == 2 and y.size(1) == 1:
        y = y.view(-1)
    if y.dim() != 1:
        raise DataError(
            f"Dataset '{name}': y has shape {list(y.shape)}; g2m distils single-label node "
            "classification and needs y of shape [N] (multi-label targets are not supported)."
        )
    if y.dtype.is_floating_point or y.dtype.is_complex:
        raise DataError(
            f"Dataset '{name}': y is {str(y.dtype).removeprefix('torch.')}; g2m needs integer "
            "class ids (regression and soft targets are not supported). If the values are "
            "class ids stored as floats, pass y.long()."
        )
    if y.numel() != num_nodes:
        raise DataError(f"Dataset '{name}': y has {y.numel()} entries for {num_nodes} nodes.")
    y = y.long()
    if y.numel() and int(y.min()) < UNLABELLED:
        raise DataError(
            f"Dataset '{name}': label {int(y.min())} is negative; labels are class ids >= 0, "
            f"or {UNLABELLED} for an unlabelled node."
        )
    return y


def clean_edges(
    edge_index: Tensor | None, num_nodes: int, name: str, notes: list[str], standardize: bool
) -> Tensor:
    """Undirected, coalesced, loop-free ``[2, E]`` edges (both directions stored)."""
    if edge_index is None:
        raise DataError(f"Dataset '{name}' has no edges: set data.edge_index to a [2, E] tensor.")
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise DataError(
            f"Dataset '{name}': edge_index must have shape [2, E], got {list(edge_index.shape)}."
        )
    if edge_index.dtype.is_floating_point or edge_index.dtype == torch.bool:
        raise DataError(f"Dataset '{name}': edge_index must hold integer node ids.")
    edge_index = edge_index.long()
    if edge_index.numel():
        low, high = int(edge_index.min()), int(edge_index.max())
        if low < 0 or high >= num_nodes:
            bad = low if low < 0 else high
            raise DataError(
                f"Dataset '{name}': edge_index refers to node {bad}, but the graph has "
                f"{num_nodes} nodes (ids must lie in 0..{num_nodes - 1})."
            )
    if not standardize:
        return edge_index
    no_loops, _ = remove_self_loops(edge_index)
    if no_loops.size(1) < edge_index.size(1):
        notes.append(f"removed {edge_index.size(1) - no_loops.size(1)} self-loops")
    unique = coalesce(no_loops, num_nodes=num_nodes)
    if unique.size(1) < no_loops.size(1):
        notes.append(f"removed {no_loops.size(1) - unique.size(1)} duplicate edges")
    undirected = to_undirected(unique, num_nodes=num_nodes)
    if undirected.size(1) > unique.size(1):
        notes.append(
            f"directed edges made undirected ({undirected.size(1) - unique.size(1)} "
            "reverse edges added)"
        )
    if undirected.size(1) == edge_index.size(1):
        return edge_index  # nothing to fix: keep the dataset's own edge order
    return undirected


def split_masks(data: Data, num_nodes: int, name: str) -> dict[str, Tensor]:
    """The dataset's own ``[N]`` or ``[N, K]`` boolean split masks, if it has them."""
    masks = {}
    for key in MASKS:
        mask = getattr(data, key, None)
        if mask is None:
            continue
        if mask.size(0) != num_nodes or mask.dim() not in (1, 2):
            raise DataError(
                f"Dataset '{name}': {key} must have shape [N] or [N, K] with N = {num_nodes}, "
                f"got {list(mask.shape)}."
            )
        masks[key] = mask.bool()
    return masks


def contiguous_classes(y: Tensor, name: str, notes: list[str]) -> tuple[Tensor, list[str]]:
    """Labels remapped onto ``0..C-1`` (unlabelled stay -1) and the original id of each."""
    labelled = y >= 0
    ids = y[labelled].unique()
    if ids.numel() < 2:
        raise DataError(
            f"Dataset '{name}': {ids.numel()} class among the labelled nodes; node "
            "classification needs at least two."
        )
    classes = [str(int(c)) for c in ids]
    if torch.equal(ids, torch.arange(ids.numel(), device=ids.device)):
        return y, classes
    lookup = torch.full((int(ids.max()) + 1,), UNLABELLED, dtype=torch.long, device=y.device)
    lookup[ids] = torch.arange(ids.numel(), device=y.device)
    remapped = torch.where(labelled, lookup[y.clamp(min=0)], y)
    shown = ", ".join(classes[:8]) + (", ..." if len(classes) > 8 else "")
    notes.append(f"labels {{{shown}}} remapped to 0..{ids.numel() - 1} (the original ids are kept)")
    return remapped, classes


def prepare_graph(
    data: Data, name: str, largest_component: bool = False, standardize_edges: bool = True
) -> LoadedGraph:
    """Check and normalise ``data`` (see the module docstring); log what was changed.

    Args:
        data: any PyG ``Data`` with ``x``, ``edge_index`` and ``y``.
        name: the dataset's name, for messages.
        largest_component: keep only the largest connected component.
        standardize_edges: make the edges undirected, coalesced and loop-free; false keeps
            them as they are (only their ids are checked).
    """
    notes: list[str] = []
    x = dense_features(getattr(data, "x", None), name, notes)
    num_nodes = x.size(0)
    y = integer_labels(getattr(data, "y", None), num_nodes, name)
    edge_index = clean_edges(
        getattr(data, "edge_index", None), num_nodes, name, notes, standardize_edges
    )
    clean = Data(x=x, edge_index=edge_index, y=y, num_nodes=num_nodes)
    for key, mask in split_masks(data, num_nodes, name).items():
        clean[key] = mask
    if largest_component:
        clean = LargestConnectedComponents(num_components=1)(clean)
        if clean.num_nodes < num_nodes:
            notes.append(
                f"kept the largest connected component: {clean.num_nodes} of {num_nodes} nodes"
            )
    clean.y, classes = contiguous_classes(clean.y, name, notes)
    unlabelled = int((clean.y < 0).sum())
    if unlabelled:
        notes.append(f"{unlabelled} nodes are unlabelled (y = -1): never in train, val or test")
    if standardize_edges:
        isolated = clean.num_nodes - int(clean.edge_index[0].unique().numel())
        if isolated:
            notes.append(f"{isolated} isolated nodes (no edges): only their features inform them")
    for note in notes:
        log.info("%s: %s", name, note)
    return LoadedGraph(clean, name, classes, notes, class_names(data, classes))


def class_names(data: Data, classes: list[str]) -> list[str] | None:
    """The names of the kept classes, from ``data.class_names`` (indexed by label id)."""
    names = getattr(data, "class_names", None)
    if not isinstance(names, list | tuple):
        return None
    ids = [int(c) for c in classes]
    if max(ids) >= len(names):
        return None
    return [str(names[i]) for i in ids]
