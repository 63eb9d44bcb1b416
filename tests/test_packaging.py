"""A plain (non-editable) ``pip install .`` gives a working ``vaultdesk``.

An editable install reads templates and migrations from the checkout, so it hides a wheel
that forgot them. This builds the real wheel, installs it into a fresh virtual
environment (its dependencies borrowed from the test environment, so nothing is
downloaded) and runs the installed command from an unrelated folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import venv
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel built from this checkout; returns its bin folder."""
    work = tmp_path_factory.mktemp("packaging")
    wheels = work / "wheels"
    # A copy: setuptools leaves build/ behind and would reuse it on the next build.
    source = work / "source"
    shutil.copytree(
        REPO,
        source,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "instance", "build", "*.egg-info", "__pycache__", "tests", "bench"
        ),
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(wheels),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("vaultdesk-*.whl")
    env_dir = work / "venv"
    venv.create(env_dir, with_pip=False)
    site = Path(
        sysconfig.get_path("purelib", vars={"base": str(env_dir), "platbase": str(env_dir)})
    )
    # Dependencies come from the test environment's site-packages, appended after the
    # new environment's own, so ``app`` resolves to the installed wheel only.
    (site / "borrowed-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(env_dir / "bin" / "python"),
            "install",
            "--no-deps",
            "-q",
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    return env_dir / "bin"


def test_the_installed_command_finds_templates_migrations_and_translations(
    installed: Path, tmp_path: Path, redis_server: Any
) -> None:
    env = {
        **os.environ,
        "VAULTDESK_INSTANCE_PATH": str(tmp_path / "instance"),
        "VAULTDESK_REDIS_URL": redis_server.url,
        "PYTHONPATH": "",
    }
    upgrade = subprocess.run(
        [str(installed / "vaultdesk"), "db", "upgrade"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert upgrade.returncode == 0, upgrade.stderr[-2000:]
    probe = textwrap.dedent(
        """
        import app
        from app import create_app
        application = create_app()
        client = application.test_client()
        login = client.get("/login")
        german = client.get("/portal/login", headers={"Accept-Language": "de"})
        css = client.get("/static/css/vaultdesk.css")
        print(app.__file__)
        print(login.status_code, german.status_code, css.status_code)
        print("Anmelden" in german.get_data(as_text=True))
        """
    )
    run = subprocess.run(
        [str(installed / "python"), "-c", probe],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    location, statuses, translated = run.stdout.split("\n")[:3]
    assert str(installed.parent) in location  # the wheel, not this checkout
    assert statuses == "200 200 200"
    assert translated == "True"
