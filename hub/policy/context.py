"""What a policy decision looks at: the principal and the request, read lazily.

One :class:`RequestContext` is made per request on a covered route. Anything costly (the query
string parsed, the client address as an IP object, the clock) is computed the first time a
condition asks for it and kept for the other conditions of the same request.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping, Sequence
from ipaddress import IPv4Address, IPv6Address, ip_address
from urllib.parse import parse_qs

from hub.auth.principal import Principal
from hub.policy.operations import OperationIndex

__all__ = ["RequestContext"]

_NO_QUERY: Mapping[str, list[str]] = {}


@functools.lru_cache(maxsize=8192)
def _parse_ip(text: str) -> IPv4Address | IPv6Address | None:
    # Clients repeat: a cache hit costs a dictionary lookup instead of a parse (~3 µs).
    try:
        return ip_address(text)
    except ValueError:
        return None


class RequestContext:
    """The principal and request of one decision.

    ``operations`` is the route's :class:`~hub.policy.operations.OperationIndex`; the request's
    contract operation is looked up in it the first time a rule asks. ``roles`` are the
    principal's staff roles unless given (a replay of recorded requests gives them).
    """

    __slots__ = (
        "_ip",
        "_now",
        "_operation",
        "_query",
        "client_ip",
        "headers",
        "method",
        "operations",
        "params",
        "path",
        "principal",
        "query_string",
        "roles",
    )

    def __init__(
        self,
        *,
        principal: Principal,
        method: str,
        path: str,
        params: Mapping[str, str],
        query_string: bytes = b"",
        headers: Sequence[tuple[bytes, bytes]] = (),
        client_ip: str = "",
        now: float | None = None,
        operations: OperationIndex | None = None,
        roles: frozenset[str] | None = None,
    ) -> None:
        self.principal = principal
        self.method = method
        self.path = path
        self.params = params
        self.query_string = query_string
        self.headers = headers
        self.client_ip = client_ip
        self.operations = operations
        self.roles = principal.roles if roles is None else roles
        self._now = now
        self._operation: str | bool | None = False  # False: not looked up yet
        self._query: Mapping[str, list[str]] | None = None
        self._ip: IPv4Address | IPv6Address | bool | None = False  # False: not parsed yet

    @property
    def now(self) -> float:
        """Epoch seconds of the decision (the clock is read once per request)."""
        if self._now is None:
            self._now = time.time()
        return self._now

    @property
    def operation(self) -> str | None:
        """The contract operation of the request, ``None`` when the route knows none for it."""
        if self._operation is False:
            index = self.operations
            self._operation = None if index is None else index.lookup(self.method, self.path)
        return self._operation  # type: ignore[return-value]

    def query(self, name: str) -> str | None:
        """The first value of query parameter ``name``."""
        if self._query is None:
            raw = self.query_string
            self._query = (
                parse_qs(raw.decode("latin-1"), keep_blank_values=True) if raw else _NO_QUERY
            )
        values = self._query.get(name)
        return values[0] if values else None

    def header(self, name: bytes) -> str | None:
        """The first value of request header ``name`` (lower case)."""
        for key, value in self.headers:
            if key == name:
                return value.decode("latin-1")
        return None

    def ip(self) -> IPv4Address | IPv6Address | None:
        """The client address as an IP object, ``None`` when it is not an address."""
        if self._ip is False:
            self._ip = _parse_ip(self.client_ip)
        return self._ip  # type: ignore[return-value]
