# Run metadata for the shell benchmark scripts; source it, then:
#
#   runmeta_init "$@"        # refuses a dirty tree unless --allow-dirty is among
#                            # the arguments or ALLOW_DIRTY=1; exports RUNMETA
#                            # (commit, dirty, machine, start time) for this run
#                            # and for the Rust bench binaries it starts
#   runmeta_json FILE LINE   # appends LINE (a JSON object) to FILE with "runmeta"
#                            # added: RUNMETA + the load average and time now
#
# Both go through runmeta.py, the one implementation (see its docstring for
# the fields). Lines that already carry "runmeta" (written by a Rust bench
# binary) are appended as they are.
RUNMETA_PY="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/runmeta.py"

runmeta_init() {
  local arg allow=()
  for arg in "$@"; do
    [ "$arg" = --allow-dirty ] && allow=(--allow-dirty)
  done
  RUNMETA=$(python3 "$RUNMETA_PY" static "${allow[@]}") || exit $?
  export RUNMETA
  if [ "$(python3 -c 'import json, os; print(json.loads(os.environ["RUNMETA"])["dirty"])')" = True ]; then
    echo "runmeta: the tree is dirty; every result line records dirty=true and the paths" >&2
  fi
}

runmeta_json() { # file line
  printf '%s\n' "$2" | python3 "$RUNMETA_PY" stamp >> "$1"
}
