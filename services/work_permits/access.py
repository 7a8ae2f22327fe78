"""Who calls the work permits service, and the scopes an establishment delegates for permits.

An establishment's users act for it as its owner (membership ``<establishment>:owner``), or
within the scopes it delegated (``<establishment>:permits.manage`` to act,
``<establishment>:permits.read`` to read); a vendor application only for the establishment its
delegated token names. Agency officers hold the ``agency_officer`` role. The caller itself is
the kit's (:class:`hub.servicekit.caller.Caller`), read from the hub's internal token.
"""

from __future__ import annotations

from typing import Final

from hub.servicekit.caller import Caller

__all__ = ["MANAGE_SCOPE", "READ_SCOPE", "Caller"]

MANAGE_SCOPE: Final = "permits.manage"
READ_SCOPE: Final = "permits.read"
