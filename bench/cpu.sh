#!/usr/bin/env bash
# bench/cpu.sh [REV...]: the server's own CPU per request under
# h2load -c 64 -m 1 -t 2 (HTTP/2 over TLS, small answers), for nginx and
# for ancmd built at each REV (default HEAD), in one run, 2 rounds. The
# CPU is the server's utime+stime from /proc over the run (nginx: its
# workers), divided by the requests h2load counted; the backend's and the
# client's are printed beside it, and the share of the machine's CPU time
# left idle. CPU_WRK=1 runs wrk -t2 -c64 (HTTP/1.1 over TLS) instead;
# CPU_METRICS=1 sets ancmd's metrics_listen, as bench/run.sh does.
#
#   ./bench/cpu.sh 28eb07b HEAD
#   CPU_WRK=1 ./bench/cpu.sh HEAD
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/nginx.sh
. "$ROOT/bench/nginx.sh"
REVS=("$@")
[[ ${#REVS[@]} -gt 0 ]] || REVS=(HEAD)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ancm-cpu.XXXXXX")
chmod 755 "$TMP"
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	for i in "${!REVS[@]}"; do git -C "$ROOT" worktree remove --force "$TMP/src$i" 2>/dev/null || true; done
	rm -rf "$TMP"
}
trap cleanup EXIT
for t in h2load wrk; do command -v $t >/dev/null || { echo "cpu: $t is needed (Debian packages nghttp2-client, wrk)" >&2; exit 1; }; done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

for i in "${!REVS[@]}"; do
	git -C "$ROOT" worktree add -q --detach "$TMP/src$i" "${REVS[$i]}"
	(cd "$TMP/src$i" && go build -o "$TMP/bin$i/" ./cmd/ancmd)
done
(cd "$ROOT" && go build -o "$TMP/" ./bench/backend ./bench/probe)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench.local \
	-addext subjectAltName=IP:127.0.0.1 -keyout "$TMP/tls.key" -out "$TMP/tls.crt" 2>/dev/null
chmod 644 "$TMP/tls.key"
read -r PB PN PA PT PM <<<"$("$TMP/probe" freeport 5 | tr '\n' ' ')"
"$TMP/backend" -addr "127.0.0.1:$PB" 2>/dev/null &
PIDS+=($!)
nginx_conf "$TMP/nginx" "$PB" "$(nginx_tls_server "$PN" "$TMP/tls.crt" "$TMP/tls.key" "TLSv1.2 TLSv1.3")"
"$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/logs/error.log" &
NP=$!
PIDS+=("$NP")
mkdir -p "$TMP/state"
cat >"$TMP/ancm.hcl" <<EOF
listen    = "127.0.0.1:$PA"
control   = "unix://$TMP/ancm.sock"
state_dir = "$TMP/state"
log_level = "warn"
app "b" {
  command = "$TMP/backend"
}
https {
  listen = "127.0.0.1:$PT"
  certificate {
    cert_file = "$TMP/tls.crt"
    key_file  = "$TMP/tls.key"
  }
}
EOF
[[ -z ${CPU_METRICS:-} ]] || echo "metrics_listen = \"127.0.0.1:$PM\"" >>"$TMP/ancm.hcl"
for _ in $(seq 100); do curl -sk -o /dev/null "https://127.0.0.1:$PN/" && break; sleep 0.1; done

ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat"))); done; echo "$t"; }
idle() { awk '/^cpu / { print $5 + $6; exit }' /proc/stat; }
tck=$(getconf CLK_TCK)
run() { # run NAME URL BACKEND_PID PID...: one load, the CPU of the PIDs, of the backend and of the client over it
	local name=$1 url=$2 bp=$3 t0 t1 b0 b1 i0 i1 n c out
	shift 3
	out=$TMP/client.out
	t0=$(ticks "$@") b0=$(ticks "$bp") i0=$(idle)
	if [[ -n ${CPU_WRK:-} ]]; then
		/usr/bin/time -f '%U %S' -o "$TMP/client.time" wrk -t2 -c64 -d5s "$url" >"$out" 2>/dev/null
		n=$(awk '/requests in/ { print $1 }' "$out")
	else
		/usr/bin/time -f '%U %S' -o "$TMP/client.time" h2load -c 64 -m 1 -t 2 -D 5 "$url" >"$out" 2>/dev/null
		n=$(awk '/^requests:/ { print $8 }' "$out")
	fi
	t1=$(ticks "$@") b1=$(ticks "$bp") i1=$(idle)
	c=$(awk '{ print $1 + $2 }' "$TMP/client.time")
	awk -v t=$((t1 - t0)) -v b=$((b1 - b0)) -v i=$((i1 - i0)) -v c="$c" -v n="$n" -v hz="$tck" -v cpus="$(nproc)" -v name="$name" \
		'BEGIN { printf "%-10s %8d req  server %6.2f  backend %6.2f  client %6.2f us/req  idle %4.1f%%\n", name, n, t * 1e6 / hz / n, b * 1e6 / hz / n, c * 1e6 / n, i * 100 / hz / 5 / cpus }'
}
for round in 1 2; do
	echo "round $round"
	# shellcheck disable=SC2046
	run nginx "https://127.0.0.1:$PN/" "${PIDS[0]}" $(pgrep -P "$NP")
	for i in "${!REVS[@]}"; do
		"$TMP/bin$i/ancmd" serve -c "$TMP/ancm.hcl" >"$TMP/ancmd.log" 2>&1 &
		AP=$!
		for _ in $(seq 100); do curl -sk -o /dev/null "https://127.0.0.1:$PT/" && break; sleep 0.1; done
		run "${REVS[$i]}" "https://127.0.0.1:$PT/" "$(pgrep -P "$AP" -x backend)" "$AP"
		kill "$AP"
		wait "$AP" 2>/dev/null || true
	done
done
