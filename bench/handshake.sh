#!/usr/bin/env bash
# bench/handshake.sh [REV...]: new TLS connections per second (wrk -c16
# -H 'Connection: close', a full handshake per request, as in bench/run.sh)
# through nginx and ancmd with the same ECDSA P-256 certificate, in
# interleaved rounds, with the CPU each process spent per request.
#
# Targets: nginx with its defaults (nginx 1.22's ssl_protocols stop at
# TLSv1.2, so wrk's connections are TLS 1.2), nginx13 (the same server with
# ssl_protocols TLSv1.2 TLSv1.3: TLS 1.3, as ancmd negotiates with wrk),
# ancmd built from the working tree, the same with max_version = "1.2"
# (ancmd12: TLS 1.2, as nginx's defaults), and ancmd at each REV given (built
# from `git archive REV`). wrk resumes its session on each reconnection
# (OpenSSL's SSL_clear keeps it): TLS 1.2 resumption does no key exchange,
# TLS 1.3's does an X25519 exchange (psk_dhe_ke). Each run prints req/s, then the
# CPU (utime+stime from /proc, over the run, divided by wrk's requests)
# of the server (nginx: its workers), of the backend and of wrk itself.
#
#   BENCH_DURATION (default 5s), BENCH_ROUNDS (default 3); HS_STRACE=1
#   first prints wrk's system calls per request against each target
#   ./bench/handshake.sh              nginx against the working tree
#   ./bench/handshake.sh f9c4a66      ... and against f9c4a66 too
set -euo pipefail
DUR=${BENCH_DURATION:-5s}
ROUNDS=${BENCH_ROUNDS:-3}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/nginx.sh
. "$ROOT/bench/nginx.sh"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ancm-hs.XXXXXX")
chmod 755 "$TMP"
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
for c in wrk openssl curl; do command -v $c >/dev/null || { echo "handshake: $c is needed" >&2; exit 1; }; done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[[ -x $NGINX ]] || { echo "handshake: nginx is needed" >&2; exit 1; }

(cd "$ROOT" && go build -o "$TMP/bin/" ./cmd/ancmd ./bench/backend ./bench/probe)
# ancmd12: the working tree's ancmd with max_version = "1.2", which
# negotiates with wrk what nginx's defaults do.
BUILDS=(ancmd ancmd12)
for rev in "$@"; do
	mkdir -p "$TMP/src-$rev"
	git -C "$ROOT" archive "$rev" | tar -x -C "$TMP/src-$rev"
	(cd "$TMP/src-$rev" && go build -o "$TMP/bin-$rev/" ./cmd/ancmd)
	BUILDS+=("ancmd@$rev")
done
port() { "$TMP/bin/probe" freeport; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench.local \
	-addext subjectAltName=DNS:bench.local,IP:127.0.0.1 -keyout "$TMP/tls.key" -out "$TMP/tls.crt" 2>/dev/null
chmod 644 "$TMP/tls.key"

P_BACKEND=$(port)
"$TMP/bin/backend" -addr "127.0.0.1:$P_BACKEND" 2>"$TMP/backend.log" &
BACKEND_PID=$!
PIDS+=("$BACKEND_PID")

declare -A URL SERVER
P=$(port)
P13=$(port)
nginx_conf "$TMP/nginx" "$P_BACKEND" "$(nginx_tls_server "$P" "$TMP/tls.crt" "$TMP/tls.key")
$(nginx_tls_server "$P13" "$TMP/tls.crt" "$TMP/tls.key" "TLSv1.2 TLSv1.3")"
"$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/logs/error.log" &
SERVER[nginx]=$!
PIDS+=("${SERVER[nginx]}")
URL[nginx]="https://127.0.0.1:$P/"
SERVER[nginx13]=${SERVER[nginx]}
URL[nginx13]="https://127.0.0.1:$P13/"

for b in "${BUILDS[@]}"; do
	bin=$TMP/bin/ancmd
	[[ $b == ancmd@* ]] && bin=$TMP/bin-${b#ancmd@}/ancmd
	extra=
	[[ $b == ancmd12 ]] && extra='max_version = "1.2"'
	P=$(port)
	dir=$TMP/st-$b
	mkdir -p "$dir"
	# The app is the backend already running, as a static upstream would
	# be for nginx: ancmd's own instance of it would add a process.
	cat >"$dir/ancm.hcl" <<EOF
listen    = "127.0.0.1:$(port)"
control   = "unix://$dir/ancm.sock"
state_dir = "$dir/state"
log_level = "warn"
https {
  listen = "127.0.0.1:$P"
  certificate {
    cert_file = "$TMP/tls.crt"
    key_file  = "$TMP/tls.key"
  }
  $extra
}
app "bench" {
  command     = "$TMP/bin/backend"
  path_prefix = "/"
  start       = "eager"
}
EOF
	"$bin" serve -c "$dir/ancm.hcl" >"$dir/log" 2>&1 &
	SERVER[$b]=$!
	PIDS+=("${SERVER[$b]}")
	URL[$b]="https://127.0.0.1:$P/"
done

TARGETS=(nginx nginx13 "${BUILDS[@]}")
for t in "${TARGETS[@]}"; do
	for _ in $(seq 200); do
		[[ $(curl -sk -o /dev/null -w '%{http_code}' --max-time 2 "${URL[$t]}" || true) == 200 ]] && break
		sleep 0.05
	done
done

# self PID: utime+stime of the process; tree PID: with its children
# (nginx's workers, ancmd's instance of the backend).
self() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
tree() {
	local s q
	s=$(self "$1")
	for q in $(cat /proc/"$1"/task/*/children 2>/dev/null); do s=$((s + $(self "$q" 2>/dev/null || echo 0))); done
	echo "$s"
}
HZ=$(getconf CLK_TCK)

for t in "${TARGETS[@]}"; do
	hp=${URL[$t]#https://}
	printf '%-16s %s\n' "$t" "$(openssl s_client -connect "${hp%/}" -brief </dev/null 2>&1 |
		awk -F': *' '/^Protocol version/ { v = $2 } /^Ciphersuite/ { c = $2 } /^Server Temp Key/ { k = $2 } END { print v, c, k }')"
done
for t in "${TARGETS[@]}"; do timeout 30 wrk -d 1s -c 16 -t 2 -H 'Connection: close' "${URL[$t]}" >/dev/null; done
if [[ -n ${HS_STRACE:-} ]]; then
	# wrk's system calls per request against each target (strace -c over
	# a 2 s run; strace slows wrk, so only the counts mean anything).
	for t in "${TARGETS[@]}"; do
		timeout 60 strace -f -c -o "$TMP/strace.$t" wrk --timeout 2s -d 2s -c 16 -t 2 -H 'Connection: close' "${URL[$t]}" >"$TMP/wrk.strace.$t" 2>&1
		n=$(awk '/requests in/ { print $1 }' "$TMP/wrk.strace.$t")
		echo "$t: wrk's calls per request ($n requests)"
		awk -v n="$n" '$NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ && $NF != "total" { printf "  %-14s %6.2f\n", $NF, $4 / n }' "$TMP/strace.$t" | sort -k2 -rn | head -8
	done
fi
printf '%-16s %9s %12s %12s %12s\n' target req/s 'server µs' 'backend µs' 'wrk µs'
for round in $(seq "$ROUNDS"); do
	for t in "${TARGETS[@]}"; do
		srv=${SERVER[$t]}
		if [[ $t == nginx* ]]; then
			s0=$(tree "$srv"); b0=$(self "$BACKEND_PID")
		else
			s0=$(self "$srv"); b0=$(($(tree "$srv") - s0))
		fi
		out=$TMP/wrk.$t.$round
		/usr/bin/time -f '%U %S' -o "$TMP/time" timeout 60 wrk --timeout 2s -d "$DUR" -c 16 -t 2 \
			-H 'Connection: close' "${URL[$t]}" >"$out" 2>&1
		if [[ $t == nginx* ]]; then
			s1=$(tree "$srv"); b1=$(self "$BACKEND_PID")
		else
			s1=$(self "$srv"); b1=$(($(tree "$srv") - s1))
		fi
		n=$(awk '/requests in/ { print $1 }' "$out")
		rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
		if grep -q -e 'Non-2xx' -e 'Socket errors' "$out"; then
			echo "warning: $t: $(grep -e 'Non-2xx' -e 'Socket errors' "$out" | tr -s ' ' | paste -sd ';')" >&2
		fi
		srvt=$((s1 - s0))
		awk -v t="$t" -v rps="$rps" -v n="$n" -v s="$srvt" -v b=$((b1 - b0)) -v hz="$HZ" -v w="$(cat "$TMP/time")" 'BEGIN {
			split(w, u, " ")
			printf "%-16s %9.0f %12.1f %12.1f %12.1f\n", t, rps, s * 1e6 / hz / n, b * 1e6 / hz / n, (u[1] + u[2]) * 1e6 / n }'
	done
done
