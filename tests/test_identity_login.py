"""The sign-in pages under /account: password step, cookies, CSRF, fixation, lock-out, consent.

The hub runs in-process (``HubApp`` through Litestar's ``AsyncTestClient``, lifespan included) on
SQLite and the in-process ephemeral store, as a browser would use it: GET the form, POST it
back with the CSRF token, follow the 303s by hand.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from hub.identity.acr import ACR_PASSWORD
from hub.identity.lockout import LoginThrottle
from hub.identity.passwords import Argon2Parameters, PasswordHasher
from tests.login_support import PASSWORD, Hub, csrf_of, problem_of, running_hub

CITIZEN = "1000000001"
RESIDENT = "2000000001"
GENERIC = "The identifier or password is wrong."


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    async with running_hub(tmp_path) as running:
        yield running


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """``Set-Cookie`` headers of a response by cookie name (the whole header line)."""
    lines = response.headers.get_list("set-cookie")
    return {line.split("=", 1)[0]: line for line in lines}


def attributes(line: str) -> set[str]:
    return {part.strip().lower() for part in line.split(";")[1:]}


# --- the form -----------------------------------------------------------------------------


async def test_the_login_page_is_an_accessible_form_with_strict_headers(hub: Hub) -> None:
    response = await hub.page("/account/login?return_to=/account")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    html = response.text
    assert 'autocomplete="username"' in html
    assert 'autocomplete="current-password"' in html
    assert '<label for="identifier">' in html
    assert 'name="return_to" value="/account"' in html
    # No federation button when no national IdP is configured.
    assert "national identity provider" not in html
    csrf = set_cookies(response)["hub_csrf"]
    assert {"httponly", "samesite=strict", "path=/account"} <= attributes(csrf)
    assert csrf_of(html) == hub.cookie("hub_csrf")


async def test_the_login_page_escapes_what_it_echoes(hub: Hub) -> None:
    await hub.person(CITIZEN)
    token = await hub.csrf()
    response = await hub.post_form(
        "/account/login",
        {"identifier": '"><script>alert(1)</script>', "password": "x"},
        csrf=token,
    )
    assert response.status_code == 400
    assert problem_of(response) == "invalid_identifier"
    assert "<script>" not in response.text
    assert "&lt;script&gt;" in response.text or "&#34;&gt;&lt;script" in response.text


# --- signing in ---------------------------------------------------------------------------


@pytest.mark.parametrize("secure", [False, True], ids=["http", "https"])
async def test_a_right_password_signs_in_with_a_well_made_session_cookie(
    tmp_path: Path, secure: bool
) -> None:
    async with running_hub(tmp_path, secure=secure) as hub:
        await hub.person(CITIZEN)
        response = await hub.login(CITIZEN)
        assert response.status_code == 303, response.text
        assert response.headers["location"] == "/account"
        name = "__Host-hub_session" if secure else "hub_session"
        line = set_cookies(response)[name]
        attrs = attributes(line)
        assert {"httponly", "samesite=lax", "path=/"} <= attrs
        assert ("secure" in attrs) is secure
        assert not any(a.startswith("domain") for a in attrs)
        assert await hub.signed_in_as() == CITIZEN
        session = await hub.runtime.sessions.get(hub.cookie(name))
        assert session is not None
        assert (session.acr, session.amr) == (ACR_PASSWORD, ("pwd",))


async def test_a_resident_signs_in_and_goes_back_to_the_authorization_request(hub: Hub) -> None:
    await hub.person(RESIDENT)
    request = await hub.authz_request()
    page = await hub.page(f"/account/login?rid={request.rid}")
    assert f'name="rid" value="{request.rid}"' in page.text
    response = await hub.post_form(
        "/account/login",
        {"identifier": RESIDENT, "password": PASSWORD, "rid": request.rid},
        csrf=csrf_of(page.text),
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/oauth2/authorize?rid={request.rid}"


async def test_an_unknown_or_used_up_request_id_says_so(hub: Hub) -> None:
    response = await hub.page("/account/login?rid=nope")
    assert response.status_code == 400
    assert problem_of(response) == "request_expired"


@pytest.mark.parametrize(
    ("return_to", "expected"),
    [
        ("/svc/orders?x=1", "/svc/orders?x=1"),
        ("//evil.example/", "/account"),
        ("/\\evil.example/", "/account"),
        ("https://evil.example/", "/account"),
        ("javascript:alert(1)", "/account"),
    ],
)
async def test_return_to_only_goes_to_local_paths(hub: Hub, return_to: str, expected: str) -> None:
    await hub.person(CITIZEN)
    response = await hub.login(CITIZEN, return_to=return_to)
    assert response.status_code == 303
    assert response.headers["location"] == expected


async def test_a_signed_in_browser_goes_straight_on(hub: Hub) -> None:
    await hub.person(CITIZEN)
    await hub.login(CITIZEN)
    request = await hub.authz_request()
    response = await hub.page(f"/account/login?rid={request.rid}")
    assert response.status_code == 303
    assert response.headers["location"] == f"/oauth2/authorize?rid={request.rid}"


async def test_prompt_login_asks_again_even_with_a_session(hub: Hub) -> None:
    await hub.person(CITIZEN)
    await hub.login(CITIZEN)
    request = await hub.authz_request(prompt=("login",), created_at=time.time() + 5)
    response = await hub.page(f"/account/login?rid={request.rid}")
    assert response.status_code == 200
    assert 'name="password"' in response.text


async def test_a_needless_rehash_is_skipped_and_an_old_hash_is_upgraded(hub: Hub) -> None:
    person = await hub.person(CITIZEN, password=None)
    old = PasswordHasher(Argon2Parameters(time_cost=2, memory_cost_kib=32)).hash(PASSWORD)
    await hub.persons.set_password_hash(person.id, old)
    assert (await hub.login(CITIZEN)).status_code == 303
    stored = await hub.persons.get(person.id)
    assert stored is not None
    assert stored.password_hash is not None
    assert stored.password_hash != old
    assert not hub.runtime.passwords.needs_rehash(stored.password_hash)


# --- failures -----------------------------------------------------------------------------


async def test_wrong_password_unknown_identifier_and_disabled_person_read_the_same(
    hub: Hub,
) -> None:
    await hub.person(CITIZEN)
    disabled = await hub.person(RESIDENT)
    await hub.persons.disable(disabled.id)
    answers = [
        await hub.login(CITIZEN, "wrong password here"),
        await hub.login("1999999999"),
        await hub.login(RESIDENT),
    ]
    for response in answers:
        assert response.status_code == 403
        assert problem_of(response) == "invalid_credentials"
        assert GENERIC in response.text
        assert hub.session_cookie not in set_cookies(response)
    bodies = {r.text.replace("1999999999", CITIZEN).replace(RESIDENT, CITIZEN) for r in answers}
    assert len(bodies) == 1
    assert await hub.signed_in_as() is None
    person = await hub.persons.by_identifier(CITIZEN)
    assert person is not None
    assert person.failed_logins == 1


async def test_a_person_without_a_password_cannot_sign_in_with_one(hub: Hub) -> None:
    await hub.person(CITIZEN, password=None)
    response = await hub.login(CITIZEN, "")
    assert response.status_code == 400
    assert problem_of(response) == "missing_password"
    response = await hub.login(CITIZEN, "anything at all")
    assert response.status_code == 403
    assert GENERIC in response.text


async def test_a_malformed_identifier_gets_a_clear_form_error(hub: Hub) -> None:
    for bad in ("123", "3000000001", "10000000011", "\uff11" + "0" * 9):
        response = await hub.login(bad)
        assert response.status_code == 400, bad
        assert problem_of(response) == "invalid_identifier"
        assert "10-digit national ID" in response.text


async def test_lock_out_after_repeated_failures_refuses_even_the_right_password(
    hub: Hub,
) -> None:
    await hub.person(CITIZEN)
    limit = hub.runtime.login_throttle.policy.account_max_failures
    for _ in range(limit):
        assert (await hub.login(CITIZEN, "not the password")).status_code == 403
    locked = await hub.login(CITIZEN)  # the right password, during the lock
    assert locked.status_code == 429
    assert problem_of(locked) == "login_locked"
    assert int(locked.headers["retry-after"]) >= 1
    assert await hub.signed_in_as() is None
    person = await hub.persons.by_identifier(CITIZEN)
    assert person is not None
    assert person.failed_logins == limit
    assert person.locked_until is not None
    # Unknown identifiers lock the same way: lock-out says nothing about existence.
    for _ in range(limit):
        await hub.login("1999999999", "not the password")
    assert (await hub.login("1999999999")).status_code == 429


async def test_the_lock_recorded_in_the_database_holds_on_a_fresh_throttle(hub: Hub) -> None:
    await hub.person(CITIZEN)
    limit = hub.runtime.login_throttle.policy.account_max_failures
    for _ in range(limit):
        await hub.login(CITIZEN, "not the password")
    hub.runtime.login_throttle = LoginThrottle()  # another replica, or a restart
    response = await hub.login(CITIZEN)
    assert response.status_code == 429


# --- CSRF ---------------------------------------------------------------------------------


async def test_csrf_missing_mismatched_or_cross_origin_is_refused(hub: Hub) -> None:
    await hub.person(CITIZEN)
    token = await hub.csrf()
    fields = {"identifier": CITIZEN, "password": PASSWORD}
    attempts = [
        await hub.post_form("/account/login", fields),  # no field
        await hub.post_form("/account/login", fields, csrf="A" * 43),  # mismatch
        await hub.post_form("/account/login", fields, csrf=token, origin="https://evil.example"),
        await hub.post_form("/account/login", fields, csrf=token, origin="null"),
        await hub.post_form(
            "/account/login", fields, csrf=token, headers={"Sec-Fetch-Site": "cross-site"}
        ),
    ]
    for response in attempts:
        assert response.status_code == 403
        assert problem_of(response) == "csrf_failed"
        assert 'id="problem-code">csrf_failed<' in response.text
        assert hub.session_cookie not in set_cookies(response)
    # The cookie is gone (a forged post from another site carries none).
    hub.client.cookies.delete("hub_csrf")
    response = await hub.post_form("/account/login", fields, csrf=token)
    assert response.status_code == 403
    assert problem_of(response) == "csrf_failed"
    # None of these counted as a password attempt.
    assert hub.runtime.login_throttle.account_state(CITIZEN) is None
    assert await hub.signed_in_as() is None


async def test_a_post_without_origin_but_with_the_token_passes(hub: Hub) -> None:
    await hub.person(CITIZEN)
    token = await hub.csrf()
    response = await hub.post_form(
        "/account/login", {"identifier": CITIZEN, "password": PASSWORD}, csrf=token, origin=None
    )
    assert response.status_code == 303


# --- session fixation ---------------------------------------------------------------------


async def test_a_planted_cookie_value_is_replaced_at_sign_in_and_worthless_after(
    hub: Hub,
) -> None:
    await hub.person(CITIZEN)
    planted = "planted-by-the-attacker-" + "x" * 19
    hub.set_cookie(hub.session_cookie, planted)
    response = await hub.login(CITIZEN)
    assert response.status_code == 303
    issued = hub.cookie(hub.session_cookie)
    assert issued is not None
    assert issued != planted
    assert await hub.runtime.sessions.get(planted) is None
    # The browser is signed in with the new value; the planted one opens nothing.
    assert await hub.signed_in_as() == CITIZEN
    hub.client.cookies.clear()
    hub.set_cookie(hub.session_cookie, planted)
    assert await hub.signed_in_as() is None


async def test_an_attackers_own_session_planted_in_a_victims_browser_ends_at_sign_in(
    hub: Hub,
) -> None:
    await hub.person(CITIZEN)
    await hub.person(RESIDENT)
    await hub.login(RESIDENT)  # the attacker's account, in the attacker's browser
    attacker_value = hub.cookie(hub.session_cookie)
    assert attacker_value is not None
    hub.client.cookies.clear()
    hub.set_cookie(hub.session_cookie, attacker_value)  # planted in the victim's browser
    await hub.login(CITIZEN)
    victim_value = hub.cookie(hub.session_cookie)
    assert victim_value not in (None, attacker_value)
    assert await hub.signed_in_as() == CITIZEN
    # The planted value no longer authenticates anyone: the attacker cannot ride the session.
    assert await hub.runtime.sessions.get(attacker_value) is None


# --- sign-out -----------------------------------------------------------------------------


async def test_sign_out_needs_a_post_with_csrf_and_ends_the_session(hub: Hub) -> None:
    await hub.person(CITIZEN)
    await hub.login(CITIZEN)
    value = hub.cookie(hub.session_cookie)
    page = await hub.page("/account/logout")
    assert page.status_code == 200
    assert await hub.signed_in_as() == CITIZEN  # a GET signs nobody out
    refused = await hub.post_form("/account/logout", {}, csrf="B" * 43)
    assert refused.status_code == 403
    assert await hub.signed_in_as() == CITIZEN
    response = await hub.post_form("/account/logout", {}, csrf=csrf_of(page.text))
    assert response.status_code == 200
    assert problem_of(response) == "signed_out"
    cleared = set_cookies(response)[hub.session_cookie]
    assert "max-age=0" in attributes(cleared)
    assert await hub.runtime.sessions.get(value) is None
    assert await hub.signed_in_as() is None


async def test_the_account_page_needs_a_session(hub: Hub) -> None:
    response = await hub.page("/account")
    assert response.status_code == 303
    assert response.headers["location"] == "/account/login?return_to=/account"


# --- consent ------------------------------------------------------------------------------


async def third_party_client(hub: Hub, name: str = "Tax Helper <Ltd>") -> str:
    assert hub.runtime.identity is not None
    client, _secret = await hub.runtime.identity.clients.create(
        name,
        "acme",
        "client_secret_basic",
        ["openid", "profile", "tax.read"],
        grant_types=["authorization_code"],
        redirect_uris=["https://rp.example/cb"],
    )
    return client.client_id


async def test_consent_shows_the_client_and_the_scopes_in_plain_words(hub: Hub) -> None:
    person = await hub.person(CITIZEN)
    client_id = await third_party_client(hub)
    request = await hub.authz_request(client_id=client_id, scopes=("openid", "profile", "tax.read"))
    # Without a session the consent page sends the browser to sign in first.
    response = await hub.page(f"/account/consent?rid={request.rid}")
    assert response.status_code == 303
    assert response.headers["location"] == f"/account/login?rid={request.rid}"

    await hub.login(CITIZEN)
    page = await hub.page(f"/account/consent?rid={request.rid}")
    assert page.status_code == 200
    assert "Tax Helper &lt;Ltd&gt;" in page.text
    assert "<Ltd>" not in page.text
    assert "See your name." in page.text
    assert 'data-scope="tax.read"' in page.text
    assert 'data-scope="openid"' not in page.text

    approved = await hub.post_form(
        "/account/consent",
        {"rid": request.rid, "decision": "approve"},
        csrf=csrf_of(page.text),
    )
    assert approved.status_code == 303
    assert approved.headers["location"] == f"/oauth2/authorize?rid={request.rid}"
    assert hub.runtime.identity is not None
    granted = await hub.runtime.identity.consents.granted(person.id, client_id)
    assert granted == {"profile", "tax.read"}


async def test_consent_denied_sends_access_denied_to_the_client(hub: Hub) -> None:
    person = await hub.person(CITIZEN)
    client_id = await third_party_client(hub)
    request = await hub.authz_request(client_id=client_id, scopes=("openid", "tax.read"))
    await hub.login(CITIZEN)
    page = await hub.page(f"/account/consent?rid={request.rid}")
    # A forged answer without the token changes nothing.
    forged = await hub.post_form(
        "/account/consent", {"rid": request.rid, "decision": "approve"}, csrf="C" * 43
    )
    assert forged.status_code == 403
    denied = await hub.post_form(
        "/account/consent", {"rid": request.rid, "decision": "deny"}, csrf=csrf_of(page.text)
    )
    assert denied.status_code == 303
    location = urlsplit(denied.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == "https://rp.example/cb"
    params = parse_qs(location.query)
    assert params == {"error": ["access_denied"], "state": ["st-1"], "iss": [hub.origin]}
    assert await hub.runtime.authz_requests.load(request.rid) is None
    assert hub.runtime.identity is not None
    assert await hub.runtime.identity.consents.granted(person.id, client_id) == frozenset()


async def test_national_idp_asked_but_not_configured_says_so(hub: Hub) -> None:
    response = await hub.page("/account/login?acr_values=urn:hub:acr:national-idp")
    assert response.status_code == 503
    assert problem_of(response) == "federation_unavailable"
    start = await hub.page("/account/federation/national/start")
    assert start.status_code == 404
    assert problem_of(start) == "federation_unavailable"
