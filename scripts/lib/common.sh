# shellcheck shell=bash
# Helpers shared by scripts/*.sh. Source it first:
#   source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# It sets NN_ROOT to the repository root and changes into it, so the scripts
# work from any directory. It also brings in services.sh (nn_log and the
# throwaway PostgreSQL / nats-server helpers).

NN_SCRIPT="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
NN_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export NN_ROOT
cd "$NN_ROOT" || exit 1

# shellcheck source=services.sh source-path=SCRIPTDIR
source "$NN_ROOT/scripts/lib/services.sh"

nn_die() {
  nn_log "error: $*"
  exit 1
}

# nn_need_int OPTION MIN VALUE...: dies unless every VALUE is a whole number
# of at least MIN (0 or 1), naming OPTION.
nn_need_int() {
  local option=$1 min=$2 v
  shift 2
  for v in "$@"; do
    if ! [[ $v =~ ^(0|[1-9][0-9]*)$ ]] || [ "$v" -lt "$min" ]; then
      nn_die "$option: '$v' is not $([ "$min" = 0 ] && echo "a non-negative" || echo "a positive") integer (see --help)"
    fi
  done
}

# nn_need_number OPTION VALUE: dies unless VALUE is a positive decimal number.
nn_need_number() {
  if ! [[ $2 =~ ^[0-9]*\.?[0-9]+$ ]] || ! awk -v x="$2" 'BEGIN { exit !(x > 0) }'; then
    nn_die "$1: '$2' is not a positive number (see --help)"
  fi
}

# Prints the comment block at the top of the running script, then exits 0.
nn_usage() {
  sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$NN_SCRIPT"
  exit 0
}

# Prints seconds as e.g. "3m07s".
nn_duration() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# nn_on_exit CMD: runs CMD when the script exits, also on error, Ctrl-C or
# SIGTERM (exiting 130 / 143 then).
nn_on_exit() {
  # shellcheck disable=SC2064  # $1 is the command to run, taken now
  trap "$1" EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}
