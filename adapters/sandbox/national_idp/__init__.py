"""A sandbox of the national identity provider: a small OpenID Connect provider on loopback.

It stands in for the country's national IdP so the hub's "sign in with the national identity
provider" federation runs end to end without the real service. One client, the authorization
code flow with PKCE (S256 only), RS256 ID tokens with the ``national_id`` claim, and a sign-in
page listing the demo people (``adapters/sandbox/data/national_idp_people.json``), who all sign
in with the password ``sandbox-pass``. ``/_sandbox/faults`` and ``/_sandbox/health`` exist only
here, for tests. Run it with ``python -m adapters.sandbox.national_idp --help``.
"""

from __future__ import annotations

from adapters.sandbox.national_idp.app import create_app
from adapters.sandbox.national_idp.domain import ACR, IdpConfig
from adapters.sandbox.national_idp.people import SANDBOX_PASSWORD, Person, load_people

__all__ = ["ACR", "SANDBOX_PASSWORD", "IdpConfig", "Person", "create_app", "load_people"]
