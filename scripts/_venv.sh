# Sourced by scripts/run and scripts/test: make .venv (Python >= 3.10) and install the project.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
pick_python() {
  for cand in "${PYTHON:-}" python3 python3.13 python3.12 python3.11 python3.10 python; do
    [ -n "$cand" ] || continue
    command -v "$cand" >/dev/null 2>&1 || continue
    if "$cand" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
      echo "$cand"; return 0
    fi
  done
  echo "clever-sim needs Python 3.10 or newer; none found on PATH (set PYTHON=/path/to/python3)" >&2
  return 1
}
if [ ! -x .venv/bin/python ]; then
  py=$(pick_python)
  echo "Creating .venv with $($py --version)..." >&2
  "$py" -m venv .venv
fi
# Reinstall only when the project's dependency list changed.
stamp=.venv/.clever-sim-installed
want=$(cat pyproject.toml | .venv/bin/python -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')-${EXTRAS:-test}
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "Installing clever-grade-sim and its ${EXTRAS:-test} dependencies into .venv..." >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[${EXTRAS:-test}]"
  echo "$want" > "$stamp"
fi
