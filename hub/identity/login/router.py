"""The ``/account`` router: sign-in, second factor, consent, MFA enrolment, sign-out, federation."""

from __future__ import annotations

from litestar import Router

from hub.identity.login.account import account_home, logout_page, logout_submit
from hub.identity.login.consent import consent_page, consent_submit
from hub.identity.login.federation import federation_callback, federation_start
from hub.identity.login.login import login_page, login_submit, totp_page, totp_submit
from hub.identity.login.mfa import mfa_page, mfa_submit

__all__ = ["account_router"]


def account_router() -> Router:
    """The people-facing pages of the hub's identity provider, under ``/account``."""
    return Router(
        path="/account",
        route_handlers=[
            account_home,
            login_page,
            login_submit,
            totp_page,
            totp_submit,
            consent_page,
            consent_submit,
            mfa_page,
            mfa_submit,
            logout_page,
            logout_submit,
            federation_start,
            federation_callback,
        ],
        tags=["account"],
    )
