"""harmony_v3: HarmonyDream's harmonizers on the official DreamerV3 (1.5.0).

Importing the package applies the small compatibility patches that DreamerV3
1.5.0 needs on current JAX, Python and ruamel.yaml (see `harmony_v3.patches`).
"""
from __future__ import annotations

from . import patches as _patches

_patches.apply_all()

from .harmonizer import harmonious_loss, optimal_sigma  # noqa: E402

__version__ = '0.1.0'
__all__ = ['harmonious_loss', 'optimal_sigma', '__version__']
