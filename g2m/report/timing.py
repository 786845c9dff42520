"""Inference times for the report's trade-off figure, measured in one controlled pass.

The times a run records in ``timings.json`` were taken while other runs shared the machine,
so the same teacher can show 155 ms in one run and 345 ms in the next. The figure instead
times every distinct model once, here and now, on one device: the teacher's full-graph
inference and the student's feature-only inference over every node of the run's graph, each
the median of ``repeats`` timed calls after ``warmup`` untimed ones, with the spread
(interquartile range) kept for error bars. A model is rebuilt from its run's ``config.yaml``
for the run's graph; its weights are left at their initialisation, since inference time
depends on shapes, not on values. A run whose graph cannot be loaded here (no data files)
keeps its recorded times, and the figure says so.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


@dataclass(frozen=True)
class Timed:
    """A median time in milliseconds, its interquartile spread, and where it was taken."""

    median: float
    low: float
    high: float
    device: str
    measured: bool = True  # False: the run's own record, taken under unknown load


def time_call(fn: Any, device: torch.device, repeats: int, warmup: int) -> Timed:
    """Median and interquartile range of ``fn()`` in ms (CUDA events on a GPU)."""
    times = []
    with torch.no_grad():
        for _ in range(warmup):
            fn()
        for _ in range(repeats):
            if device.type == "cuda":
                start, end = (
                    torch.cuda.Event(enable_timing=True),
                    torch.cuda.Event(enable_timing=True),
                )
                start.record()
                fn()
                end.record()
                torch.cuda.synchronize(device)
                times.append(start.elapsed_time(end))
            else:
                began = time.perf_counter()
                fn()
                times.append((time.perf_counter() - began) * 1e3)
    quartiles = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    return Timed(statistics.median(times), quartiles[0], quartiles[2], name)


class InferenceTimer:
    """Times teachers and students of finished runs, each distinct model once."""

    def __init__(self, device: str = "cpu", repeats: int = 20, warmup: int = 3):
        self.device = torch.device(device)
        self.repeats, self.warmup = repeats, warmup
        self._cache: dict[str, dict[str, Timed | None]] = {}
        self._graphs: dict[str, Any] = {}

    def times(self, run_dir: str | Path) -> dict[str, Timed | None]:
        """``{"teacher": Timed | None, "student": Timed}`` for the run in ``run_dir``."""
        run_dir = Path(run_dir)
        try:
            config = _load_config(run_dir)
        except (OSError, ValueError):  # no config.yaml: a run from elsewhere
            return recorded(run_dir)
        key = json.dumps(
            [config.get("dataset"), config.get("teacher", {}).get("model"),
             config.get("teacher", {}).get("self_loops"), config.get("student", {}).get("model"),
             _needs_teacher(run_dir)],
            sort_keys=True,
        )  # fmt: skip
        if key not in self._cache:
            self._cache[key] = self._measure(run_dir)
        return self._cache[key]

    def _measure(self, run_dir: Path) -> dict[str, Timed | None]:
        from omegaconf import OmegaConf

        from g2m.run.build import RunModels, build_run

        try:
            plan = build_run(OmegaConf.create(_load_config(run_dir)))
            graph = self._graph(plan)
        except Exception:  # no data here, or a config from another g2m: keep the records
            return recorded(run_dir)
        models = RunModels.for_graph(plan, graph)
        x = graph.data.x.to(self.device)
        student = models.distilled_student().eval().to(self.device)
        # a stage's extra input columns (positions) take part in the timing as zeros
        extra = student.init_args["in_channels"] - x.size(1)
        x_s = torch.cat([x, x.new_zeros(x.size(0), extra)], 1) if extra else x
        out = {"student": time_call(lambda: student(x_s), self.device, self.repeats, self.warmup)}
        out["teacher"] = None
        if _needs_teacher(run_dir) and plan.teacher.model is not None:  # not an ensemble
            teacher = models.teacher().eval().to(self.device)
            if getattr(teacher.gnn, "uses_training_labels", False):  # C&S: its cost, any labels
                teacher.gnn.attach_labels(graph.data.y, torch.ones_like(graph.data.y).bool())
            adj = teacher.adjacency(graph.data.edge_index, graph.data.num_nodes).to(self.device)
            out["teacher"] = time_call(
                lambda: teacher(x, adj), self.device, self.repeats, self.warmup
            )
        return out

    def _graph(self, plan: Any) -> Any:
        key = json.dumps(plan.config.get("dataset"), sort_keys=True)
        if key not in self._graphs:
            self._graphs[key] = plan.source.load(plan.location)
        return self._graphs[key]


def _load_config(run_dir: Path) -> dict[str, Any]:
    import yaml

    return yaml.safe_load((run_dir / "config.yaml").read_text())


def _needs_teacher(run_dir: Path) -> bool:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return "teacher" in metrics


def recorded(run_dir: Path) -> dict[str, Timed | None]:
    """The run's own ``timings.json`` figures (no spread: one median each)."""
    path = run_dir / "timings.json"
    timings = json.loads(path.read_text()) if path.is_file() else {}
    device = str(timings.get("inference_device", "?"))
    out: dict[str, Timed | None] = {}
    for stage in ("teacher", "student"):
        ms = timings.get(f"{stage}_inference_ms")
        out[stage] = Timed(ms, ms, ms, device, measured=False) if ms is not None else None
    return out
