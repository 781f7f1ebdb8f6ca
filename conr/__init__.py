"""conr: train and run CoNR (Collaborative Neural Rendering using 2D anime character sheets).

Importing the package is cheap (no torch import): the networks live in :mod:`conr.nn`, weight files in
:mod:`conr.weights`, the model configuration in :mod:`conr.config`, the command line in :mod:`conr.cli`.
"""
from conr.errors import ConfigError, ConrError, InputError, WeightsError

__version__ = "0.1.0"
__all__ = ["ConfigError", "ConrError", "InputError", "WeightsError", "__version__"]
