"""Entry point: ``python -m g2m.train [group=option ...] [key=value ...]``.

Composes the Hydra config shipped in ``g2m/configs`` and hands it to
:func:`g2m.pipeline.run`. A problem with the user's input (:class:`g2m.errors.G2MError`)
ends the process with one line on stderr and exit status 2; ``G2M_DEBUG=1`` shows the
traceback instead.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from g2m import pipeline
from g2m.cli import run_tool


@hydra.main(config_path="configs", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    metrics = {}

    def train() -> None:
        metrics.update(pipeline.run(cfg, Path(HydraConfig.get().runtime.output_dir)))

    run_tool("g2m", train)
    return metrics["student"]["val_acc"]


if __name__ == "__main__":
    main()
