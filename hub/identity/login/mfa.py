"""``/account/mfa``: turn the TOTP second factor on (QR code, confirm, recovery codes) or off.

The new secret waits in the ephemeral store, tied to the session, until the person proves
their app holds it by typing a valid code; only then does it reach the person's row, with the
hashes of ten fresh recovery codes that are shown once. Both turning on and turning off need a
sign-in from the last ten minutes, and turning off needs a current code too: a session left open
on a shared computer cannot be used to strip the second factor.
"""

from __future__ import annotations

import time
from typing import Any, Final

import segno
from litestar import Request, Response, get, post

from hub.db.person_store import Person
from hub.identity.login._factors import check_totp
from hub.identity.login._pages import form_page, locked_out, posted_form
from hub.identity.login._render import page, redirect
from hub.identity.login._web import (
    client_ip,
    current_session,
    identity_of,
    runtime_of,
)
from hub.identity.sessions import LoginSession
from hub.identity.totp import hash_recovery_code, new_recovery_codes, new_secret, otpauth_uri
from hub.runtime import Runtime

__all__ = ["RECENT_SIGN_IN_SECONDS", "mfa_page", "mfa_submit"]

#: How recent a sign-in must be to change the second factor.
RECENT_SIGN_IN_SECONDS: Final = 10 * 60
_ENROL_SECONDS: Final = 10 * 60
_ENROL_PREFIX: Final = "mfa-enrol:"
_QR_SCALE: Final = 4
_ISSUER_LABEL: Final = "Hub"
_REAUTH: Final = f"/account/login?return_to=/account/mfa&max_age={RECENT_SIGN_IN_SECONDS}"


async def _signed_in(
    request: Request[Any, Any, Any], runtime: Runtime
) -> tuple[LoginSession, Person] | Response[str]:
    """The recent session and its person, or a redirect through the sign-in page."""
    _raw, session = await current_session(request, runtime)
    if session is None or time.time() - session.auth_time > RECENT_SIGN_IN_SECONDS:
        return redirect(_REAUTH)
    person = await identity_of(runtime).persons.get(session.person_id)
    if person is None or person.disabled_at is not None:
        return redirect(_REAUTH)
    return session, person


async def _pending_secret(runtime: Runtime, session: LoginSession) -> str:
    """The secret being enrolled in this session (the same one on reload)."""
    key = _ENROL_PREFIX + session.sid
    held = await runtime.ephemeral.get(key)
    secret = held.get("secret") if held else None
    if isinstance(secret, str):
        return secret
    secret = new_secret()
    await runtime.ephemeral.put(key, {"secret": secret}, _ENROL_SECONDS)
    return secret


async def _mfa_form(
    request: Request[Any, Any, Any],
    runtime: Runtime,
    session: LoginSession,
    person: Person,
    *,
    status: int = 200,
    error: str | None = None,
) -> Response[str]:
    context: dict[str, Any]
    if person.totp_secret:
        context = {"enrolled": True, "recovery_left": len(person.recovery_code_hashes)}
    else:
        secret = await _pending_secret(runtime, session)
        uri = otpauth_uri(secret, account=person.identifier, issuer=_ISSUER_LABEL)
        qr = segno.make(uri, error="m")
        width, _height = qr.symbol_size(scale=_QR_SCALE)
        context = {
            "enrolled": False,
            "secret": secret,
            "otpauth_uri": uri,
            "qr": qr.svg_data_uri(scale=_QR_SCALE),
            "qr_size": width,
        }
    return form_page(request, runtime.settings, "mfa.html", status=status, error=error, **context)


@get("/mfa", include_in_schema=False)
async def mfa_page(request: Request[Any, Any, Any]) -> Response[str]:
    """Set up two-step verification, or turn it off."""
    runtime = runtime_of(request)
    signed_in = await _signed_in(request, runtime)
    if isinstance(signed_in, Response):
        return signed_in
    session, person = signed_in
    return await _mfa_form(request, runtime, session, person)


@post("/mfa", include_in_schema=False, status_code=200)
async def mfa_submit(request: Request[Any, Any, Any]) -> Response[str]:
    """Confirm enrolment with a code from the app, or turn the second factor off."""
    runtime = runtime_of(request)
    settings = runtime.settings
    form = await posted_form(request, settings)
    if isinstance(form, Response):
        return form
    signed_in = await _signed_in(request, runtime)
    if isinstance(signed_in, Response):
        return signed_in
    session, person = signed_in
    persons = identity_of(runtime).persons
    address = client_ip(request, settings)
    decision = runtime.login_throttle.check(person.identifier, address)
    if not decision.allowed:
        return locked_out(decision.retry_after_seconds)
    action = form.get("action")
    code = form.get("code", "").strip()

    enabling = not person.totp_secret
    if action == "enable" and enabling:
        held = await runtime.ephemeral.get(_ENROL_PREFIX + session.sid)
        secret = held.get("secret") if held else None
        if not isinstance(secret, str):
            return redirect("/account/mfa")
    elif action == "disable" and person.totp_secret:
        secret = person.totp_secret
    else:
        # A stale form (enrolled meanwhile in another tab, say): show the page as it is now.
        return redirect("/account/mfa")

    if not await check_totp(runtime, person.id, secret, code):
        runtime.login_throttle.record(person.identifier, address, False)
        return await _mfa_form(
            request, runtime, session, person, status=403, error="That code is wrong."
        )
    if enabling:
        codes = new_recovery_codes(10)
        await persons.set_totp(person.id, secret, [hash_recovery_code(c) for c in codes])
        await runtime.ephemeral.delete(_ENROL_PREFIX + session.sid)
        return page("mfa_codes.html", codes=codes)
    await persons.set_totp(person.id, None)
    return redirect("/account/mfa")
