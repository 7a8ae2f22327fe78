"""How the hub authenticates to external systems: ``httpx.Auth`` from an adapter's credentials.

The secret's value comes from the hub's settings (``HUB_ADAPTER_SECRET_<NAME>``), never from the
policy documents, and it is never logged: the auth objects keep it out of their ``repr``.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping

import httpx

from adapters.base import Credentials
from hub.errors import AdapterUnavailable

__all__ = ["ApiKeyAuth", "BearerAuth", "build_auth", "resolve"]


class ApiKeyAuth(httpx.Auth):
    """A static key in a header of the external system's choosing."""

    def __init__(self, header: str, key: str) -> None:
        self._header = header
        self._key = key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[self._header] = self._key
        yield request

    def __repr__(self) -> str:
        return f"<ApiKeyAuth header={self._header!r}>"


class BearerAuth(httpx.Auth):
    """A static bearer token."""

    def __init__(self, token: str) -> None:
        self._value = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._value
        yield request

    def __repr__(self) -> str:
        return "<BearerAuth>"


def resolve(credentials: Credentials, secrets: Mapping[str, str], *, adapter: str) -> Credentials:
    """The credentials with their secret's value; AdapterUnavailable when it is not set."""
    value = secrets.get(credentials.secret_name)
    if not value:
        variable = "HUB_ADAPTER_SECRET_" + credentials.secret_name.upper()
        raise AdapterUnavailable(
            f"{adapter}: the secret {credentials.secret_name!r} is not set ({variable})"
        )
    return Credentials(
        scheme=credentials.scheme,
        secret_name=credentials.secret_name,
        secret=value,
        header=credentials.header,
        username=credentials.username,
    )


def build_auth(credentials: Credentials | None) -> httpx.Auth | None:
    """The ``httpx.Auth`` for resolved credentials (``None``: the system needs none)."""
    if credentials is None:
        return None
    if credentials.scheme == "api_key":
        return ApiKeyAuth(credentials.header, credentials.secret)
    if credentials.scheme == "bearer":
        return BearerAuth(credentials.secret)
    return httpx.BasicAuth(credentials.username, credentials.secret)
