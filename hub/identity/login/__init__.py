"""The pages people use to sign in to the hub: server-rendered HTML under ``/account``.

Sign-in with identifier and password, then a TOTP code when the account has one
(:mod:`~hub.identity.login.login`); the consent screen for third-party clients
(:mod:`~hub.identity.login.consent`); setting up the second factor
(:mod:`~hub.identity.login.mfa`); sign-out (:mod:`~hub.identity.login.account`); and sign-in
through the national identity provider (:mod:`~hub.identity.login.federation`). Forms are
protected by :mod:`~hub.identity.login.csrf`; sessions come from
:class:`~hub.identity.sessions.SessionManager`.
"""

from __future__ import annotations

from hub.identity.login.router import account_router

__all__ = ["account_router"]
