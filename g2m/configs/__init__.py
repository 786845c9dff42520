"""g2m's Hydra config groups, shipped inside the package (``pkg://g2m.configs``).

Importing this package registers the resolvers the configs use: ``${g2m.stem:path}``, a
file's name without its folder and suffix (``dataset=file`` names its runs after the file),
and ``${g2m_short_hash:text}``, eight hex digits of ``text``'s SHA-256 (a sweep's subfolder
carries the hash of its job's overrides, so two configs never share a folder).
"""

import hashlib
from pathlib import Path

from omegaconf import OmegaConf


def _stem(path: object) -> str:
    return Path(str(path)).stem


OmegaConf.register_new_resolver("g2m.stem", _stem, replace=True)


def _short_hash(text: object) -> str:
    return hashlib.sha256(str(text).encode()).hexdigest()[:8]


OmegaConf.register_new_resolver("g2m_short_hash", _short_hash, replace=True)
