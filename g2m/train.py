"""Entry point: ``python -m g2m.train [group=option ...] [key=value ...]``.

Composes the Hydra config shipped in ``g2m/configs`` and runs it through the Python API's
:func:`g2m.api.run_config` (what ``g2m.distill`` runs too). The command line is checked first
(:mod:`g2m.run.preflight`): a problem with the user's input (:class:`g2m.errors.G2MError`)
ends the process with one line on stderr and exit status 2 before Hydra writes anything;
``G2M_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import os
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict

import g2m.configs  # noqa: F401  (registers the configs' resolvers)
from g2m.api import run_config
from g2m.cli import run_tool
from g2m.errors import ConfigError
from g2m.run.preflight import preflight_or_exit
from g2m.run.settings import device_count


def refuse_multi_device_sweep(cfg: DictConfig) -> None:
    """DDP starts its extra ranks by re-running this command, which a ``-m`` sweep cannot
    survive (each rank would run the whole sweep): multi-device runs are single runs."""
    if HydraConfig.get().mode == RunMode.MULTIRUN and device_count(dict(cfg.trainer)) > 1:
        raise ConfigError(
            f"trainer.devices={cfg.trainer.devices} cannot be combined with -m: run each "
            "configuration as its own command (a shell loop over seeds works)."
        )


def threads_per_job(cfg: DictConfig) -> int | None:
    """``threads`` if set; under the joblib launcher, the cores shared out between its
    ``n_jobs`` parallel runs (so that two runs on two cores do not each start two threads)."""
    if cfg.get("threads") is not None:
        return int(cfg.threads)
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN or "joblib" not in str(
        hydra_cfg.launcher.get("_target_")
    ):
        return None
    cores = os.cpu_count() or 1
    n_jobs = int(hydra_cfg.launcher.get("n_jobs") or -1)
    jobs = cores if n_jobs < 0 else min(n_jobs, cores)
    return max(1, cores // max(1, jobs))


@hydra.main(config_path="configs", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    metrics = {}

    def train() -> None:
        refuse_multi_device_sweep(cfg)
        with open_dict(cfg):
            cfg.threads = threads_per_job(cfg)
        metrics.update(run_config(cfg, HydraConfig.get().runtime.output_dir).metrics)

    run_tool("g2m", train)
    return metrics["student"]["val_acc"]


if __name__ == "__main__":
    preflight_or_exit(sys.argv[1:])  # bad input: one line, exit 2, before Hydra writes
    main()
