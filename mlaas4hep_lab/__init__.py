"""MLaaS4HEP Lab: the Jupyter side (server extension, widgets, magic). Grows with later work."""

from mlaas4hep import __version__

__all__ = ["__version__"]
