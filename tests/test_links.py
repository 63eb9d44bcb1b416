"""Signed vault links: landing, counting, grants, ranges, refusals, revocation, audit."""

from __future__ import annotations

import hashlib
import io
import re
import threading
import urllib.error
from datetime import timedelta
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pytest
from sqlalchemy import select

from app.actor import Actor
from app.extensions import db
from app.files import vault_links
from app.files.store import store_upload
from app.models import DownloadEvent, Role, VaultFile, VaultLink
from app.models.types import utcnow
from tests import factories
from tests.conftest import csrf_from

CONTENT = bytes(range(256)) * 1024 + b"tail"  # 256 KiB + 4: several vault chunks


def make_link(
    app: Any, content: bytes = CONTENT, name: str = "report.pdf", **kwargs: Any
) -> dict[str, Any]:
    with app.app_context():
        agent = factories.staff_user(Role.AGENT)
        ticket = factories.ticket()
        file = store_upload(io.BytesIO(content), name, Actor.staff(agent), ticket=ticket)
        link = vault_links.issue_link(file, Actor.staff(agent), **kwargs)
        db.session.commit()
        return {
            "path": urlsplit(vault_links.link_url(link)).path,
            "link_id": link.id,
            "file_id": file.id,
            "ticket": ticket.number,
            "agent_id": agent.id,
        }


def start(
    client: Any, path: str, password: str | None = None, address: str = "127.0.0.1", **headers: str
) -> Any:
    """Land and press Download, as a browser at client ``address`` would."""
    environ = {"REMOTE_ADDR": address}
    landing = client.get(path, environ_base=environ, headers=headers)
    data = {"csrf_token": csrf_from(landing.get_data(as_text=True))}
    if password is not None:
        data["password"] = password
    return client.post(path, data=data, environ_base=environ, headers=headers)


def events(app: Any, link_id: str) -> list[tuple[str, str | None]]:
    with app.app_context():
        rows = db.session.scalars(
            select(DownloadEvent).where(DownloadEvent.link_id == link_id).order_by(DownloadEvent.id)
        )
        return [(r.outcome, r.reason) for r in rows]


def test_landing_page_names_the_file_and_counts_nothing(app: Any, client: Any) -> None:
    link = make_link(app, name="Q3 Rechnung für Müller.pdf", max_downloads=1)
    for _ in range(3):  # a mail scanner opening the link, twice, then the person
        page = client.get(link["path"])
        assert page.status_code == 200
        assert "Q3 Rechnung für Müller.pdf" in page.get_data(as_text=True)
        assert client.head(link["path"]).status_code == 200
    with app.app_context():
        assert db.session.get(VaultLink, link["link_id"]).download_count == 0
    response = start(client, link["path"])
    assert response.status_code == 303
    download = client.get(response.headers["Location"])
    assert download.status_code == 200
    assert hashlib.sha256(download.data).digest() == hashlib.sha256(CONTENT).digest()
    assert download.headers["Content-Length"] == str(len(CONTENT))
    assert download.headers["Accept-Ranges"] == "bytes"
    assert download.headers["ETag"].strip('"') == hashlib.sha256(CONTENT).hexdigest()[:32]
    disposition = download.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="Q3 Rechnung fur Muller.pdf"')
    assert "filename*=UTF-8''Q3%20Rechnung%20f%C3%BCr%20M%C3%BCller.pdf" in disposition
    assert "sandbox" in download.headers["Content-Security-Policy"]
    # The one allowed download is used: the link now says so, with 410.
    again = client.get(link["path"])
    assert again.status_code == 410 and "used as often as it allows" in again.get_data(as_text=True)
    # 3 GETs + 3 HEADs + the landing before the click, one count, the bytes, the refusal.
    assert events(app, link["link_id"]) == [("viewed", None)] * 7 + [
        ("granted", None),
        ("served", None),
        ("refused", "exhausted"),
    ]


def test_range_requests_reuse_the_grant(app: Any, client: Any) -> None:
    link = make_link(app, max_downloads=1)
    target = start(client, link["path"]).headers["Location"]
    first = client.get(target, headers={"Range": "bytes=0-99"})
    assert first.status_code == 206 and first.data == CONTENT[:100]
    assert first.headers["Content-Range"] == f"bytes 0-99/{len(CONTENT)}"
    boundary = client.get(target, headers={"Range": "bytes=65530-65545"})  # across a chunk
    assert boundary.status_code == 206 and boundary.data == CONTENT[65530:65546]
    suffix = client.get(target, headers={"Range": "bytes=-4"})
    assert suffix.data == b"tail"
    beyond = client.get(target, headers={"Range": f"bytes={len(CONTENT) + 10}-"})
    assert beyond.status_code == 416
    assert beyond.headers["Content-Range"] == f"bytes */{len(CONTENT)}"
    stale = client.get(target, headers={"Range": "bytes=0-9", "If-Range": '"not-the-etag"'})
    assert stale.status_code == 200 and len(stale.data) == len(CONTENT)
    with app.app_context():
        assert db.session.get(VaultLink, link["link_id"]).download_count == 1
    served = [e for e in events(app, link["link_id"]) if e[0] == "served"]
    assert len(served) == 4


def test_revocation_stops_a_download_at_its_next_range(app: Any, client: Any) -> None:
    link = make_link(app)
    target = start(client, link["path"]).headers["Location"]
    assert client.get(target, headers={"Range": "bytes=0-65535"}).status_code == 206
    with app.app_context():
        row = db.session.get(VaultLink, link["link_id"])
        officer = factories.staff_user(Role.COMPLIANCE)
        vault_links.revoke_link(row, Actor.staff(officer), "sent to the wrong customer")
        db.session.commit()
    cut = client.get(target, headers={"Range": "bytes=65536-"})
    assert cut.status_code == 410 and "revoked" in cut.get_data(as_text=True)
    assert client.get(link["path"]).status_code == 410
    assert ("refused", "revoked") in events(app, link["link_id"])


def test_expired_link_is_gone(app: Any, client: Any) -> None:
    link = make_link(app)
    with app.app_context():
        db.session.get(VaultLink, link["link_id"]).expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    page = client.get(link["path"])
    assert page.status_code == 410 and "expired" in page.get_data(as_text=True)


def test_tampered_and_unknown_tokens_say_nothing(app: Any, client: Any) -> None:
    link = make_link(app)
    token = link["path"].rsplit("/", 1)[1]
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    for path in (f"/v/{flipped}", "/v/not-a-token", f"/v/{token}x"):
        response = client.get(path)
        assert response.status_code == 404
        body = response.get_data(as_text=True)
        assert "report.pdf" not in body and "This link is not valid." in body
    # A valid signature over an id with no row behind it is just as unknown.
    with app.app_context():
        from vault import LinkSigner

        forged = LinkSigner(app.config["SECRET_KEY"], salt="vaultdesk.link").sign("no-such-id")[1]
    assert client.get(f"/v/{forged}").status_code == 404


PATH_SAFE = "-_.~!$&'()*+,;=:@"  # characters a path segment may carry unencoded


def url_spellings(token: str) -> dict[str, str]:
    """Paths that name ``token`` in another spelling: the vault's variants as URLs, plus
    percent-encodings of the token's own characters."""
    from tests.vault.test_links import spellings

    paths = {}
    for name, variant in spellings(token).items():
        paths[f"{name} (raw)"] = quote(variant, safe=PATH_SAFE)
        paths[f"{name} (encoded)"] = quote(variant, safe="")
    paths["first character encoded"] = f"%{ord(token[0]):02X}{token[1:]}"
    paths["last character encoded"] = f"{token[:-1]}%{ord(token[-1]):02x}"
    paths["all encoded"] = "".join(f"%{ord(c):02X}" for c in token)
    return paths


def test_only_the_issued_spelling_of_a_link_opens_it(app: Any, client: Any) -> None:
    link = make_link(app, max_downloads=1)
    token = link["path"].rsplit("/", 1)[1]
    csrf = csrf_from(client.get(link["path"]).get_data(as_text=True))
    paths = url_spellings(token)
    assert len(paths) > 300
    for name, spelled in paths.items():
        if not spelled:
            continue  # "/v/" is no link route at all
        page = client.get(f"/v/{spelled}")
        assert page.status_code == 404, name
        assert "report.pdf" not in page.get_data(as_text=True)
        posted = client.post(f"/v/{spelled}", data={"csrf_token": csrf}).status_code
        # A raw "/" makes it another path altogether; the router answers that POST with 405.
        assert posted == 404 or (posted == 405 and "/" in unquote(spelled)), name
    with app.app_context():
        assert db.session.get(VaultLink, link["link_id"]).download_count == 0
    # The issued spelling still works, and so does its grant, but only as issued.
    target = start(client, link["path"]).headers["Location"]
    grant = target.rsplit("/", 1)[1]
    for name, spelled in url_spellings(grant).items():
        if spelled:
            assert client.get(f"{link['path']}/d/{spelled}").status_code in (403, 404), name
    assert client.get(target).data == CONTENT


def test_a_grant_for_one_link_does_not_open_another(app: Any, client: Any) -> None:
    first, second = make_link(app), make_link(app, content=b"other customer's file")
    target = start(client, first["path"]).headers["Location"]
    grant = target.rsplit("/", 1)[1]
    response = client.get(f"{second['path']}/d/{grant}")
    assert response.status_code == 403
    assert b"other customer" not in response.data
    assert client.get(f"{first['path']}/d/forged-grant").status_code == 403


def test_password_protected_link(app: Any, client: Any) -> None:
    link = make_link(app, password="s3cret-phrase", max_downloads=3)
    wrong = start(client, link["path"], password="guess")
    assert wrong.status_code == 403 and "The password is not right." in wrong.get_data(as_text=True)
    right = start(client, link["path"], password="s3cret-phrase")
    assert right.status_code == 303
    assert client.get(right.headers["Location"]).data == CONTENT
    assert ("refused", "wrong_password") in events(app, link["link_id"])
    with app.app_context():
        assert db.session.get(VaultLink, link["link_id"]).download_count == 1


def test_password_guessing_is_rate_limited(app: Any, client: Any) -> None:
    link = make_link(app, password="s3cret-phrase")
    for _ in range(5):
        assert start(client, link["path"], password="guess").status_code == 403
    limited = start(client, link["path"], password="s3cret-phrase")
    assert limited.status_code == 429  # the budget is spent: not even the right one is checked
    assert "Too many wrong attempts" in limited.get_data(as_text=True)
    assert events(app, link["link_id"]).count(("refused", "wrong_password")) == 5
    assert ("refused", "rate_limited") in events(app, link["link_id"])


def test_right_passwords_do_not_count(app: Any, client: Any) -> None:
    link = make_link(app, password="s3cret-phrase")
    for _ in range(4):
        assert start(client, link["path"], password="guess").status_code == 403
    for _ in range(6):
        assert start(client, link["path"], password="s3cret-phrase").status_code == 303
    assert start(client, link["path"], password="guess").status_code == 403  # the 5th wrong
    assert start(client, link["path"], password="s3cret-phrase").status_code == 429


def test_a_strangers_spent_budget_locks_out_nobody_else(app: Any, client: Any) -> None:
    link = make_link(app, password="s3cret-phrase")
    other = make_link(app, password="s3cret-phrase")
    stranger, recipient = "203.0.113.7", "198.51.100.9"
    for _ in range(5):
        assert start(client, link["path"], "guess", stranger).status_code == 403
    assert start(client, link["path"], "guess", stranger).status_code == 429
    # Another client of the same link, and the same client on another link, are unaffected.
    assert start(client, link["path"], "s3cret-phrase", recipient).status_code == 303
    assert start(client, other["path"], "s3cret-phrase", stranger).status_code == 303
    # An IPv6 client is one budget per /64, however many addresses it rotates through.
    for n in range(5):
        assert start(client, link["path"], "guess", f"2001:db8::{n + 1}").status_code == 403
    assert start(client, link["path"], "s3cret-phrase", "2001:db8::99").status_code == 429
    assert start(client, link["path"], "s3cret-phrase", "2001:db8:0:1::1").status_code == 303


def test_the_hourly_ceiling_holds_beyond_the_minute(app: Any, client: Any) -> None:
    app.config["LINK_GUESS_LIMIT"] = "100 per minute;3 per hour"
    link = make_link(app, password="s3cret-phrase")
    for _ in range(3):
        assert start(client, link["path"], password="guess").status_code == 403
    assert start(client, link["path"], password="s3cret-phrase").status_code == 429


def test_forwarded_for_counts_only_behind_configured_proxies(
    app: Any, client: Any, redis_server: Any
) -> None:
    from pathlib import Path

    from app import create_app
    from tests.conftest import base_config

    link = make_link(app, password="s3cret-phrase")
    # No proxy configured: a visitor's own X-Forwarded-For buys no fresh budget.
    for n in range(5):
        forged = {"X-Forwarded-For": f"192.0.2.{n}"}
        assert start(client, link["path"], "guess", **forged).status_code == 403
    forged = {"X-Forwarded-For": "192.0.2.200"}
    assert start(client, link["path"], "s3cret-phrase", **forged).status_code == 429
    # One proxy in front: its X-Forwarded-For names the client, budget per client.
    proxied = create_app(
        {**base_config(Path(app.instance_path), redis_server.url), "PROXY_COUNT": 1}
    ).test_client()
    behind = {"X-Forwarded-For": "203.0.113.50"}
    for _ in range(5):
        assert start(proxied, link["path"], "guess", **behind).status_code == 403
    assert start(proxied, link["path"], "s3cret-phrase", **behind).status_code == 429
    neighbour = {"X-Forwarded-For": "203.0.113.51"}
    assert start(proxied, link["path"], "s3cret-phrase", **neighbour).status_code == 303
    with proxied.application.app_context():
        db.engine.dispose()


def test_a_burst_of_parallel_guesses_gets_no_more_than_the_budget(
    app: Any, live_server: str
) -> None:
    """Counted before checking: 30 simultaneous wrong guesses, 5 checked, 25 refused."""
    from urllib.parse import urlencode

    link = make_link(app, password="s3cret-phrase")
    url = live_server + link["path"]
    visitors = [browser(live_server) for _ in range(30)]
    tokens = [csrf_from(v.open(url).read().decode()) for v in visitors]
    barrier = threading.Barrier(30)
    codes: list[int] = [0] * 30

    def guess(i: int) -> None:
        body = urlencode({"csrf_token": tokens[i], "password": f"guess-{i}"}).encode()
        barrier.wait()
        try:
            codes[i] = visitors[i].open(url, data=body).status
        except urllib.error.HTTPError as error:
            codes[i] = error.code

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(codes) == [403] * 5 + [429] * 25
    assert events(app, link["link_id"]).count(("refused", "wrong_password")) == 5


def test_post_without_csrf_token_counts_nothing(app: Any, client: Any) -> None:
    link = make_link(app, max_downloads=1)
    assert client.post(link["path"]).status_code == 400
    with app.app_context():
        assert db.session.get(VaultLink, link["link_id"]).download_count == 0


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def race_app(request: pytest.FixtureRequest, app: Any, tmp_path: Any, redis_server: Any) -> Any:
    """The test's app on SQLite, or a twin of it on a real, migrated PostgreSQL database."""
    if request.param == "sqlite":
        yield app
        return
    from flask_migrate import upgrade

    from app import create_app
    from tests.conftest import base_config

    url = request.getfixturevalue("postgres_database")
    twin = create_app(base_config(tmp_path / "pg", redis_server.url, url))
    with twin.app_context():
        upgrade()
    yield twin
    with twin.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def race_server(race_app: Any) -> Any:
    """``race_app`` served by werkzeug's threaded server on a free loopback port."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, race_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


def test_twenty_parallel_downloads_of_a_one_time_link_give_one_file(
    race_app: Any, race_server: str
) -> None:
    """Real concurrent HTTP requests against the threaded server: exactly one wins, on
    SQLite and on PostgreSQL, where the conditional UPDATE must hold under row locks."""
    import urllib.request
    from http.cookiejar import CookieJar

    app = race_app
    with app.app_context():
        assert db.engine.dialect.name in ("sqlite", "postgresql")
    link = make_link(app, max_downloads=1)
    url = race_server + link["path"]
    openers, tokens = [], []
    for _ in range(20):  # each visitor opens the landing page first, as a browser would
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        tokens.append(csrf_from(opener.open(url).read().decode()))
        openers.append(opener)
    barrier = threading.Barrier(20)
    results: list[bytes | int] = [0] * 20

    def attempt(i: int) -> None:
        body = f"csrf_token={tokens[i]}".encode()
        barrier.wait()
        try:
            results[i] = openers[i].open(url, data=body).read()
        except urllib.error.HTTPError as error:
            results[i] = error.code

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    files = [r for r in results if isinstance(r, bytes)]
    assert len(files) == 1 and files[0] == CONTENT
    assert sorted(r for r in results if isinstance(r, int)) == [410] * 19
    with app.app_context():
        assert db.session.get(VaultLink, link["link_id"]).download_count == 1
    assert events(app, link["link_id"]).count(("granted", None)) == 1


def test_erased_file_link_says_erased(app: Any, client: Any) -> None:
    from app.files.store import erase_file

    link = make_link(app)
    with app.app_context():
        erase_file(db.session.get(VaultFile, link["file_id"]), Actor.system(), "erasure request")
        db.session.commit()
    page = client.get(link["path"])
    assert page.status_code == 410 and "erased" in page.get_data(as_text=True)


def test_issue_link_refuses_bad_settings(app: Any) -> None:
    from app.errors import InvalidInput

    with app.app_context():
        file = store_upload(io.BytesIO(b"x"), "a.txt", Actor.system(), ticket=factories.ticket())
        for kwargs, message in (
            ({"days": 0}, "between 1 and 365"),
            ({"days": 400}, "between 1 and 365"),
            ({"max_downloads": 0}, "at least 1"),
            ({"recipient_email": "not-an-address"}, "not an email"),
        ):
            with pytest.raises(InvalidInput, match=message):
                vault_links.issue_link(file, Actor.system(), **kwargs)


def test_link_issued_to_the_ticket_contact_belongs_to_that_customer(app: Any) -> None:
    with app.app_context():
        ticket = factories.ticket()
        file = store_upload(io.BytesIO(b"x"), "a.txt", Actor.system(), ticket=ticket)
        mine = vault_links.issue_link(
            file, Actor.system(), recipient_email=ticket.contact.email.upper()
        )
        other = vault_links.issue_link(
            file, Actor.system(), recipient_email="supplier@elsewhere.test"
        )
        assert mine.contact_id == ticket.contact_id and mine.recipient_email == ticket.contact.email
        assert other.contact_id is None
        assert re.fullmatch(r"[A-Za-z0-9_-]{20,}", mine.id)


def test_bulk_revocations_name_the_links_in_the_audit_row(app: Any) -> None:
    from app.models import AuditLog

    first, second = make_link(app), make_link(app)
    with app.app_context():
        officer = Actor.staff(factories.staff_user(Role.COMPLIANCE))
        assert vault_links.revoke_all(officer, "key material leaked") == 2
        assert vault_links.revoke_all(officer, "again") == 0
        db.session.commit()
        rows = db.session.scalars(
            select(AuditLog).where(AuditLog.action == "link.revoke_all").order_by(AuditLog.id)
        ).all()
        assert sorted(rows[0].details["links"]) == sorted([first["link_id"], second["link_id"]])
        assert rows[0].details["reason"] == "key material leaked"
        assert rows[1].details["count"] == 0
        # Revoking one link twice keeps the first reason and writes no second record.
        link = db.session.get(VaultLink, first["link_id"])
        assert vault_links.revoke_link(link, officer, "other reason") == 0
        assert link.revoke_reason == "key material leaked"


# -- a download in flight ---------------------------------------------------------------------

MIB = 1024 * 1024
BIG = bytes(range(256)) * (40 * MIB // 256)  # 40 MiB


def wait_for(check: Any, timeout: float = 60.0) -> None:
    """Poll until ``check()`` is true; the timeout only keeps a broken run from hanging."""
    import time

    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.05)


def browser(base: str) -> Any:
    """A urllib opener with its own cookie jar, like one browser."""
    import urllib.request
    from http.cookiejar import CookieJar

    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    opener.base = base  # type: ignore[attr-defined]
    return opener


def open_download(live_server: str, link: dict[str, Any]) -> Any:
    """Land, press Download, and return the streaming response of the grant URL (unread)."""
    from urllib.parse import urlencode

    visitor = browser(live_server)
    url = live_server + link["path"]
    token = csrf_from(visitor.open(url).read().decode())
    return visitor.open(url, data=urlencode({"csrf_token": token}).encode())


def read_all(response: Any) -> int:
    """Bytes that arrive before the server ends the body (early or not)."""
    from http.client import IncompleteRead

    received = 0
    while True:
        try:
            piece = response.read(256 * 1024)
        except IncompleteRead as cut:
            return received + len(cut.partial)
        if not piece:
            return received
        received += len(piece)


def revoke_as_officer(app: Any, live_server: str, link_id: str, make_user: Any) -> None:
    """A compliance officer signs in and revokes through the real form."""
    from urllib.parse import urlencode

    officer = make_user(Role.COMPLIANCE)
    staff = browser(live_server)
    login = staff.open(f"{live_server}/login").read().decode()
    staff.open(
        f"{live_server}/login",
        data=urlencode(
            {"email": officer.email, "password": officer.password, "csrf_token": csrf_from(login)}
        ).encode(),
    ).read()
    page = staff.open(f"{live_server}/compliance/links/{link_id}").read().decode()
    staff.open(
        f"{live_server}/compliance/links/{link_id}/revoke",
        data=urlencode(
            {"reason": "sent to the wrong customer", "csrf_token": csrf_from(page)}
        ).encode(),
    ).read()


def test_revocation_ends_a_download_in_flight(app: Any, live_server: str, make_user: Any) -> None:
    link = make_link(app, content=BIG, name="archive.zip")
    response = open_download(live_server, link)
    assert response.headers["Content-Length"] == str(len(BIG))
    first = response.read(MIB)  # the reader is slow: the server is blocked on the socket
    assert first == BIG[:MIB]
    revoke_as_officer(app, live_server, link["link_id"], make_user)
    received = len(first) + read_all(response)
    # What was in socket buffers and one check interval may still arrive, not the rest.
    assert received < 20 * MIB, received
    wait_for(lambda: events(app, link["link_id"])[-1] == ("interrupted", "revoked"))
    assert ("served", None) not in events(app, link["link_id"])


def test_a_client_that_goes_away_leaves_an_interrupted_download(app: Any, live_server: str) -> None:
    link = make_link(app, content=BIG, name="archive.zip")
    response = open_download(live_server, link)
    assert response.read(MIB) == BIG[:MIB]
    response.close()  # the browser tab is closed
    wait_for(lambda: events(app, link["link_id"])[-1] == ("interrupted", "client_gone"))


def test_a_finished_download_is_served_only_after_its_last_byte(app: Any, live_server: str) -> None:
    link = make_link(app, content=BIG, name="archive.zip")
    response = open_download(live_server, link)
    assert response.read(MIB) == BIG[:MIB]
    # Mid-way the audit says so: a crash now would leave exactly this row behind.
    assert events(app, link["link_id"])[-1] == ("interrupted", "in_progress")
    assert MIB + read_all(response) == len(BIG)
    wait_for(lambda: events(app, link["link_id"])[-1] == ("served", None))


def test_a_corrupt_chunk_ends_the_download_as_interrupted(app: Any, client: Any) -> None:
    from pathlib import Path

    from vault import CHUNK_SIZE

    link = make_link(app, content=BIG[: 4 * MIB])
    with app.app_context():
        blob_id = db.session.get(VaultFile, link["file_id"]).blob_id
    (body,) = Path(app.config["VAULT_DIR"]).rglob(f"{blob_id}.body")
    with body.open("r+b") as handle:  # one flipped bit in the third chunk
        handle.seek(2 * CHUNK_SIZE + 100)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 1]))
    target = start(client, link["path"]).headers["Location"]
    download = client.get(target)
    assert download.headers["Content-Length"] == str(4 * MIB)
    assert download.data == BIG[: 2 * CHUNK_SIZE]  # the good chunks, then the end
    assert events(app, link["link_id"])[-1] == ("interrupted", "corrupt")


def test_head_is_recorded_as_viewed_not_served(app: Any, client: Any) -> None:
    link = make_link(app, max_downloads=1)
    target = start(client, link["path"]).headers["Location"]
    head = client.head(target)
    assert head.status_code == 200 and head.data == b""
    assert head.headers["Content-Length"] == str(len(CONTENT))
    assert events(app, link["link_id"])[-1] == ("viewed", None)
    assert ("served", None) not in events(app, link["link_id"])


def test_erasure_ends_a_staff_download_in_flight(app: Any, client: Any, make_user: Any) -> None:
    """Staff downloads have no link to re-check, but an erased file stops them too."""
    from app.files.serving import CHECK_BYTES
    from app.files.store import erase_file
    from tests.conftest import sign_in

    link = make_link(app, content=BIG[: 3 * CHECK_BYTES])
    agent = make_user(Role.AGENT)
    sign_in(client, agent)
    with app.app_context():
        public_id = db.session.get(VaultFile, link["file_id"]).public_id
    response = client.get(f"/agent/tickets/{link['ticket']}/files/{public_id}")
    assert response.status_code == 200
    pieces = iter(response.response)
    received = len(next(pieces))
    with app.app_context():
        officer = Actor.staff(factories.staff_user(Role.COMPLIANCE))
        erase_file(db.session.get(VaultFile, link["file_id"]), officer, "erasure request")
        db.session.commit()
    received += sum(len(piece) for piece in pieces)
    response.close()
    assert received <= CHECK_BYTES + 64 * 1024  # at most one check interval after the erasure
    with app.app_context():
        event = db.session.scalars(select(DownloadEvent).order_by(DownloadEvent.id.desc())).first()
        assert (event.outcome, event.reason, event.user_id) == ("interrupted", "erased", agent.id)
