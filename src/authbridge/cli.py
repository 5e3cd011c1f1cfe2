"""The ``authbridge`` command line. Commands act on the configured database directly."""

from __future__ import annotations

import dataclasses
import functools
import gc
import json
import logging
import sys
import typing
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import typer

from authbridge import __version__
from authbridge.errors import AuthBridgeError, ConfigError, ErrorItem, SpecError
from authbridge.spec import Integration, dump_spec, load_specs, spec_to_dict

if typing.TYPE_CHECKING:
    from authbridge.broker import Broker
    from authbridge.config import Settings

__all__ = ["app", "main"]

T = typing.TypeVar("T")
P = typing.ParamSpec("P")


def _handle_errors(func: Callable[P, T]) -> Callable[P, T]:
    """Show an AuthBridgeError as ``error: <message>`` on stderr and exit with its code; no traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return func(*args, **kwargs)
        except AuthBridgeError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper


def _settings() -> Settings:
    from authbridge.config import Settings

    return Settings.from_env()


def _with_broker(work: Callable[[Broker], Awaitable[T]]) -> T:
    """Open the store, run ``work`` with a broker on it, close the store."""
    from authbridge.app import http_client, open_store, policy_for
    from authbridge.broker import Broker

    settings = _settings()

    async def run() -> T:
        store = await open_store(settings)
        http = http_client(settings)
        try:
            return await work(Broker(store, http=http, policy=policy_for(settings)))
        finally:
            await http.aclose()
            await store.close()

    return anyio.run(run)


def _out(text: str) -> None:
    typer.echo(text)


def _err(text: str) -> None:
    typer.echo(text, err=True)


app = typer.Typer(
    name="authbridge",
    help="AuthBridge: hold the credentials your app needs to call third-party APIs for its users.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
integrations_app = typer.Typer(help="Define integrations (the APIs and how to authenticate to them).")
keys_app = typer.Typer(help="Manage the API keys that callers of the HTTP API present.")
encryption_app = typer.Typer(help="Manage the encryption key ring.")
connections_app = typer.Typer(help="Connected accounts: one per user or profile (DEV, QA, PROD) of an integration.")
webhooks_app = typer.Typer(help="URLs that receive every event, signed with HMAC-SHA256 (see `webhooks add --help`).")
app.add_typer(integrations_app, name="integrations", no_args_is_help=True)
app.add_typer(connections_app, name="connections", no_args_is_help=True)
app.add_typer(keys_app, name="api-keys", no_args_is_help=True)
app.add_typer(encryption_app, name="encryption", no_args_is_help=True)
app.add_typer(webhooks_app, name="webhooks", no_args_is_help=True)


@app.command()
@_handle_errors
def run(
    host: typing.Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: typing.Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    admin_listen: typing.Annotated[
        str | None,
        typer.Option(
            help="host:port for the admin surface (API, console, proxy, metrics); the other listener keeps only "
            "the public pages (OAuth callback, connect pages). Default: AUTHBRIDGE_ADMIN_LISTEN, else one listener."
        ),
    ] = None,
) -> None:
    """Start the server (migrates the database and generates the key file on first start)."""
    from authbridge.app import configure_logging, create_app, open_store
    from authbridge.serving import serve

    settings = _settings()
    if admin_listen:
        from authbridge.config import listen_address

        settings = dataclasses.replace(settings, admin_listen=listen_address(admin_listen, "--admin-listen"))

    async def prepare() -> None:
        store = await open_store(settings)
        await store.close()

    anyio.run(prepare)  # migrate and verify the key ring now, so a mismatch is one clear line
    configure_logging(settings)
    # In the JSON format every line of stderr is a JSON object: these go through logging too.
    say = logging.getLogger("authbridge").warning if settings.log_format == "json" else _err
    say(f"AuthBridge {__version__} on http://{host or settings.host}:{port or settings.port}")
    if settings.admin_listen:
        say(
            f"Admin surface (API, console, proxy, metrics) on http://{settings.admin_listen[0]}:{settings.admin_listen[1]}"
        )
    say(f"OAuth redirect URI to register with providers: {settings.redirect_uri}")
    app_ = create_app(settings)
    # Everything imported and built so far lives as long as the process: keep it out of the garbage
    # collector's full passes, which otherwise pause the proxy for tens of milliseconds.
    gc.collect()
    gc.freeze()
    serve(
        app_,
        settings,
        app_.state.lifecycle,
        host=host or settings.host,
        port=port or settings.port,
        admin=settings.admin_listen,
    )


@app.command()
@_handle_errors
def refresher() -> None:
    """Run the background token refresher and webhook delivery without the HTTP server (Ctrl-C stops it).

    Safe beside ``authbridge run`` and on several replicas: each refresh and delivery happens once.
    """
    import signal

    from authbridge.app import (
        REFRESHER_GC_YOUNG,
        configure_logging,
        http_client,
        loop_options,
        open_store,
        policy_for,
        run_background,
    )
    from authbridge.broker import Broker

    settings = _settings()
    configure_logging(settings)

    async def work() -> None:
        store = await open_store(settings)
        http = http_client(settings)
        stop = anyio.Event()
        try:
            broker = Broker(store, http=http, policy=policy_for(settings))
            async with anyio.create_task_group() as group:

                async def on_signal() -> None:
                    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                        async for _ in signals:
                            stop.set()
                            return

                group.start_soon(on_signal)
                _err("refresher running (token refresh and webhook delivery); Ctrl-C stops it")
                await run_background(
                    broker,
                    http,
                    stop,
                    retention_days=settings.event_retention_days,
                    refresh_interval=settings.refresh_interval,
                    refresh_concurrency=settings.refresh_concurrency,
                    gc_young=REFRESHER_GC_YOUNG,  # a process that only refreshes: fewer young collections
                )
                group.cancel_scope.cancel()
        finally:
            await http.aclose()
            await store.close()

    anyio.run(work, backend_options=loop_options())
    _err("refresher stopped")


@app.command()
@_handle_errors
def migrate() -> None:
    """Apply database migrations (``run`` does this too)."""
    from authbridge.app import open_store

    async def work() -> None:
        store = await open_store(_settings())
        await store.close()

    anyio.run(work)
    _err("database is up to date")


@app.command()
@_handle_errors
def info(as_json: typing.Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Show the configuration in use and the redirect URI to register with providers."""
    from authbridge.store import redact_url

    settings = _settings()

    async def work(broker: Broker) -> dict[str, typing.Any]:
        ring = broker.store.ctx.keyring
        return {
            "version": __version__,
            "data_dir": str(settings.data_dir),
            "database": redact_url(settings.database_url),
            "key_ring": "AUTHBRIDGE_ENCRYPTION_KEYS" if settings.encryption_keys else str(settings.key_file),
            "active_key": ring.active_kid,
            "keys": len(ring.kids),
            "public_url": settings.public_url,
            "redirect_uri": settings.redirect_uri,
            "allow_private_networks": settings.allow_private_networks,
            "integrations": len(await broker.list_integrations()),
            "database_ok": await broker.healthy(),
        }

    data = _with_broker(work)
    if as_json:
        _out(json.dumps(data, indent=2))
        return
    for name, value in data.items():
        _out(f"{name + ':':<24}{value}")


# -- integrations -----------------------------------------------------------------------------


def _spec_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
        if not files:
            raise ConfigError(f"{path} holds no .yaml or .yml file")
        return files
    if not path.exists():
        raise ConfigError(f"{path} does not exist")
    return [path]


def _load_all(paths: typing.Sequence[Path]) -> list[Integration]:
    """Load every spec of every file; report every problem of every file at once."""
    specs: list[Integration] = []
    problems: list[SpecError] = []
    for path in paths:
        for file in _spec_files(path):
            try:
                specs.extend(load_specs(file.read_text(encoding="utf-8"), source=str(file)))
            except SpecError as exc:
                problems.append(exc)
            except (OSError, UnicodeDecodeError) as exc:
                problems.append(SpecError([ErrorItem("", f"cannot read: {exc}")], source=str(file)))
    if problems:
        items = [ErrorItem(f"{p.source}", str(i)) for p in problems for i in p.errors]
        raise SpecError(items)
    return specs


@integrations_app.command("validate")
@_handle_errors
def integrations_validate(
    files: typing.Annotated[list[Path], typer.Argument(help="YAML files or directories.")],
) -> None:
    """Check spec files without touching the database; exit 1 listing every problem."""
    specs = _load_all(files)
    for spec in specs:
        _err(f"ok: {spec.key} ({spec.auth.type})")


@integrations_app.command("apply")
@_handle_errors
def integrations_apply(
    paths: typing.Annotated[list[Path], typer.Argument(help="YAML files or directories.")],
    move_secrets: typing.Annotated[
        bool,
        typer.Option(
            "--move-secrets",
            help="Allow a changed host to receive the tokens and secret parameters of existing connected accounts.",
        ),
    ] = False,
) -> None:
    """Create or update integrations from YAML; nothing is saved unless every spec is valid.

    An update that sends the stored client secret (given as ********) to a new host is refused: give
    the secret again. One that sends existing connected accounts' tokens and secret parameters to a
    new host is refused unless --move-secrets confirms it (the HTTP API and console cannot).
    """
    specs = _load_all(paths)

    async def work(broker: Broker) -> list[tuple[str, bool]]:
        results = await broker.save_integrations(specs, move_secrets=move_secrets)
        return [(record.key, created) for record, created in results]

    for key, created in _with_broker(work):
        _err(f"{'created' if created else 'updated'}: {key}")


@integrations_app.command("list")
@_handle_errors
def integrations_list(
    as_json: typing.Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List integrations."""

    async def work(broker: Broker) -> list[dict[str, typing.Any]]:
        return [
            {"key": r.key, "name": r.spec.name, "auth": r.spec.auth.type, "version": r.version}
            for r in await broker.list_integrations()
        ]

    rows = _with_broker(work)
    if as_json:
        _out(json.dumps(rows, indent=2))
        return
    if not rows:
        _err("no integrations yet: authbridge integrations apply examples/")
        return
    _out(f"{'KEY':<20} {'AUTH':<14} {'VERSION':<8} NAME")
    for row in rows:
        _out(f"{row['key']:<20} {row['auth']:<14} {row['version']:<8} {row['name']}")


@integrations_app.command("show")
@_handle_errors
def integrations_show(
    key: str, as_json: typing.Annotated[bool, typer.Option("--json", help="Print JSON.")] = False
) -> None:
    """Show one integration (secrets masked)."""

    async def work(broker: Broker) -> tuple[Integration, str | None, int]:
        record = await broker.get_integration(key)
        return record.spec, broker.redirect_uri_for(record.spec), record.version

    spec, redirect, version = _with_broker(work)
    if as_json:
        _out(json.dumps({**spec_to_dict(spec), "redirect_uri": redirect, "version": version}, indent=2))
        return
    _out(f"# version {version}" + (f"; redirect URI to register: {redirect}" if redirect else ""))
    _out(dump_spec(spec).rstrip())


@integrations_app.command("export")
@_handle_errors
def integrations_export(key: str) -> None:
    """Print an integration as YAML (client secret masked; applying it again keeps the stored one)."""

    async def work(broker: Broker) -> Integration:
        return (await broker.get_integration(key)).spec

    sys.stdout.write(dump_spec(_with_broker(work)))


@integrations_app.command("delete")
@_handle_errors
def integrations_delete(key: str) -> None:
    """Delete an integration that has no connected accounts."""

    async def work(broker: Broker) -> None:
        await broker.delete_integration(key)

    _with_broker(work)
    _err(f"deleted: {key}")


# -- connections ------------------------------------------------------------------------------


def _pairs(items: list[str] | None, option: str) -> dict[str, str]:
    """``name=value`` pairs; ``name=`` with nothing after asks for the value without echoing it."""
    result: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            # Never echo the item: without its `=`, a credential is all value (a token pasted alone).
            raise ConfigError(f"{option} takes name=value, such as {option} token=... (the value given has no name)")
        if not value:
            value = typer.prompt(name, hide_input=True, err=True)
        result[name] = value
    return result


def _connection_json(record: typing.Any, **extra: typing.Any) -> dict[str, typing.Any]:
    return {
        "id": record.id,
        "integration": record.integration_key,
        "name": record.name,
        "status": record.status,
        "parameters": record.public_parameters(),
        "expires_at": record.expires_at.isoformat() if record.expires_at else None,
        "last_refreshed_at": record.last_refreshed_at.isoformat() if record.last_refreshed_at else None,
        "last_error": record.last_error,
        "warning": record.warning,
        **extra,
    }


@connections_app.command("create")
@_handle_errors
def connections_create(
    integration: typing.Annotated[str, typer.Argument(help="The integration's key.")],
    name: typing.Annotated[str, typer.Option(help="The account's name: DEV, QA, PROD, a user...")],
    param: typing.Annotated[
        list[str] | None, typer.Option("--param", "-p", help="A parameter value, name=value (repeatable).")
    ] = None,
    credential: typing.Annotated[
        list[str] | None,
        typer.Option("--credential", "-c", help="token=..., username=..., password=... (name= prompts, hidden)."),
    ] = None,
    return_to: typing.Annotated[str | None, typer.Option(help="Where the browser goes after authorizing.")] = None,
) -> None:
    """Create a connected account; prints the URL to open when the user must authorize."""
    params = _pairs(param, "--param")
    creds = _pairs(credential, "--credential")

    async def work(broker: Broker) -> tuple[str, str, str | None]:
        result = await broker.connections.create(
            integration_key=integration, name=name, parameters=params, credentials=creds, return_to=return_to
        )
        return result.connection.id, result.connection.status, result.authorize_url

    connection_id, status, url = _with_broker(work)
    if url:
        _err(f"created connection {connection_id} ({status}); open this URL to authorize it:")
        _out(url)
    else:
        _err(f"created connection {connection_id} ({status})")
        _out(connection_id)


@connections_app.command("list")
@_handle_errors
def connections_list(
    integration: typing.Annotated[str | None, typer.Option(help="Only this integration's accounts.")] = None,
    as_json: typing.Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List connected accounts."""

    async def work(broker: Broker) -> list[dict[str, typing.Any]]:
        return [_connection_json(r) for r in await broker.store.connections.list(integration_key=integration)]

    rows = _with_broker(work)
    if as_json:
        _out(json.dumps(rows, indent=2))
        return
    if not rows:
        _err("no connected accounts yet: authbridge connections create KEY --name DEV")
        return
    _out(f"{'ID':<33} {'INTEGRATION':<16} {'STATUS':<13} {'EXPIRES':<26} NAME")
    for row in rows:
        _out(
            f"{row['id']:<33} {row['integration']:<16} {row['status']:<13} {row['expires_at'] or '-':<26} {row['name']}"
        )


@connections_app.command("show")
@_handle_errors
def connections_show(
    connection_id: str, as_json: typing.Annotated[bool, typer.Option("--json", help="Print JSON.")] = False
) -> None:
    """Show a connected account (secret parameters masked, never a token)."""

    async def work(broker: Broker) -> dict[str, typing.Any]:
        record, scopes = await broker.connections.view(connection_id)
        return _connection_json(record, scopes=scopes)

    data = _with_broker(work)
    if as_json:
        _out(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        _out(f"{key + ':':<20}{value}")


@connections_app.command("delete")
@_handle_errors
def connections_delete(connection_id: str) -> None:
    """Revoke upstream (when the integration can) and delete a connected account."""

    async def work(broker: Broker) -> tuple[bool, str | None]:
        result = await broker.connections.delete(connection_id)
        return result.revoked, result.revoke_error

    revoked, problem = _with_broker(work)
    if problem:
        _err(f"warning: revocation failed: {problem}")
    _err(f"deleted: {connection_id}" + (" (revoked upstream)" if revoked else ""))


@connections_app.command("test")
@_handle_errors
def connections_test(connection_id: str) -> None:
    """Run the integration's test request; exit 1 when it fails."""

    async def work(broker: Broker) -> tuple[bool, str]:
        result = await broker.connections.test(connection_id)
        return result.ok, result.detail

    ok, detail = _with_broker(work)
    _out(("ok: " if ok else "failed: ") + detail)
    if not ok:
        raise typer.Exit(1)


@connections_app.command("token")
@_handle_errors
def connections_token(connection_id: str) -> None:
    """Print a valid access token (refreshed first when due) alone on stdout."""

    async def work(broker: Broker) -> str:
        return (await broker.connections.token(connection_id)).access_token

    _out(_with_broker(work))


@connections_app.command("refresh")
@_handle_errors
def connections_refresh(connection_id: str) -> None:
    """Refresh the token now."""

    async def work(broker: Broker) -> str | None:
        creds = await broker.connections.refresh(connection_id, force=True)
        return creds.expires_at.isoformat() if creds.expires_at else None

    expires = _with_broker(work)
    _err(f"refreshed {connection_id}; expires at {expires or 'unknown'}")


@connections_app.command("reconnect")
@_handle_errors
def connections_reconnect(
    connection_id: str,
    return_to: typing.Annotated[str | None, typer.Option(help="Where the browser goes after authorizing.")] = None,
) -> None:
    """Authorize again: prints a new URL to open (authorization code), or fetches a new token."""

    async def work(broker: Broker) -> str | None:
        return (await broker.connections.reconnect(connection_id, return_to=return_to)).authorize_url

    url = _with_broker(work)
    if url:
        _err("open this URL to authorize the connection again:")
        _out(url)
    else:
        _err(f"reconnected {connection_id}")


# -- API keys ---------------------------------------------------------------------------------


@keys_app.command("create")
@_handle_errors
def keys_create(
    name: typing.Annotated[str, typer.Option(help="What the key is for.")] = "default",
    scope: typing.Annotated[
        list[str] | None,
        typer.Option(
            help="What the key may do (repeat for several): admin (the default: everything), connect, "
            "connections:read, connections:write, proxy, token."
        ),
    ] = None,
) -> None:
    """Create an API key. The key alone goes to stdout (shown once); the note goes to stderr."""
    scopes = scope or ["admin"]

    async def work(broker: Broker) -> tuple[str, str]:
        plaintext, record = await broker.create_api_key(name, scopes)
        return plaintext, record.id

    plaintext, key_id = _with_broker(work)
    _out(plaintext)
    _err(f"created API key {key_id} ({name}, scopes: {' '.join(scopes)}); it is shown only this once")


@keys_app.command("list")
@_handle_errors
def keys_list(as_json: typing.Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List API keys (never the keys themselves)."""

    async def work(broker: Broker) -> list[dict[str, typing.Any]]:
        return [
            {
                "id": r.id,
                "name": r.name,
                "prefix": r.prefix,
                "created_at": r.created_at.isoformat(),
                "last_used_at": r.last_used_at.isoformat() if r.last_used_at else None,
                "revoked": r.revoked_at is not None,
                "scopes": list(r.scopes),
            }
            for r in await broker.store.api_keys.list()
        ]

    rows = _with_broker(work)
    if as_json:
        _out(json.dumps(rows, indent=2))
        return
    _out(f"{'ID':<33} {'PREFIX':<11} {'STATUS':<8} {'SCOPES':<30} NAME")
    for row in rows:
        status = "revoked" if row["revoked"] else "active"
        _out(f"{row['id']:<33} {row['prefix']:<11} {status:<8} {' '.join(row['scopes']):<30} {row['name']}")


@keys_app.command("revoke")
@_handle_errors
def keys_revoke(ident: typing.Annotated[str, typer.Argument(help="The key's id, prefix or name.")]) -> None:
    """Revoke an API key."""

    async def work(broker: Broker) -> str:
        return (await broker.store.api_keys.revoke(ident)).id

    _err(f"revoked API key {_with_broker(work)}")


# -- encryption -------------------------------------------------------------------------------


@encryption_app.command("rotate")
@_handle_errors
def encryption_rotate() -> None:
    """Add a key, make it active and re-encrypt every secret (safe while the service runs).

    With the key file, the new key is written to it and a running server picks it up. With
    AUTHBRIDGE_ENCRYPTION_KEYS, put the new key first in the variable (see ``generate-key``)
    and run this to move every secret to it.
    """
    from authbridge.app import open_store
    from authbridge.store import FileKeyRing

    settings = _settings()

    async def work() -> tuple[str, int]:
        store = await open_store(settings)
        try:
            ring = store.ctx.keyring
            if isinstance(ring, FileKeyRing):
                ring.add_active_key()
            count = await store.keys.reencrypt_all()
            return ring.active_kid, count
        finally:
            await store.close()

    kid, count = anyio.run(work)
    _err(f"active key: {kid}; re-encrypted {count} secret(s)")


@encryption_app.command("generate-key")
def encryption_generate_key() -> None:
    """Print a new ``kid:base64`` key entry for AUTHBRIDGE_ENCRYPTION_KEYS."""
    import base64

    from authbridge.store import generate_key

    key = generate_key()
    _out(f"{key.kid}:{base64.b64encode(key.secret).decode()}")


# -- webhooks ---------------------------------------------------------------------------------


@webhooks_app.command("add")
@_handle_errors
def webhooks_add(url: typing.Annotated[str, typer.Argument(help="An http:// or https:// URL.")]) -> None:
    """Send every event to URL. The signing secret alone goes to stdout (shown once); the note to stderr.

    Each delivery carries ``AuthBridge-Signature: t=<unix seconds>,v1=<hex>``: HMAC-SHA256 under the
    secret of ``"<t>.<raw body>"``. Check it, and that t is within 5 minutes of now
    (``authbridge.broker.webhooks.verify_signature`` does both).
    """
    from authbridge.store import check_webhook_url

    url = check_webhook_url(url)  # a bad URL is refused before the database is opened

    async def work(broker: Broker) -> tuple[str, str]:
        record, secret = await broker.store.webhooks.add(url)
        return record.id, secret

    webhook_id, secret = _with_broker(work)
    _out(secret)
    _err(f"added webhook {webhook_id} for {url}; its signing secret is shown only this once")


@webhooks_app.command("list")
@_handle_errors
def webhooks_list(as_json: typing.Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List webhooks and how their deliveries stand (never their secrets)."""

    async def work(broker: Broker) -> list[dict[str, typing.Any]]:
        return [
            {
                "id": r.id,
                "url": r.url,
                "created_at": r.created_at.isoformat(),
                "pending": r.pending,
                "delivered": r.delivered,
                "failed": r.failed,
            }
            for r in await broker.store.webhooks.list()
        ]

    rows = _with_broker(work)
    if as_json:
        _out(json.dumps(rows, indent=2))
        return
    if not rows:
        _err("no webhooks yet: authbridge webhooks add https://example.com/hooks/authbridge")
        return
    _out(f"{'ID':<33} {'PENDING':>8} {'DELIVERED':>10} {'FAILED':>7}  URL")
    for row in rows:
        _out(f"{row['id']:<33} {row['pending']:>8} {row['delivered']:>10} {row['failed']:>7}  {row['url']}")


@webhooks_app.command("remove")
@_handle_errors
def webhooks_remove(webhook_id: typing.Annotated[str, typer.Argument(help="The webhook's id.")]) -> None:
    """Stop sending events to a webhook (its pending deliveries are dropped)."""

    async def work(broker: Broker) -> None:
        await broker.store.webhooks.remove(webhook_id)

    _with_broker(work)
    _err(f"removed webhook {webhook_id}")


@app.callback(invoke_without_command=True)
def _root(
    version: typing.Annotated[bool, typer.Option("--version", help="Show the version and exit.")] = False,
) -> None:
    if version:
        _out(__version__)
        raise typer.Exit()


def main() -> None:
    """Entry point of the ``authbridge`` script."""
    app()


# -- console admin ----------------------------------------------------------------------------

admin_app = typer.Typer(help="The web console's admin sign-in (besides API keys).")
app.add_typer(admin_app, name="admin", no_args_is_help=True)


@admin_app.command("set-password")
@_handle_errors
def admin_set_password(
    from_stdin: typing.Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from the first line of stdin (scripts).")
    ] = False,
) -> None:
    """Set the console's admin password (at least 12 characters; stored as an scrypt hash)."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Admin password", hide_input=True, confirmation_prompt=True)
    if len(password) < 12:
        _err("error: the admin password must have at least 12 characters")
        raise typer.Exit(2)

    async def work(broker: Broker) -> None:
        await broker.store.admin.set_password(password)

    _with_broker(work)
    _err("admin password set; sign in to the console with it (sessions signed in with the old one end)")


# The catalog's commands live in their own module; imported last, as it uses the helpers above.
from authbridge.cli_catalog import catalog_app  # noqa: E402

app.add_typer(catalog_app, name="catalog", no_args_is_help=True)
