#!/usr/bin/env bash
# Create .venv and install the project with its test extra; does nothing when pyproject.toml has not
# changed since the last install. Prints the venv's bin directory.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${CCM_VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "[venv] error: Python 3.11 or newer is needed ($PYTHON is $("$PYTHON" --version 2>&1)); set PYTHON" >&2; exit 1; }
stamp=$VENV/.installed-$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "[venv] installing the project and its test tools into $VENV" >&2
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >&2
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT[test]" >&2
  rm -f "$VENV"/.installed-* && touch "$stamp"
fi
echo "$VENV/bin"
