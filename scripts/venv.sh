# Sourced by scripts/run and scripts/test: makes .venv (Python 3.11+) and installs mailticket into it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MAILTICKET_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
extras="${1:-}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "mailticket needs Python 3.11 or newer ($PYTHON is $("$PYTHON" --version 2>&1))" >&2
    exit 1
fi
# A venv whose making was cut short (no pip in it yet) is made again, not used half-built.
if [ -f "$VENV/pyvenv.cfg" ] && ! "$VENV/bin/python" -c 'import pip' 2>/dev/null; then
    rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.mailticket-installed$extras"
if [ ! -f "$stamp" ] || [ "$ROOT/setup.cfg" -nt "$stamp" ]; then
    echo "installing mailticket$extras into $VENV ..." >&2
    pip_log="$(mktemp)"
    if ! { "$VENV/bin/python" -m pip install --disable-pip-version-check --upgrade pip &&
           "$VENV/bin/python" -m pip install --disable-pip-version-check -e "$ROOT$extras"; } \
           >"$pip_log" 2>&1; then
        cat "$pip_log" >&2
        rm -f "$pip_log"
        echo "pip install failed (output above)" >&2
        exit 1
    fi
    rm -f "$pip_log"
    touch "$stamp"
fi
