"""g2m's Hydra config groups, shipped inside the package (``pkg://g2m.configs``).

Importing this package registers the one resolver the configs use:
``${g2m.stem:path}``, a file's name without its folder and suffix (``dataset=file`` names
its runs after the file).
"""

from pathlib import Path

from omegaconf import OmegaConf


def _stem(path: object) -> str:
    return Path(str(path)).stem


OmegaConf.register_new_resolver("g2m.stem", _stem, replace=True)
