"""Colorizer core: Lab colour machinery, the 313 ab bins, the ECCV16 and Chen networks.

The submodules import torch; import them directly, e.g. ``from colorizer.model import
build_model``. This package module itself stays light so that ``colorizer.errors`` can be
imported without torch.
"""

from colorizer.errors import ColorizerError, ConfigError, DataError, InputError, WeightsError

__all__ = ["ColorizerError", "ConfigError", "DataError", "InputError", "WeightsError"]
