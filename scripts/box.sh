# shellcheck shell=bash
# Sourced by the GPU scripts. box SECONDS NAME COMMAND...: run COMMAND for at most SECONDS (0: skip it),
# interrupted (SIGINT, so that it saves what finished) when the box ends, and say how it ended.
box() {
    local s=$1 name=$2
    shift 2
    if [ "$s" -le 0 ]; then echo "== $name: skipped (box 0)"; return; fi
    echo "== $name: box $s s"
    local t0=$SECONDS
    timeout --signal=INT --kill-after=10 "$s" "$@"
    echo "== $name: exit $? after $((SECONDS - t0)) s"
}
