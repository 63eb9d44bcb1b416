# Shared by scripts/run and scripts/test: install what is missing, never more.
# shellcheck shell=bash

# The installers' output (apt, venv, pip, migrations) goes here instead of the terminal,
# where its warnings buried the lines that matter; it is shown only when a step fails.
SETUP_LOG="${SETUP_LOG:-$PWD/instance/setup.log}"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# step WHAT CMD...: one progress line, CMD's output appended to $SETUP_LOG. When CMD fails,
# the end of its own output goes to stderr and step returns CMD's status, so a caller under
# `set -e` stops there as it would have without the log.
step() {
  local what="$1" start=1 status=0
  shift
  mkdir -p "$(dirname "$SETUP_LOG")"
  [ -f "$SETUP_LOG" ] && start=$(($(wc -c <"$SETUP_LOG") + 1))
  say "$what (log: ${SETUP_LOG#"$PWD/"})"
  printf '\n### %s %s\n$ %s\n' "$(date '+%F %T')" "$what" "$*" >>"$SETUP_LOG"
  "$@" >>"$SETUP_LOG" 2>&1 </dev/null || status=$?
  if [ "$status" -ne 0 ]; then
    printf '\033[1;31m!!! %s failed (exit %s). Last lines of its output:\033[0m\n' \
      "$what" "$status" >&2
    tail -c +"$start" "$SETUP_LOG" | tail -n 25 >&2
    echo "(all of it: $SETUP_LOG)" >&2
  fi
  return "$status"
}

_apt_install() {
  apt-get update -q &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

# need_debs PKG...: install the Debian packages that are not installed yet (as root),
# or say which are missing and how to get them.
need_debs() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    step "Installing Debian packages: ${missing[*]}" _apt_install "${missing[@]}"
  else
    echo "Missing Debian packages: ${missing[*]}" >&2
    echo "Install them with: sudo apt-get install ${missing[*]}" >&2
    return 1
  fi
}

_pip_install() {
  .venv/bin/python -m pip install --progress-bar off --upgrade pip &&
    .venv/bin/python -m pip install --progress-bar off -e "$1"
}

# ensure_venv [EXTRA]: a .venv with Vaultdesk installed (editable), re-installed only when
# pyproject.toml changed since the last install.
ensure_venv() {
  local extra="${1:-}" python="${PYTHON:-python3}"
  "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "Vaultdesk needs Python 3.11 or newer; $python is $("$python" --version 2>&1)." >&2
    return 1
  }
  if [ ! -x .venv/bin/python ]; then
    "$python" -c 'import ensurepip, venv' 2>/dev/null || need_debs python3-venv || return
    step "Creating .venv" "$python" -m venv .venv || return
  fi
  local target=".${extra:+[$extra]}" stamp=".venv/.vaultdesk-installed${extra:+-$extra}"
  local want
  want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    step "Installing Python packages into .venv" _pip_install "$target" || return
    echo "$want" >"$stamp"
  fi
}
