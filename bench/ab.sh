#!/usr/bin/env bash
# bench/ab.sh REV_A REV_B: ancmd's own CPU per proxied request at two
# revisions, in one run: both builds serve the same small-response backend
# (bench/backend), and wrk -t2 -c64 -d5s runs against each in turn, 3
# rounds; the CPU is ancmd's utime+stime from /proc over each run, divided
# by the requests wrk counted. Metrics are off (no metrics_listen).
#
#   ./bench/ab.sh 9853211 HEAD
set -euo pipefail
A=${1:?usage: bench/ab.sh REV_A REV_B}
B=${2:?usage: bench/ab.sh REV_A REV_B}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ancm-ab.XXXXXX")
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	git -C "$ROOT" worktree remove --force "$TMP/a" 2>/dev/null || true
	git -C "$ROOT" worktree remove --force "$TMP/b" 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT
command -v wrk >/dev/null || { echo "ab: wrk is needed (Debian package wrk)" >&2; exit 1; }
git -C "$ROOT" worktree add -q --detach "$TMP/a" "$A"
git -C "$ROOT" worktree add -q --detach "$TMP/b" "$B"
(cd "$TMP/a" && go build -o "$TMP/bin-a/" ./cmd/ancmd)
(cd "$TMP/b" && go build -o "$TMP/bin-b/" ./cmd/ancmd ./bench/backend)

start() { # start NAME PORT: an ancmd of build NAME with the backend as its app
	local dir=$TMP/st-$1
	mkdir -p "$dir"
	printf 'listen = "127.0.0.1:%s"\ncontrol = "unix://%s/ancm.sock"\nstate_dir = "%s"\nlog_level = "warn"\napp "b" {\n  command = "%s"\n}\n' \
		"$2" "$dir" "$dir" "$TMP/bin-b/backend" >"$dir/ancm.hcl"
	"$TMP/bin-$1/ancmd" serve -c "$dir/ancm.hcl" >"$dir/log" 2>&1 &
	PIDS+=($!)
	echo $!
}
free() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PA=$(free); PB=$(free)
A_PID=$(start a "$PA"); B_PID=$(start b "$PB")
for p in "$PA" "$PB"; do
	for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$p/" && break; sleep 0.1; done
done
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
tck=$(getconf CLK_TCK)
for round in 1 2 3; do
	for x in "a $A_PID $PA $A" "b $B_PID $PB $B"; do
		set -- $x
		t0=$(ticks "$2")
		n=$(wrk -t2 -c64 -d5s "http://127.0.0.1:$3/" 2>/dev/null | awk '/requests in/ { print $1 }')
		t1=$(ticks "$2")
		awk -v t=$((t1 - t0)) -v n="$n" -v hz="$tck" -v rev="$4" -v r="$round" \
			'BEGIN { printf "round %d  %-10s %6.2f us of CPU per request (%d requests)\n", r, rev, t * 1e6 / hz / n, n }'
	done
done
