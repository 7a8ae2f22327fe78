"""``hub people``, ``hub establishments``, ``hub delegations``: people and their roles.

The account commands (``set-password``, ``reset-mfa``, ``unlock``, ``end-sessions``,
``disable``) run beside the hub, on its database: refresh tokens are revoked there, and login
sessions are ended only when they are in Redis (``HUB_REDIS_URL``). Without it the sessions live
in the hub process, and the command says so rather than pretend.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, TypeVar, cast

import typer

from hub.backends.factory import build_ephemeral_store
from hub.cli._common import run_on_database, settings_or_exit
from hub.db.people_store import (
    AsyncEngine,
    EstablishmentSize,
    MembershipRole,
    PeopleStores,
    Person,
    PersonKind,
)
from hub.db.person_store import PersonStore
from hub.db.refresh_store import RefreshTokenStore
from hub.errors import NotFound
from hub.identity.account_admin import AccountAdmin, SignOut
from hub.identity.passwords import PasswordHasher
from hub.identity.sessions import SessionManager

__all__ = [
    "add_people_commands",
    "delegations_app",
    "establishments_app",
    "people_app",
]

T = TypeVar("T")

#: Who the CLI acts as in audit trails.
CLI_ACTOR = "cli"

people_app = typer.Typer(help="Persons: citizens and residents.", no_args_is_help=True)
establishments_app = typer.Typer(
    help="Establishments and their members (owners, HR officers, employees).",
    no_args_is_help=True,
)
delegations_app = typer.Typer(
    help="Owners' delegations to HR officers and vendor applications.", no_args_is_help=True
)


def add_people_commands(app: typer.Typer) -> None:
    """Add ``people``, ``establishments`` and ``delegations`` to the ``hub`` command."""
    app.add_typer(people_app, name="people")
    app.add_typer(establishments_app, name="establishments")
    app.add_typer(delegations_app, name="delegations")


def _run(action: Callable[[PeopleStores], Awaitable[T]]) -> T:
    """Run one action on the people stores (see :func:`run_on_database`)."""
    return run_on_database(lambda engine: action(PeopleStores.on(engine)))


def _usage(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _when(value: datetime | None) -> str:
    return "-" if value is None else f"{value:%Y-%m-%d %H:%M}"


_NATIONAL_OR_RESIDENT_ID = re.compile(r"[0-9]{10}")
_WHO_HELP = "National or resident ID, or person id"


def _on_account(who: str, action: Callable[[AccountAdmin, Person], Awaitable[T]]) -> T:
    """Run ``action`` on the account of ``who`` (an ID or a person id), sessions when reachable."""
    settings = settings_or_exit()

    async def run(engine: AsyncEngine) -> T:
        persons = PersonStore(engine)
        # Sessions are reachable from here only when they are in Redis.
        store = build_ephemeral_store(settings) if settings.redis_url else None
        accounts = AccountAdmin(
            persons=persons,
            refresh_tokens=RefreshTokenStore(engine),
            passwords=PasswordHasher(),
            sessions=None
            if store is None
            else SessionManager(
                store,
                idle_seconds=settings.session_idle_seconds,
                max_seconds=settings.session_max_seconds,
            ),
        )
        try:
            if _NATIONAL_OR_RESIDENT_ID.fullmatch(who):
                person = await persons.by_identifier(who)
            else:
                person = await persons.get(who)
            if person is None:
                raise NotFound(f"no person is {who!r}")
            return await action(accounts, person)
        finally:
            if store is not None:
                await store.aclose()

    return run_on_database(run)


def _report_sign_out(result: SignOut) -> None:
    typer.echo(f"refresh tokens revoked: {result.refresh_tokens_revoked}")
    if result.sessions_ended:
        typer.echo("sessions: ended on every replica")
    else:
        typer.echo(
            "sessions: not ended: they are in the hub process (no HUB_REDIS_URL); use the"
            f" admin API to end them: POST /admin/api/persons/{result.person_id}/sessions/end"
        )


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        # One line; only its line ending is cut, so spaces at either end stay part of it.
        return typer.get_text_stream("stdin").readline().rstrip("\r\n")
    password: str = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    return password


# --- people ----------------------------------------------------------------------------------


@people_app.command("create")
def people_create(
    *,
    kind: Annotated[str, typer.Option(help="citizen or resident")],
    identifier: Annotated[str, typer.Option(help="National ID (1…) or resident ID (2…)")],
    given_name: Annotated[str, typer.Option(help="Given name")],
    family_name: Annotated[str, typer.Option(help="Family name")],
    email: Annotated[str | None, typer.Option(help="E-mail address")] = None,
    phone: Annotated[str | None, typer.Option(help="Phone number, E.164 (+9665…)")] = None,
) -> None:
    """Record a person."""
    person = _run(
        lambda stores: stores.persons.create(
            kind=cast(PersonKind, kind),  # checked by the store
            identifier=identifier,
            given_name=given_name,
            family_name=family_name,
            email=email,
            phone=phone,
        )
    )
    typer.echo(f"person_id: {person.id}")


@people_app.command("list")
def people_list(
    identifier: Annotated[str | None, typer.Option(help="Only the holder of this ID")] = None,
    limit: Annotated[int, typer.Option(help="Page size")] = 50,
    offset: Annotated[int, typer.Option(help="Skip this many")] = 0,
) -> None:
    """List persons, oldest first (never their credentials)."""
    persons = _run(
        lambda stores: stores.persons.list(identifier=identifier, limit=limit, offset=offset)
    )
    for person in persons:
        state = "disabled" if person.disabled_at else "active"
        typer.echo(
            f"{person.id}  {person.kind:<8} {person.identifier}  {state:<8} "
            f"{person.given_name} {person.family_name}"
        )


@people_app.command("set-password")
def people_set_password(
    who: Annotated[str, typer.Argument(metavar="IDENTIFIER", help=_WHO_HELP)],
    stdin: Annotated[
        bool, typer.Option("--stdin", help="Read the password from the first line of stdin")
    ] = False,
) -> None:
    """Give a person a new password (asked twice, hidden) and sign them out everywhere."""

    async def set_password(accounts: AccountAdmin, person: Person) -> SignOut:
        # Asked once the person is found, so nobody types a password for a mistyped ID.
        return await accounts.set_password(person.id, _read_password(stdin))

    result = _on_account(who, set_password)
    typer.echo(f"password set for {result.person_id}")
    _report_sign_out(result)


@people_app.command("reset-mfa")
def people_reset_mfa(
    who: Annotated[str, typer.Argument(metavar="IDENTIFIER", help=_WHO_HELP)],
) -> None:
    """Remove a person's second factor and recovery codes (a lost device); sign them out."""
    result = _on_account(who, lambda accounts, person: accounts.reset_mfa(person.id))
    typer.echo(f"second factor removed for {result.person_id}; they enrol again at sign-in")
    _report_sign_out(result)


@people_app.command("unlock")
def people_unlock(
    who: Annotated[str, typer.Argument(metavar="IDENTIFIER", help=_WHO_HELP)],
) -> None:
    """Clear a person's failed sign-ins and lock in the database."""
    person = _on_account(who, lambda accounts, person: accounts.unlock(person.id))
    typer.echo(f"unlocked {person.id}")
    typer.echo(
        "a running hub may still hold a lock in memory until it runs out; use the admin API"
        f" to clear it there too: POST /admin/api/persons/{person.id}/unlock"
    )


@people_app.command("end-sessions")
def people_end_sessions(
    who: Annotated[str, typer.Argument(metavar="IDENTIFIER", help=_WHO_HELP)],
) -> None:
    """Sign a person out everywhere: their login sessions and refresh tokens."""
    result = _on_account(who, lambda accounts, person: accounts.sign_out_everywhere(person.id))
    typer.echo(f"signed out {result.person_id}")
    _report_sign_out(result)


@people_app.command("disable")
def people_disable(
    who: Annotated[str, typer.Argument(metavar="IDENTIFIER", help=_WHO_HELP)],
) -> None:
    """Disable a person for good and sign them out everywhere."""
    person, result = _on_account(who, lambda accounts, person: accounts.disable(person.id))
    typer.echo(f"disabled {person.id} since {_when(person.disabled_at)} UTC")
    _report_sign_out(result)


# --- establishments --------------------------------------------------------------------------


@establishments_app.command("create")
def establishments_create(
    cr_number: Annotated[str, typer.Option(help="Commercial registration number (10 digits)")],
    name: Annotated[str, typer.Option(help="Registered name")],
    sector: Annotated[str, typer.Option(help="Sector code, such as retail or F41")],
    size: Annotated[str, typer.Option(help="micro, small, medium or large")],
) -> None:
    """Record an establishment."""
    establishment = _run(
        lambda stores: stores.establishments.create(
            cr_number=cr_number,
            name=name,
            sector=sector,
            size=cast(EstablishmentSize, size),  # checked by the store
        )
    )
    typer.echo(f"establishment_id: {establishment.id}")


@establishments_app.command("list")
def establishments_list(
    cr_number: Annotated[str | None, typer.Option(help="Only this CR number")] = None,
    limit: Annotated[int, typer.Option(help="Page size")] = 50,
    offset: Annotated[int, typer.Option(help="Skip this many")] = 0,
) -> None:
    """List establishments, oldest first."""
    establishments = _run(
        lambda stores: stores.establishments.list(cr_number=cr_number, limit=limit, offset=offset)
    )
    for establishment in establishments:
        typer.echo(
            f"{establishment.id}  {establishment.cr_number}  {establishment.size:<6} "
            f"{establishment.sector:<10} {establishment.name}"
        )


@establishments_app.command("add-member")
def establishments_add_member(
    establishment_id: str,
    person_id: str,
    role: Annotated[str, typer.Option(help="owner, hr_officer or employee")],
) -> None:
    """Give a person a role in an establishment."""
    membership = _run(
        lambda stores: stores.establishments.add_member(
            establishment_id, person_id, cast(MembershipRole, role)
        )
    )
    typer.echo(
        f"{membership.person_id} is {membership.role} of {membership.establishment_id}"
        f" since {_when(membership.since)}"
    )


# --- delegations -----------------------------------------------------------------------------


@delegations_app.command("grant")
def delegations_grant(
    establishment_id: str,
    *,
    grantor: Annotated[str, typer.Option(help="The owner granting (person id)")],
    scopes: Annotated[str, typer.Option(help="Scopes, comma-separated")],
    to_person: Annotated[str | None, typer.Option(help="An HR officer (person id)")] = None,
    to_client: Annotated[str | None, typer.Option(help="A vendor application (client id)")] = None,
    days: Annotated[int | None, typer.Option(help="Valid for N days from now")] = None,
    until: Annotated[
        datetime | None, typer.Option(help="Valid until this moment (UTC unless an offset)")
    ] = None,
    reason: Annotated[str, typer.Option(help="Why, for the audit trail")] = "",
) -> None:
    """Record an owner's delegation (at most a year long)."""
    if (days is None) == (until is None):
        raise _usage("give exactly one of --days and --until")
    if days is not None:
        valid_until = datetime.now(UTC) + timedelta(days=days)
    else:
        assert until is not None
        valid_until = until if until.tzinfo else until.replace(tzinfo=UTC)
    names = [s for s in (part.strip() for part in scopes.replace(" ", ",").split(",")) if s]
    delegation = _run(
        lambda stores: stores.delegations.grant(
            establishment_id,
            grantor=grantor,
            grantee_person=to_person,
            grantee_client=to_client,
            scopes=names,
            valid_until=valid_until,
            reason=reason,
        )
    )
    typer.echo(f"delegation_id: {delegation.id}")
    typer.echo(f"valid {_when(delegation.valid_from)} to {_when(delegation.valid_until)} UTC")


@delegations_app.command("revoke")
def delegations_revoke(
    delegation_id: str,
    reason: Annotated[str, typer.Option(help="Why, for the audit trail")],
    by: Annotated[str, typer.Option(help="Who revokes (a person id or your name)")] = CLI_ACTOR,
) -> None:
    """Revoke a delegation."""
    delegation = _run(lambda stores: stores.delegations.revoke(delegation_id, by=by, reason=reason))
    typer.echo(f"delegation {delegation.id} revoked {_when(delegation.revoked_at)} UTC")


@delegations_app.command("list")
def delegations_list(establishment_id: str) -> None:
    """List an establishment's delegations, revoked and expired ones included."""
    for delegation in _run(lambda stores: stores.delegations.list(establishment_id)):
        state = "revoked" if delegation.revoked_at else "granted"
        typer.echo(
            f"{delegation.id}  {state:<7} {delegation.grantor} -> {delegation.grantee}  "
            f"{_when(delegation.valid_from)} .. {_when(delegation.valid_until)}  "
            f"[{' '.join(delegation.scopes)}]"
        )
