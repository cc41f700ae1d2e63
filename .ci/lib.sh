# shellcheck shell=bash
# Helpers of .ci/run (also sourced by tests/cli/test_ci.py).
#
# `stage NAME CMD...`: run one CI stage, print how long it took, and fail it on any non-zero exit.
# pytest's exit 5 ("collected no test") is a failure with its own message: a stage that tests
# nothing must never pass silently.

STAGE_TIMES=()

stage() {
  local name=$1 rc=0 start=$SECONDS took
  shift
  echo "== $name"
  "$@" || rc=$?
  took=$((SECONDS - start))
  STAGE_TIMES+=("$(printf '%6d s  %s' "$took" "$name")")
  if [ "$rc" -eq 5 ]; then
    echo "== $name FAILED after $took s: pytest collected no test (exit 5)"
    return 1
  elif [ "$rc" -ne 0 ]; then
    echo "== $name FAILED after $took s (exit $rc)"
    return 1
  fi
  echo "== $name passed in $took s"
}

stage_times() {
  echo "== stage times"
  printf '%s\n' "${STAGE_TIMES[@]}"
}

first_block_line() {  # the first line matching $1 in the README's first code block
  awk '/^```/{n++; next} n==1' README.md | grep -m1 -e "$1" || true
}

testing_block_line() {  # the first line matching $1 in the first code block of the README's Testing section
  awk '/^## /{testing = ($0 == "## Testing")} testing && /^```/{n++; next} testing && n==1' README.md \
    | grep -m1 -e "$1" || true
}
