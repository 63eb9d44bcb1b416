"""scripts/lib.sh: one line per step on the terminal, the installers' chatter in a log.

Run through real bash with ``set -euo pipefail`` as scripts/run and scripts/test use it,
because what matters is the shell's behaviour: a failing step must still stop the script.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

LIB = Path(__file__).resolve().parents[1] / "scripts" / "lib.sh"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def bash(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["bash", "-c", f"set -euo pipefail\nsource {LIB}\n{script}"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return subprocess.CompletedProcess(
        done.args, done.returncode, ANSI.sub("", done.stdout), ANSI.sub("", done.stderr)
    )


def test_a_step_shows_one_line_and_logs_the_rest(tmp_path: Path) -> None:
    done = bash(
        'step "Installing things" bash -c "echo WARNING: noise; echo more noise >&2"\necho after',
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "==> Installing things (log: instance/setup.log)",
        "after",
    ]
    assert done.stderr == ""
    log = (tmp_path / "instance" / "setup.log").read_text()
    assert "WARNING: noise" in log and "more noise" in log and "Installing things" in log


def test_a_failing_step_shows_its_own_output_and_stops_the_script(tmp_path: Path) -> None:
    done = bash(
        'step "Quiet success" echo EARLIER-OUTPUT\n'
        'step "Broken install" bash -c "echo ERROR: no such package; exit 7"\n'
        "echo not reached",
        tmp_path,
    )
    assert done.returncode == 7
    assert "not reached" not in done.stdout
    assert "!!! Broken install failed (exit 7)" in done.stderr
    assert "ERROR: no such package" in done.stderr
    assert "EARLIER-OUTPUT" not in done.stderr  # only the failing step's part of the log
    assert str(tmp_path / "instance" / "setup.log") in done.stderr


def test_a_step_failing_inside_a_function_still_fails_it(tmp_path: Path) -> None:
    """ensure_venv and need_debs run steps inside functions, sometimes in a ``||`` list
    (where bash ignores ``set -e``); their failures must come out anyway."""
    done = bash(
        'install() { step "First" false || return; echo "second step ran"; }\n'
        'install || echo "install failed with $?"',
        tmp_path,
    )
    assert "second step ran" not in done.stdout
    assert "install failed with 1" in done.stdout


def test_need_debs_does_nothing_when_all_are_installed(tmp_path: Path) -> None:
    done = bash("need_debs bash coreutils\necho done", tmp_path)
    assert done.returncode == 0 and done.stdout == "done\n" and done.stderr == ""
