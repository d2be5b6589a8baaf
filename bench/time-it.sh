# Sourced by the bench scripts: `time_it LABEL CMD...` runs CMD with its output appended to $LOG and
# prints "LABEL<TAB>seconds"; a failure prints the log's tail and exits 1.
time_it() {
  local label=$1; shift
  local s e
  s=$(date +%s.%N)
  if ! "$@" >>"$LOG" 2>&1; then echo "FAILED: $label (see $LOG)" >&2; tail -20 "$LOG" >&2; exit 1; fi
  e=$(date +%s.%N)
  printf '%s\t%.2f\n' "$label" "$(echo "$e - $s" | bc)"
}
