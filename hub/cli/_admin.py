"""What the commands that talk to a running hub's admin API share: options, a client, failure."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated, Any, NoReturn

import httpx
import typer

__all__ = ["AdminApi", "AdminApiError", "TokenOption", "UrlOption", "admin_api", "fail"]

UrlOption = Annotated[str, typer.Option("--url", envvar="HUB_ADMIN_URL", help="The hub's base URL")]
TokenOption = Annotated[
    str,
    typer.Option("--token", envvar="HUB_ADMIN_TOKEN", help="An admin token", show_default=False),
]


class AdminApiError(Exception):
    """The hub refused a call, or could not be reached; ``lines`` say why."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        super().__init__("; ".join(lines))


class AdminApi:
    """A small client of one part of the admin API (``prefix``, e.g. ``/admin/api/config``)."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        prefix: str = "",
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._url = url.rstrip("/")
        self._prefix = prefix
        self._client = httpx.Client(
            base_url=self._url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(30.0),
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def call(
        self, method: str, path: str, body: Any = None, *, params: dict[str, Any] | None = None
    ) -> Any:
        """The JSON answer of one call; :class:`AdminApiError` for a refusal or no answer."""
        try:
            response = self._client.request(method, self._prefix + path, json=body, params=params)
        except httpx.HTTPError as exc:
            raise AdminApiError([f"cannot reach the hub at {self._url}: {exc}"]) from exc
        if response.is_success:
            return response.json() if response.content else None
        try:
            problem = response.json()
        except ValueError:
            problem = {}
        if not isinstance(problem, dict):
            problem = {}
        errors = problem.get("errors")
        code = problem.get("code", "error")
        if isinstance(errors, list) and errors:
            raise AdminApiError([str(e) for e in errors] + [f"{len(errors)} error(s) ({code})"])
        detail = problem.get("detail") or response.reason_phrase
        raise AdminApiError([f"{response.status_code} {code}: {detail}"])


def fail(lines: list[str]) -> NoReturn:
    """Each line on stderr, then exit 1."""
    for line in lines:
        typer.echo(line, err=True)
    raise typer.Exit(1)


@contextlib.contextmanager
def admin_api(url: str, token: str, *, prefix: str = "") -> Iterator[AdminApi]:
    """A client for one command; a refusal or no answer is its lines on stderr and exit 1."""
    if not token:
        fail(["error: an admin token is required (--token or HUB_ADMIN_TOKEN)"])
    api = AdminApi(url, token, prefix=prefix)
    try:
        yield api
    except AdminApiError as exc:
        fail(exc.lines)
    finally:
        api.close()
