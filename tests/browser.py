"""A small browser for tests: follows redirects one by one, keeps cookies, fills in HTML forms.

The OAuth/OIDC flows are driven the way a person's browser drives them: a GET, a form read off
the page (hidden fields included), a POST, and every redirect seen, so a test can assert each
hop. Nothing of the hub is stubbed: it is plain HTTP against a running server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin

import httpx

__all__ = ["Browser", "Form", "forms"]


@dataclass
class Form:
    """One ``<form>`` of a page: where it goes and the values it would send."""

    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    #: Submit buttons as (name, value), in page order (only the pressed one is sent).
    buttons: list[tuple[str, str]] = field(default_factory=list)


class _FormParser(HTMLParser):
    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base
        self.forms: list[Form] = []
        self._current: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            action = urljoin(self.base, values.get("action") or self.base)
            self._current = Form(action=action, method=(values.get("method") or "get").upper())
            self.forms.append(self._current)
            return
        if self._current is None or "name" not in values:
            return
        kind = values.get("type", "text").lower()
        if tag == "button" or kind == "submit":
            self._current.buttons.append((values["name"], values.get("value", "")))
        elif tag in ("input", "textarea", "select") and kind not in ("checkbox", "radio"):
            self._current.fields[values["name"]] = values.get("value", "")
        elif kind in ("checkbox", "radio") and "checked" in values:
            self._current.fields[values["name"]] = values.get("value", "on")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def forms(html: str, base: str) -> list[Form]:
    """The forms of ``html``, their actions resolved against ``base``."""
    parser = _FormParser(base)
    parser.feed(html)
    return parser.forms


class Browser:
    """An httpx client that never follows redirects on its own; :meth:`follow` does, and records."""

    def __init__(self, *, headers: dict[str, str] | None = None) -> None:
        self.client = httpx.Client(follow_redirects=False, timeout=15.0, headers=headers)
        self.history: list[httpx.Response] = []

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, url: str, **kwargs: object) -> httpx.Response:
        response = self.client.get(url, **kwargs)  # type: ignore[arg-type]
        self.history.append(response)
        return response

    def follow(self, response: httpx.Response, *, stop_at: str | None = None) -> httpx.Response:
        """Follow redirects (GET) until a non-redirect, or a Location starting with ``stop_at``."""
        for _ in range(20):
            if response.status_code not in (301, 302, 303, 307, 308):
                return response
            location = urljoin(str(response.url), response.headers["location"])
            if stop_at is not None and location.startswith(stop_at):
                return response
            response = self.get(location)
        raise AssertionError("too many redirects")

    def form(self, response: httpx.Response, index: int = 0) -> Form:
        """The ``index``-th form of a page."""
        found = forms(response.text, str(response.url))
        assert len(found) > index, f"no form {index} on {response.url}:\n{response.text[:2000]}"
        return found[index]

    def form_with(self, response: httpx.Response, name: str) -> Form:
        """The first form of a page with a field or button called ``name``."""
        for candidate in forms(response.text, str(response.url)):
            if name in candidate.fields or any(name == b for b, _ in candidate.buttons):
                return candidate
        raise AssertionError(f"no form with {name!r} on {response.url}:\n{response.text[:2000]}")

    def submit(
        self,
        form: Form,
        *,
        button: tuple[str, str] | str | None = None,
        headers: dict[str, str] | None = None,
        **values: str,
    ) -> httpx.Response:
        """Send ``form`` with ``values`` and ``button`` (a name, or name and value) pressed."""
        data = {**form.fields, **values}
        if button is not None:
            wanted = (button, None) if isinstance(button, str) else button
            pressed = [
                (name, value)
                for name, value in form.buttons
                if name == wanted[0] and wanted[1] in (None, value)
            ]
            assert pressed, f"no button {button!r} in the form to {form.action}"
            data[pressed[0][0]] = pressed[0][1]
        if form.method == "POST":
            response = self.client.post(form.action, data=data, headers=headers)
        else:
            response = self.client.get(form.action, params=data, headers=headers)
        self.history.append(response)
        return response
