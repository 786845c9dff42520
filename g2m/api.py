"""The Python API: ``g2m.distill(data, ...)`` runs the same pipeline as the command line.

.. code-block:: python

    import g2m, torch_geometric
    data = torch_geometric.datasets.Coauthor(root, "CS")[0]   # any Data with x, edge_index, y
    run = g2m.distill(data, teacher="sage", loss="glnn", split="cpf", seed=0,
                      overrides=["student.model.hidden_channels=256"], run_dir="runs/cs-0")
    run.metrics    # the same dict as metrics.json
    run.student    # the trained MLP (a torch nn.Module in eval mode)

:func:`distill` composes the packaged Hydra config with the keyword arguments and
``overrides`` (the same strings the command line takes), then :func:`run_config` runs it:
the same validation, stages, artifacts and resume as ``python -m g2m.train``, which is a
thin wrapper on :func:`run_config`. Bad input raises a :class:`g2m.errors.G2MError`
(``ConfigError``, ``DataError``, ``ArtifactError``) before anything is trained or written.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from g2m.errors import ConfigError

CONFIG_MODULE = "g2m.configs"
DATASET_OPTIONS = Path(__file__).parent / "configs" / "dataset"


@dataclass(repr=False)
class Run:
    """A finished run: its directory, its metrics and its student.

    Attributes:
        run_dir: the run directory (``metrics.json``, ``student.pt``, ...).
        metrics: the contents of ``metrics.json``.
        config: the resolved config the run was built from.
    """

    run_dir: Path
    metrics: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict, repr=False)
    _student: Any = field(default=None, init=False, repr=False)

    def __repr__(self) -> str:
        m = self.metrics
        student = m.get("student", {})
        test = f", student test {100 * student['test_acc']:.2f}%" if "test_acc" in student else ""
        return (
            f"Run({m.get('dataset')} ({m.get('split')}), {m.get('teacher', {}).get('name')} -> "
            f"{student.get('name')} ({student.get('loss')}), seed {m.get('seed')}{test}, "
            f"{self.run_dir})"
        )

    @property
    def student(self) -> Any:
        """The trained student (:class:`g2m.models.MLPStudent`, eval mode), from ``student.pt``."""
        if self._student is None:
            from g2m.serve.artifact import load_student

            self._student, _ = load_student(self.run_dir / "student.pt")
        return self._student

    @property
    def student_path(self) -> Path:
        """The deployable artifact: ``g2m.load_student(run.student_path)`` rebuilds it."""
        return self.run_dir / "student.pt"

    def student_inputs(self, x: Any) -> Any:
        """What the student takes for the ``[N, F]`` features ``x`` of the graph it was
        trained on: ``x`` itself, or ``[x, positions]`` for a student trained with position
        features (``loss=nosmog``; the run's ``positions.pt``)."""
        import torch

        path = self.run_dir / "positions.pt"
        if not path.is_file():
            return x
        positions = torch.load(path, map_location="cpu", weights_only=True)["positions"]
        return torch.cat([x, positions.to(device=x.device, dtype=x.dtype)], dim=1)

    @property
    def timings(self) -> dict[str, Any]:
        """``timings.json``: stage seconds, training rates, inference times."""
        path = self.run_dir / "timings.json"
        return json.loads(path.read_text()) if path.is_file() else {}


def dataset_options() -> list[str]:
    return sorted(p.stem for p in DATASET_OPTIONS.glob("*.yaml"))


def dataset_overrides(data: Any) -> tuple[list[str], Any]:
    """The overrides that select ``data``'s dataset, and the in-memory graph (or None)."""
    if data is None:
        return [], None
    if isinstance(data, str | os.PathLike):
        text = str(data)
        if isinstance(data, str) and text in dataset_options():
            return [f"dataset={text}"], None
        if Path(text).suffix in (".pt", ".pth", ".npz"):
            return ["dataset=file", f"dataset.path={Path(text).expanduser().resolve()}"], None
        raise ConfigError(
            f"data={text!r} is neither a dataset g2m knows ({', '.join(dataset_options())}) "
            "nor a .pt / .npz graph file."
        )
    if all(hasattr(data, key) for key in ("x", "edge_index", "y")):
        return ["dataset=memory"], data
    raise ConfigError(
        f"data must be a PyG Data (x, edge_index, y), a dataset name or a graph file; got "
        f"a {type(data).__name__}."
    )


def one_line(message: str) -> str:
    """Hydra's multi-line composition error as one line (options listed, search path cut)."""
    head, _, rest = message.strip().partition("\n")
    rest = rest.split("Config search path:")[0]
    options = [line.strip() for line in rest.splitlines() if line.startswith("\t")]
    if options:
        return f"{head.strip()}. Available options: {', '.join(options)}."
    return " ".join(line.strip() for line in message.strip().splitlines() if line.strip())


@contextlib.contextmanager
def packaged_config() -> Iterator[None]:
    """Hydra's compose API over ``g2m/configs``, also inside another Hydra application."""
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    import g2m.configs  # noqa: F401  (registers the configs' resolvers)

    outer = GlobalHydra.instance()
    saved = outer.hydra if outer.is_initialized() else None
    outer.clear()
    try:
        with initialize_config_module(CONFIG_MODULE, version_base="1.3", job_name="g2m"):
            yield
    finally:
        if saved is not None:
            GlobalHydra.instance().initialize(saved)


def compose_config(overrides: Sequence[str] = ()) -> tuple[DictConfig, str]:
    """The run config for ``overrides`` (as ``python -m g2m.train`` composes it) and the run
    directory Hydra would choose for it."""
    from hydra import compose
    from hydra.errors import HydraException

    with packaged_config():
        try:
            cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
        except HydraException as err:  # an unknown option or a malformed override
            raise ConfigError(one_line(str(err))) from err
    default_run_dir = str(OmegaConf.select(cfg, "hydra.run.dir"))
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg, default_run_dir


@contextlib.contextmanager
def console_logging() -> Iterator[None]:
    """Show g2m's log lines (what the data checks changed, reused artifacts) on stderr when
    the caller has not configured logging, as the command line does."""
    logger = logging.getLogger("g2m")
    if logger.handlers or logging.getLogger().handlers:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("g2m: %(message)s"))
    logger.addHandler(handler)
    summary = logging.getLogger("g2m.summary")  # printed on stdout already
    level, logger.level, summary.propagate = logger.level, logging.INFO, False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        summary.propagate = True


def run_config(cfg: DictConfig, run_dir: str | Path, data: Any = None) -> Run:
    """Run the composed ``cfg`` into ``run_dir`` (``data``: a graph for ``dataset=memory``)."""
    from g2m.run import pipeline

    metrics = pipeline.run(cfg, Path(run_dir), data=data)
    return Run(Path(run_dir), metrics, OmegaConf.to_container(cfg, resolve=True))


def load_dataset(data: Any = "cora", overrides: Sequence[str] = ()) -> Any:
    """The checked graph g2m trains on for ``data`` (a dataset name, a graph file or a PyG
    ``Data``), as a :class:`g2m.data.LoadedGraph` (``.data``, ``.classes``, ``.notes``):
    what the loaders and the input checks make of it, without training anything."""
    from g2m.data.source import DataLocation
    from g2m.run.build import build_node

    chosen, graph = dataset_overrides(data)
    cfg, _ = compose_config([*chosen, *overrides])
    source = build_node(cfg.dataset, "dataset", **({"data": graph} if graph is not None else {}))
    with console_logging():
        return source.load(DataLocation.from_paths(cfg.paths.cache_dir, cfg.paths.data_dir))


def distill(
    data: Any = None,
    *,
    teacher: str | None = None,
    student: str | None = None,
    loss: str | None = None,
    split: str | None = None,
    setting: str | None = None,
    seed: int | None = None,
    name: str | None = None,
    overrides: Sequence[str] = (),
    run_dir: str | Path | None = None,
) -> Run:
    """Train a teacher on ``data`` and distil it into an MLP student; see the module docstring.

    Args:
        data: a PyG ``Data`` (or any object with ``x``, ``edge_index``, ``y``); the name of a
            dataset g2m ships (``"cora"``); or a ``.pt`` / ``.npz`` graph file. None: the
            config's default dataset.
        teacher, student, loss, split, setting: config-group options (``"gcn"``, ``"vq"``,
            ``"ratio"``, ``"inductive"``, ...); None keeps the default.
        seed: the run's seed. name: the dataset's name in metrics and the run directory.
        overrides: further ``key=value`` overrides, exactly as on the command line.
        run_dir: where the run writes (rerunning into it resumes); None: Hydra's default
            ``runs/<dataset>/<teacher>-<student>-<loss>/<setting>/seed<seed>-<time>``.

    Returns:
        The finished :class:`Run`.
    """
    chosen, graph = dataset_overrides(data)
    groups = {"teacher": teacher, "student": student, "loss": loss, "split": split}
    chosen += [f"{k}={v}" for k, v in (groups | {"setting": setting}).items() if v is not None]
    chosen += [f"seed={seed}"] * (seed is not None) + [f"dataset.name={name}"] * (name is not None)
    cfg, default_dir = compose_config([*chosen, *overrides])
    with console_logging():
        return run_config(cfg, run_dir if run_dir is not None else default_dir, data=graph)
