"""The leaderboard's two steps: tune every method on the tuning seeds, then run the report seeds.

    # 1. tune: each method's grid (grids.yaml, the same number of points for every method)
    #    on seeds 100-104; writes <out>/chosen.yaml, the best mean *validation* point per method
    python experiments/leaderboard/run.py tune --dataset cora --out multirun/leaderboard/tune
    # 2. report: every method at its chosen point on seeds 0-9, paired on the same teachers
    #    (the artifact store hands every method of one seed the same teacher), then the table
    python experiments/leaderboard/run.py report --dataset cora \\
        --chosen multirun/leaderboard/tune/chosen.yaml --out multirun/leaderboard/report

Each run is ``python -m g2m.train dataset=<d> loss=<m> seed=<s> <point> hydra.run.dir=...``;
extra g2m overrides follow ``--`` (``-- trainer=gpu setting=inductive``). Runs go ``--jobs``
at a time (each with cores / jobs torch threads); the reference method of a seed runs first,
so its teacher is trained once and found in the store by the others. A finished run is
reported again, not retrained, so an interrupted step is resumed by running it again.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).parent
REFERENCE = "glnn"


def parse_seeds(text: str) -> list[int]:
    from g2m.report.leaderboard import parse_seeds as parse

    return sorted(parse(text))


def point_name(point: dict) -> str:
    """A folder name for a grid point (Hydra's override grammar forbids ``=`` and ``,``), in
    the keys' sorted order: ``chosen.yaml`` is written sorted, so a point read back from it
    names the same folder as the grid's point did."""
    return "_".join(f"{k.split('.')[-1]}-{v}" for k, v in sorted(point.items())) or "default"


def overrides(point: dict) -> list[str]:
    return [f"{k}={v}" for k, v in point.items()]


def train(args: list[str], run_dir: Path, threads: int) -> dict:
    """One g2m run (or the finished one in ``run_dir``); its metrics."""
    metrics = run_dir / "metrics.json"
    if not metrics.is_file():
        command = [sys.executable, "-m", "g2m.train", *args, f"threads={threads}",
                   "logger=none", "trainer.enable_progress_bar=false",
                   f"hydra.run.dir={run_dir}"]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"run failed ({' '.join(command)}):\n{done.stderr[-3000:]}")
    return json.loads(metrics.read_text())


def run_all(jobs: list[tuple[list[str], Path]], workers: int) -> list[dict]:
    """Runs in order, ``workers`` at a time; the first of each seed before the rest. One
    line per finished run (plain lines: a terminal and a log file read them alike)."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    done = iter(range(1, len(jobs) + 1))

    def one(job: tuple[list[str], Path]) -> dict:
        metrics = train(*job, threads)
        student = metrics["student"]
        print(f"[{next(done)}/{len(jobs)}] {job[1]}: student val {100 * student['val_acc']:.2f}"
              f" test {100 * student['test_acc']:.2f}", flush=True)  # fmt: skip
        return metrics

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, jobs))


def plan(dataset: str, methods: dict[str, list[dict]], seeds: list[int], out: Path,
         extra: list[str]) -> list[tuple[str, dict, int, list[str], Path]]:  # fmt: skip
    """(method, point, seed, g2m args, run dir) for every run, reference first per seed."""
    runs = []
    for seed in seeds:
        for method in sorted(methods, key=lambda m: m != REFERENCE):
            for point in methods[method]:
                args = [f"dataset={dataset}", f"loss={method}", f"seed={seed}",
                        *overrides(point), *extra]  # fmt: skip
                run_dir = out / dataset / method / point_name(point) / f"seed{seed}"
                runs.append((method, point, seed, args, run_dir))
    return runs


def tune(args: argparse.Namespace, extra: list[str]) -> None:
    grids = yaml.safe_load((HERE / "grids.yaml").read_text())
    methods = {m: grids[m] or [{}] for m in args.methods or grids}
    runs = plan(args.dataset, methods, parse_seeds(args.seeds), args.out, extra)
    results = run_all([(r[3], r[4]) for r in runs], args.jobs)
    scores: dict[tuple[str, str], list[float]] = {}
    for (method, point, *_), metrics in zip(runs, results, strict=True):
        scores.setdefault((method, json.dumps(point)), []).append(metrics["student"]["val_acc"])
    chosen = {}
    for method in methods:
        points = {p: statistics.mean(v) for (m, p), v in scores.items() if m == method}
        best = max(points, key=lambda p: points[p])  # validation only; ties: the first point
        chosen[method] = json.loads(best)
        for p, score in points.items():
            mark = "  <- chosen" if p == best else ""
            print(f"{method:<11} {point_name(json.loads(p)):<40} val {100 * score:6.2f}{mark}")
    # methods tuned in an earlier call keep their choice (a method added later is tuned alone)
    path = args.out / "chosen.yaml"
    earlier = yaml.safe_load(path.read_text()) if path.is_file() else {}
    earlier = (earlier or {}).get(args.dataset, {})
    path.write_text(yaml.safe_dump({args.dataset: {**earlier, **chosen}}))
    print(f"chosen points written to {path}")


def report(args: argparse.Namespace, extra: list[str]) -> None:
    chosen = yaml.safe_load(args.chosen.read_text())[args.dataset] if args.chosen else {}
    names = args.methods or list(chosen) or list(yaml.safe_load((HERE / "grids.yaml").read_text()))
    methods = {m: [chosen.get(m, {})] for m in names}
    runs = plan(args.dataset, methods, parse_seeds(args.seeds), args.out, extra)
    run_all([(r[3], r[4]) for r in runs], args.jobs)
    from g2m.report.leaderboard import main as leaderboard

    leaderboard([str(args.out / args.dataset), "--seeds", args.seeds,
                 "--out", str(args.out / args.dataset / "leaderboard")])  # fmt: skip


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["tune", "report"])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--methods", nargs="+", help="default: every method in grids.yaml")
    parser.add_argument("--seeds", help="default: 100-104 to tune, 0-9 to report")
    parser.add_argument("--chosen", type=Path, help="report: the tune step's chosen.yaml")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.seeds = args.seeds or ("100-104" if args.step == "tune" else "0-9")
    args.out.mkdir(parents=True, exist_ok=True)
    (tune if args.step == "tune" else report)(args, extra)


if __name__ == "__main__":
    main()
