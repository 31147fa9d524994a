"""Moved to `harmony_v3.scores.plots`; this name stays for existing imports."""
from harmony_v3.scores.plots import (harmony_weights_figure,
                                     learning_curves_figure,
                                     read_harmony_weights, save_all,
                                     save_figure, seed_statistics)

__all__ = ['harmony_weights_figure', 'learning_curves_figure',
           'read_harmony_weights', 'save_all', 'save_figure',
           'seed_statistics']
