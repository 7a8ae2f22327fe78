"""The store access of the person grants (:mod:`hub.identity.grants`), from authlib's thread.

A mixin of :class:`~hub.identity.oauth.HubAuthorizationServer`: each method runs in the worker
thread authlib runs in and reaches the async stores on the event loop (``anyio.from_thread``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import anyio.from_thread
import structlog
from authlib.oauth2.rfc6749 import InvalidGrantError  # type: ignore[import-untyped]

from hub.auth.affiliations import NO_AFFILIATIONS, Affiliations
from hub.db.person_store import Person
from hub.db.refresh_store import RefreshToken
from hub.errors import InvalidGrant, ReuseDetected, ServiceUnavailable
from hub.identity.client_auth import HubClient
from hub.identity.codes import AuthorizationCode, AuthorizationCodes
from hub.identity.directory import Directory
from hub.identity.grants import PersonTokens, SignIn
from hub.identity.tokens import TokenIssuer
from hub.settings import Settings

if TYPE_CHECKING:
    from hub.identity.oauth import IdentityStores

__all__ = ["PersonGrantStores"]

log = structlog.get_logger("hub.identity")


class PersonGrantStores:
    """Codes, people and refresh tokens, as the person grants need them."""

    settings: Settings
    stores: IdentityStores
    tokens: TokenIssuer
    codes: AuthorizationCodes | None
    directory: Directory | None

    def _codes(self) -> AuthorizationCodes:
        if self.codes is None:
            raise ServiceUnavailable("authorization codes are not available in this app")
        return self.codes

    def redeem_code(self, raw: str) -> AuthorizationCode | None:
        """Use up the authorization code ``raw``; ``None`` if unknown, spent or expired."""
        code: AuthorizationCode | None = anyio.from_thread.run(self._codes().redeem, raw)
        return code

    def replayed_code(self, raw: str, client_id: str) -> bool:
        """Whether ``raw`` was redeemed before; if so, revoke what was issued from it."""
        spent = anyio.from_thread.run(self._codes().spent, raw)
        if spent is None:
            return False
        log.warning(
            "authorization code replayed",
            client_id=client_id,
            issued_to=spent.client_id,
            family_id=spent.family_id,
        )
        if spent.family_id is not None:
            anyio.from_thread.run(self.stores.refresh_tokens.revoke_family, spent.family_id)
        if spent.access_jti is not None and spent.access_exp is not None:
            until = datetime.fromtimestamp(spent.access_exp, UTC)
            anyio.from_thread.run(self.stores.revocations.revoke, spent.access_jti, until)
        return True

    def record_code_tokens(self, code: AuthorizationCode, issued: PersonTokens) -> None:
        """Remember what ``code`` produced, for :meth:`replayed_code`."""
        anyio.from_thread.run(
            lambda: self._codes().record_issued(
                code,
                family_id=issued.family_id,
                access_jti=issued.access.claims.jti,
                access_exp=issued.access.claims.exp,
            )
        )

    def live_person(self, person_id: str) -> Person | None:
        """The person ``person_id`` unless unknown or disabled."""
        person: Person | None = anyio.from_thread.run(self.stores.persons.get, person_id)
        return None if person is None or person.disabled_at is not None else person

    def peek_refresh_token(self, raw: str, client_id: str) -> RefreshToken | None:
        """The refresh token ``raw`` of ``client_id`` without spending it, if there is one."""
        record: RefreshToken | None = anyio.from_thread.run(self.stores.refresh_tokens.get, raw)
        return record if record is not None and record.client_id == client_id else None

    def rotate_refresh_token(self, raw: str, client_id: str) -> RefreshToken:
        """Spend a live refresh token of ``client_id``; ``invalid_grant`` otherwise."""
        try:
            spent: RefreshToken = anyio.from_thread.run(
                self.stores.refresh_tokens.rotate, raw, client_id
            )
        except ReuseDetected as exc:
            log.warning("refresh token reused: family revoked", client_id=client_id)
            raise InvalidGrantError(str(exc)) from None
        except InvalidGrant as exc:
            raise InvalidGrantError(str(exc)) from None
        return spent

    def revoke_refresh_family(self, family_id: str) -> None:
        anyio.from_thread.run(self.stores.refresh_tokens.revoke_family, family_id)

    def issue_person_tokens(
        self,
        *,
        client: HubClient,
        grant_type: str,
        sign_in: SignIn,
        scopes: Sequence[str],
        refresh_scopes: Sequence[str] | None,
    ) -> PersonTokens:
        """An access token for the person, and a refresh token when ``refresh_scopes`` is set.

        The access token carries the person's staff roles, memberships and delegations as they
        are now (a refresh reads them again).
        """
        person = sign_in.person
        affiliations: Affiliations = NO_AFFILIATIONS
        if self.directory is not None:
            affiliations = anyio.from_thread.run(self.directory.person, person.id)
        access = self.tokens.issue(
            subject=person.id,
            client_id=client.client_id,
            scopes=scopes,
            kind="person",
            acr=sign_in.acr,
            auth_time=sign_in.auth_time,
            sid=sign_in.sid,
            affiliations=affiliations,
        )
        raw: str | None = None
        family_id: str | None = None
        if refresh_scopes is not None:
            expires_at = datetime.now(UTC) + timedelta(seconds=self.settings.refresh_token_seconds)
            raw, record = anyio.from_thread.run(
                lambda: self.stores.refresh_tokens.issue(
                    client_id=client.client_id,
                    person_id=person.id,
                    scopes=refresh_scopes,
                    acr=sign_in.acr,
                    amr=sign_in.amr,
                    auth_time=sign_in.auth_time,
                    sid=sign_in.sid,
                    expires_at=expires_at,
                    family_id=sign_in.family_id,
                )
            )
            family_id = record.family_id
        log.info(
            "access token issued",
            client_id=client.client_id,
            grant_type=grant_type,
            jti=access.claims.jti,
            scope=access.claims.scope,
            refresh_family=family_id,
        )
        return PersonTokens(access=access, refresh_token=raw, family_id=family_id)
