"""The hub: an integration hub and API gateway for e-government platforms."""

__version__ = "0.1.0"
