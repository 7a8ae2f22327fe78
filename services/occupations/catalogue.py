"""The ISCO-08 catalogue the occupations service serves: :mod:`hub.servicekit.isco`'s subset.

The service shows each occupation with whether it is ``professional`` (what decides a change
request's review, see :mod:`services.occupations.domain`).
"""

from __future__ import annotations

from hub.servicekit.isco import Occupation, catalogue, occupation, search

__all__ = ["Occupation", "catalogue", "entry", "occupation", "search"]


def entry(item: Occupation) -> dict[str, object]:
    """The occupation as the catalogue's endpoints give it."""
    return {**item.as_dict(), "professional": item.professional}
