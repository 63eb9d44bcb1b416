"""The desk as ``scripts/run`` serves it: real gunicorn with ``app.gunicorn_config``.

These start gunicorn processes on free loopback ports with a temporary instance folder and
a real Redis, so they take seconds rather than milliseconds (marked ``gunicorn``).
"""

from __future__ import annotations

import os
import runpy
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.served import GUNICORN_CONFIG, ServedDesk, SlowDownload, grant_download, prepare_instance

pytestmark = pytest.mark.gunicorn

SLOW_CLIENTS = 10
FILE_SIZE = 20 * 1024 * 1024
# How long the sign-in page may stay silent before we call the desk stuck. A liveness
# limit, not a speed figure (bench/slow_downloads.py prints those): with every worker
# held by a download it would never answer at all.
ANSWER_TIMEOUT = 5.0


def _settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    """The config module's values under ``env``, read as gunicorn reads them (by running it)."""
    for key in [k for k in os.environ if k.startswith("VAULTDESK_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return runpy.run_module("app.gunicorn_config")


def test_threaded_workers_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(monkeypatch, VAULTDESK_INSTANCE_PATH=str(tmp_path))
    assert settings["worker_class"] == "gthread"
    assert (settings["workers"], settings["threads"]) == (2, 16)
    assert settings["bind"] == ["127.0.0.1:5000"]
    assert settings["wsgi_app"] == "app:create_app()"
    assert settings["control_socket"] == str(tmp_path / "gunicorn.ctl")
    assert settings["control_socket_disable"] is False


@pytest.mark.parametrize(
    ("value", "message"),
    [("none", "must be a whole number, not 'none'"), ("0", "must be at least 1, not 0")],
)
def test_nonsense_worker_counts_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    with pytest.raises(SystemExit, match=f"VAULTDESK_WEB_THREADS {message}"):
        _settings(monkeypatch, VAULTDESK_INSTANCE_PATH=str(tmp_path), VAULTDESK_WEB_THREADS=value)


def test_a_deep_instance_folder_switches_the_control_socket_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    settings = _settings(monkeypatch, VAULTDESK_INSTANCE_PATH=str(deep))
    assert settings["control_socket_disable"] is True


def test_gunicorn_takes_counts_and_address_from_the_environment(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VAULTDESK_")}
    env = {
        "VAULTDESK_INSTANCE_PATH": str(tmp_path),
        "VAULTDESK_WEB_WORKERS": "3",
        "VAULTDESK_WEB_THREADS": "7",
        "VAULTDESK_BIND": "127.0.0.1:5102",
    }
    done = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", GUNICORN_CONFIG, "--print-config"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    printed = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition("=")
        printed[key.strip()] = value.strip()
    assert printed["worker_class"] == "gthread"
    assert (printed["workers"], printed["threads"]) == ("3", "7")
    assert printed["bind"] == "['127.0.0.1:5102']"
    assert printed["control_socket"] == str(tmp_path / "gunicorn.ctl")


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_serving_keeps_its_control_socket_in_the_instance_and_nothing_in_home(
    tmp_path: Path, migrated_template: Path, redis_server: Any
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    instance = tmp_path / "instance"
    prepare_instance(instance, redis_server.url, file_size=10, database=migrated_template)
    # Without XDG_RUNTIME_DIR, gunicorn's own default is $HOME/.gunicorn/gunicorn.ctl.
    env = {"HOME": str(home), "XDG_RUNTIME_DIR": ""}
    with ServedDesk(instance, redis_server.url, env=env) as desk:
        assert desk.get("/login").status == 200
        control = instance / "gunicorn.ctl"
        assert control.exists() and stat.S_ISSOCK(control.stat().st_mode)
        assert stat.S_IMODE(control.stat().st_mode) == 0o600
        shown = subprocess.run(
            [str(Path(sys.executable).with_name("gunicornc")), "-s", str(control)]
            + ["-c", "show workers"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert shown.returncode == 0 and shown.stdout.count("\n") >= 2, shown
        assert _tree(home) == []
    assert _tree(home) == []
    assert not control.exists()  # a clean stop removes it


def test_sign_in_answers_while_ten_slow_downloads_stream(
    tmp_path: Path, migrated_template: Path, redis_server: Any
) -> None:
    instance = tmp_path / "instance"
    link = prepare_instance(
        instance, redis_server.url, file_size=FILE_SIZE, database=migrated_template
    )
    with ServedDesk(instance, redis_server.url) as desk:
        downloads = [
            SlowDownload(desk.url, grant_download(desk.url, link)) for _ in range(SLOW_CLIENTS)
        ]
        try:
            for download in downloads:
                download.start()
            deadline = time.monotonic() + 10
            for download in downloads:
                download.started.wait(max(0.0, deadline - time.monotonic()))
            streaming = sum(d.in_flight for d in downloads)

            for attempt in range(3):
                try:
                    answer = desk.get("/login", timeout=ANSWER_TIMEOUT)
                except TimeoutError:
                    pytest.fail(
                        f"/login did not answer within {ANSWER_TIMEOUT:.0f} s (attempt "
                        f"{attempt + 1}) while {streaming} slow downloads were streaming"
                    )
                assert answer.status == 200

            assert [(d.status, d.content_length) for d in downloads] == [
                (200, FILE_SIZE)
            ] * SLOW_CLIENTS
            # All of them were still streaming while the page answered: the test proved
            # something only if the downloads were holding their threads all along.
            assert [d.in_flight for d in downloads] == [True] * SLOW_CLIENTS, [
                (d.received, d.finished, d.error) for d in downloads
            ]
        finally:
            for download in downloads:
                download.close()
