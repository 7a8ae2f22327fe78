"""``hub clients``, ``hub apikeys``, ``hub keys``: vendor platforms' credentials, signing keys."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from hub.cli._common import run_on_database, settings_or_exit
from hub.db.engine import create_engine
from hub.db.identity_store import (
    ApiKeyStore,
    AuthMethod,
    ClientStore,
    ClientType,
    KeyStore,
    KeyUse,
    OAuthClient,
)
from hub.identity.keys import rotate_keys
from hub.settings import Settings

__all__ = ["apikeys_app", "clients_app", "ensure_demo_credentials", "keys_app"]

T = TypeVar("T")

clients_app = typer.Typer(
    help="OAuth clients: vendor platforms and applications signing people in.",
    no_args_is_help=True,
)
apikeys_app = typer.Typer(help="API keys (shown once, stored hashed).", no_args_is_help=True)
keys_app = typer.Typer(help="The hub's token signing keys.", no_args_is_help=True)


def _scopes(text: str) -> list[str]:
    return [s for s in (part.strip() for part in text.replace(" ", ",").split(",")) if s]


@clients_app.command("create")
def clients_create(
    *,
    name: Annotated[str, typer.Option(help="What the client is")],
    owner: Annotated[str, typer.Option(help="The vendor organisation that owns it")],
    scopes: Annotated[str, typer.Option(help="Scopes it may request, comma-separated")],
    auth_method: Annotated[
        str, typer.Option(help="client_secret_basic or private_key_jwt")
    ] = "client_secret_basic",
    jwks: Annotated[
        Path | None, typer.Option(help="Public JWKS file (for private_key_jwt)")
    ] = None,
    client_type: Annotated[
        str,
        typer.Option(help="confidential, or public (a browser or mobile app: --auth-method none)"),
    ] = "confidential",
    grant_types: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated: client_credentials, authorization_code, refresh_token "
            "(default: client_credentials; authorization_code,refresh_token for public clients)"
        ),
    ] = None,
    redirect_uri: Annotated[
        list[str] | None, typer.Option(help="A redirect URI (repeat for more)")
    ] = None,
    post_logout_redirect_uri: Annotated[
        list[str] | None, typer.Option(help="A post-logout redirect URI (repeat for more)")
    ] = None,
    first_party: Annotated[
        bool, typer.Option(help="One of the hub's own applications: no consent screen")
    ] = False,
) -> None:
    """Register a client; its secret is printed once and stored only as a hash."""
    methods: dict[str, AuthMethod] = {
        "client_secret_basic": "client_secret_basic",
        "private_key_jwt": "private_key_jwt",
        "none": "none",
    }
    types: dict[str, ClientType] = {"confidential": "confidential", "public": "public"}
    if auth_method not in methods:
        typer.echo("error: --auth-method is client_secret_basic, private_key_jwt or none", err=True)
        raise typer.Exit(2)
    if client_type not in types:
        typer.echo("error: --client-type is confidential or public", err=True)
        raise typer.Exit(2)
    method = methods[auth_method]
    key_set: dict[str, Any] | None = None
    if method == "private_key_jwt":
        if jwks is None:
            typer.echo(
                "error: private_key_jwt needs --jwks with the client's public keys", err=True
            )
            raise typer.Exit(2)
        key_set = json.loads(jwks.read_text(encoding="utf-8"))
    client, secret = run_on_database(
        lambda engine: ClientStore(engine).create(
            name=name,
            owner=owner,
            auth_method=method,
            scopes=_scopes(scopes),
            jwks=key_set,
            grant_types=None if grant_types is None else _scopes(grant_types),
            client_type=types[client_type],
            redirect_uris=redirect_uri or (),
            post_logout_redirect_uris=post_logout_redirect_uri or (),
            first_party=first_party,
        )
    )
    typer.echo(f"client_id:     {client.client_id}")
    _echo_uris(client)
    if secret is not None:
        typer.echo(f"client_secret: {secret}")
        typer.echo("The secret is shown only now; the hub keeps a hash of it.")


def _echo_uris(client: OAuthClient) -> None:
    for uri in client.redirect_uris:
        typer.echo(f"redirect_uri:  {uri}")
    for uri in client.post_logout_redirect_uris:
        typer.echo(f"post_logout:   {uri}")


@clients_app.command("set-redirect-uris")
def clients_set_redirect_uris(
    client_id: str,
    redirect_uri: Annotated[
        list[str] | None,
        typer.Option(help="The new redirect URIs (repeat; omit to keep the current ones)"),
    ] = None,
    post_logout_redirect_uri: Annotated[
        list[str] | None,
        typer.Option(help="The new post-logout redirect URIs (repeat; omit to keep)"),
    ] = None,
    clear_post_logout: Annotated[
        bool, typer.Option(help="Remove every post-logout redirect URI")
    ] = False,
) -> None:
    """Replace a client's redirect URIs and/or post-logout redirect URIs."""
    if clear_post_logout and post_logout_redirect_uri:
        typer.echo(
            "error: --clear-post-logout and --post-logout-redirect-uri exclude each other",
            err=True,
        )
        raise typer.Exit(2)
    logout = [] if clear_post_logout else post_logout_redirect_uri
    client = run_on_database(
        lambda engine: ClientStore(engine).update_redirect_uris(
            client_id, redirect_uris=redirect_uri, post_logout_redirect_uris=logout
        )
    )
    typer.echo(f"client_id:     {client.client_id}")
    _echo_uris(client)


@clients_app.command("list")
def clients_list() -> None:
    """List clients (never their secrets)."""
    for client in run_on_database(lambda engine: ClientStore(engine).list()):
        state = "disabled" if client.disabled_at else "active"
        typer.echo(
            f"{client.client_id}  {state:<8} {client.client_type:<12} {client.auth_method:<19} "
            f"{client.owner:<16} {client.name}  [{' '.join(client.scopes)}]"
        )


@clients_app.command("rotate-secret")
def clients_rotate_secret(client_id: str) -> None:
    """Give a client a new secret (printed once); the old one stops working."""
    secret = run_on_database(lambda engine: ClientStore(engine).rotate_secret(client_id))
    typer.echo(f"client_secret: {secret}")


@clients_app.command("disable")
def clients_disable(client_id: str) -> None:
    """Disable a client: it can no longer get tokens."""
    run_on_database(lambda engine: ClientStore(engine).disable(client_id))
    typer.echo(f"client {client_id} is disabled")


@apikeys_app.command("create")
def apikeys_create(
    name: Annotated[str, typer.Option(help="What the key is for")],
    scopes: Annotated[str, typer.Option(help="Scopes, comma-separated")],
    client: Annotated[str | None, typer.Option(help="The client it belongs to")] = None,
    expires_days: Annotated[int | None, typer.Option(help="Expire after N days")] = None,
) -> None:
    """Create an API key; the key is printed once and stored only as a hash."""
    expires = datetime.now(UTC) + timedelta(days=expires_days) if expires_days else None
    record, plaintext = run_on_database(
        lambda engine: ApiKeyStore(engine).create(
            name=name, scopes=_scopes(scopes), client_id=client, expires_at=expires
        )
    )
    typer.echo(f"id:      {record.id}")
    typer.echo(f"api_key: {plaintext}")
    typer.echo("The key is shown only now; the hub keeps a hash of it.")


@apikeys_app.command("list")
def apikeys_list() -> None:
    """List API keys by id and prefix (never the keys)."""
    for record in run_on_database(lambda engine: ApiKeyStore(engine).list()):
        state = "revoked" if record.revoked_at else "active"
        typer.echo(
            f"{record.id}  hub_{record.prefix}_…  {state:<7} {record.name}  "
            f"[{' '.join(record.scopes)}]"
        )


@apikeys_app.command("revoke")
def apikeys_revoke(key_id: str) -> None:
    """Revoke an API key (hubs stop accepting it within their key cache time)."""
    run_on_database(lambda engine: ApiKeyStore(engine).revoke(key_id))
    typer.echo(f"API key {key_id} is revoked")


@apikeys_app.command("rotate")
def apikeys_rotate(key_id: str) -> None:
    """Replace an API key's secret (printed once); the old key stops working."""
    _record, plaintext = run_on_database(lambda engine: ApiKeyStore(engine).rotate(key_id))
    typer.echo(f"api_key: {plaintext}")


@keys_app.command("rotate")
def keys_rotate(
    use: Annotated[
        str, typer.Option(help="access (RS256), internal or signature (EdDSA)")
    ] = "access",
) -> None:
    """Create the next signing key: published now, signing after HUB_KEY_PUBLISH_SECONDS."""
    uses: dict[str, KeyUse] = {"access": "access", "internal": "internal", "signature": "signature"}
    if use not in uses:
        typer.echo("error: --use is access, internal or signature", err=True)
        raise typer.Exit(2)
    settings = settings_or_exit()
    key_use = uses[use]
    key = run_on_database(lambda engine: rotate_keys(engine, settings, key_use))
    typer.echo(
        f"new {use} key {key.kid} ({key.alg}) signs from {key.activates_at:%Y-%m-%d %H:%M:%S} UTC"
    )


@keys_app.command("list")
def keys_list() -> None:
    """List signing keys with their activation and retirement times."""
    for key in run_on_database(lambda engine: KeyStore(engine).list()):
        retired = f"retired {key.retired_at:%Y-%m-%d %H:%M:%S}" if key.retired_at else "current"
        typer.echo(
            f"{key.kid}  {key.use:<8} {key.alg:<5} activates {key.activates_at:%Y-%m-%d %H:%M:%S}"
            f"  {retired}"
        )


async def ensure_demo_credentials(settings: Settings) -> dict[str, str]:
    """The demo vendor's client and API key, created once and kept in the data folder.

    For ``hub dev`` only: the secrets are written to ``demo-credentials.json`` (mode 0600) under
    HUB_DATA_DIR so that the demo can print them on every start.
    """
    path = settings.data_dir / "demo-credentials.json"
    engine = create_engine(settings.database_url)
    try:
        clients = ClientStore(engine)
        if path.is_file():
            saved: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
            if await clients.get(saved.get("client_id", "")) is not None:
                return saved
        client, secret = await clients.create(
            name="Demo vendor platform",
            owner="demo-vendor",
            auth_method="client_secret_basic",
            scopes=["echo.read"],
        )
        _record, api_key = await ApiKeyStore(engine).create(
            name="demo key", scopes=["echo.read"], client_id=client.client_id
        )
    finally:
        await engine.dispose()
    credentials = {"client_id": client.client_id, "client_secret": secret or "", "api_key": api_key}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.write_text(json.dumps(credentials, indent=2), encoding="utf-8")
    return credentials
