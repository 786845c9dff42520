"""Entry point: ``python -m g2m.train [group=option ...] [key=value ...]``.

Composes the Hydra config shipped in ``g2m/configs`` and hands it to
:func:`g2m.pipeline.run`. A problem with the user's input (:class:`g2m.errors.G2MError`)
ends the process with one line on stderr and exit status 2; ``G2M_DEBUG=1`` shows the
traceback instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from g2m import pipeline
from g2m.errors import G2MError

USER_ERROR_EXIT = 2


@hydra.main(config_path="configs", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    try:
        metrics = pipeline.run(cfg, Path(HydraConfig.get().runtime.output_dir))
    except G2MError as err:
        if os.environ.get("G2M_DEBUG"):
            raise
        print(f"g2m: error: {err}", file=sys.stderr)
        sys.exit(USER_ERROR_EXIT)
    return metrics["student"]["val_acc"]


if __name__ == "__main__":
    main()
