"""harmony_v3: HarmonyDream's harmonizers on the official DreamerV3 (1.5.0).

Importing the package applies the small compatibility patches that DreamerV3
1.5.0 needs on current JAX, Python and ruamel.yaml (see `harmony_v3.patches`).
"""
from __future__ import annotations

import importlib.metadata as _metadata
import warnings as _warnings

BASE_VERSION = '1.5.0'


def _check_base() -> None:
  try:
    version = _metadata.version('dreamerv3')
  except _metadata.PackageNotFoundError:
    raise ImportError(
        'harmony_v3 needs the DreamerV3 package: pip install --no-deps '
        f'dreamerv3=={BASE_VERSION} (its declared requirements no longer '
        'install; harmony_v3 declares the real ones).') from None
  if version != BASE_VERSION:
    _warnings.warn(
        f'harmony_v3 is made and tested for dreamerv3=={BASE_VERSION}, '
        f'found {version}: its patches may not fit.', stacklevel=3)


_check_base()

from . import patches as _patches  # noqa: E402

_patches.apply_all()

from .harmonizer import harmonious_loss, optimal_sigma  # noqa: E402

__version__ = '0.1.0'
__all__ = ['harmonious_loss', 'optimal_sigma', '__version__']
