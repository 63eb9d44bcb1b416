"""Vaultdesk served by real gunicorn, started as ``scripts/run`` starts it, and slow clients.

Shared by ``tests/test_serving.py`` (which asserts behaviour) and
``bench/slow_downloads.py`` (which prints figures). The server gets its settings from
``app.gunicorn_config`` and nothing else but the environment, so what is tested here is
what ``scripts/run`` and a production unit file run.
"""

from __future__ import annotations

import http.client
import io
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Self
from urllib.parse import urlsplit

from tests.services import (
    LOOPBACK,
    START_ATTEMPTS,
    ServiceStartError,
    _read_log,
    _Service,
    _terminate,
    _wait_until,
    free_port,
)

GUNICORN_CONFIG = "python:app.gunicorn_config"
CHECKOUT = Path(__file__).resolve().parents[1]
BOOT_TIMEOUT = 30.0
MIB = 1024 * 1024


def prepare_instance(
    folder: Path, redis_url: str, *, file_size: int, database: Path | None = None
) -> str:
    """Make a ready instance folder holding one file of ``file_size`` random bytes.

    Goes through the domain (``store_upload``, ``issue_link``) as the app would, migrating a
    fresh database or copying ``database`` (a migrated template, to save the time). The
    secret key is left to the instance folder, so the server signs and checks with the same
    one. Returns the path of an unlimited vault link to the file.
    """
    import shutil

    from flask_migrate import upgrade

    from app import create_app
    from app.accounts.people import create_user
    from app.actor import Actor
    from app.extensions import db
    from app.files.store import store_upload
    from app.files.vault_links import issue_link, link_url
    from app.models import Role
    from tests import factories

    folder.mkdir(parents=True, exist_ok=True)
    if database is not None:
        shutil.copy(database, folder / "vaultdesk.db")
    app = create_app(
        {
            "INSTANCE_PATH": str(folder),
            "DATABASE_URL": f"sqlite:///{folder / 'vaultdesk.db'}",
            "REDIS_URL": redis_url,
        }
    )
    with app.app_context():
        if database is None:
            upgrade()
        agent = create_user(
            email="files@vaultdesk.test",
            roles=[Role.AGENT],
            password="a long bench password",
            actor=Actor.system(),
        )
        staff = Actor.staff(agent)
        content = io.BytesIO(os.urandom(file_size))
        file = store_upload(content, "large.bin", staff, ticket=factories.ticket())
        link = issue_link(file, staff)
        db.session.commit()
        path = urlsplit(link_url(link)).path
        db.engine.dispose()
    return path


class ServedDesk(_Service):
    """gunicorn serving Vaultdesk from ``app.gunicorn_config`` on a free loopback port.

    ``args`` go on the command line after the config module (and so win over it), e.g.
    ``["--worker-class", "sync"]``. ``env`` is added to a copy of this process' environment
    from which every ``VAULTDESK_*`` variable has been removed, so a developer's settings
    cannot leak in.
    """

    host = LOOPBACK

    def __init__(
        self,
        instance: Path,
        redis_url: str,
        *,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.instance = instance
        self.redis_url = redis_url
        self.args = list(args)
        self.extra_env = dict(env or {})
        self.port = 0
        self.log_path = instance / "gunicorn.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def log(self) -> str:
        return _read_log(self.log_path)

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VAULTDESK_")}
        env.update(
            VAULTDESK_INSTANCE_PATH=str(self.instance),
            VAULTDESK_REDIS_URL=self.redis_url,
            VAULTDESK_BIND=f"{self.host}:{self.port}",
        )
        env.update(self.extra_env)
        return env

    def get(self, path: str, *, timeout: float = 10.0) -> Answer:
        """GET ``path`` from the served desk on a fresh connection."""
        return fetch(self.url, path, timeout=timeout)

    def _healthy(self) -> bool:
        try:
            return self.get("/healthz", timeout=2).status == 200
        except OSError:
            return False

    def start(self) -> Self:
        try:
            for _attempt in range(START_ATTEMPTS):
                self.port = free_port()
                if self._log is not None:
                    self._log.close()
                self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
                self._proc = subprocess.Popen(
                    [sys.executable, "-m", "gunicorn", "-c", GUNICORN_CONFIG, *self.args],
                    env=self._environment(),
                    # As scripts/run does. Not the instance folder: gunicorn puts its working
                    # folder first on sys.path, and the vault blob folder there would hide
                    # the vault package.
                    cwd=CHECKOUT,
                    stdin=subprocess.DEVNULL,
                    stdout=self._log,
                    stderr=subprocess.STDOUT,
                )
                proc = self._proc
                if _wait_until(
                    lambda p=proc: p.poll() is not None or self._healthy(), BOOT_TIMEOUT
                ):
                    if proc.poll() is None:
                        return self
                    if "in use" in self.log:
                        continue  # lost the port race; try another port
                break
            raise ServiceStartError(f"gunicorn did not answer on {self.url}:\n{self.log}")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        _terminate(self._proc, timeout=15)
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


_CSRF = re.compile(r'name="csrf-token" content="([^"]+)"')


@dataclass(frozen=True)
class Answer:
    status: int
    seconds: float  # from sending the request to the last byte of the answer
    body: bytes


def fetch(base_url: str, path: str, *, timeout: float) -> Answer:
    """GET ``path`` on a new connection, as a browser opening a page would.

    Raises ``TimeoutError`` when the server stays silent for ``timeout`` seconds.
    """
    parts = urlsplit(base_url)
    started = time.monotonic()
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        return Answer(response.status, time.monotonic() - started, body)
    finally:
        conn.close()


def grant_download(base_url: str, link_path: str) -> str:
    """Open a vault link as a person would (landing page, then the button); return the
    path of the download it grants."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("GET", link_path)
        landing = conn.getresponse()
        html = landing.read().decode()
        if landing.status != 200:
            raise AssertionError(f"landing page answered {landing.status}")
        cookie = landing.getheader("Set-Cookie", "").split(";", 1)[0]
        match = _CSRF.search(html)
        if match is None:
            raise AssertionError("no CSRF token on the landing page")
        conn.request(
            "POST",
            link_path,
            body=f"csrf_token={match.group(1)}",
            headers={"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"},
        )
        started = conn.getresponse()
        started.read()
        if started.status != 303:
            raise AssertionError(f"starting the download answered {started.status}")
        return urlsplit(started.getheader("Location", "")).path
    finally:
        conn.close()


class SlowDownload(threading.Thread):
    """A client that fetches ``path`` and reads it ``chunk`` bytes every ``pause`` seconds.

    Its receive buffer is kept small, so the server cannot push the file into the kernel
    and be done: the server's side of the download stays busy for as long as this client
    keeps reading. ``started`` is set once the status line and headers have arrived.
    """

    def __init__(
        self,
        base_url: str,
        path: str,
        *,
        chunk: int = 4096,
        pause: float = 0.05,
        receive_buffer: int = 32 * 1024,
    ) -> None:
        super().__init__(daemon=True)
        parts = urlsplit(base_url)
        self.address = (parts.hostname or LOOPBACK, parts.port or 80)
        self.path = path
        self.chunk = chunk
        self.pause = pause
        self.receive_buffer = receive_buffer
        self.started = threading.Event()
        self.status = 0
        self.content_length = 0
        self.received = 0
        self.finished = False
        self.error: BaseException | None = None
        self._hang_up = threading.Event()

    def run(self) -> None:
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer)
                sock.settimeout(60)
                sock.connect(self.address)
                sock.sendall(
                    f"GET {self.path} HTTP/1.1\r\nHost: {self.address[0]}:{self.address[1]}\r\n"
                    "Connection: close\r\n\r\n".encode()
                )
                head = b""
                while b"\r\n\r\n" not in head:
                    data = sock.recv(1024)
                    if not data:
                        raise ConnectionError("the server closed before answering")
                    head += data
                head, _, body = head.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                self.status = int(lines[0].split()[1])
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        self.content_length = int(value)
                self.received = len(body)
                self.started.set()
                while not self._hang_up.is_set():
                    data = sock.recv(self.chunk)
                    if not data:
                        self.finished = True
                        return
                    self.received += len(data)
                    time.sleep(self.pause)
        except BaseException as error:  # noqa: BLE001 - reported to the test, not swallowed
            self.error = error

    @property
    def in_flight(self) -> bool:
        """Headers arrived, the connection is open, and bytes are still to come."""
        return (
            self.started.is_set()
            and self.is_alive()
            and self.error is None
            and not self.finished
            and self.received < self.content_length
        )

    def close(self) -> None:
        """Stop reading and hang up (the server then ends its side of the download)."""
        self._hang_up.set()
        self.join(timeout=10)
