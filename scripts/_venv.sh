# Sourced by scripts/run and scripts/test: make .venv (Python >= 3.10) and install the project.
# NEEDS says what for: "run" installs only what running the simulator needs; "test" adds the
# test extras (pytest plugins, Playwright, Schemathesis, Hypothesis). Both share one .venv:
# a venv with the test extras also serves `run`, so run after test never reinstalls.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
NEEDS=${NEEDS:-test}
# Every problem here is one line on stderr and exit 2, as for clever-sim's own commands.
fail() { echo "scripts/$(basename "$0"): $*" >&2; exit 2; }
# The version of interpreter $1 ("3.9.18"); exit status 0 only when it is 3.10 or newer.
python_version() {
  "$1" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3]); sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null
}
pick_python() {
  if [ -n "${PYTHON:-}" ]; then  # asked for by name: that one or none, never a silent other
    command -v "$PYTHON" >/dev/null 2>&1 || fail "PYTHON=$PYTHON: no such interpreter"
    local v; v=$(python_version "$PYTHON") \
      || fail "PYTHON=$PYTHON is Python ${v:-of an unknown version}; clever-sim needs 3.10 or newer"
    echo "$PYTHON"; return 0
  fi
  for cand in python3 python3.13 python3.12 python3.11 python3.10 python; do
    command -v "$cand" >/dev/null 2>&1 || continue
    if python_version "$cand" >/dev/null; then
      echo "$cand"; return 0
    fi
  done
  fail "clever-sim needs Python 3.10 or newer; none found on PATH (set PYTHON=/path/to/python3)"
}
if [ ! -x .venv/bin/python ]; then
  py=$(pick_python) || exit 2
  echo "Creating .venv with $($py --version)..." >&2
  "$py" -m venv .venv
elif ! have_version=$(python_version .venv/bin/python); then  # e.g. made earlier by hand
  fail ".venv is Python ${have_version:-of an unknown version}; clever-sim needs 3.10 or newer:" \
       "remove it (rm -rf .venv) and run again (PYTHON=/path/to/python3 picks the interpreter)"
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
