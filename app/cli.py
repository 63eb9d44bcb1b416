"""The ``vaultdesk`` command: Flask's CLI over ``create_app`` plus Vaultdesk's own commands."""

from __future__ import annotations

from typing import Any

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext
from sqlalchemy import func, select

from app.extensions import db
from app.models.people import Role, User


def _create_app() -> Flask:
    from app import create_app

    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app)
def main() -> None:
    """Vaultdesk: the help desk. `vaultdesk run`, `vaultdesk db upgrade`, `vaultdesk worker`, ..."""


@click.command("demo-data")
@click.option("--if-empty", is_flag=True, help="Do nothing (successfully) when data exists.")
@click.option("--seed", default=2026, show_default=True, help="Random seed: same seed, same data.")
@with_appcontext
def demo_data_command(if_empty: bool, seed: int) -> None:
    """Fill an empty database with a believable company and print the sign-ins it made."""
    from app.demo import build_demo, credentials_file, refresh_credentials, sign_in_url

    if db.session.scalar(select(func.count()).select_from(User)):
        if if_empty:
            refresh_credentials()
            click.echo(f"Data exists; demo sign-ins are listed in {credentials_file()}.")
            click.echo(
                f"Staff sign in at {sign_in_url([Role.AGENT])}, "
                f"customers at {sign_in_url([Role.CUSTOMER])}."
            )
            return
        raise click.ClickException(
            "The database is not empty; demo data goes only into an empty one."
        )
    accounts = build_demo(seed=seed, password=current_app.config.get("DEMO_PASSWORD"))
    click.echo("Demo data created. Sign in with:")
    for role, email, password, url in accounts:
        click.echo(f"  {role:<17} {email:<34} {password:<18} {url}")
    click.echo(f"(also written to {credentials_file()}, readable only by you)")


@click.group("user")
def user_group() -> None:
    """Manage users."""


@user_group.command("create")
@click.option("--email", required=True)
@click.option("--name", default=None, help="Display name (default: from the address).")
@click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    type=click.Choice([r.value for r in Role]),
    help="Repeat for several roles.",
)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@with_appcontext
def user_create_command(
    email: str, name: str | None, roles: tuple[str, ...], password: str
) -> None:
    """Create one user with the given roles."""
    from app.accounts.people import create_user
    from app.errors import DomainError

    try:
        user = create_user(
            email=email, name=name, roles=[Role(r) for r in roles], password=password
        )
    except DomainError as error:
        raise click.ClickException(error.message) from error
    db.session.commit()
    click.echo(f"Created {user.email} ({', '.join(sorted(r.value for r in user.roles))}).")


@click.command("worker")
@click.option("--queue", "queues", multiple=True, help="Queues to work (default: all).")
@click.option("--burst", is_flag=True, help="Exit when the queues are empty.")
def worker_command(queues: tuple[str, ...], burst: bool) -> None:
    """Run an RQ worker with the scheduler, inside the app."""
    from app.jobs import QUEUES
    from app.jobs.worker import run_worker

    run_worker(current_app._get_current_object(), tuple(queues) or QUEUES, burst=burst)  # type: ignore[attr-defined]


@click.command("cron")
@click.option("--once", is_flag=True, help="Enqueue every periodic job now and exit.")
@with_appcontext
def cron_command(once: bool) -> None:
    """Run RQ's cron scheduler with Vaultdesk's periodic jobs (see app/jobs/schedule.py)."""
    from app.extensions import redis_client
    from app.jobs.schedule import cron_scheduler, enqueue_all_now

    if once:
        for job_id in enqueue_all_now():
            click.echo(f"enqueued {job_id}")
        return
    cron_scheduler(redis_client.connection).start()


@click.group("vault")
def vault_group() -> None:
    """The encrypted file vault: keys and rotation."""


@vault_group.command("status")
@with_appcontext
def vault_status_command() -> None:
    """Show the key ring and which keys stored files still need."""
    from app.files.store import get_vault

    vault = get_vault()
    in_use = vault.key_ids_in_use()
    click.echo(f"current key: {vault.keyring.current_id}")
    for key_id in sorted(vault.keyring.key_ids):
        click.echo(f"  {key_id:<40} {'in use' if key_id in in_use else 'not needed by any file'}")


@vault_group.command("rotate-key")
@with_appcontext
def vault_rotate_command() -> None:
    """Add a new key-encryption key, make it current and re-wrap every file's data key."""
    from app import audit
    from app.actor import Actor
    from app.files.store import get_vault

    if current_app.config.get("VAULT_KEYS"):
        raise click.ClickException(
            "The key ring comes from VAULTDESK_VAULT_KEYS; add the new key there and run "
            "`vaultdesk vault rewrap`."
        )
    from app.accounts.two_factor import reseal_secrets
    from app.mail.mailboxes import reseal_passwords

    report = get_vault().add_kek_and_rewrap()
    resealed = reseal_passwords()
    resealed_totp = reseal_secrets()
    audit.record(
        Actor.system("vaultdesk cli"),
        "vault.rotate_key",
        "key",
        report.key_id,
        rewrapped=report.rewrapped,
        mailbox_passwords=resealed,
        totp_secrets=resealed_totp,
    )
    db.session.commit()
    click.echo(
        f"New current key {report.key_id}: {report.rewrapped} files re-wrapped, "
        f"{report.already_current} already on it, {resealed} mailbox passwords re-sealed. "
        "Bodies were not re-encrypted."
    )


@vault_group.command("rewrap")
@with_appcontext
def vault_rewrap_command() -> None:
    """Re-wrap every file's data key to the current key (after editing the key ring)."""
    from app.accounts.two_factor import reseal_secrets
    from app.files.store import get_vault
    from app.mail.mailboxes import reseal_passwords

    report = get_vault().rewrap()
    resealed = reseal_passwords()
    reseal_secrets()
    db.session.commit()
    click.echo(
        f"{report.rewrapped} files re-wrapped to {report.key_id}, "
        f"{resealed} mailbox passwords re-sealed."
    )


@vault_group.command("retire-key")
@click.argument("key_id")
@with_appcontext
def vault_retire_command(key_id: str) -> None:
    """Delete an old key; refused while any stored file still needs it."""
    from app import audit
    from app.actor import Actor
    from app.files.store import get_vault
    from app.mail.mailboxes import key_ids_in_use
    from vault import VaultError

    if key_id in key_ids_in_use():
        raise click.ClickException(
            f"Mailbox passwords are still sealed with {key_id}; run `vaultdesk vault rewrap` first."
        )
    from app.accounts.two_factor import key_ids_in_use as totp_key_ids

    if key_id in totp_key_ids():
        raise click.ClickException(
            f"Two-factor secrets are still sealed with {key_id}; "
            "run `vaultdesk vault rewrap` first."
        )
    try:
        get_vault().retire_kek(key_id)
    except VaultError as error:
        raise click.ClickException(str(error)) from error
    audit.record(Actor.system("vaultdesk cli"), "vault.retire_key", "key", key_id)
    db.session.commit()
    click.echo(f"Key {key_id} retired.")


EX_TEMPFAIL = 75  # sysexits.h: the MTA keeps the message and tries again later


@click.group("mail")
def mail_group() -> None:
    """Mail in: the MTA pipe and the import of files and folders."""


def _mailbox_or_none(address: str | None) -> Any:
    from app.models.inbound import Mailbox

    if not address:
        return None
    mailbox = db.session.execute(
        select(Mailbox).where(func.lower(Mailbox.address) == address.strip().lower())
    ).scalar_one_or_none()
    if mailbox is None:
        raise LookupError(f"no mailbox with the address {address}")
    return mailbox


def _report(filed: Any, file: str, as_json: bool) -> None:
    import json

    if as_json:
        click.echo(json.dumps(filed.as_json(file), ensure_ascii=False))
        return
    where = f" {filed.ticket_number}" if filed.ticket_number else ""
    why = f" ({filed.reason})" if filed.reason else ""
    click.echo(f"{file}: {filed.outcome.value}{where} {filed.subject!r}{why}")


@mail_group.command("pipe")
@click.option("--mailbox", "address", default=None, help="The support address it came to.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object for the message.")
@with_appcontext
def mail_pipe_command(address: str | None, as_json: bool) -> None:
    """File one message read from standard input (for the MTA: `| vaultdesk mail pipe`).

    Exits 0 once the message is filed (quarantine included) and 75 (EX_TEMPFAIL) when it
    could not be: the database or vault unreachable, an unknown --mailbox, any error. The
    MTA then keeps the message and delivers it again; ingestion is idempotent, so a retry
    after a crash past the commit files nothing twice.
    """
    import sys

    from app.mail.ingest import file_message
    from app.models.inbound import MailSource

    raw = sys.stdin.buffer.read()
    try:
        mailbox = _mailbox_or_none(address)
        filed = file_message(raw, source=MailSource.PIPE, mailbox=mailbox, source_ref="stdin")
    except Exception as error:  # noqa: BLE001 -- every failure must mean "try again"
        db.session.rollback()
        click.echo(f"vaultdesk mail pipe: not filed, try again later: {error}", err=True)
        sys.exit(EX_TEMPFAIL)
    _report(filed, "-", as_json)


@mail_group.command("import")
@click.option("--mailbox", "address", default=None, help="The support address they came to.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per message.")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@with_appcontext
def mail_import_command(address: str | None, as_json: bool, paths: tuple[str, ...]) -> None:
    """File messages from files, .mbox files, Maildirs and folders (see app/mail/sources.py).

    Messages are filed in batches (one commit each), so an interrupted import is simply
    run again: what was committed is reported as duplicate. Exits 75 when the database
    goes away, after printing what was filed so far.
    """
    import sys

    from app.mail.ingest import file_batch
    from app.mail.sources import batches, iter_messages
    from app.models.inbound import MailSource

    try:
        mailbox = _mailbox_or_none(address)
    except LookupError as error:
        raise click.ClickException(str(error)) from None
    try:
        for batch in batches(iter_messages(paths)):
            results = file_batch(
                [(m.raw, m.ref) for m in batch], source=MailSource.IMPORT, mailbox=mailbox
            )
            for message, filed in zip(batch, results, strict=True):
                _report(filed, message.file, as_json)
    except Exception as error:  # noqa: BLE001 -- report, and say "try again" to scripts
        db.session.rollback()
        click.echo(f"vaultdesk mail import: stopped, run it again later: {error}", err=True)
        sys.exit(EX_TEMPFAIL)


def register_commands(app: Flask) -> None:
    for command in (
        demo_data_command,
        user_group,
        worker_command,
        cron_command,
        vault_group,
        mail_group,
    ):
        app.cli.add_command(command)
