"""The experiments' probes are tested with the suite's own fixtures (tests/conftest.py)."""

from tests.conftest import (  # noqa: F401
    _own_artifact_store,
    _torch_threads,
    cache_dir,
    data_dir,
    tiny_graph,
)
