"""The TOTP step of sign-in, step-up, and setting up or removing the second factor.

In-process hub (``AsyncTestClient``) on SQLite; codes come from :func:`hub.identity.totp.code_at`
at the real clock, the way an authenticator app makes them.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from hub.identity.acr import ACR_MFA, ACR_PASSWORD
from hub.identity.login.login import MAX_MFA_ATTEMPTS
from hub.identity.totp import PERIOD, code_at, hash_recovery_code, new_recovery_codes, new_secret
from tests.login_support import Hub, csrf_of, problem_of, running_hub

CITIZEN = "1000000001"


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    async with running_hub(tmp_path) as running:
        yield running


def now_code(secret: str, offset: int = 0) -> str:
    return code_at(secret, time.time() + offset)


async def enrolled(hub: Hub) -> tuple[str, list[str]]:
    secret = new_secret()
    codes = new_recovery_codes(10)
    await hub.person(
        CITIZEN, totp_secret=secret, recovery_hashes=tuple(hash_recovery_code(c) for c in codes)
    )
    return secret, codes


async def session_of(hub: Hub) -> tuple[str, tuple[str, ...]]:
    session = await hub.runtime.sessions.get(hub.cookie(hub.session_cookie))
    assert session is not None
    return session.acr, session.amr


# --- the TOTP step ------------------------------------------------------------------------


async def test_the_password_alone_leads_to_the_code_step_without_a_session(hub: Hub) -> None:
    secret, _ = await enrolled(hub)
    response = await hub.login(CITIZEN, return_to="/svc/x")
    assert response.status_code == 303
    assert response.headers["location"] == "/account/login/totp"
    assert hub.session_cookie not in {c.name for c in hub.client.cookies.jar}
    assert hub.cookie("hub_mfa") is not None
    page = await hub.page("/account/login/totp")
    assert 'autocomplete="one-time-code"' in page.text

    done = await hub.totp(now_code(secret))
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/svc/x"
    assert await session_of(hub) == (ACR_MFA, ("pwd", "otp"))
    assert hub.cookie("hub_mfa") is None
    person = await hub.persons.by_identifier(CITIZEN)
    assert person is not None
    assert person.failed_logins == 0


async def test_a_wrong_code_is_refused_and_counts(hub: Hub) -> None:
    secret, _ = await enrolled(hub)
    await hub.login(CITIZEN)
    wrong = str((int(now_code(secret)) + 1) % 1_000_000).zfill(6)
    response = await hub.totp(wrong)
    assert response.status_code == 403
    assert problem_of(response) == "invalid_code"
    assert "wrong or has already been used" in response.text
    assert await hub.signed_in_as() is None
    person = await hub.persons.by_identifier(CITIZEN)
    assert person is not None
    assert person.failed_logins == 1
    # The pending sign-in survives one wrong code.
    assert (await hub.totp(now_code(secret))).status_code == 303


async def test_a_code_cannot_be_used_twice(hub: Hub) -> None:
    secret, _ = await enrolled(hub)
    code = now_code(secret)
    await hub.login(CITIZEN)
    assert (await hub.totp(code)).status_code == 303
    hub.client.cookies.clear()
    await hub.login(CITIZEN)
    replayed = await hub.totp(code)
    assert replayed.status_code == 403
    assert problem_of(replayed) == "invalid_code"
    # The next step's code still works (the window allows one step of drift).
    assert (await hub.totp(now_code(secret, PERIOD))).status_code == 303


async def test_a_recovery_code_works_once(hub: Hub) -> None:
    _secret, codes = await enrolled(hub)
    await hub.login(CITIZEN)
    response = await hub.totp(codes[3].upper())
    assert response.status_code == 303
    assert await session_of(hub) == (ACR_MFA, ("pwd", "rc"))
    person = await hub.persons.by_identifier(CITIZEN)
    assert person is not None
    assert len(person.recovery_code_hashes) == 9
    hub.client.cookies.clear()
    await hub.login(CITIZEN)
    again = await hub.totp(codes[3])
    assert again.status_code == 403
    assert (await hub.totp(codes[4])).status_code == 303


async def test_too_many_wrong_codes_drop_the_pending_sign_in(hub: Hub) -> None:
    secret, _ = await enrolled(hub)
    await hub.login(CITIZEN)
    page = await hub.page("/account/login/totp")
    token = csrf_of(page.text)
    for attempt in range(1, MAX_MFA_ATTEMPTS + 1):
        response = await hub.post_form("/account/login/totp", {"code": "000000"}, csrf=token)
        if attempt < MAX_MFA_ATTEMPTS:
            assert response.status_code == 403
            assert problem_of(response) == "invalid_code"
    assert problem_of(response) == "mfa_expired"
    # Even the right code cannot finish that sign-in now.
    late = await hub.post_form("/account/login/totp", {"code": now_code(secret)}, csrf=token)
    assert problem_of(late) == "mfa_expired"
    assert await hub.signed_in_as() is None
    gone = await hub.page("/account/login/totp")
    assert gone.status_code == 303
    assert gone.headers["location"] == "/account/login"


async def test_the_code_step_needs_csrf(hub: Hub) -> None:
    secret, _ = await enrolled(hub)
    await hub.login(CITIZEN)
    response = await hub.post_form("/account/login/totp", {"code": now_code(secret)})
    assert response.status_code == 403
    assert problem_of(response) == "csrf_failed"


# --- step-up ------------------------------------------------------------------------------


async def test_step_up_from_password_asks_only_for_the_code(hub: Hub) -> None:
    person = await hub.person(CITIZEN)
    await hub.login(CITIZEN)
    assert await session_of(hub) == (ACR_PASSWORD, ("pwd",))
    before = hub.cookie(hub.session_cookie)
    secret = new_secret()
    await hub.persons.set_totp(person.id, secret, ())
    response = await hub.page("/account/login?acr_values=urn:hub:acr:mfa&return_to=/svc/y")
    assert response.status_code == 303
    assert response.headers["location"] == "/account/login/totp"
    done = await hub.totp(now_code(secret))
    assert done.status_code == 303
    assert done.headers["location"] == "/svc/y"
    assert await session_of(hub) == (ACR_MFA, ("pwd", "otp"))
    assert hub.cookie(hub.session_cookie) != before
    assert await hub.runtime.sessions.get(before) is None


async def test_step_up_without_a_second_factor_points_to_enrolment(hub: Hub) -> None:
    await hub.person(CITIZEN)
    await hub.login(CITIZEN)
    response = await hub.page("/account/login?acr_values=urn:hub:acr:mfa")
    assert response.status_code == 403
    assert problem_of(response) == "mfa_not_enrolled"
    assert 'href="/account/mfa"' in response.text


# --- enrolment ----------------------------------------------------------------------------


async def mfa_page(hub: Hub) -> str:
    page = await hub.page("/account/mfa")
    assert page.status_code == 200, page.text
    return page.text


async def test_enrolment_confirms_with_a_code_and_shows_recovery_codes_once(hub: Hub) -> None:
    person = await hub.person(CITIZEN)
    await hub.login(CITIZEN)
    html = await mfa_page(hub)
    secret_match = re.search(r'id="secret">([A-Z2-7]+)<', html)
    assert secret_match
    secret = secret_match.group(1)
    assert 'src="data:image/svg+xml' in html
    uri = re.search(r'id="otpauth-uri">([^<]+)<', html)
    assert uri
    query = parse_qs(urlsplit(uri.group(1).replace("&amp;", "&")).query)
    assert query["secret"] == [secret]
    # Reloading keeps the same pending secret; nothing is stored before confirmation.
    assert secret in await mfa_page(hub)
    stored = await hub.persons.get(person.id)
    assert stored is not None
    assert stored.totp_secret is None

    token = csrf_of(html)
    wrong = await hub.post_form("/account/mfa", {"action": "enable", "code": "000000"}, csrf=token)
    assert wrong.status_code == 403
    assert problem_of(wrong) == "invalid_code"
    stored = await hub.persons.get(person.id)
    assert stored is not None
    assert stored.totp_secret is None

    right = await hub.post_form(
        "/account/mfa", {"action": "enable", "code": now_code(secret)}, csrf=token
    )
    assert right.status_code == 200
    codes = re.findall(r"<li>([2-9a-z]{4}-[2-9a-z]{4})</li>", right.text)
    assert len(codes) == 10
    assert right.headers["cache-control"] == "no-store"
    stored = await hub.persons.get(person.id)
    assert stored is not None
    assert stored.totp_secret == secret
    assert stored.recovery_code_hashes == tuple(hash_recovery_code(c) for c in codes)
    # Shown once: the page now says MFA is on and holds no codes.
    after = await mfa_page(hub)
    assert "is <strong>on</strong>" in after
    assert not any(code in after for code in codes)
    # The next sign-in asks for a code.
    hub.client.cookies.clear()
    assert (await hub.login(CITIZEN)).headers["location"] == "/account/login/totp"


async def test_enrolment_needs_a_recent_sign_in(hub: Hub) -> None:
    await hub.person(CITIZEN)
    response = await hub.page("/account/mfa")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/account/login?return_to=/account/mfa")
    person = await hub.persons.by_identifier(CITIZEN)
    assert person is not None
    # A session signed in 11 minutes ago.
    raw, _session = await hub.runtime.sessions.create(
        person_id=person.id, acr=ACR_PASSWORD, amr=["pwd"], auth_time=int(time.time()) - 660
    )
    hub.set_cookie(hub.session_cookie, raw)
    assert await hub.signed_in_as() == CITIZEN
    stale = await hub.page("/account/mfa")
    assert stale.status_code == 303
    location = stale.headers["location"]
    assert "max_age=600" in location
    # The login page shows the form again rather than waving the old session through.
    again = await hub.page(location)
    assert again.status_code == 200
    assert 'name="return_to" value="/account/mfa"' in again.text


async def test_turning_mfa_off_needs_a_current_code(hub: Hub) -> None:
    secret, _ = await enrolled(hub)
    await hub.login(CITIZEN)
    await hub.totp(now_code(secret))
    html = await mfa_page(hub)
    token = csrf_of(html)
    refused = await hub.post_form(
        "/account/mfa", {"action": "disable", "code": "000000"}, csrf=token
    )
    assert refused.status_code == 403
    person = await hub.persons.by_identifier(CITIZEN)
    assert person is not None
    assert person.totp_secret == secret
    done = await hub.post_form(
        "/account/mfa", {"action": "disable", "code": now_code(secret, PERIOD)}, csrf=token
    )
    assert done.status_code == 303
    person = await hub.persons.by_identifier(CITIZEN)
    assert person is not None
    assert person.totp_secret is None
    assert person.recovery_code_hashes == ()
