"""The paired leaderboard: ``python -m g2m.report.leaderboard RUNS... --reference glnn``.

Writes ``leaderboard.md``, ``leaderboard.csv`` and ``leaderboard.png`` (each method's paired
difference with ±2 SE, :func:`g2m.report.plots.plot_paired`) into ``--out``.

Every method is compared with a reference method (GLNN by default) *paired on the same
teacher*, under the protocol of ``experiments/leaderboard/README.md``. For a dataset, a
setting and a teacher, let :math:`a_m(s)` be method *m*'s student test accuracy on seed *s*
(held-out nodes, ``test_acc_ind``, in the inductive setting). Over the *n* seeds on which
both *m* and the reference ran from the same teacher,

.. math::
    d_s = a_m(s) - a_{ref}(s), \\qquad
    \\bar d = \\frac{1}{n}\\sum_s d_s, \\qquad
    \\mathrm{SE}(\\bar d) = \\frac{\\mathrm{sd}(d)}{\\sqrt n}
    \\quad (\\mathrm{sd} \\text{ with } n - 1),

and the table marks :math:`|\\bar d| > 2\\,\\mathrm{SE}` as beyond seed noise. Pairing
removes the teacher's seed-to-seed variance, which is most of the spread of either method
alone.

**Same teacher.** Two runs share a teacher when their ``teacher`` blocks agree exactly
(name, validation and test accuracy, best epoch): a teacher reused through the artifact
store or ``teacher.artifact`` gives the same numbers bit for bit, a retrained one does not
(on a GPU not even from one seed). A pair whose teachers differ is no paired comparison and
is left out, with one warning. A label-only method (``loss=supervised``) trains no teacher;
it pairs on the seed alone.

**Seeds.** Only the report seeds count (``--seeds``, default 0-9). Runs on other seeds, in
particular the tuning seeds 100-104 that chose each method's settings, are dropped with one
warning: reporting on them would let the tuning see the table.

**Published numbers** (``--published FILE``, e.g. ``experiments/leaderboard/published.yaml``):
a method's number as its paper reports it sits beside its row, marked † where that paper
selected its checkpoint on test accuracy, and the gain it claims over the reference (its
number minus the reference's number *in the same paper's table*, where the file gives one) is
drawn as a cross beside the measured difference.
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from g2m.errors import ConfigError
from g2m.io import check_output, write_output
from g2m.report.runs import load_runs, warn_stderr

__all__ = [
    "Entry",
    "Published",
    "leaderboard",
    "main",
    "parse_seeds",
    "read_published",
    "to_markdown",
]

TEACHER_FIELDS = ("name", "val_acc", "test_acc", "best_epoch")


@dataclass
class Entry:
    """One method on one dataset × setting × teacher (accuracies in %).

    ``delta`` is :math:`(\\bar d, \\mathrm{SE})` against the reference over ``pairs`` seeds,
    None for the reference itself or when fewer than two seeds pair.
    """

    dataset: str
    setting: str
    teacher: str | None
    method: str
    n: int
    val: tuple[float, float]
    test: tuple[float, float]
    teacher_test: tuple[float, float] | None
    delta: tuple[float, float] | None = None
    pairs: int = 0
    better: int = 0
    worse: int = 0
    seeds: list[int] = field(default_factory=list)
    published: Published | None = None

    @property
    def beyond_noise(self) -> bool:
        return self.delta is not None and abs(self.delta[0]) > 2 * self.delta[1]


@dataclass(frozen=True)
class Published:
    """A paper's number for a method on a dataset × setting (%), whether that paper picked
    its checkpoint on test accuracy, and the gain it claims over the reference (its number
    minus the reference's in the same table; None where the file gives no such number)."""

    value: float
    on_test: bool
    claimed_gain: float | None = None


def read_published(path: Path, reference: str) -> dict[tuple[str, str, str], Published]:
    """``{(method, setting, dataset): Published}`` from a YAML of the shape of
    ``experiments/leaderboard/published.yaml``: per method ``selection`` (text starting with
    ``test`` or ``validation``), ``transductive`` / ``inductive`` maps of dataset to number,
    and optionally ``reference``: the reference method's numbers in the same table."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        reason = " ".join(str(err).split())  # YAML's messages run to several lines
        raise ConfigError(f"--published {path}: not a readable YAML file ({reason}).") from err
    found = {}
    for method, block in data.items():
        if not isinstance(block, dict):
            raise ConfigError(f"--published {path}: '{method}' must map to a block of numbers.")
        on_test = str(block.get("selection", "")).strip().startswith("test")
        for setting in ("transductive", "inductive"):
            # the reference's own row claims no gain over itself
            claimed = {} if method == reference else (block.get("reference") or {}).get(setting)
            for dataset, value in (block.get(setting) or {}).items():
                base = (claimed or {}).get(dataset)
                gain = None if base is None else float(value) - float(base)
                found[(method, setting, dataset)] = Published(float(value), on_test, gain)
    return found


def parse_seeds(text: str) -> set[int]:
    """``"0-9"``, ``"0,1,2"`` or ``"0-4,7"`` as a set of seeds."""
    seeds: set[int] = set()
    try:
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            seeds.update(range(int(low), int(high or low) + 1))
    except ValueError:
        raise ConfigError(
            f"--seeds {text!r}: expected seeds and ranges such as 0-9 or 0,1,2 or 0-4,7."
        ) from None
    return seeds


def setting_accuracy(run: dict, block: str = "student") -> float:
    """A block's (``student``, ``teacher``) test accuracy under the run's setting: held-out
    nodes if inductive and the block reports them, else the observed test nodes."""
    accuracies = run[block]
    if run["setting"] == "inductive" and "test_acc_ind" in accuracies:
        return accuracies["test_acc_ind"]
    return accuracies["test_acc"]


def student_accuracy(run: dict) -> float:
    """The student's test accuracy under the run's setting (held-out nodes if inductive)."""
    return setting_accuracy(run, "student")


def teacher_accuracy(run: dict) -> float | None:
    """The teacher's test accuracy under the run's setting, or None: no teacher, or an
    inductive run whose teacher reports no held-out accuracy of its own (an ensemble of
    stored teachers) -- never the observed nodes' accuracy in place of the held-out one."""
    teacher = run.get("teacher")
    if not teacher:
        return None
    return teacher.get("test_acc_ind") if run["setting"] == "inductive" else teacher["test_acc"]


def method_name(run: dict) -> str:
    """The loss, with the student when it is not the default MLP and the run's ``tag``."""
    student = run["student"]
    name = str(student.get("loss", student["name"]))
    if student["name"] != "mlp":
        name += f" ({student['name']})"
    return f"{name} [{run['tag']}]" if run.get("tag") else name


def teacher_signature(run: dict) -> tuple | None:
    teacher = run.get("teacher")
    return None if teacher is None else tuple(teacher.get(k) for k in TEACHER_FIELDS)


def _mean_sd(values: list[float], scale: float = 100.0) -> tuple[float, float]:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return scale * statistics.mean(values), scale * sd


def leaderboard(
    runs: list[dict],
    reference: str = "glnn",
    seeds: set[int] | None = None,
    warn: Callable[[str], None] = warn_stderr,
    published: dict[tuple[str, str, str], Published] | None = None,
) -> list[Entry]:
    """Entries for every dataset × setting × teacher × method among ``runs`` (see module)."""
    seeds = set(range(10)) if seeds is None else seeds
    dropped = sorted({r["seed"] for r in runs if r["seed"] not in seeds})
    if dropped:
        warn(
            f"left out the runs on seeds {dropped}: not report seeds "
            f"({min(seeds)}-{max(seeds)}); tuning seeds never enter the table"
        )
    cells: dict[tuple, dict[str, dict[int, dict]]] = defaultdict(lambda: defaultdict(dict))
    for run in runs:
        if run["seed"] not in seeds:
            continue
        teacher = run.get("teacher", {}).get("name") if run.get("teacher") else None
        key = (run["dataset"], run["setting"])
        method = method_name(run)
        slot = cells[key][(teacher, method)]
        if run["seed"] in slot:
            warn(
                f"two runs of {method} (teacher {teacher}) on {key[0]} {key[1]} seed "
                f"{run['seed']}: kept {slot[run['seed']]['path']}, left out {run['path']}"
            )
            continue
        slot[run["seed"]] = run
    entries = []
    for (dataset, setting), methods in sorted(cells.items()):
        for (teacher, method), by_seed in sorted(methods.items(), key=lambda kv: str(kv[0])):
            members = [by_seed[s] for s in sorted(by_seed)]
            teachers = [a for a in map(teacher_accuracy, members) if a is not None]
            entry = Entry(
                dataset,
                setting,
                teacher,
                method,
                n=len(members),
                val=_mean_sd([m["student"]["val_acc"] for m in members]),
                test=_mean_sd([student_accuracy(m) for m in members]),
                teacher_test=_mean_sd(teachers) if teachers else None,
                seeds=sorted(by_seed),
                published=(published or {}).get((method, setting, dataset)),
            )
            ref = _reference_runs(methods, teacher, reference)
            if ref is not None and method != reference:
                _pair(entry, by_seed, ref, warn)
            entries.append(entry)
    return entries


def _reference_runs(methods: dict, teacher: str | None, reference: str) -> dict[int, dict] | None:
    """The reference method's runs beside ``teacher`` (for a label-only method: the
    reference runs of the only teacher, when there is exactly one)."""
    if teacher is not None:
        return methods.get((teacher, reference))
    candidates = [runs for (t, m), runs in methods.items() if m == reference and t is not None]
    return candidates[0] if len(candidates) == 1 else None


def _pair(entry: Entry, runs: dict[int, dict], ref: dict[int, dict], warn) -> None:
    differences = []
    for seed in sorted(set(runs) & set(ref)):
        run, base = runs[seed], ref[seed]
        if run.get("teacher") and teacher_signature(run) != teacher_signature(base):
            warn(
                f"{entry.method} on {entry.dataset} {entry.setting} seed {seed} did not distil "
                f"the reference run's teacher ({run['path']} vs {base['path']}): left out of "
                "the paired difference; reuse one teacher (store=true or teacher.artifact=)"
            )
            continue
        differences.append(student_accuracy(run) - student_accuracy(base))
    entry.pairs = len(differences)
    entry.better = sum(d > 0 for d in differences)
    entry.worse = sum(d < 0 for d in differences)
    if len(differences) >= 2:
        mean, sd = _mean_sd(differences)
        entry.delta = (mean, sd / math.sqrt(len(differences)))


def to_markdown(entries: list[Entry], reference: str) -> str:
    """One table per dataset × setting, methods by mean test accuracy."""
    blocks = []
    groups: dict[tuple, list[Entry]] = defaultdict(list)
    for e in entries:
        groups[(e.dataset, e.setting)].append(e)
    for (dataset, setting), rows in groups.items():
        lines = [
            f"### {dataset}, {setting}",
            "",
            f"| method | teacher | n | val | test | Δ vs {reference} ± SE | +/− seeds "
            "| teacher test | published (claimed Δ) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for e in sorted(rows, key=lambda e: -e.test[0]):
            delta = "reference" if e.method == reference else "-"
            if e.delta is not None:
                delta = f"{e.delta[0]:+.2f} ± {e.delta[1]:.2f}" + (" *" if e.beyond_noise else "")
            teacher_test = "-" if e.teacher_test is None else _pm(e.teacher_test)
            wins = f"{e.better}/{e.worse}" if e.pairs else "-"
            lines.append(
                f"| {e.method} | {e.teacher or 'none'} | {e.n} | {_pm(e.val)} | {_pm(e.test)} "
                f"| {delta} | {wins} | {teacher_test} | {_published(e.published)} |"
            )
        blocks.append("\n".join(lines))
    note = (
        f"Accuracy in %, mean ± sd over seeds; Δ: paired difference to {reference} from the "
        "same teacher, ± its standard error; * beyond 2 SE; +/−: seeds on which the method "
        "was better/worse than the reference; published: the paper's number (its claimed gain "
        f"over {reference} in the same table), † where it selected on test accuracy."
    )
    return "\n\n".join(blocks) + "\n\n" + note


def _published(value: Published | None) -> str:
    if value is None:
        return "-"
    gain = "" if value.claimed_gain is None else f" ({value.claimed_gain:+.2f})"
    return f"{value.value:.2f}{gain}" + (" †" if value.on_test else "")


def _pm(value: tuple[float, float]) -> str:
    return f"{value[0]:.2f} ± {value[1]:.2f}"


def write_csv(entries: list[Entry], path: Path) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["dataset", "setting", "teacher", "method", "n", "val_mean", "val_sd", "test_mean",
             "test_sd", "delta", "delta_se", "pairs", "better", "worse", "seeds"]
        )  # fmt: skip
        for e in entries:
            delta = e.delta or ("", "")
            writer.writerow(
                [e.dataset, e.setting, e.teacher or "", e.method, e.n, *e.val, *e.test, *delta,
                 e.pairs, e.better, e.worse, " ".join(map(str, e.seeds))]
            )  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m g2m.report.leaderboard", description=__doc__.splitlines()[0]
    )
    parser.add_argument("runs", nargs="+", type=Path, help="run or sweep directories")
    parser.add_argument("--reference", default="glnn", help="the method paired against")
    parser.add_argument("--seeds", default="0-9", help="report seeds (default 0-9)")
    parser.add_argument("--out", type=Path, default=Path("leaderboard"))
    parser.add_argument(
        "--published", type=Path, help="papers' numbers (experiments/leaderboard/published.yaml)"
    )
    args = parser.parse_args(argv)
    seeds = parse_seeds(args.seeds)
    check_output(args.out, "--out", folder=True)
    published = read_published(args.published, args.reference) if args.published else None
    entries = leaderboard(load_runs(args.runs), args.reference, seeds, published=published)
    if not entries:
        raise ConfigError(f"no run on the report seeds {args.seeds} under the given folders.")
    table = to_markdown(entries, args.reference)
    write_output(args.out / "leaderboard.md", lambda tmp: tmp.write_text(table + "\n"))
    write_output(args.out / "leaderboard.csv", lambda tmp: write_csv(entries, tmp))
    from g2m.report.plots import plot_paired

    write_output(
        args.out / "leaderboard.png", lambda tmp: plot_paired(entries, args.reference, tmp)
    )
    print(table)
    print(f"\nleaderboard.md, leaderboard.csv, leaderboard.png written to {args.out}")


if __name__ == "__main__":
    from g2m.cli import run_tool

    run_tool("g2m.report.leaderboard", main)
