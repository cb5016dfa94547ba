#!/usr/bin/env bash
# bench/isolation.sh: what a cgroup and limits add to a cold start (the
# first request to an idle on_demand app), as root on this host.
#
#   bench/isolation.sh [BASE_REV]   # BASE_REV: a revision without the sandbox
#
# Builds ancmd at HEAD and, when BASE_REV is given, at BASE_REV (from git
# archive, in a temporary directory), and measures, interleaved, samples
# of: the base ancmd with a plain app; HEAD with a plain app (its own
# cgroup, no limits); HEAD with limits { memory, cpu, pids, open_files }.
# Prints the median and the spread of each, in ms.
#
#   BENCH_SAMPLES  samples per variant (default 30)
set -euo pipefail
SAMPLES=${BENCH_SAMPLES:-30}
BASE=${1:-}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ancm-iso.XXXXXX")
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do
		for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	done
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

(cd "$ROOT" && go build -o "$TMP/head/" ./cmd/ancmd ./cmd/ancmctl ./bench/backend ./bench/probe)
VARIANTS=(head-plain head-limits)
if [[ -n $BASE ]]; then
	mkdir -p "$TMP/src"
	(cd "$ROOT" && git archive "$BASE") | tar -x -C "$TMP/src"
	(cd "$TMP/src" && go build -o "$TMP/base/" ./cmd/ancmd)
	VARIANTS=(base-plain "${VARIANTS[@]}")
fi

start_daemon() { # start_daemon NAME BIN
	local dir=$TMP/$1 port
	mkdir -p "$dir"
	port=$("$TMP/head/probe" freeport)
	printf 'listen = "127.0.0.1:%s"\ncontrol = "unix://%s/ancm.sock"\nstate_dir = "%s"\nlog_level = "warn"\n' "$port" "$dir" "$dir" >"$dir/ancm.hcl"
	"$2/ancmd" serve -c "$dir/ancm.hcl" >"$dir/out" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 100); do [[ -S $dir/ancm.sock ]] && break; sleep 0.05; done
	echo "127.0.0.1:$port" >"$dir/addr"
}
[[ -z $BASE ]] || start_daemon base-plain "$TMP/base"
start_daemon head "$TMP/head"

app() { # app NAME LIMITS
	printf 'app "%s" {\n  command = "%s"\n  path_prefix = "/%s"\n%s}\n' "$1" "$TMP/head/backend" "$1" "$2"
}
LIMITS='  limits {
    memory     = "512MB"
    cpu        = 1.5
    pids       = 512
    open_files = 16384
  }
'
for i in $(seq "$SAMPLES"); do
	for v in "${VARIANTS[@]}"; do
		d=$TMP/head
		[[ $v != base-plain ]] || d=$TMP/base-plain
		limits=
		[[ $v == head-limits ]] && limits=$LIMITS
		app "$v$i" "$limits" >"$TMP/$v$i.hcl"
		"$TMP/head/ancmctl" --addr "unix://$d/ancm.sock" apply -f "$TMP/$v$i.hcl" >/dev/null
		sleep 0.2
		"$TMP/head/probe" cold "http://$(cat "$d/addr")/$v$i" >>"$TMP/res.$v"
		"$TMP/head/ancmctl" --addr "unix://$d/ancm.sock" delete "$v$i" >/dev/null
	done
done
for v in "${VARIANTS[@]}"; do
	sort -g "$TMP/res.$v" | awk -v v="$v" '{ x[n++] = $1 } END { printf "%-12s median %.2f ms  p25 %.2f  p75 %.2f  (n=%d)\n", v, (n % 2) ? x[int(n/2)] : (x[n/2-1] + x[n/2]) / 2, x[int(n/4)], x[int(3*n/4)], n }'
done
