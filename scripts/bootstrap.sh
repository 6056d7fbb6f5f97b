# Shared set-up for scripts/demo and scripts/test: a Python 3.11+ venv in .venv.
# Sourced, not run. Honors $MAILDESK_VENV (default .venv in the repository).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MAILDESK_VENV:-$ROOT/.venv}"

apt_install() {
  # Install Debian packages when we are root and they are missing.
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "note: not root, cannot install ${missing[*]}; tests needing them will be skipped" >&2
    return 0
  fi
  echo "installing ${missing[*]} (apt)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

find_python() {
  # Each candidate is run, quietly: a pyenv shim is found on PATH even for a version that
  # is not selected, and then fails with its own message.
  local py
  for py in python3.13 python3.12 python3.11 python3; do
    if "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
      echo "$py"; return 0
    fi
  done
  echo "maildesk needs Python 3.11 or newer" >&2; return 1
}

make_venv() {
  # pip, not python: a venv made without ensurepip has a python but cannot install.
  if [ ! -x "$VENV/bin/pip" ]; then
    local py; py="$(find_python)"
    "$py" -m venv "$VENV" 2>/dev/null || { apt_install python3-venv; "$py" -m venv "$VENV"; }
  fi
}

pip_install() {
  # pip's progress and warnings stay out of the user's way; if it fails, all of it is shown.
  local log status=0
  log="$(mktemp)"
  "$VENV/bin/pip" install --disable-pip-version-check --no-input "$@" >"$log" 2>&1 || status=$?
  if [ "$status" != 0 ]; then
    cat "$log" >&2
    echo "pip install $* failed (exit $status); its output is above" >&2
  fi
  rm -f "$log"
  return "$status"
}
