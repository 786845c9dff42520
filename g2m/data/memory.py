"""A graph the caller already holds: what ``g2m.distill(data)`` trains on (``dataset=memory``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from g2m.data.source import DataLocation, GraphSource
from g2m.errors import ConfigError

if TYPE_CHECKING:
    from torch_geometric.data import Data


class InMemoryGraph(GraphSource):
    """A PyG ``Data`` (or any object with ``x``, ``edge_index`` and ``y``) passed in Python.

    Args:
        name: the dataset's name in metrics and logs.
        data: the graph; None when the config is composed without one (the command line),
            which :meth:`read` refuses with the way to pass a graph from the shell.
        options: ``largest_component``, ``standardize_edges`` (:class:`GraphSource`).
    """

    def __init__(self, name: str, data: Data | None = None, **options: bool):
        super().__init__(name, **options)
        if data is None:
            raise ConfigError(
                "dataset=memory trains on a graph passed in Python: g2m.distill(data, ...). "
                "From the command line, save it (torch.save(data, 'graph.pt')) and use "
                "dataset=file dataset.path=graph.pt."
            )
        self.data = data

    def read(self, location: DataLocation) -> Data:
        return self.data
