"""Pseudonyms for the request sample and the shadow decision log: keyed, equal for equal values.

A pseudonym is ``~`` and the first 16 hex digits (64 bits) of HMAC-SHA256 under the cluster's
key (``HUB_SAMPLE_KEY``) or, when none is set, a random key of this process. Equal inputs give
equal pseudonyms, so a condition such as ``principal.establishment eq path.establishment_id``
decides the same on pseudonyms as on the values. Without the key a pseudonym cannot be turned
back, nor checked against a guess (a national ID has only 10^10 candidates: an unkeyed hash
would fall to a brute force in minutes).

A configuration document names literal values (path segments, condition values, addresses);
:meth:`Pseudonymiser.vocabulary` maps the pseudonym of each one back to it, so replaying a
pseudonymised request through a document restores exactly the values that document can tell
apart, and every other value stays a pseudonym that equals nothing the document names.

Client addresses are kept twice, neither raw: truncated to their /24 (IPv4) or /48 (IPv6)
network, for ``cidr`` conditions on wider networks, and as a pseudonym of the whole address,
which the vocabulary restores for an address or a network of at most 256 addresses that the
document names. So a ``cidr`` condition narrower than /24 over more than 256 addresses (only
IPv6: a /49 to /119) replays on the truncated address: the one approximation.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Iterator, Mapping
from typing import Any, Final

__all__ = ["MARK", "Pseudonymiser", "truncate_ip"]

MARK: Final = "~"
_DIGITS: Final = 16
_ENUMERABLE: Final = 256  # addresses of a network the vocabulary lists one by one


def truncate_ip(address: str) -> str:
    """The /24 (IPv4) or /48 (IPv6) network address of ``address``; "" when it is none."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return ""
    prefix = 24 if parsed.version == 4 else 48
    return str(ipaddress.ip_network(f"{parsed}/{prefix}", strict=False).network_address)


class Pseudonymiser:
    """Keyed, deterministic pseudonyms; ``key_id`` names the key without revealing it."""

    __slots__ = ("_key", "key_id")

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)
        self.key_id = hmac.new(self._key, b"hub-sample-key-id", hashlib.sha256).hexdigest()[:8]

    def __call__(self, value: str) -> str:
        """The pseudonym of ``value``."""
        digest = hmac.new(self._key, value.encode("utf-8", "surrogatepass"), hashlib.sha256)
        return MARK + digest.hexdigest()[:_DIGITS]

    def optional(self, value: str | None) -> str | None:
        return None if value is None else self(value)

    def vocabulary(self, *documents: Mapping[str, Any]) -> dict[str, str]:
        """Pseudonym -> value for every literal the documents name (see the module docstring)."""
        found: dict[str, str] = {}
        for document in documents:
            for text in _strings(document):
                for value in _literals(text):
                    found.setdefault(self(value), value)
        return found


def _strings(node: object) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list | tuple):
        for item in node:
            yield from _strings(item)


def _literals(text: str) -> Iterator[str]:
    """The text, its path segments, and the addresses of a small network it names."""
    yield text
    if "/" in text:
        for segment in text.split("/"):
            if segment and not segment.startswith("{"):
                yield segment
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            return
        if network.num_addresses <= _ENUMERABLE:
            yield from (str(address) for address in network)
        return
    try:
        yield str(ipaddress.ip_address(text))  # the canonical spelling of an address
    except ValueError:
        return
