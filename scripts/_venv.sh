# Sourced by scripts/run and scripts/test: make .venv (Python >= 3.10) and install the project.
# NEEDS says what for: "run" installs only what running the simulator needs; "test" adds the
# test extras (pytest plugins, Playwright, Schemathesis, Hypothesis). Both share one .venv:
# a venv with the test extras also serves `run`, so run after test never reinstalls.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
NEEDS=${NEEDS:-test}
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
# The stamp is "<sha256 of pyproject.toml> <run|test>": what was installed, for which
# dependency list. Install again only when the list changed or more is needed now.
stamp=.venv/.clever-sim-installed
digest=$(.venv/bin/python -c 'import hashlib; print(hashlib.sha256(open("pyproject.toml", "rb").read()).hexdigest())')
have=$(cat "$stamp" 2>/dev/null || true)
case "$NEEDS" in
  run)  spec=.;        covered=("$digest run" "$digest test"); what="its run dependencies" ;;
  test) spec=".[test]"; covered=("$digest test"); what="its run and test dependencies" ;;
  *) echo "scripts/_venv.sh: NEEDS must be run or test, not '$NEEDS'" >&2; exit 2 ;;
esac
installed=no
for ok in "${covered[@]}"; do [ "$have" = "$ok" ] && installed=yes; done
if [ "$installed" = no ]; then
  echo "Installing clever-grade-sim and $what into .venv..." >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec"
  echo "$digest $NEEDS" > "$stamp"
fi
