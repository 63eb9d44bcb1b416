"""The customer portal under load: N customers browsing a large desk through gunicorn.

Run: ``.venv/bin/python bench/portal_load.py [--customers 200] [--tickets 100000]
[--entries 1000000] [--seconds 60] [--workers 2] [--threads N]``

Why a real server and real sockets: the portal's cost under many customers is the sum of
what the test client hides (gunicorn workers, the session cookie, CSRF, SQLite's one
writer shared between processes). So the bench starts the web app exactly as
``scripts/run`` does (``gunicorn_command`` below is the one place to change when that
command changes), on a private Redis and a temporary SQLite file, and talks HTTP to it.

The desk: ``--tickets`` tickets and ``--entries`` stream entries, most of them bulk
inserted for other customers (thousands of contacts, some with portal logins), plus the N
benchmark customers (at least 200, so runs with fewer share the desk), created through the
domain functions (portal tickets, staff messages, status changes, read marks) so their
rows look like real ones, then moved back in time among the others. Every tenth sees their
whole account's tickets. The file is migrated with ``flask_migrate.upgrade`` and cached in
the system's temporary folder, keyed by the sizes; a cached file is upgraded in place to
the current schema (so a new migration runs on a full desk) and every run works on a
fresh copy. No ``ANALYZE``: the app never runs it, so neither does the bench
(``--analyze`` to compare).

The load: each customer signs in once through the real form (CSRF, cookies), then
repeats list, open a ticket, poll its ``/messages`` with ``If-None-Match``, with a reply
(multipart, as the portal form posts it) every tenth action, thinking 2-5 s between
actions. After ``--warmup`` seconds, ``--seconds`` are measured. Then a phase without
think time for ``--burst-clients`` concurrent customers, each for ``--burst-seconds``,
finds the highest throughput. Finally every reply the server accepted is looked up in the
database.

Client and server share the machine: the load generator is one process of mostly
sleeping threads on ``http.client``, one short connection per request. It prints its own
CPU seconds (``client_cpu_s``) next to the server's (``server_cpu_s``) and the load
average, so a reader can judge what it took from gunicorn; on a 2-core machine shared
with other work the figures are a lower bound of what the server alone would do.

Output: ``name=value`` lines, among them ``req_per_s``, ``p50_ms``, ``p95_ms``,
``p99_ms``, ``errors`` (any failed request of the whole run), ``replies_posted``,
``replies_stored`` and ``max_req_per_s`` (best of the no-think-time levels).
"""

from __future__ import annotations

import argparse
import html
import http.client
import math
import os
import random
import re
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.cookies import SimpleCookie
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alembic.util import CommandError  # noqa: E402
from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import insert, select, text  # noqa: E402

from app import create_app  # noqa: E402
from app.accounts.people import create_user  # noqa: E402
from app.actor import Actor  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models.people import Account, Contact, Role, User, UserRole  # noqa: E402
from app.models.tickets import (  # noqa: E402
    EntryKind,
    Priority,
    Status,
    StreamEntry,
    Ticket,
    TicketRead,
)
from app.models.types import utcnow  # noqa: E402
from app.tickets import portal, search  # noqa: E402
from app.tickets.changes import change_status  # noqa: E402
from app.tickets.inbox import mark_read  # noqa: E402
from app.tickets.stream import add_entry  # noqa: E402

HOST = "127.0.0.1"
PASSWORD = "portal bench password"  # noqa: S105 - test data
FILL_VERSION = 2  # bump when the fill changes, so cached files are not reused
REPLY_MARK = "portal-load reply"
WORDS = (
    "printer vpn mail server invoice password login crash slow update backup network disk "
    "licence screen keyboard calendar export report upgrade certificate firewall"
).split()
ACTIONS = ("list", "open", "poll") * 3 + ("reply",)  # a reply every tenth action
OK_STATUS = {200, 204, 302, 303, 304}
CSRF = re.compile(
    r'<meta name="csrf-token" content="([^"]+)"|name="csrf_token"[^>]*value="([^"]+)"'
)
TICKET_LINK = re.compile(r'href="/portal/tickets/([A-Z]+-\d+)"')
ETAG = re.compile(r'data-etag="([^"]+)"')


# --- the server ------------------------------------------------------------------------


def gunicorn_command() -> list[str]:
    """The web server exactly as ``scripts/run`` starts it (``app/gunicorn_config.py``);
    bind, workers and threads come from ``server_environment``."""
    gunicorn = ROOT / ".venv" / "bin" / "gunicorn"
    if not gunicorn.exists():
        gunicorn = Path(sys.executable).with_name("gunicorn")
    return [str(gunicorn), "-c", "python:app.gunicorn_config"]


def server_environment(bind: str, workers: int, threads: int | None) -> dict[str, str]:
    settings = {"VAULTDESK_BIND": bind, "VAULTDESK_WEB_WORKERS": str(workers)}
    if threads:
        settings["VAULTDESK_WEB_THREADS"] = str(threads)
    return settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what} did not come up within {seconds:.0f} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def private_redis(folder: Path) -> Iterator[str]:
    """A throw-away Redis on a free loopback port, nothing persisted."""
    port = free_port()
    process = subprocess.Popen(  # noqa: S603
        ["redis-server", "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"]
        + ["--dir", str(folder), "--logfile", str(folder / "redis.log")],
        stdout=subprocess.DEVNULL,
    )
    try:

        def ping() -> bool:
            with socket.create_connection((HOST, port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")

        wait_for(ping, 10, "redis-server")
        yield f"redis://{HOST}:{port}/0"
    finally:
        stop(process)


@contextmanager
def web_server(
    instance: Path, redis_url: str, workers: int, threads: int | None
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    env = {
        **os.environ,
        "VAULTDESK_INSTANCE_PATH": str(instance),
        "VAULTDESK_DATABASE_URL": f"sqlite:///{instance / 'vaultdesk.db'}",
        "VAULTDESK_REDIS_URL": redis_url,
        "VAULTDESK_SECRET_KEY": "portal-bench-secret-key-not-for-production",
        **server_environment(f"{HOST}:{port}", workers, threads),
    }
    log = open(instance / "gunicorn.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(  # noqa: S603
        gunicorn_command(),
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def answers() -> bool:
            if process.poll() is not None:
                raise SystemExit(f"gunicorn exited; see {instance / 'gunicorn.log'}")
            conn = http.client.HTTPConnection(HOST, port, timeout=5)
            try:
                conn.request("GET", "/portal/login")
                return conn.getresponse().status == 200
            finally:
                conn.close()

        wait_for(answers, 60, "gunicorn")
        yield port, process
    finally:
        stop(process)
        log.close()


# --- the desk ------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    customers: int
    tickets: int
    entries: int
    own_tickets: int

    def key(self) -> str:
        return (
            f"c{self.customers}-o{self.own_tickets}-t{self.tickets}-e{self.entries}-v{FILL_VERSION}"
        )


def customer_email(i: int) -> str:
    return f"customer{i}@portal-bench.test"


def bench_app(instance: Path, redis_url: str, database: Path | None = None) -> object:
    return create_app(
        {
            "INSTANCE_PATH": str(instance),
            "DATABASE_URL": f"sqlite:///{database or instance / 'vaultdesk.db'}",
            "REDIS_URL": redis_url,
            "SECRET_KEY": "portal-bench-secret-key-not-for-production",
        }
    )


def fill(instance: Path, redis_url: str, sizes: Sizes) -> None:
    """Migrate an empty file, bulk insert the mass, then the customers through the domain."""
    app = bench_app(instance, redis_url)
    rng = random.Random(8)  # noqa: S311 - test data
    with app.app_context():  # type: ignore[attr-defined]
        upgrade()
        agents = [
            create_user(
                email=f"agent{i}@portal-bench.test",
                roles=[Role.AGENT],
                password=None,
                actor=Actor.system(),
            )
            for i in range(8)
        ]
        db.session.commit()
        mass_tickets = max(0, sizes.tickets - sizes.customers * sizes.own_tickets)
        born = _bulk_tickets(rng, mass_tickets)
        _customers(rng, sizes, agents)
        made = db.session.scalar(text("SELECT count(*) FROM stream_entry")) or 0
        _bulk_entries(rng, born, sizes.entries - made)
        search.rebuild(db.session.connection())
        db.session.commit()
        db.session.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        db.session.commit()
        db.engine.dispose()


def _bulk_tickets(rng: random.Random, n_tickets: int) -> list[datetime]:
    """Everyone else's tickets: many contacts, some with portal logins, spread over 90 days.

    Returns when each ticket was opened (ticket ``i + 1`` at index ``i``).
    """
    now = utcnow()
    span = timedelta(days=90).total_seconds()
    conn = db.session.connection()
    conn.execute(text("PRAGMA synchronous=OFF"))
    n_accounts = max(1, n_tickets // 50)
    n_contacts = max(1, n_tickets // 5)
    n_users = n_contacts // 4
    first_user = 0
    conn.execute(
        insert(Account),
        [{"id": i + 1, "name": f"Company {i}", "created_at": now} for i in range(n_accounts)],
    )
    if n_users:
        conn.execute(
            insert(User),
            [
                {
                    "email": f"someone{i}@company{i % n_accounts}.test",
                    "name": f"Someone {i}",
                    "created_at": now,
                }
                for i in range(n_users)
            ],
        )
        first_user = conn.scalar(select(User.id).where(User.email == "someone0@company0.test"))
        conn.execute(
            insert(UserRole),
            [{"user_id": first_user + i, "role": Role.CUSTOMER.value} for i in range(n_users)],
        )
    contacts = []
    for i in range(n_contacts):
        contacts.append(
            {
                "id": i + 1,
                "account_id": i % n_accounts + 1,
                "user_id": first_user + i if i < n_users else None,
                "name": f"Someone {i}",
                "email": f"someone{i}@company{i % n_accounts}.test",
                "sees_account_tickets": i % 40 == 0,
                "created_at": now,
            }
        )
    conn.execute(insert(Contact), contacts)
    statuses = [s.value for s in Status]
    priorities = [p.value for p in Priority]
    created: list[datetime] = []
    batch = 20_000
    for start in range(0, n_tickets, batch):
        rows = []
        for i in range(start, min(start + batch, n_tickets)):
            born = now - timedelta(seconds=span * (1 - i / max(1, n_tickets)))
            created.append(born)
            contact = rng.randrange(n_contacts) + 1
            rows.append(
                {
                    "id": i + 1,
                    "number": f"T-{1_000_000 + i}",
                    "subject": " ".join(rng.sample(WORDS, 4)) + f" {i}",
                    "status": rng.choice(statuses),
                    "priority": rng.choice(priorities),
                    "type": "question",
                    "channel": "mail",
                    "contact_id": contact,
                    "account_id": (contact - 1) % n_accounts + 1,
                    "submitter_email": f"someone{contact - 1}@company.test",
                    "waiting_for_dispatch": False,
                    "in_inbox": i % 10 == 0,
                    "last_customer_activity_at": born,
                    "created_at": born,
                    "updated_at": min(now, born + timedelta(hours=rng.randrange(72))),
                    "version": 3,
                }
            )
        conn.execute(insert(Ticket), rows)
    db.session.commit()
    return created


def _bulk_entries(rng: random.Random, created: list[datetime], n_entries: int) -> None:
    """Everyone else's conversations, notes and status changes, at random on their tickets."""
    conn = db.session.connection()
    conn.execute(text("PRAGMA synchronous=OFF"))
    n_tickets = len(created)
    now = utcnow()
    batch = 20_000
    kinds = ["mail_in", "mail_out", "note", "status_change", "message", "mail_in", "mail_out"]
    remaining = n_entries
    while remaining > 0 and n_tickets:
        rows = []
        for _ in range(min(batch, remaining)):
            ticket = rng.randrange(n_tickets)
            kind = rng.choice(kinds)
            rows.append(
                {
                    "ticket_id": ticket + 1,
                    "kind": kind,
                    "visibility": "internal" if kind in ("note", "status_change") else "external",
                    "author_name": "Mass",
                    "body_text": " ".join(rng.choices(WORDS, k=12)),
                    "created_at": min(
                        now, created[ticket] + timedelta(minutes=rng.randrange(4000))
                    ),
                }
            )
        conn.execute(insert(StreamEntry), rows)
        remaining -= len(rows)
    db.session.commit()


def _customers(rng: random.Random, sizes: Sizes, agents: list[User]) -> None:
    """The benchmark's customers and their tickets, as the portal and the desk make them.

    Five contacts per account; every tenth customer sees the account's tickets. Each ticket
    gets staff messages, status changes and a read mark at some point, then the whole
    ticket is moved back in time so the customers' tickets are spread among the others.
    """
    accounts: list[Account] = []
    for i in range(sizes.customers):
        if i % 5 == 0:
            accounts.append(Account(name=f"Bench customer {i // 5}"))
            db.session.add(accounts[-1])
        user = create_user(
            email=customer_email(i), roles=[Role.CUSTOMER], password=PASSWORD, actor=Actor.system()
        )
        contact = Contact(
            name=user.name,
            email=user.email,
            account=accounts[-1],
            user=user,
            sees_account_tickets=i % 10 == 0,
        )
        db.session.add(contact)
        db.session.flush()
        for n in range(sizes.own_tickets):
            ticket = portal.open_ticket(
                user,
                subject=" ".join(rng.sample(WORDS, 3)) + f" {i}-{n}",
                description=" ".join(rng.choices(WORDS, k=20)),
                category=None,
                priority=None,
                files=[],
            )
            agent = Actor.staff(rng.choice(agents))
            if n % 3 != 2:
                change_status(ticket, Status.OPEN, agent)
                add_entry(ticket, EntryKind.MESSAGE, agent, body_text="Could you try again?")
                if rng.random() < 0.5:
                    mark_read(ticket, user)
                    portal.reply(user, ticket, "It still fails.", [])
                    add_entry(ticket, EntryKind.MESSAGE, agent, body_text="Fixed now, I think.")
                if n % 3 == 1:
                    change_status(ticket, Status.PENDING, agent)
            elif n % 2:
                change_status(ticket, Status.RESOLVED, agent)
            if rng.random() < 0.5:
                mark_read(ticket, user)
            db.session.flush()
            _move_back(ticket, timedelta(minutes=rng.randrange(90 * 24 * 60)))
        db.session.commit()


def _move_back(ticket: Ticket, by: timedelta) -> None:
    """Shift a ticket's whole history into the past, keeping its order of events."""
    for name in ("created_at", "updated_at", "last_customer_activity_at", "resolved_at"):
        value = getattr(ticket, name)
        if value is not None:
            setattr(ticket, name, value - by)
    for entry in ticket.entries:
        entry.created_at -= by
    for mark in db.session.scalars(select(TicketRead).where(TicketRead.ticket_id == ticket.id)):
        mark.read_at -= by


def prepared_database(redis_url: str, sizes: Sizes, cache: Path, rebuild: bool) -> Path:
    """The filled file for these sizes: from the cache, or filled now and cached.

    A cached file is brought to the current schema in place, so a new migration runs on a
    full desk (its backfill included); one from a branch with unknown revisions is refilled.
    """
    cache.mkdir(parents=True, exist_ok=True)
    cached = cache / f"portal-{sizes.key()}.db"
    if cached.exists() and not rebuild:
        began = time.perf_counter()
        try:
            with tempfile.TemporaryDirectory(prefix="vaultdesk-portal-upgrade-") as tmp:
                app = bench_app(Path(tmp), redis_url, cached)
                with app.app_context():  # type: ignore[attr-defined]
                    upgrade()
                    db.engine.dispose()
        except (CommandError, SystemExit) as exc:  # Flask-Migrate exits on errors
            print(f"# cached desk not usable ({exc}); filling again", flush=True)
        else:
            took = time.perf_counter() - began
            print(f"# desk from cache, upgraded in {took:.1f} s: {cached.name}", flush=True)
            return cached
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vaultdesk-portal-fill-") as tmp:
        fill(Path(tmp), redis_url, sizes)
        partial = cached.with_suffix(".partial")
        shutil.copyfile(Path(tmp) / "vaultdesk.db", partial)
        partial.replace(cached)
    print(f"# desk filled in {time.perf_counter() - began:.0f} s: {cached.name}", flush=True)
    return cached


def analyze(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("ANALYZE")


def counted_database(path: Path) -> tuple[int, int]:
    with sqlite3.connect(path) as conn:
        tickets = conn.execute("SELECT count(*) FROM ticket").fetchone()[0]
        entries = conn.execute("SELECT count(*) FROM stream_entry").fetchone()[0]
    return int(tickets), int(entries)


def stored_replies(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT body_text FROM stream_entry WHERE body_text LIKE ?", (f"%{REPLY_MARK} %",)
        ).fetchall()
    return {row[0].split()[-1] for row in rows}


# --- the customers -------------------------------------------------------------------


class RequestFailed(Exception):
    pass


@dataclass
class Sample:
    began: float
    ms: float
    action: str
    ok: bool


@dataclass
class Record:
    """What all customers saw; list appends are atomic under the GIL, so no lock."""

    samples: list[Sample] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)


class Customer:
    """One browser: a cookie jar, the tickets it saw, the page it has open."""

    def __init__(self, port: int, email: str, record: Record, seed: int) -> None:
        self.port = port
        self.email = email
        self.record = record
        self.rng = random.Random(seed)  # noqa: S311 - test data
        self.cookies: dict[str, str] = {}
        self.tickets: list[str] = []
        self.current: str | None = None
        self.etag: str | None = None
        self.csrf: str | None = None
        self.step = self.rng.randrange(len(ACTIONS))

    def request(
        self,
        action: str,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, http.client.HTTPMessage, str]:
        """One request on a fresh connection (as a browser after 2-5 s idle), timed."""
        all_headers = {"Host": f"{HOST}:{self.port}", **(headers or {})}
        if self.cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        conn = http.client.HTTPConnection(HOST, self.port, timeout=120)
        began = time.monotonic()
        try:
            conn.request(method, path, body=body, headers=all_headers)
            response = conn.getresponse()
            payload = response.read().decode("utf-8", "replace")
        except (OSError, http.client.HTTPException) as exc:
            self._note(began, action, False, f"{action} {path}: {exc!r}")
            raise RequestFailed(str(exc)) from exc
        finally:
            conn.close()
        ok = response.status in OK_STATUS
        self._note(began, action, ok, f"{action} {path}: HTTP {response.status}")
        for header in response.headers.get_all("Set-Cookie") or []:
            jar: SimpleCookie = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                if morsel.value and morsel["max-age"] != "0":
                    self.cookies[name] = morsel.value
                else:
                    self.cookies.pop(name, None)
        if not ok:
            raise RequestFailed(f"HTTP {response.status}")
        return response.status, response.headers, payload

    def _note(self, began: float, action: str, ok: bool, failure: str) -> None:
        self.record.samples.append(Sample(began, (time.monotonic() - began) * 1000, action, ok))
        if not ok:
            self.record.failures.append(failure)

    def _remember_csrf(self, page: str) -> None:
        match = CSRF.search(page)
        if match:
            self.csrf = html.unescape(match.group(1) or match.group(2))

    def sign_in(self) -> None:
        _, _, page = self.request("signin", "GET", "/portal/login")
        self._remember_csrf(page)
        form = urllib.parse.urlencode(
            {"email": self.email, "password": PASSWORD, "csrf_token": self.csrf or ""}
        ).encode()
        status, headers, _ = self.request(
            "signin",
            "POST",
            "/portal/login",
            form,
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        if status != 302 or "/portal/" not in (headers.get("Location") or ""):
            self.record.failures.append(f"sign-in of {self.email} refused ({status})")
            raise RequestFailed("sign-in refused")
        self.list_tickets()

    def act(self) -> None:
        """The next action of the cycle; a failed one is recorded and the cycle goes on."""
        action = ACTIONS[self.step % len(ACTIONS)]
        self.step += 1
        try:
            if action == "list" or not self.tickets:
                self.list_tickets()
            elif action == "open" or self.current is None:
                self.open_ticket()
            elif action == "poll":
                self.poll()
            else:
                self.reply()
        except RequestFailed:
            pass

    def list_tickets(self) -> None:
        if self.rng.random() < 0.5:
            _, _, page = self.request("list", "GET", "/portal/")
        else:
            _, _, page = self.request(
                "list", "GET", "/portal/?state=all", headers={"HX-Request": "true"}
            )
        found = TICKET_LINK.findall(page)
        if found:
            self.tickets = found

    def open_ticket(self) -> None:
        self.current = self.rng.choice(self.tickets)
        _, _, page = self.request("open", "GET", f"/portal/tickets/{self.current}")
        self._remember_csrf(page)
        match = ETAG.search(page)
        self.etag = f'"{match.group(1)}"' if match else None

    def poll(self) -> None:
        headers = {"HX-Request": "true"}
        if self.etag:
            headers["If-None-Match"] = self.etag
        _, response_headers, _ = self.request(
            "poll", "GET", f"/portal/tickets/{self.current}/messages", headers=headers
        )
        self.etag = response_headers.get("ETag") or self.etag

    def reply(self) -> None:
        mark = uuid.uuid4().hex
        boundary = "----portal-load-" + uuid.uuid4().hex
        body = _multipart(
            boundary,
            [
                ("csrf_token", self.csrf or ""),
                ("body", f"Thanks, one more thing. {REPLY_MARK} {mark}"),
            ],
        )
        status, headers, _ = self.request(
            "reply",
            "POST",
            f"/portal/tickets/{self.current}/reply",
            body,
            {"Content-Type": f"multipart/form-data; boundary={boundary}", "HX-Request": "true"},
        )
        self.record.replies.append(mark)
        if status == 204 and headers.get("HX-Redirect"):
            # An old closed ticket: the reply opened a new one, which is open from now on.
            self.current = headers["HX-Redirect"].rsplit("/", 1)[1]
            self.tickets.append(self.current)
        self.etag = None


def _multipart(boundary: str, fields: list[tuple[str, str]]) -> bytes:
    """The reply form as the browser sends it: CSRF first, then the text, no file."""
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename=""\r\n'
        "Content-Type: application/octet-stream\r\n\r\n\r\n"
    )
    return ("".join(parts) + f"--{boundary}--\r\n").encode()


def sign_in_all(customers: list[Customer], parallel: int = 4) -> None:
    """Sign-ins run a few at a time: each one is a deliberately slow scrypt check."""
    queue = list(customers)
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                if not queue:
                    return
                customer = queue.pop()
            try:
                customer.sign_in()
            except RequestFailed:
                pass

    threads = [threading.Thread(target=work) for _ in range(parallel)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def browse(customers: list[Customer], until: float, think: tuple[float, float]) -> None:
    """Every customer in its own thread until ``until``; ``think`` is the pause range."""
    stop_event = threading.Event()

    def run(customer: Customer) -> None:
        if think[1]:
            stop_event.wait(customer.rng.uniform(0, think[1]))  # not all at once
        while not stop_event.is_set() and time.monotonic() < until:
            customer.act()
            if think[1]:
                stop_event.wait(customer.rng.uniform(*think))

    threads = [threading.Thread(target=run, args=(c,), daemon=True) for c in customers]
    for thread in threads:
        thread.start()
    try:
        while time.monotonic() < until:
            time.sleep(0.2)
    finally:
        stop_event.set()
        for thread in threads:
            thread.join(timeout=180)


# --- figures -------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    """Nearest rank: the smallest value with at least ``share`` of the values at or below."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[min(len(ordered), rank) - 1]


def window(record: Record, began: float, ended: float) -> list[Sample]:
    return [s for s in record.samples if began <= s.began < ended]


def summary(samples: list[Sample], seconds: float, prefix: str = "") -> dict[str, float]:
    ms = [s.ms for s in samples]
    return {
        f"{prefix}req_per_s": len(samples) / seconds,
        f"{prefix}p50_ms": percentile(ms, 0.50),
        f"{prefix}p95_ms": percentile(ms, 0.95),
        f"{prefix}p99_ms": percentile(ms, 0.99),
        f"{prefix}errors_in_window": sum(not s.ok for s in samples),
    }


def show(values: dict[str, object]) -> None:
    for name, value in values.items():
        shown = f"{value:.1f}" if isinstance(value, float) else str(value)
        print(f"{name}={shown}", flush=True)


def write_samples(path: Path, record: Record, began: float) -> None:
    """One line per request, for looking at stalls over time."""
    with path.open("w") as out:
        out.write("t_s,ms,action,ok\n")
        for s in sorted(record.samples, key=lambda s: s.began):
            out.write(f"{s.began - began:.3f},{s.ms:.1f},{s.action},{int(s.ok)}\n")


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def process_cpu_seconds(pid: int) -> float:
    """CPU of gunicorn's master and workers so far (user + system), from /proc."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(p) for p in children]
    except OSError:
        pass
    for each in pids:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--own-tickets", type=int, default=6, help="tickets per customer")
    parser.add_argument("--seconds", type=float, default=60, help="measured, with think time")
    parser.add_argument("--warmup", type=float, default=15)
    parser.add_argument("--workers", type=int, default=2, help="scripts/run's default")
    parser.add_argument("--threads", type=int, default=None, help="gunicorn --threads")
    parser.add_argument("--burst-clients", default="1,2,4,8,16", help="no-think-time levels")
    parser.add_argument("--burst-seconds", type=float, default=10)
    parser.add_argument("--analyze", action="store_true", help="run ANALYZE before serving")
    parser.add_argument("--rebuild", action="store_true", help="refill the cached desk")
    parser.add_argument("--samples", type=Path, help="write every request as CSV here")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "vaultdesk-portal-bench",
        help="where filled desks are kept between runs (never the repository)",
    )
    args = parser.parse_args()
    # The desk always holds at least 200 benchmark customers, so runs with fewer share it.
    sizes = Sizes(max(args.customers, 200), args.tickets, args.entries, args.own_tickets)
    levels = [int(x) for x in args.burst_clients.split(",") if x.strip()]
    print(f"# load average before: {load_average()} (cpus: {os.cpu_count()})", flush=True)
    with tempfile.TemporaryDirectory(prefix="vaultdesk-portal-load-") as tmp:
        run = Path(tmp)
        with private_redis(run) as redis_url:
            cached = prepared_database(redis_url, sizes, args.cache, args.rebuild)
            instance = run / "instance"
            instance.mkdir()
            database = instance / "vaultdesk.db"
            shutil.copyfile(cached, database)
            if args.analyze:
                analyze(database)
            tickets, entries = counted_database(database)
            show(
                {
                    "customers": args.customers,
                    "tickets": tickets,
                    "entries": entries,
                    "workers": args.workers,
                    "threads": args.threads or 1,
                }
            )
            record = Record()
            with web_server(instance, redis_url, args.workers, args.threads) as (port, server):
                customers = [
                    Customer(port, customer_email(i), record, seed=i) for i in range(args.customers)
                ]
                cpu_began = time.process_time()
                server_began = process_cpu_seconds(server.pid)
                began = time.monotonic()
                sign_in_all(customers)
                signins = [s.ms for s in record.samples if s.action == "signin"]
                show({"signin_p50_ms": percentile(signins, 0.5)})
                ready = [c for c in customers if c.tickets]
                start = time.monotonic() + args.warmup
                end = start + args.seconds
                browse(ready, end, (2.0, 5.0))
                samples = window(record, start, end)
                results = summary(samples, args.seconds)
                for action in ("list", "open", "poll", "reply"):
                    ms = [s.ms for s in samples if s.action == action]
                    results[f"{action}_p95_ms"] = percentile(ms, 0.95)
                results["load_average"] = load_average()  # type: ignore[assignment]
                show(results)
                best = (0.0, 0)
                for clients in levels:
                    start = time.monotonic() + 2
                    end = start + args.burst_seconds
                    browse(ready[:clients], end, (0.0, 0.0))
                    burst = summary(window(record, start, end), args.burst_seconds, f"c{clients}_")
                    show(burst)
                    if burst[f"c{clients}_req_per_s"] > best[0]:
                        best = (burst[f"c{clients}_req_per_s"], clients)
                show({"max_req_per_s": best[0], "max_req_per_s_clients": best[1]})
                elapsed = time.monotonic() - began
                server_cpu = process_cpu_seconds(server.pid) - server_began
            if args.samples:
                write_samples(args.samples, record, began)
            stored = stored_replies(database)
            posted = set(record.replies)
            usage = resource.getrusage(resource.RUSAGE_SELF)
            show(
                {
                    "errors": len(record.failures),
                    "replies_posted": len(posted),
                    "replies_stored": len(posted & stored),
                    "client_cpu_s": time.process_time() - cpu_began,
                    "server_cpu_s": server_cpu,
                    "elapsed_s": elapsed,
                    "client_max_rss_mb": usage.ru_maxrss / 1024,
                    "load_average_after": load_average(),
                }
            )
            for failure in record.failures[:10]:
                print(f"# failed: {failure}", file=sys.stderr)


if __name__ == "__main__":
    main()
