"""udpgen: build CoNR training data from MMD models and hand-drawn images.

No torch import anywhere in this package: it must run in lightweight data-generation workers.
"""
from udpgen.errors import FormatError, ModelError, UdpgenError

__version__ = "0.1.0"
__all__ = ["FormatError", "ModelError", "UdpgenError", "__version__"]
