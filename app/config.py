"""Settings: defaults here, then ``instance/config.py``, then ``VAULTDESK_*`` variables.

Tests (and embedders) pass a mapping to ``create_app`` which wins over all three. Every
setting a person may want to change is listed in ``SETTINGS`` so the README table and the
environment parsing come from one place.

Where each value came from is recorded once, at start (``origins``, kept in the app
config as ``SETTING_ORIGINS``), for the admins' settings page: a value read from the
environment later could differ from what the running process loaded. Secrets
(``is_secret``) are only ever shown as set or unset.
"""

from __future__ import annotations

import enum
import ipaddress
import os
import secrets
import socket
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PACKAGE_ROOT = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_ROOT.parent
# Templates and migrations travel inside the package (app/templates and app/migrations are
# symlinks in the repository, real folders in an installed wheel).
TEMPLATES = PACKAGE_ROOT / "templates"
MIGRATIONS = PACKAGE_ROOT / "migrations"


def running_from_checkout() -> bool:
    return (PROJECT_ROOT / "pyproject.toml").is_file() and (PROJECT_ROOT / "app").is_dir()


@dataclass(frozen=True)
class Setting:
    """One tunable: its config key, the env variable suffix, a default and how to parse it."""

    key: str
    default: Any
    help: str
    kind: type = str


SETTINGS: tuple[Setting, ...] = (
    Setting("INSTANCE_PATH", None, "folder for runtime data (default: instance/ in the checkout)"),
    Setting("DATABASE_URL", None, "SQLAlchemy URL (default: SQLite file instance/vaultdesk.db)"),
    Setting("REDIS_URL", "redis://127.0.0.1:6379/0", "Redis for RQ queues and rate limits"),
    Setting("SECRET_KEY", None, "signing key (default: random, kept in instance/secret_key)"),
    Setting("VAULT_DIR", None, "vault blob folder (default: instance/vault)"),
    Setting(
        "VAULT_STORAGE_URL", None, "blob backend: file:///path or s3://bucket/prefix?endpoint_url=…"
    ),
    Setting("VAULT_KEY_DIR", None, "key-encryption keys, 0600 files (default: instance/keys)"),
    Setting("VAULT_KEYS", None, "key ring as id:base64key,…;current=id (instead of the folder)"),
    Setting("VAULT_MAX_UPLOAD_BYTES", 2 * 1024**3, "largest file accepted (default 2 GiB)", int),
    Setting("LINK_DAYS", 14, "days a file link stays valid unless set per link", int),
    Setting("TIMEZONE", "Europe/Berlin", "company time zone, default for new users"),
    Setting(
        "BASE_URL",
        None,
        "public URL (default: from `VAULTDESK_BIND`, see below); https makes cookies Secure",
    ),
    Setting("TICKET_PREFIX", "T", "prefix of ticket numbers, e.g. T-104233"),
    Setting("LOGIN_LIMIT_PER_ACCOUNT", "5 per minute;20 per hour", "failed sign-ins per email"),
    Setting("LOGIN_LIMIT_PER_ADDRESS", "20 per minute;100 per hour", "failed sign-ins per IP"),
    Setting(
        "LINK_GUESS_LIMIT",
        "5 per minute;20 per hour",
        "wrong passwords or codes per file link and client network",
    ),
    Setting(
        "TWO_FACTOR_REQUIRED_ROLES",
        "admin,compliance",
        "staff roles that must sign in with a second factor (comma-separated; empty: none)",
    ),
    Setting("DEMO_PASSWORD", None, "fixed password for demo accounts (default: random each)"),
    Setting(
        "SMTP_URL",
        None,
        "smtp://user:pass@host:587?starttls=1 (unset: mails go to instance/outbox)",
    ),
    Setting("MAIL_FROM", "Vaultdesk <contact@localhost>", "sender of sign-in and notice mails"),
    Setting("MAIL_DROP_DIR", None, "drop folder for message files (default: instance/mail-drop)"),
    Setting("MAIL_IMAP_TIMEOUT", 30, "seconds to wait for an IMAP server before giving up", int),
    Setting("MAIL_IMAP_CA_FILE", None, "extra CA certificate (PEM) to trust for IMAP over TLS"),
    Setting(
        "MAIL_FROM_NAME_FORMAT",
        "{agent} via {identity}",
        "sender name of a reply; {agent} and {identity} are replaced",
    ),
    Setting("MAIL_MAX_ATTEMPTS", 6, "tries to send a reply before it is marked failed", int),
    Setting(
        "MAIL_RETRY_BASE_SECONDS",
        60,
        "wait before the 2nd try; each later wait is 4 times longer (1 min … 4 h)",
        int,
    ),
    Setting("MAIL_BATCH", 200, "replies one send job may send over one SMTP connection", int),
    Setting(
        "REOPEN_DAYS",
        30,
        "a customer reply reopens a closed ticket this long; later: new ticket",
        int,
    ),
    Setting(
        "PENDING_AUTO_CLOSE_DAYS",
        7,
        "a Pending ticket without a follow-up date closes after this many calendar days of "
        "customer silence",
        int,
    ),
    Setting(
        "MAIL_SENDER_LIMIT_PER_HOUR",
        30,
        "mails from one sender within an hour beyond which more are quarantined",
        int,
    ),
    Setting(
        "MAIL_AUTORESPONSE_PERIOD_HOURS",
        24,
        "at most one autoresponse per sender within this many hours",
        int,
    ),
    Setting("PROXY_COUNT", 0, "reverse proxies in front (trust X-Forwarded-* from that many)", int),
    Setting(
        "SLA_ESCALATION_WARNING_MINUTES",
        30,
        "minutes before a first-response or resolution target the assignee is warned (0: never)",
        int,
    ),
    Setting(
        "SLA_ESCALATION_LEVEL2_MINUTES",
        240,
        "working minutes a told supervisor has before a breach goes one level up (0: never)",
        int,
    ),
    Setting(
        "SLA_ESCALATION_ADDRESS",
        None,
        "address told of a breach when no supervisor is known (unset: recorded on the ticket only)",
    ),
    Setting(
        "SLA_NOTIFY_AT_ONCE_PRIORITIES",
        "urgent",
        "priorities whose escalations are told at once, not at the next working moment",
    ),
    Setting(
        "VAULT_ORPHAN_GRACE_HOURS",
        24,
        "a vault blob without a file row this long is shredded by the nightly sweep",
        int,
    ),
)


DEFAULT_BIND = "127.0.0.1:5000"
# Hosts that mean "every interface": no client can use them, so links name this machine.
_WILDCARD_HOSTS = {"", "0.0.0.0", "::"}  # noqa: S104 - recognised, never bound here


def bind_address(environ: Mapping[str, str] | None = None) -> str:
    """Where the web server listens: ``VAULTDESK_BIND`` or the default.

    One function so ``scripts/run``, the gunicorn settings and the ``BASE_URL`` fallback
    cannot disagree about the address.
    """
    environ = os.environ if environ is None else environ
    return environ.get("VAULTDESK_BIND") or DEFAULT_BIND


def base_url_for_bind(bind: str) -> str:
    """The URL people would type to reach a server bound to ``bind`` on this machine.

    Used only when ``BASE_URL`` is not set, so that sign-in mails, file links and printed
    demo sign-ins point at the port actually served instead of a fixed 5000. Loopback
    becomes ``localhost``; a wildcard bind (``0.0.0.0``, ``::``) becomes this machine's
    host name, because a link saying localhost would be wrong for everyone else; a Unix
    socket or inherited descriptor says nothing about the public address, so it gives
    ``http://localhost`` and the operator should set ``BASE_URL``. The address is parsed
    exactly as gunicorn parses ``--bind`` (port 8000 when none is given).
    """
    from gunicorn.util import parse_address

    parsed = parse_address(bind.strip())
    if not isinstance(parsed, tuple):
        return "http://localhost"
    host, port = parsed
    if host in _WILDCARD_HOSTS:
        host = socket.gethostname().lower() or "localhost"
    else:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if address is not None and address.is_loopback:
            host = "localhost"
        elif address is not None and address.version == 6:
            host = f"[{address.compressed}]"
    return f"http://{host}" if port == 80 else f"http://{host}:{port}"


def _parse(setting: Setting, raw: str) -> Any:
    if setting.kind is bool:
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if setting.kind is int:
        return int(raw)
    return raw


def from_environment(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Read every ``VAULTDESK_<KEY>`` that is set; unset ones are left to lower layers."""
    environ = dict(os.environ) if environ is None else environ
    found: dict[str, Any] = {}
    for setting in SETTINGS:
        raw = environ.get(f"VAULTDESK_{setting.key}")
        if raw is not None and raw != "":
            found[setting.key] = _parse(setting, raw)
    return found


def defaults() -> dict[str, Any]:
    return {s.key: s.default for s in SETTINGS if s.default is not None}


def instance_path(overrides: dict[str, Any]) -> Path:
    """Where runtime data lives; decided before the app exists because Flask needs it."""
    raw = overrides.get("INSTANCE_PATH") or os.environ.get("VAULTDESK_INSTANCE_PATH")
    if raw:
        return Path(raw).resolve()
    if running_from_checkout():
        return PROJECT_ROOT / "instance"
    # Installed as a package: Flask's convention for instance folders of installed apps.
    return Path(sys.prefix) / "var" / "vaultdesk-instance"


def load_or_create_secret(folder: Path) -> str:
    """Return the instance's secret key, creating it (0600) on first run.

    ``O_EXCL`` makes two processes starting at once agree on one key: the loser of the
    race reads what the winner wrote.
    """
    path = folder / "secret_key"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):
            value = path.read_text().strip()
            if value:
                return value
            time.sleep(0.02)
        raise RuntimeError(f"{path} exists but is empty; delete it to create a new key") from None
    value = secrets.token_hex(32)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


def finalise(config: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Fill in the values that depend on others (paths, URLs, cookie flags)."""
    out: dict[str, Any] = {}
    if not config.get("DATABASE_URL"):
        out["DATABASE_URL"] = f"sqlite:///{folder / 'vaultdesk.db'}"
    if not config.get("SECRET_KEY"):
        out["SECRET_KEY"] = load_or_create_secret(folder)
    if not config.get("VAULT_DIR"):
        out["VAULT_DIR"] = str(folder / "vault")
    if not config.get("VAULT_KEY_DIR"):
        out["VAULT_KEY_DIR"] = str(folder / "keys")
    if not config.get("MAIL_DROP_DIR"):
        out["MAIL_DROP_DIR"] = str(folder / "mail-drop")
    # Streaming uploads are checked by the vault; this stops absurd bodies before parsing.
    out["MAX_CONTENT_LENGTH"] = int(config["VAULT_MAX_UPLOAD_BYTES"]) + 1024 * 1024
    database_url = config.get("DATABASE_URL") or out["DATABASE_URL"]
    if database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url.removeprefix("postgresql://")
    out["SQLALCHEMY_DATABASE_URI"] = database_url
    if not config.get("BASE_URL"):
        out["BASE_URL"] = base_url_for_bind(bind_address())
    secure = str(config.get("BASE_URL") or out["BASE_URL"]).startswith("https://")
    out.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=secure,
        RATELIMIT_STORAGE_URI=limits_storage_uri(config["REDIS_URL"]),
        RATELIMIT_HEADERS_ENABLED=True,
        # A Redis outage must not lock every user out: fall back to per-process counting.
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
        RATELIMIT_SWALLOW_ERRORS=True,
    )
    return out


def limits_storage_uri(redis_url: str) -> str:
    """The ``limits`` library spells a Unix-socket Redis ``redis+unix://``."""
    if redis_url.startswith("unix://"):
        return "redis+unix://" + redis_url.removeprefix("unix://")
    return redis_url


# -- where each setting came from (the admins' settings page) -------------------------------


class Origin(enum.StrEnum):
    DEFAULT = "default"
    INSTANCE = "instance/config.py"
    ENVIRONMENT = "environment"
    APPLICATION = "create_app"  # a mapping passed by tests or an embedding program


SECRET_WORDS = ("SECRET", "PASSWORD", "KEY", "TOKEN")


def instance_file_keys(path: Path) -> set[str]:
    """The names ``instance/config.py`` sets (read as Flask reads it: upper-case names)."""
    from flask import Config

    found = Config(str(path.parent))
    found.from_pyfile(path.name, silent=True)
    return set(found)


def origins(
    overrides: Mapping[str, Any], instance_file: Path, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """For every setting of ``SETTINGS``, which layer gave its value (the last one wins)."""
    from_env = from_environment(dict(os.environ if environ is None else environ))
    in_file = instance_file_keys(instance_file)
    found: dict[str, str] = {}
    for setting in SETTINGS:
        origin = Origin.DEFAULT
        if setting.key in in_file:
            origin = Origin.INSTANCE
        if setting.key in from_env:
            origin = Origin.ENVIRONMENT
        if setting.key in overrides:
            origin = Origin.APPLICATION
        found[setting.key] = origin.value
    return found


def is_secret(key: str, value: Any) -> bool:
    """Keys, passwords, tokens, and URLs that carry a password: never shown."""
    if any(word in key.upper() for word in SECRET_WORDS):
        return True
    if isinstance(value, str) and "://" in value:
        try:
            return urlsplit(value).password is not None
        except ValueError:
            return True
    return False


@dataclass(frozen=True)
class SettingView:
    """One row of the settings page: what is shown, never a secret's value."""

    key: str
    env_name: str
    help: str
    origin: str
    secret: bool
    is_set: bool
    shown: str


def describe(config: Mapping[str, Any]) -> list[SettingView]:
    """Every setting with its current value (secrets as set/unset) and its origin."""
    recorded = config.get("SETTING_ORIGINS") or {}
    rows = []
    for setting in SETTINGS:
        value = config.get(setting.key)
        secret = is_secret(setting.key, value)
        is_set = value is not None and value != ""
        rows.append(
            SettingView(
                key=setting.key,
                env_name=f"VAULTDESK_{setting.key}",
                help=setting.help,
                origin=recorded.get(setting.key, Origin.DEFAULT.value),
                secret=secret,
                is_set=is_set,
                shown="" if secret or not is_set else str(value),
            )
        )
    return rows
