"""Entry point: ``python -m g2m.train [group=option ...] [key=value ...]``.

Composes the Hydra config shipped in ``g2m/configs`` and hands it to
:func:`g2m.pipeline.run`. Nothing else happens here.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from g2m import pipeline


@hydra.main(config_path="configs", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    metrics = pipeline.run(cfg, Path(HydraConfig.get().runtime.output_dir))
    return metrics["student"]["val_acc"]


if __name__ == "__main__":
    main()
