# Shared by scripts/run and scripts/test: install what is missing, never more.
# shellcheck shell=bash

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# need_debs PKG...: install the Debian packages that are not installed yet (as root),
# or say which are missing and how to get them.
need_debs() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    say "Installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "Missing Debian packages: ${missing[*]}" >&2
    echo "Install them with: sudo apt-get install ${missing[*]}" >&2
    return 1
  fi
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
    "$python" -c 'import ensurepip, venv' 2>/dev/null || need_debs python3-venv
    say "Creating .venv"
    "$python" -m venv .venv
  fi
  local target=".${extra:+[$extra]}" stamp=".venv/.vaultdesk-installed${extra:+-$extra}"
  local want; want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    say "Installing Python packages into .venv"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e "$target"
    echo "$want" > "$stamp"
  fi
}
