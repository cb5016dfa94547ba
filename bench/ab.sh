#!/usr/bin/env bash
# bench/ab.sh REV_A REV_B: ancmd's own CPU per proxied request at two
# revisions, in one run: both builds serve the same small-response backend
# (bench/backend), and wrk -t2 -c64 -d5s runs against each in turn, 3
# rounds; the CPU is ancmd's utime+stime from /proc over each run, divided
# by the requests wrk counted. Metrics are off (no metrics_listen).
# AB_TLS=1 runs the same load over TLS (an https listener with a
# self-signed ECDSA P-256 certificate, keep-alive connections).
#
#   ./bench/ab.sh 9853211 HEAD
#   AB_TLS=1 ./bench/ab.sh f9c4a66 HEAD
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

TLS=${AB_TLS:-}
if [[ -n $TLS ]]; then
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench.local \
		-addext subjectAltName=IP:127.0.0.1 -keyout "$TMP/tls.key" -out "$TMP/tls.crt" 2>/dev/null
fi
start() { # start NAME PORT: an ancmd of build NAME with the backend as its app
	local dir=$TMP/st-$1
	mkdir -p "$dir"
	printf 'listen = "127.0.0.1:%s"\ncontrol = "unix://%s/ancm.sock"\nstate_dir = "%s"\nlog_level = "warn"\napp "b" {\n  command = "%s"\n}\n' \
		"$2" "$dir" "$dir" "$TMP/bin-b/backend" >"$dir/ancm.hcl"
	if [[ -n $TLS ]]; then
		printf 'https {\n  listen = "127.0.0.1:%s"\n  certificate {\n    cert_file = "%s"\n    key_file  = "%s"\n  }\n}\n' \
			"$3" "$TMP/tls.crt" "$TMP/tls.key" >>"$dir/ancm.hcl"
	fi
	"$TMP/bin-$1/ancmd" serve -c "$dir/ancm.hcl" >"$dir/log" 2>&1 &
	echo $!
}
# Ports below the ephemeral range, which outgoing connections draw from
# (bench/probe's freeport).
(cd "$ROOT" && go build -o "$TMP/" ./bench/probe)
read -r PA PB TA TB <<<"$("$TMP/probe" freeport 4 | tr '\n' ' ')"
# start runs in a command substitution's subshell: its PIDS+= is lost
# there, so the daemons are recorded here for cleanup.
A_PID=$(start a "$PA" "$TA"); B_PID=$(start b "$PB" "$TB")
PIDS+=("$A_PID" "$B_PID")
URL_A=http://127.0.0.1:$PA/ URL_B=http://127.0.0.1:$PB/
if [[ -n $TLS ]]; then URL_A=https://127.0.0.1:$TA/ URL_B=https://127.0.0.1:$TB/; fi
for u in "$URL_A" "$URL_B"; do
	for _ in $(seq 100); do curl -sk -o /dev/null "$u" && break; sleep 0.1; done
done
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
tck=$(getconf CLK_TCK)
for round in 1 2 3; do
	for x in "a $A_PID $URL_A $A" "b $B_PID $URL_B $B"; do
		set -- $x
		t0=$(ticks "$2")
		n=$(wrk -t2 -c64 -d5s "$3" 2>/dev/null | awk '/requests in/ { print $1 }')
		t1=$(ticks "$2")
		awk -v t=$((t1 - t0)) -v n="$n" -v hz="$tck" -v rev="$4" -v r="$round" \
			'BEGIN { printf "round %d  %-10s %6.2f us of CPU per request (%d requests)\n", r, rev, t * 1e6 / hz / n, n }'
	done
done
