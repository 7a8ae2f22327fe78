"""``/account/login`` and ``/account/login/totp``: identifier and password, then the TOTP step.

The password step answers the same for an unknown identifier, a disabled person, a person
without a password and a wrong password, and spends the same argon2 time on each, so neither
the message nor the timing says whether an account exists. Every attempt first passes the login
throttle (per account and per client address); while it is locked the password is not even
checked, so a correct guess during a lock-out is refused like any other.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from litestar import Request, Response, get, post

from hub.db.person_store import Person
from hub.identity.acr import ACR_MFA, ACR_NATIONAL_IDP, ACR_PASSWORD, acr_rank, satisfies
from hub.identity.lockout import Decision
from hub.identity.login._factors import check_recovery_code, check_totp, looks_like_totp
from hub.identity.login._pages import (
    form_page,
    locked_out,
    posted_form,
    request_expired,
)
from hub.identity.login._render import message_page, redirect
from hub.identity.login._signin import (
    Bar,
    bar_for,
    cleared_mfa_cookie,
    finish_sign_in,
    new_pending_mfa,
    peek_pending_mfa,
    put_back_pending_mfa,
    take_pending_mfa,
)
from hub.identity.login._web import (
    Destination,
    client_ip,
    current_session,
    destination_from,
    identity_of,
    runtime_of,
)
from hub.runtime import Runtime

__all__ = ["MAX_MFA_ATTEMPTS", "login_page", "login_submit", "totp_page", "totp_submit"]

#: Wrong codes allowed per pending second factor before the person must start again.
MAX_MFA_ATTEMPTS: Final = 5
_IDENTIFIER: Final = re.compile(r"[12][0-9]{9}")
_WRONG_CREDENTIALS: Final = "The identifier or password is wrong."
_BAD_IDENTIFIER: Final = (
    "Enter your 10-digit national ID (starting with 1) or resident ID (starting with 2)."
)
_WRONG_CODE: Final = "The code is wrong or has already been used."


def _login_form(
    request: Request[Any, Any, Any],
    runtime: Runtime,
    destination: Destination,
    bar: Bar,
    *,
    status: int = 200,
    error: str | None = None,
    error_code: str | None = None,
    identifier: str = "",
) -> Response[str]:
    settings = runtime.settings
    federation = settings.national_idp_issuer is not None
    return form_page(
        request,
        settings,
        "login.html",
        status=status,
        destination=destination,
        acr_values=bar.acr if bar.request is None and bar.acr else "",
        federation=federation,
        federation_only=bar.acr == ACR_NATIONAL_IDP,
        federation_url="/account/federation/national/start" + destination.query(),
        error=error,
        error_code=error_code,
        identifier=identifier,
    )


def _not_enrolled(destination: Destination, **kwargs: Any) -> Response[str]:
    return message_page(
        "mfa_not_enrolled",
        "A second factor is needed",
        "This service asks for a one-time code from an authenticator app, and your account "
        "has none yet. Set one up on the two-step verification page, then try again.",
        status=403,
        link=("/account/mfa", "Set up two-step verification"),
        **kwargs,
    )


@get("/login", include_in_schema=False)
async def login_page(request: Request[Any, Any, Any]) -> Response[str]:
    """The sign-in form, or straight on when the browser's session already meets the bar."""
    runtime = runtime_of(request)
    destination = destination_from(request.query_params)
    bar, known = await bar_for(runtime, request.query_params, destination)
    if not known:
        return request_expired()
    if bar.acr == ACR_NATIONAL_IDP and runtime.settings.national_idp_issuer is None:
        return message_page(
            "federation_unavailable",
            "Sign-in with the national identity provider is not available",
            "This service asks for sign-in through the national identity provider, which "
            "this hub is not set up to use.",
            status=503,
        )
    _raw, session = await current_session(request, runtime)
    if session is not None and bar.met_by(session):
        if satisfies(session.acr, bar.acr):
            return redirect(destination.url)
        if bar.acr == ACR_MFA and acr_rank(session.acr) < acr_rank(ACR_MFA):
            # Step up: the password is proven; only the code is missing.
            person = await identity_of(runtime).persons.get(session.person_id)
            if person is None or person.disabled_at is not None:
                return _login_form(request, runtime, destination, bar)
            if not person.totp_secret:
                return _not_enrolled(destination)
            _pending, cookie = await new_pending_mfa(
                runtime,
                person_id=person.id,
                identifier=person.identifier,
                destination=destination,
            )
            return redirect("/account/login/totp", cookies=[cookie])
    return _login_form(request, runtime, destination, bar)


def _lock_until(decision: Decision) -> datetime | None:
    if decision.allowed or decision.locked != "account":
        return None
    return datetime.now(UTC) + timedelta(seconds=decision.retry_after)


async def _record_failure(
    runtime: Runtime, identifier: str, address: str, person: Person | None
) -> None:
    decision = runtime.login_throttle.record(identifier, address, False)
    if person is not None:
        await identity_of(runtime).persons.record_login_failure(
            person.id, lock_until=_lock_until(decision)
        )


def _locked_in_database(person: Person | None) -> int:
    """Seconds left of a lock another replica recorded in the person's row (0: none)."""
    if person is None or person.locked_until is None:
        return 0
    return max(0, int((person.locked_until - datetime.now(UTC)).total_seconds()) + 1)


@post("/login", include_in_schema=False, status_code=200)
async def login_submit(request: Request[Any, Any, Any]) -> Response[str]:
    """Check the identifier and password; on to the TOTP step, or signed in."""
    runtime = runtime_of(request)
    settings = runtime.settings
    form = await posted_form(request, settings)
    if isinstance(form, Response):
        return form
    destination = destination_from(form)
    bar, known = await bar_for(runtime, form, destination)
    if not known:
        return request_expired()
    identifier = form.get("identifier", "").strip()
    password = form.get("password", "")
    if _IDENTIFIER.fullmatch(identifier) is None:
        return _login_form(
            request,
            runtime,
            destination,
            bar,
            status=400,
            error=_BAD_IDENTIFIER,
            error_code="invalid_identifier",
            identifier=identifier[:32],
        )
    if not password:
        return _login_form(
            request,
            runtime,
            destination,
            bar,
            status=400,
            error="Enter your password.",
            error_code="missing_password",
            identifier=identifier,
        )

    address = client_ip(request, settings)
    decision = runtime.login_throttle.check(identifier, address)
    if not decision.allowed:
        return locked_out(decision.retry_after_seconds)
    persons = identity_of(runtime).persons
    person = await persons.by_identifier(identifier)
    if (wait := _locked_in_database(person)) > 0:
        return locked_out(wait)
    if person is not None and person.disabled_at is None:
        ok = await runtime.passwords.averify(person.password_hash, password)
    else:
        ok = await runtime.passwords.adummy_verify(password)
    if not ok or person is None:
        await _record_failure(runtime, identifier, address, person)
        return _login_form(
            request,
            runtime,
            destination,
            bar,
            status=403,
            error=_WRONG_CREDENTIALS,
            error_code="invalid_credentials",
            identifier=identifier,
        )
    assert person.password_hash is not None
    if runtime.passwords.needs_rehash(person.password_hash):
        await persons.set_password_hash(person.id, await runtime.passwords.ahash(password))

    if person.totp_secret:
        # The throttle is told of success only once the second factor is in: a password
        # alone must not wash away failed codes.
        _pending, cookie = await new_pending_mfa(
            runtime, person_id=person.id, identifier=identifier, destination=destination
        )
        return redirect("/account/login/totp", cookies=[cookie])
    runtime.login_throttle.record(identifier, address, True)
    await persons.record_login_success(person.id)
    response = await finish_sign_in(
        request,
        runtime,
        person_id=person.id,
        acr=ACR_PASSWORD,
        amr=["pwd"],
        destination=destination,
    )
    if bar.acr == ACR_MFA:
        # Signed in, but the service wants a code this person cannot give yet.
        return _not_enrolled(destination, cookies=response.cookies)
    return response


def _totp_form(
    request: Request[Any, Any, Any],
    runtime: Runtime,
    *,
    status: int = 200,
    error: str | None = None,
) -> Response[str]:
    return form_page(
        request, runtime.settings, "totp.html", status=status, error=error, error_code=None
    )


def _start_again(runtime: Runtime, destination: Destination | None = None) -> Response[str]:
    target = "/account/login" + (destination.query() if destination else "")
    return message_page(
        "mfa_expired",
        "Please sign in again",
        "The time to enter your code has run out, or too many wrong codes were entered.",
        status=403,
        link=(target, "Sign in"),
        cookies=[cleared_mfa_cookie(runtime.settings)],
    )


@get("/login/totp", include_in_schema=False)
async def totp_page(request: Request[Any, Any, Any]) -> Response[str]:
    """The second-factor form, for a browser with a pending sign-in."""
    runtime = runtime_of(request)
    if await peek_pending_mfa(request, runtime) is None:
        return redirect("/account/login")
    return _totp_form(request, runtime)


@post("/login/totp", include_in_schema=False, status_code=200)
async def totp_submit(request: Request[Any, Any, Any]) -> Response[str]:
    """Check a TOTP or recovery code; signed in at the MFA level when right."""
    runtime = runtime_of(request)
    settings = runtime.settings
    form = await posted_form(request, settings)
    if isinstance(form, Response):
        return form
    pending = await take_pending_mfa(request, runtime)
    if pending is None:
        return _start_again(runtime)
    persons = identity_of(runtime).persons
    person = await persons.get(pending.person_id)
    if person is None or person.disabled_at is not None or not person.totp_secret:
        return _start_again(runtime, pending.destination)
    address = client_ip(request, settings)
    decision = runtime.login_throttle.check(pending.identifier, address)
    if not decision.allowed:
        await put_back_pending_mfa(runtime, pending)
        return locked_out(decision.retry_after_seconds)

    code = form.get("code", "").strip()
    if looks_like_totp(code):
        ok = await check_totp(runtime, person.id, person.totp_secret, code)
        amr = ["pwd", "otp"]
    else:
        ok = bool(code) and await check_recovery_code(runtime, person, code)
        amr = ["pwd", "rc"]
    if not ok:
        await _record_failure(runtime, pending.identifier, address, person)
        attempts = pending.attempts + 1
        if attempts >= MAX_MFA_ATTEMPTS:
            return _start_again(runtime, pending.destination)
        if not await put_back_pending_mfa(runtime, replace(pending, attempts=attempts)):
            return _start_again(runtime, pending.destination)
        return _totp_form(request, runtime, status=403, error=_WRONG_CODE)

    runtime.login_throttle.record(pending.identifier, address, True)
    await persons.record_login_success(person.id)
    return await finish_sign_in(
        request,
        runtime,
        person_id=person.id,
        acr=ACR_MFA,
        amr=amr,
        destination=pending.destination,
        cookies=[cleared_mfa_cookie(settings)],
    )
