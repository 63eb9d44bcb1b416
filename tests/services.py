"""Real services for the test suite, each on its own free loopback port.

Why real services instead of mocks: Vaultdesk's bugs live at the seams (Redis queue semantics,
PostgreSQL constraints and transactions, SMTP servers that say "try again later", IMAP servers that
hand back raw MIME). Only the real thing shows them. Every helper here is a context manager that
starts a private, throw-away instance (own temp dir, own port, no system config read, nothing
persisted) and stops it by pid, so a run leaves no processes or files behind.

The module doubles as a pytest plugin: ``pytest_plugins = ["tests.services"]`` in
``tests/conftest.py`` gives the session fixtures ``redis_server``, ``postgres_server``,
``smtp_server`` and ``imap_server``, plus the per-test fixtures ``smtp_sink`` (the session SMTP
server, cleared) and ``postgres_database`` (a fresh empty database, dropped afterwards).

When a service's program is not installed, its fixture skips the tests that need it, except on CI
(``CI=true``) where it fails: a CI machine without the package would otherwise go green while
testing nothing.


PYTEST_DONT_REWRITE: test modules may import this module before pytest registers it as a plugin;
this marker stops pytest from warning (an error under ``filterwarnings = error``) about that.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import glob
import grp
import imaplib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Literal, NoReturn, Self, TypeVar

import pytest

if TYPE_CHECKING:
    import psycopg
    import redis

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 10.0
# A port picked by free_port() can be taken by someone else before our server binds it; the
# server then exits at once and we simply try again with another port.
START_ATTEMPTS = 3


class ServiceBinaryMissing(RuntimeError):
    """A service's program is not installed; ``package`` names the Debian package to install.

    A separate type so fixtures can tell "not installed" (skip, or fail on CI) from "installed
    but broken" (always an error).
    """

    def __init__(self, program: str, package: str) -> None:
        super().__init__(f"{program} not found: install the Debian package {package!r}")
        self.program = program
        self.package = package


class ServiceStartError(RuntimeError):
    """A service was installed but did not come up; the message carries its log."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    Servers like aiosmtpd's Controller and Dovecot's config cannot be told "port 0", so we ask
    the kernel for a free port, release it and hand the number on. Callers retry on a bind race.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _is_root() -> bool:
    return os.geteuid() == 0


def _read_log(path: Path, limit: int = 6000) -> str:
    """Tail of a service log for error messages; never raises."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<no log at {path}: {exc}>"
    return text[-limit:] if text.strip() else "<log is empty>"


def _wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``check`` until it returns True or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def _terminate(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """SIGTERM the process by pid, SIGKILL if it lingers, and always reap it (no zombies)."""
    if proc is None:
        return
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
    else:
        proc.wait()


class _Service:
    """Context-manager plumbing shared by all helpers: ``with X() as x`` starts and stops.

    ``stop()`` is idempotent and also called when ``start()`` fails half-way, so a failed start
    leaves nothing running.
    """

    startup_seconds: float = 0.0

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------------------------


class RedisServer(_Service):
    """A private ``redis-server`` with persistence off, on a free loopback port.

    No RDB/AOF files (``--save '' --appendonly no``) because tests want a fast, empty server that
    forgets everything when it stops; ``--dir`` points at a temp dir anyway so nothing can ever be
    written into the working tree.
    """

    host = LOOPBACK

    def __init__(self, executable: str | None = None) -> None:
        self._executable = executable
        self.port = 0
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """URL for redis-py, RQ and Flask-Limiter (database 0)."""
        return f"redis://{self.host}:{self.port}/0"

    def client(self, **kwargs: Any) -> redis.Redis:
        """A ``redis.Redis`` for this server; close it (or use ``with``) when done."""
        import redis

        return redis.Redis.from_url(self.url, **kwargs)

    def _ping(self) -> bool:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # No retries: redis-py's default backoff turns each "not up yet" into a ~0.5 s sleep.
        try:
            with redis.Redis(
                host=self.host,
                port=self.port,
                socket_connect_timeout=0.5,
                socket_timeout=1,
                retry=Retry(NoBackoff(), 0),
            ) as conn:
                return bool(conn.ping())
        except redis.RedisError:
            return False

    def start(self) -> Self:
        executable = self._executable or shutil.which("redis-server")
        if executable is None:
            raise ServiceBinaryMissing("redis-server", "redis-server")
        started = time.monotonic()
        self._dir = Path(tempfile.mkdtemp(prefix="vaultdesk-redis-"))
        log_path = self._dir / "redis.log"
        try:
            for _attempt in range(START_ATTEMPTS):
                self.port = free_port()
                if self._log is not None:
                    self._log.close()
                self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
                self._proc = subprocess.Popen(
                    [
                        executable,
                        "--port",
                        str(self.port),
                        "--bind",
                        self.host,
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--dir",
                        str(self._dir),
                        "--daemonize",
                        "no",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=self._log,
                    stderr=subprocess.STDOUT,
                )
                proc = self._proc
                if _wait_until(lambda p=proc: p.poll() is not None or self._ping(), START_TIMEOUT):
                    if proc.poll() is None:
                        self.startup_seconds = time.monotonic() - started
                        return self
                    proc.wait()  # exited early: most likely lost the port race; try again
                    continue
                raise ServiceStartError(
                    f"redis-server on port {self.port} did not answer PING within "
                    f"{START_TIMEOUT:.0f} s; log:\n{_read_log(log_path)}"
                )
            raise ServiceStartError(
                f"redis-server exited on start {START_ATTEMPTS} times; log:\n{_read_log(log_path)}"
            )
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        _terminate(self._proc)
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------

_DB_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _postgres_bindir() -> Path:
    """Directory of the newest PostgreSQL server programs (initdb, postgres).

    Debian keeps them off PATH in /usr/lib/postgresql/<major>/bin; elsewhere they are on PATH.
    """
    candidates = []
    for initdb in glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        bindir = Path(initdb).parent
        if bindir.parent.name.isdigit() and (bindir / "postgres").exists():
            candidates.append((int(bindir.parent.name), bindir))
    if candidates:
        return max(candidates)[1]
    initdb = shutil.which("initdb")
    if initdb and (Path(initdb).parent / "postgres").exists():
        return Path(initdb).parent
    raise ServiceBinaryMissing("initdb/postgres", "postgresql")


class PostgresServer(_Service):
    """A throw-away PostgreSQL cluster (initdb + postgres) on a free loopback port.

    Durability is switched off (fsync, synchronous_commit, full_page_writes) because the cluster
    dies with the test session; that makes commits cheap. Auth is ``trust`` for the superuser
    ``test`` on loopback only. PostgreSQL refuses to run as root, so as root the cluster belongs
    to the ``postgres`` system user and its programs run with that uid.

    The postmaster runs in the foreground as our direct child (``subprocess`` drops to the
    ``postgres`` uid itself), not daemonized by ``pg_ctl``: a daemonized postmaster is
    re-parented to PID 1 and lingers as a zombie until init gets round to it, while a child we
    SIGQUIT (what ``pg_ctl stop -m immediate`` sends) and ``wait()`` for is gone for good.
    """

    host = LOOPBACK
    user = "test"
    os_user = "postgres"

    def __init__(self, bindir: str | Path | None = None) -> None:
        self._bindir = Path(bindir) if bindir else None
        self.port = 0
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # -- URLs -----------------------------------------------------------------------------
    def url_for(self, dbname: str, driver: str = "postgresql+psycopg") -> str:
        """SQLAlchemy URL of ``dbname`` on this server (``driver="postgresql"`` for libpq)."""
        return f"{driver}://{self.user}@{self.host}:{self.port}/{dbname}"

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the maintenance database ``postgres``."""
        return self.url_for("postgres")

    def dsn(self, dbname: str = "postgres") -> str:
        """libpq URL for ``psycopg.connect``."""
        return self.url_for(dbname, driver="postgresql")

    # -- process handling -----------------------------------------------------------------
    def _as_owner(self) -> dict[str, Any]:
        """Popen arguments that run a server program as the cluster owner.

        cwd is the cluster dir because the postgres user cannot enter e.g. /root or /work.
        """
        kwargs: dict[str, Any] = {"cwd": self._dir, "stdin": subprocess.DEVNULL}
        if _is_root():
            owner = pwd.getpwnam(self.os_user)
            kwargs.update(
                user=owner.pw_uid,
                group=owner.pw_gid,
                extra_groups=[],
                env={**os.environ, "HOME": str(self._dir), "USER": self.os_user},
            )
        return kwargs

    def _accepts_connections(self, bindir: Path) -> bool:
        """Ask with ``pg_isready``: a psycopg probe during start-up leaves half-made
        connection objects behind that warn when collected."""
        result = subprocess.run(
            [
                str(bindir / "pg_isready"),
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "test",
                "-d",
                "postgres",
                "-t",
                "1",
            ],
            check=False,
            capture_output=True,
        )
        return result.returncode == 0

    def start(self) -> Self:
        bindir = self._bindir or _postgres_bindir()
        if _is_root():
            try:
                owner = pwd.getpwnam(self.os_user)
            except KeyError:
                raise ServiceBinaryMissing("user 'postgres'", "postgresql") from None
        started = time.monotonic()
        self._dir = Path(tempfile.mkdtemp(prefix="vaultdesk-pg-"))
        try:
            if _is_root():
                # Whole dir owned by postgres; root can still read the log and remove it.
                os.chown(self._dir, owner.pw_uid, owner.pw_gid)
            data = self._dir / "data"
            result = subprocess.run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(data),
                    "--auth=trust",
                    "-U",
                    self.user,
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "--no-sync",
                    "--no-instructions",
                ],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
                **self._as_owner(),
            )
            if result.returncode != 0:
                raise ServiceStartError(f"initdb failed:\n{result.stdout}\n{result.stderr}")
            log_path = self._dir / "postgres.log"
            self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
            for _attempt in range(START_ATTEMPTS):
                self.port = free_port()
                self._proc = subprocess.Popen(
                    [
                        str(bindir / "postgres"),
                        "-D",
                        str(data),
                        "-p",
                        str(self.port),
                        "-k",
                        str(self._dir),
                        "-c",
                        f"listen_addresses={self.host}",
                        "-c",
                        "fsync=off",
                        "-c",
                        "synchronous_commit=off",
                        "-c",
                        "full_page_writes=off",
                    ],
                    stdout=self._log,
                    stderr=subprocess.STDOUT,
                    **self._as_owner(),
                )
                proc = self._proc
                up = _wait_until(
                    lambda p=proc: p.poll() is not None or self._accepts_connections(bindir),
                    START_TIMEOUT * 3,
                )
                if up and proc.poll() is None:
                    self.startup_seconds = time.monotonic() - started
                    return self
                if not up:
                    break
                proc.wait()
                if "could not bind" not in _read_log(log_path):
                    break  # a real failure, not a lost port race
            raise ServiceStartError(
                f"PostgreSQL did not accept connections on {self.host}:{self.port}; "
                f"log:\n{_read_log(log_path)}"
            )
        except BaseException:
            self.stop()
            raise

    def _connect(
        self, dbname: str = "postgres", connect_timeout: int = 10
    ) -> psycopg.Connection[Any]:
        import psycopg

        return psycopg.connect(self.dsn(dbname), autocommit=True, connect_timeout=connect_timeout)

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database and return its SQLAlchemy URL.

        One database per test (or per module) keeps tests isolated without restarting the
        server; names are restricted to ``[a-z_][a-z0-9_]*`` so they are safe in URLs.
        """
        from psycopg import sql

        name = name or f"test_{uuid.uuid4().hex[:16]}"
        if not _DB_NAME.fullmatch(name):
            raise ValueError(f"database name must match {_DB_NAME.pattern}: {name!r}")
        with self._connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting anything still attached (a leaked pool must not
        make teardown hang)."""
        from psycopg import sql

        with self._connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                # SIGQUIT = immediate shutdown (no checkpoint): the cluster is deleted anyway.
                proc.send_signal(signal.SIGQUIT)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
            proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


# --------------------------------------------------------------------------------------------
# SMTP sink
# --------------------------------------------------------------------------------------------

SmtpStage = Literal["mail", "rcpt", "data"]


@dataclass(frozen=True)
class SmtpMessage:
    """One delivered message as the server saw it (``content`` keeps CRLF line ends)."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes

    @property
    def message(self) -> EmailMessage:
        """``content`` parsed with the modern email API, for header/body assertions.

        SMTP transmits CRLF line ends; they are turned into ``\n`` first, otherwise every
        ``get_content()`` would end in ``\r\n`` and compare unequal to what was sent.
        """
        text = self.content.replace(b"\r\n", b"\n")
        parsed = email.parser.BytesParser(policy=email.policy.default).parsebytes(text)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass(frozen=True)
class _Failure:
    stage: SmtpStage
    reply: str


class _SinkHandler:
    """aiosmtpd handler: hands out scheduled failures, otherwise records the message."""

    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_MAIL(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        reply = self._sink._take_failure("mail")
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        reply = self._sink._take_failure("rcpt")
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        reply = self._sink._take_failure("data")
        if reply:
            return reply
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        self._sink._record(
            SmtpMessage(
                mail_from=envelope.mail_from,
                rcpt_tos=tuple(envelope.rcpt_tos),
                content=bytes(content),
            )
        )
        return "250 Message accepted for delivery"


class SmtpSink(_Service):
    """A real SMTP server (aiosmtpd, in a thread) that keeps every message it accepts.

    Tests send through the app's real SMTP code and then look at the raw bytes that arrived.
    ``fail_next`` makes the server answer with an error code, so retry logic is tested against a
    real server saying "451 try again later" rather than a mock raising an exception.
    """

    host = LOOPBACK

    def __init__(self) -> None:
        self.port = 0
        self._controller: Any = None
        self._lock = threading.Condition()
        self._messages: list[SmtpMessage] = []
        self._failures: deque[_Failure] = deque()

    def start(self) -> Self:
        try:
            from aiosmtpd.controller import Controller
        except ImportError:
            raise ServiceBinaryMissing("aiosmtpd", "python package aiosmtpd") from None
        started = time.monotonic()
        last_error: Exception | None = None
        for _attempt in range(START_ATTEMPTS):
            self.port = free_port()
            controller = Controller(
                _SinkHandler(self), hostname=self.host, port=self.port, ready_timeout=START_TIMEOUT
            )
            try:
                controller.start()
            except (OSError, RuntimeError) as exc:  # port race: pick another
                last_error = exc
                # The loop's thread may still be alive after a failed start; stop() tolerates it.
                try:
                    controller.stop()
                except (AssertionError, RuntimeError, asyncio.CancelledError):
                    pass
                continue
            self._controller = controller
            self.startup_seconds = time.monotonic() - started
            return self
        raise ServiceStartError(f"aiosmtpd did not start: {last_error!r}")

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    # -- message log ------------------------------------------------------------------------
    def _record(self, message: SmtpMessage) -> None:
        with self._lock:
            self._messages.append(message)
            self._lock.notify_all()

    @property
    def messages(self) -> list[SmtpMessage]:
        """Snapshot (a copy) of the messages accepted so far, oldest first."""
        with self._lock:
            return list(self._messages)

    def wait_for(self, n: int = 1, timeout: float = 10.0) -> list[SmtpMessage]:
        """Block until at least ``n`` messages arrived (mail is often sent by a worker
        thread/process), then return them all; AssertionError with what did arrive on timeout."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._messages) >= n, timeout=timeout):
                got = [(m.mail_from, m.rcpt_tos) for m in self._messages]
                raise AssertionError(
                    f"SMTP sink on port {self.port}: expected {n} message(s) within "
                    f"{timeout} s, got {len(got)}: {got}"
                )
            return list(self._messages)

    def clear(self) -> None:
        """Forget received messages and any failures not yet handed out."""
        with self._lock:
            self._messages.clear()
            self._failures.clear()

    # -- failure injection ------------------------------------------------------------------
    def fail_next(
        self,
        n: int = 1,
        code: int = 451,
        message: str = "Requested action aborted: try again later",
        stage: SmtpStage = "data",
    ) -> None:
        """Answer the next ``n`` commands of ``stage`` with ``code`` instead of accepting.

        ``stage="data"`` (default) fails the DATA command: smtplib raises ``SMTPDataError``
        (an ``SMTPResponseException`` with ``.smtp_code``). ``"mail"`` gives
        ``SMTPSenderRefused``; ``"rcpt"`` refuses one recipient per failure (smtplib raises
        ``SMTPRecipientsRefused`` only when all recipients are refused). 4xx = temporary,
        5xx = permanent. Failed messages are not recorded.
        """
        if not 400 <= code <= 599:
            raise ValueError("SMTP failure codes are 4xx (temporary) or 5xx (permanent)")
        with self._lock:
            self._failures.extend(_Failure(stage, f"{code} {message}") for _ in range(n))

    def _take_failure(self, stage: SmtpStage) -> str | None:
        with self._lock:
            if self._failures and self._failures[0].stage == stage:
                return self._failures.popleft().reply
            return None


# --------------------------------------------------------------------------------------------
# Dovecot IMAP
# --------------------------------------------------------------------------------------------


_IMAP_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}")


class DovecotServer(_Service):
    """A private Dovecot IMAP server: own config, own dirs, plaintext login on loopback.

    It never reads /etc/dovecot, so the system config and any system instance do not matter.
    Users live in passwd-files with PLAIN passwords, one per user, so ``add_user`` works on a
    running server (see there for why one file per user). Mail is stored as Maildir under
    the temp dir, owned by the uid the mail processes run as (``nobody`` when started as root,
    because Dovecot's login/mail processes refuse to run as root).
    """

    host = LOOPBACK

    def __init__(self, executable: str | None = None) -> None:
        self._executable = executable
        self.port = 0
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._user_stamps: dict[str, int] = {}
        self._users_lock = threading.Lock()

    @property
    def directory(self) -> Path:
        assert self._dir is not None, "server is not running"
        return self._dir

    def _mail_owner(self) -> tuple[str, str, int, int]:
        if _is_root():
            user, group = "nobody", "nogroup"
            return user, group, pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid
        entry = pwd.getpwuid(os.getuid())
        return entry.pw_name, grp.getgrgid(os.getgid()).gr_name, os.getuid(), os.getgid()

    def _config(self) -> str:
        d = self.directory
        user, group, _uid, _gid = self._mail_owner()
        if _is_root():
            # Dovecot's defaults stay in charge: login as dovenull, auth/anvil as dovecot.
            privileges = anvil_chroot = ""
        else:
            # Not root: every process runs as us, and chroot (which needs root) is switched off.
            privileges = f"""
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
service imap-login {{
  chroot =
}}
"""
            anvil_chroot = "\n  chroot ="
        return f"""# Generated for one test session by tests/services.py
instance_name = {d.name}
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
protocols = imap
listen = {self.host}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
# Tests of wrong passwords must not slow the suite: no 2 s delay on a failed login ...
auth_failure_delay = 0
mail_location = maildir:{d}/mail/%u/Maildir
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users/%u
}}
userdb {{
  driver = static
  args = uid={user} gid={group} home={d}/mail/%u
}}
# ... and no anvil auth penalty (2-15 s before *every* later login from 127.0.0.1 once one has
# failed): with its socket unusable the auth process switches penalties off.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}{anvil_chroot}
}}
service imap-login {{
  inet_listener imap {{
    address = {self.host}
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
{privileges}"""

    def _greets(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1) as sock:
                return sock.recv(256).startswith(b"* OK")
        except OSError:
            return False

    def start(self) -> Self:
        executable = self._executable or shutil.which("dovecot") or "/usr/sbin/dovecot"
        if not os.path.exists(executable):
            raise ServiceBinaryMissing("dovecot", "dovecot-imapd")
        if os.path.isdir("/usr/lib/dovecot") and not os.path.exists("/usr/lib/dovecot/imap"):
            # dovecot-core alone has no IMAP server process.
            raise ServiceBinaryMissing("/usr/lib/dovecot/imap", "dovecot-imapd")
        started = time.monotonic()
        self._dir = Path(tempfile.mkdtemp(prefix="vaultdesk-imap-"))
        try:
            d = self._dir
            d.chmod(0o755)  # login/auth/mail processes run as other users and must traverse it
            _user, _group, uid, gid = self._mail_owner()
            (d / "mail").mkdir()
            os.chown(d / "mail", uid, gid)
            (d / "users").mkdir(mode=0o755)
            stderr_path = d / "stderr.log"
            self._stderr = open(stderr_path, "ab")  # noqa: SIM115 - closed in stop()
            for _attempt in range(START_ATTEMPTS):
                self.port = free_port()
                (d / "dovecot.conf").write_text(self._config())
                self._proc = subprocess.Popen(
                    [executable, "-F", "-c", str(d / "dovecot.conf")],
                    stdin=subprocess.DEVNULL,
                    stdout=self._stderr,
                    stderr=subprocess.STDOUT,
                    cwd=d,
                )
                proc = self._proc
                if _wait_until(lambda p=proc: p.poll() is not None or self._greets(), 10):
                    if proc.poll() is None:
                        self.startup_seconds = time.monotonic() - started
                        return self
                    proc.wait()
                    if "in use" in _read_log(d / "dovecot.log") + _read_log(stderr_path):
                        continue  # lost the port race; try another port
                    break
                break
            raise ServiceStartError(
                f"dovecot did not greet on {self.host}:{self.port} within {START_TIMEOUT:.0f} s;"
                f"\nstderr:\n{_read_log(stderr_path)}\nlog:\n{_read_log(d / 'dovecot.log')}"
            )
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        # SIGTERM to the master stops all its children (login, auth, imap, anvil, log).
        _terminate(self._proc)
        self._proc = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    # -- users & mail -----------------------------------------------------------------------
    def add_user(self, name: str, password: str) -> None:
        """Create (or re-password) a mailbox user on the running server.

        Each user gets its own passwd-file (``users/<name>``, found via ``%u``) because Dovecot
        looks at a passwd-file at most once per second and serves its cached copy otherwise: with
        one shared file, a user added in the same second as any other login would be "unknown".
        A brand-new file is always read on first use. Changing an existing user's password waits
        for the next second (up to 1 s) so the next login cannot hit that cache.
        """
        if not _IMAP_USER.fullmatch(name):
            raise ValueError(f"IMAP user names must match {_IMAP_USER.pattern}: {name!r}")
        if any(c in password for c in ":\r\n"):
            raise ValueError("passwords in a passwd-file cannot contain ':' or line breaks")
        path = self.directory / "users" / name
        with self._users_lock:
            existed = name in self._user_stamps
            tmp = path.with_name(f".{name}.tmp")
            tmp.write_text(f"{name}:{{PLAIN}}{password}::::::\n")
            tmp.chmod(0o644)  # read by the auth process, which runs as 'dovecot'
            # Dovecot re-reads on a changed mtime (whole seconds) or size: move mtime forward so
            # a same-length password written in the same second still counts as a change.
            stamp = max(int(time.time()), self._user_stamps.get(name, 0) + 1)
            os.utime(tmp, (stamp, stamp))
            os.replace(tmp, path)
            self._user_stamps[name] = stamp
            if existed:
                time.sleep(max(0.0, int(time.time()) + 1.01 - time.time()))

    def connect(self, user: str, password: str) -> imaplib.IMAP4:
        """A logged-in ``imaplib.IMAP4`` client; call ``logout()`` (or use ``with``)."""
        client = imaplib.IMAP4(self.host, self.port, timeout=10)
        try:
            client.login(user, password)
        except BaseException:
            client.shutdown()
            raise
        return client

    def append(
        self,
        user: str,
        password: str,
        raw: bytes,
        mailbox: str = "INBOX",
        flags: str | None = None,
    ) -> int | None:
        """Deliver ``raw`` (an RFC 5322 message) into ``mailbox`` (created if missing) via
        IMAP APPEND.

        Goes through the real IMAP server, as a mail client would, so what the app later
        fetches is exactly what Dovecot stored. Returns the new message's UID (Dovecot reports
        it via UIDPLUS), or None if the server did not say.
        """
        name = f'"{mailbox}"' if re.search(r'[\s"(){%*\\]', mailbox) else mailbox
        with self.connect(user, password) as client:
            if mailbox.upper() != "INBOX":
                client.create(name)  # "NO already exists" is fine
            status, data = client.append(name, flags, None, raw)
            if status != "OK":
                raise AssertionError(f"IMAP APPEND to {mailbox!r} failed: {data!r}")
        text = b" ".join(x for x in data if isinstance(x, bytes)).decode(errors="replace")
        found = re.search(r"APPENDUID \d+ (\d+)", text)
        return int(found.group(1)) if found else None


# --------------------------------------------------------------------------------------------
# pytest fixtures
# --------------------------------------------------------------------------------------------


_S = TypeVar("_S", bound=_Service)


def _unavailable(exc: ServiceBinaryMissing) -> NoReturn:
    """Skip locally, fail on CI: a CI image missing a package must not pass silently."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{exc} (CI=true, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(str(exc))


def _serve(service: _S) -> Iterator[_S]:
    """Start ``service`` for a fixture and stop it when the fixture is torn down."""
    try:
        service.start()
    except ServiceBinaryMissing as exc:
        _unavailable(exc)
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A Redis server for the whole session; tests share it, so use distinct keys or
    flush it yourself."""
    yield from _serve(RedisServer())


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole session; prefer ``postgres_database`` per test."""
    yield from _serve(PostgresServer())


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> Iterator[str]:
    """SQLAlchemy URL of a fresh empty database, dropped after the test."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    url = postgres_server.create_database(name)
    try:
        yield url
    finally:
        postgres_server.drop_database(name)


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpSink]:
    """The session's SMTP sink; most tests want ``smtp_sink`` (cleared per test)."""
    yield from _serve(SmtpSink())


@pytest.fixture
def smtp_sink(smtp_server: SmtpSink) -> Iterator[SmtpSink]:
    """The session SMTP sink, empty and without pending failures, for one test."""
    smtp_server.clear()
    try:
        yield smtp_server
    finally:
        smtp_server.clear()


@pytest.fixture(scope="session")
def imap_server() -> Iterator[DovecotServer]:
    """A Dovecot IMAP server for the whole session; add users with unique names per test."""
    yield from _serve(DovecotServer())


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real S3-compatible server (moto in server mode) on loopback, dummy credentials.

    Requests go through botocore's real HTTP stack, multipart uploads included.
    """
    from moto.server import ThreadedMotoServer

    missing = tmp_path_factory.mktemp("aws") / "absent"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        patch.setenv("AWS_CONFIG_FILE", str(missing))
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(missing))
        patch.delenv("AWS_PROFILE", raising=False)
        patch.delenv("AWS_SESSION_TOKEN", raising=False)
        port = free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.stop()
