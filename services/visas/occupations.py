"""The occupations a work visa may be for: the ISCO-08 catalogue of :mod:`hub.servicekit.isco`."""

from __future__ import annotations

from hub.servicekit.isco import Occupation, catalogue, occupation

__all__ = ["Occupation", "catalogue", "occupation"]
