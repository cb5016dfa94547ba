#!/usr/bin/env bash
# bench/run.sh: ancmd's proxy against nginx and against the backend alone,
# plus ancmd's own costs (memory, cold start, crash recovery, routing
# updates). See bench/README.md. Results go to stdout and docs/benchmarks.md.
#
#   BENCH_DURATION  length of each wrk run (default 5s)
#   BENCH_ROUNDS    rounds of every load over every target (default 3)
#   BENCH_SAMPLES   samples of cold start, crash and routing (default 5)
#   BENCH_OUT       the markdown file to update (default docs/benchmarks.md)
set -euo pipefail

DUR=${BENCH_DURATION:-5s}
ROUNDS=${BENCH_ROUNDS:-3}
SAMPLES=${BENCH_SAMPLES:-5}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/nginx.sh
. "$ROOT/bench/nginx.sh"
OUT=${BENCH_OUT:-$ROOT/docs/benchmarks.md}

log() { printf '%s bench: %s\n' "$(date +%T)" "$*" >&2; }
die() { log "$*"; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/ancm-bench.XXXXXX")
chmod 755 "$TMP" # nginx workers run as nobody and buffer to $TMP/nginx
BIN=$TMP/bin
PIDS=()
SAMPLER=

cleanup() {
	local rc=$? p
	trap - EXIT INT TERM
	[[ -z $SAMPLER ]] || kill "$SAMPLER" 2>/dev/null || true
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do
		for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	if [[ $rc -ne 0 && -f $TMP/ancmd.log ]]; then
		log "ancmd log tail:"; tail -n 20 "$TMP/ancmd.log" >&2
	fi
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- tools ---------------------------------------------------------------
if ! command -v wrk >/dev/null || ! command -v h2load >/dev/null || ! { command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]]; }; then
	log "installing wrk, h2load and nginx"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nghttp2-client nginx >/dev/null
fi
command -v openssl >/dev/null || die "openssl is needed"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
command -v curl >/dev/null || die "curl is needed"

log "building into $BIN"
(cd "$ROOT" && go build -o "$BIN/" ./cmd/ancmd ./cmd/ancmctl ./bench/backend ./bench/probe)
probe() { "$BIN/probe" "$@"; }
ctl() { "$BIN/ancmctl" --addr "unix://$TMP/ancm.sock" "$@"; }

# wait_200k URL: wait_200 for an https URL with the bench's own certificate.
wait_200k() {
	for _ in $(seq 200); do
		[[ $(curl -sk -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true) == 200 ]] && return 0
		sleep 0.05
	done
	die "$1 did not answer 200"
}

# wait_200 URL: poll with curl for up to 10s.
wait_200() {
	for _ in $(seq 200); do
		[[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true) == 200 ]] && return 0
		sleep 0.05
	done
	die "$1 did not answer 200"
}

# --- targets -------------------------------------------------------------
read -r P_DIRECT P_NGINX P_ANCM P_NGINX_TLS P_NGINX_TLS13 P_ANCM_TLS P_METRICS <<<"$(probe freeport 7 | tr '\n' ' ')"

# One certificate for both TLS listeners: ECDSA P-256, self-signed.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench.local \
	-addext subjectAltName=DNS:bench.local,IP:127.0.0.1 -keyout "$TMP/tls.key" -out "$TMP/tls.crt" 2>/dev/null
chmod 644 "$TMP/tls.key" # nginx workers read it as nobody

"$BIN/backend" -addr "127.0.0.1:$P_DIRECT" 2>"$TMP/backend.log" &
PIDS+=($!)

# nginx 1.22's ssl_protocols default stops at TLSv1.2; ancmd answers wrk
# and h2load with TLS 1.3. The handshake and HTTP/2 rows are also
# measured against the second TLS listener, which negotiates what ancmd
# does.
nginx_conf "$TMP/nginx" "$P_DIRECT" "
	server {
		listen 127.0.0.1:$P_NGINX;
		location / { include $ROOT/bench/nginx-location.conf; }
	}
$(nginx_tls_server "$P_NGINX_TLS" "$TMP/tls.crt" "$TMP/tls.key")
$(nginx_tls_server "$P_NGINX_TLS13" "$TMP/tls.crt" "$TMP/tls.key" "TLSv1.2 TLSv1.3")"
"$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/logs/error.log" &
PIDS+=($!)

cat >"$TMP/ancm.hcl" <<EOF
listen    = "127.0.0.1:$P_ANCM"
control   = "unix://$TMP/ancm.sock"
state_dir = "$TMP/state"
log_level = "warn"
https {
  listen = "127.0.0.1:$P_ANCM_TLS"
  certificate {
    cert_file = "$TMP/tls.crt"
    key_file  = "$TMP/tls.key"
  }
}
# Measured with metrics on, as an operator would run it.
metrics_listen = "127.0.0.1:$P_METRICS"
EOF
# The app is applied rather than configured, so that it can be deleted
# before the lifecycle probes, which need paths that no app claims.
cat >"$TMP/bench.hcl" <<EOF
app "bench" {
  command     = "$BIN/backend"
  path_prefix = "/"
  start       = "on_demand"
}
EOF
"$BIN/ancmd" serve -c "$TMP/ancm.hcl" >"$TMP/ancmd.log" 2>&1 &
ANCMD_PID=$!
PIDS+=("$ANCMD_PID")

for _ in $(seq 200); do
	[[ -S $TMP/ancm.sock ]] && (exec 3<>"/dev/tcp/127.0.0.1/$P_ANCM") 2>/dev/null && break
	kill -0 "$ANCMD_PID" 2>/dev/null || die "ancmd exited: $(tail -n 5 "$TMP/ancmd.log")"
	sleep 0.05
done

declare -A URL=(
	[direct]="http://127.0.0.1:$P_DIRECT"
	[nginx]="http://127.0.0.1:$P_NGINX"
	[ancmd]="http://127.0.0.1:$P_ANCM"
)
TARGETS=(direct nginx ancmd)

ctl apply -f "$TMP/bench.hcl" >/dev/null

rss_mib() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
sleep 0.5
RSS_START=$(rss_mib "$ANCMD_PID")
for t in "${TARGETS[@]}"; do wait_200 "${URL[$t]}/"; done # ancmd: starts the app
sleep 1
RSS_IDLE=$(rss_mib "$ANCMD_PID")
log "targets up: direct :$P_DIRECT, nginx :$P_NGINX, ancmd :$P_ANCM (pid $ANCMD_PID, RSS ${RSS_IDLE} MiB)"

# --- wrk -----------------------------------------------------------------
# to_ms 52.00us|1.20ms|1.00s -> milliseconds
to_ms() {
	awk -v v="$1" 'BEGIN {
		n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
		f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : -1
		if (f < 0) exit 1
		printf "%.3f", n * f }'
}
# to_mib 1.23GB -> MiB (wrk's units are powers of 1024)
to_mib() {
	awk -v v="$1" 'BEGIN {
		n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
		f = (u == "B") ? 1/1048576 : (u == "KB") ? 1/1024 : (u == "MB") ? 1 : (u == "GB") ? 1024 : (u == "TB") ? 1048576 : -1
		if (f < 0) exit 1
		printf "%.1f", n * f }'
}

# sample_rss PID FILE: append VmRSS (MiB) every 0.2s until killed.
sample_rss() {
	while kill -0 "$1" 2>/dev/null; do rss_mib "$1" >>"$2" 2>/dev/null && echo >>"$2"; sleep 0.2; done
}

# run_wrk NAME TARGET ARGS...: run wrk, check it, keep its output.
run_wrk() {
	local name=$1 target=$2 out
	shift 2
	out=$TMP/wrk.$name.$target.$ROUND
	if [[ $target == ancmd ]]; then
		sample_rss "$ANCMD_PID" "$TMP/rss.$name" &
		SAMPLER=$!
	fi
	timeout 60 wrk --timeout 2s -d "$DUR" "$@" >"$out" 2>&1 || { cat "$out" >&2; die "wrk failed on $target"; }
	if [[ -n $SAMPLER ]]; then kill "$SAMPLER" 2>/dev/null || true; wait "$SAMPLER" 2>/dev/null || true; SAMPLER=; fi
	if grep -q -e 'Non-2xx' -e 'Socket errors' "$out"; then
		log "warning: $target $name: $(grep -e 'Non-2xx' -e 'Socket errors' "$out" | tr -s ' ' | paste -sd ';')"
	fi
	case $name in
	rps) awk '/^Requests\/sec:/ { print $2 }' "$out" >>"$TMP/res.rps.$target" ;;
	lat)
		to_ms "$(awk '$1 == "50%" { print $2 }' "$out")" >>"$TMP/res.p50.$target"; echo >>"$TMP/res.p50.$target"
		to_ms "$(awk '$1 == "99%" { print $2 }' "$out")" >>"$TMP/res.p99.$target"; echo >>"$TMP/res.p99.$target"
		;;
	mib) to_mib "$(awk '/^Transfer\/sec:/ { print $2 }' "$out")" >>"$TMP/res.mib.$target"; echo >>"$TMP/res.mib.$target" ;;
	esac
}

for t in "${TARGETS[@]}"; do # warm-up: connections, buffers, JIT-free but not cache-free
	timeout 30 wrk -d 1s -c 64 -t 2 "${URL[$t]}/" >/dev/null
done
for ROUND in $(seq "$ROUNDS"); do
	log "round $ROUND/$ROUNDS ($DUR per run)"
	for t in "${TARGETS[@]}"; do run_wrk rps "$t" -c 64 -t 2 "${URL[$t]}/"; done
	for t in "${TARGETS[@]}"; do run_wrk lat "$t" -c 1 -t 1 --latency "${URL[$t]}/"; done
	for t in "${TARGETS[@]}"; do run_wrk mib "$t" -c 8 -t 2 "${URL[$t]}/1m"; done
done

# --- TLS and HTTP/2: nginx and ancmd with the same certificate ------------
declare -A TLSURL=([nginx]="https://127.0.0.1:$P_NGINX_TLS" [ancmd]="https://127.0.0.1:$P_ANCM_TLS")
TLS_TARGETS=(nginx ancmd)
TLSURL[nginx13]="https://127.0.0.1:$P_NGINX_TLS13"
for t in "${TLS_TARGETS[@]}" nginx13; do wait_200k "${TLSURL[$t]}/"; done
# run_hs TARGET: a new TLS connection for every request (Connection: close).
# wrk resumes its session on each reconnection (OpenSSL's SSL_clear keeps
# it): with TLS 1.2 (nginx's default here) a resumption is an abbreviated
# handshake without key exchange; with TLS 1.3 it has an X25519 exchange.
run_hs() {
	local out=$TMP/wrk.hs.$1.$ROUND
	timeout 60 wrk --timeout 2s -d "$DUR" -c 16 -t 2 -H 'Connection: close' "${TLSURL[$1]}/" >"$out" 2>&1 || { cat "$out" >&2; die "wrk failed on $1 handshakes"; }
	awk '/^Requests\/sec:/ { print $2 }' "$out" >>"$TMP/res.hs.$1"
}
# run_h2load TARGET: HTTP/2, 64 connections, one stream each, DUR seconds.
run_h2load() {
	local out=$TMP/h2load.$1.$ROUND
	timeout 60 h2load -c 64 -m 1 -t 2 -D "${DUR%s}" "${TLSURL[$1]}/" >"$out" 2>&1 || { cat "$out" >&2; die "h2load failed on $1"; }
	grep -q 'h2' "$out" || die "h2load on $1 did not negotiate h2: $(head -n 5 "$out")"
	awk '/^finished in/ { gsub(",", ""); for (i = 1; i <= NF; i++) if ($(i+1) == "req/s") print $i }' "$out" >>"$TMP/res.h2.$1"
}
for ROUND in $(seq "$ROUNDS"); do
	log "tls round $ROUND/$ROUNDS ($DUR per run)"
	for t in "${TLS_TARGETS[@]}"; do
		out=$TMP/wrk.tls.$t.$ROUND
		timeout 60 wrk --timeout 2s -d "$DUR" -c 64 -t 2 "${TLSURL[$t]}/" >"$out" 2>&1 || { cat "$out" >&2; die "wrk failed on $t tls"; }
		awk '/^Requests\/sec:/ { print $2 }' "$out" >>"$TMP/res.tls.$t"
		run_hs "$t"
		[[ $t != nginx ]] || run_hs nginx13
		run_h2load "$t"
		[[ $t != nginx ]] || run_h2load nginx13
	done
done

# --- lifecycle timings ---------------------------------------------------
# The routing and cold-start probes need 404 for paths no app claims, so
# the catch-all app goes; each sample then uses an app of its own at
# its own prefix, which keeps the crash samples clear of restart backoff.
ctl delete bench >/dev/null
apply_app() { # apply_app NAME: an on_demand app at /NAME
	printf 'app "%s" {\n  command     = "%s"\n  path_prefix = "/%s"\n}\n' "$1" "$BIN/backend" "$1" >"$TMP/$1.hcl"
	echo "$TMP/$1.hcl"
}
for i in $(seq "$SAMPLES"); do
	log "lifecycle sample $i/$SAMPLES"
	P=$(probe freeport)
	probe exec "$P" "$BIN/backend" >>"$TMP/res.start.direct"

	ctl apply -f "$(apply_app "cold$i")" >/dev/null
	sleep 0.3
	probe cold "${URL[ancmd]}/cold$i" >>"$TMP/res.start.ancmd"

	ctl apply -f "$(apply_app "crash$i")" >/dev/null
	probe cold "${URL[ancmd]}/crash$i" >/dev/null
	PID=$(ctl get "crash$i" -o json | grep -o '"pid": *[0-9]*' | head -n 1 | grep -o '[0-9]*$' || true)
	[[ -n $PID ]] || die "no pid for crash$i: $(ctl get "crash$i" -o json)"
	probe crash "$PID" "${URL[ancmd]}/crash$i" >>"$TMP/res.crash"

	probe route "${URL[ancmd]}/route$i" "unix://$TMP/ancm.sock" "$(apply_app "route$i")" >"$TMP/route.$i"
	awk '{ print $1 }' "$TMP/route.$i" >>"$TMP/res.route"
	awk '{ print $2 }' "$TMP/route.$i" >>"$TMP/res.applyrpc"

	for a in "cold$i" "crash$i" "route$i"; do ctl delete "$a" >/dev/null; done
done

# --- rollouts ------------------------------------------------------------
# A 3-process app under a steady GET load (wrk, 8 connections) is
# restarted BENCH_SAMPLES times: each restart is a rolling rollout with the
# defaults (max_surge 1, min_ready 1s, drain_timeout 30s), and ancmctl
# restart returns once the last old instance is gone. wrk counts every
# request that failed meanwhile.
cat >"$TMP/roll.hcl" <<EOF
app "roll" {
  command     = "$BIN/backend"
  path_prefix = "/roll"
  start       = "eager"
  processes   = 3
}
EOF
ctl apply -f "$TMP/roll.hcl" >/dev/null
wait_200 "${URL[ancmd]}/roll"
ROLL_DUR=$((SAMPLES * 6 + 2))
log "rollouts: $SAMPLES restarts of a 3-process app under load (${ROLL_DUR}s of wrk)"
timeout $((ROLL_DUR + 30)) wrk --timeout 5s -d "${ROLL_DUR}s" -c 8 -t 2 "${URL[ancmd]}/roll" >"$TMP/wrk.roll" 2>&1 &
WRK_PID=$!
sleep 1
for i in $(seq "$SAMPLES"); do
	t0=$(date +%s%N)
	ctl restart roll >/dev/null || die "restart $i of roll failed"
	t1=$(date +%s%N)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", (b - a) / 1e9 }' >>"$TMP/res.roll"
done
wait "$WRK_PID" || { cat "$TMP/wrk.roll" >&2; die "wrk failed during the rollouts"; }
ROLL_REQS=$(awk '/requests in/ { print $1 }' "$TMP/wrk.roll")
ROLL_FAILED=$(awk '/Non-2xx/ { n += $NF } /Socket errors/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 } END { print n + 0 }' "$TMP/wrk.roll")
ctl delete roll >/dev/null

# --- results -------------------------------------------------------------
median() { sort -g "$1" | awk 'NF { v[n++] = $1 } END { if (n == 0) exit 1; printf "%s", (n % 2) ? v[int(n/2)] : (v[n/2-1] + v[n/2]) / 2 }'; }
maxof() { sort -g "$1" | awk 'NF { m = $1 } END { printf "%s", m }'; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }
yes_no() { awk "BEGIN { print ($1) ? \"yes\" : \"**no**\" }"; }

for m in rps p50 p99 mib; do
	for t in "${TARGETS[@]}"; do declare "R_${m}_$t=$(median "$TMP/res.$m.$t")"; done
done
for m in tls hs h2; do
	for t in "${TLS_TARGETS[@]}"; do declare "R_${m}_$t=$(median "$TMP/res.$m.$t")"; done
done
R_hs13_nginx=$(median "$TMP/res.hs.nginx13")
R_hs13_ancmd=$R_hs_ancmd
R_h213_nginx=$(median "$TMP/res.h2.nginx13")
R_h213_ancmd=$R_h2_ancmd
RSS_LOAD=$(maxof "$TMP/rss.rps")
RSS_LOAD_1M=$(maxof "$TMP/rss.mib")
START_DIRECT=$(calc '%.1f' "$(median "$TMP/res.start.direct")")
START_ANCMD=$(calc '%.1f' "$(median "$TMP/res.start.ancmd")")
CRASH=$(calc '%.1f' "$(median "$TMP/res.crash")")
ROUTE=$(calc '%.2f' "$(median "$TMP/res.route")")
APPLYRPC=$(calc '%.2f' "$(median "$TMP/res.applyrpc")")
ROLL=$(calc '%.2f' "$(median "$TMP/res.roll")")

ratio() { calc '%.2f' "$1 / $2"; }
row() { # row LABEL METRIC FORMAT
	local d n a
	d=R_$2_direct n=R_$2_nginx a=R_$2_ancmd
	printf '| %s | %s | %s | %s | %s | %s |\n' "$1" \
		"$(calc "$3" "${!d}")" "$(calc "$3" "${!n}")" "$(calc "$3" "${!a}")" \
		"$(ratio "${!a}" "${!n}")" "$(ratio "${!a}" "${!d}")"
}
ADDED_P50_NGINX=$(calc '%+.3f' "$R_p50_nginx - $R_p50_direct")
ADDED_P50_ANCMD=$(calc '%+.3f' "$R_p50_ancmd - $R_p50_direct")
COLD_ADDED=$(calc '%+.1f' "$START_ANCMD - $START_DIRECT")
CRASH_ADDED=$(calc '%+.1f' "$CRASH - $START_DIRECT")

TABLE=$(
	echo "| load (median of $ROUNDS × $DUR) | direct | nginx | ancmd | ancmd/nginx | ancmd/direct |"
	echo "|---|---:|---:|---:|---:|---:|"
	row 'small, 64 conns: req/s' rps '%.0f'
	row 'small, 1 conn: p50 ms' p50 '%.3f'
	row 'small, 1 conn: p99 ms' p99 '%.3f'
	row '1 MiB, 8 conns: MiB/s' mib '%.0f'
	echo
	echo "| TLS, same certificate (median of $ROUNDS × $DUR) | nginx | ancmd | ancmd/nginx | ancmd ≥ nginx |"
	echo "|---|---:|---:|---:|---|"
	for m in "tls:TLS small, 64 conns: req/s" "h2:HTTP/2 small, 64 conns (h2load; nginx: TLS 1.2): req/s" \
		"h213:HTTP/2 small, 64 conns (h2load; nginx: TLS 1.3 enabled): req/s" "hs:new TLS connections, 16 conns, Connection: close (nginx: TLS 1.2): req/s" \
		"hs13:new TLS connections, 16 conns, Connection: close (nginx: TLS 1.3 enabled): req/s"; do
		n=R_${m%%:*}_nginx a=R_${m%%:*}_ancmd
		echo "| ${m#*:} | $(calc '%.0f' "${!n}") | $(calc '%.0f' "${!a}") | $(ratio "${!a}" "${!n}") | $(yes_no "${!a} >= ${!n}") |"
	done
	echo
	echo "| ancmd (median of $SAMPLES unless noted) | value |"
	echo "|---|---:|"
	echo "| RSS just started / idle after first request, MiB | $RSS_START / $RSS_IDLE |"
	echo "| RSS under load, max: 64 conns small / 8 conns 1 MiB, MiB | $RSS_LOAD / $RSS_LOAD_1M |"
	echo "| app start alone: exec to first 200, ms | $START_DIRECT |"
	echo "| cold start through ancmd: first request to idle app, ms | $START_ANCMD |"
	echo "| crash (SIGKILL) to next 200 through ancmd, ms | $CRASH |"
	echo "| control-plane change to routing: ApplyApp sent to new prefix routed, ms | $ROUTE |"
	echo "| ApplyApp round trip (the RPC alone), ms | $APPLYRPC |"
	echo "| rolling restart of 3 processes: ancmctl restart to last old instance gone, s | $ROLL |"
	echo "| requests failed during $SAMPLES rolling restarts under load (of $ROLL_REQS) | $ROLL_FAILED |"
	echo
	echo "| target (issue 7) | measured | met |"
	echo "|---|---:|---|"
	echo "| small, 64 conns: ancmd ≥ 0.9 × nginx req/s | $(ratio "$R_rps_ancmd" "$R_rps_nginx") × | $(yes_no "$R_rps_ancmd >= 0.9 * $R_rps_nginx") |"
	echo "| 1 conn: p50 added by ancmd within 0.05 ms of nginx's | $ADDED_P50_ANCMD vs $ADDED_P50_NGINX ms | $(yes_no "$ADDED_P50_ANCMD - $ADDED_P50_NGINX <= 0.0505") |"
	echo "| 1 MiB: ancmd ≥ nginx MiB/s | $(ratio "$R_mib_ancmd" "$R_mib_nginx") × | $(yes_no "$R_mib_ancmd >= $R_mib_nginx") |"
	echo "| cold start ≤ app start + 5 ms | $COLD_ADDED ms | $(yes_no "$COLD_ADDED <= 5") |"
	echo "| crash to next success ≤ app start + 50 ms | $CRASH_ADDED ms | $(yes_no "$CRASH_ADDED <= 50") |"
	echo "| control-plane change to routing < 5 ms p50 | $ROUTE ms | $(yes_no "$ROUTE < 5") |"
	echo "| idle RSS < 30 MiB | $RSS_IDLE MiB | $(yes_no "$RSS_IDLE < 30") |"
	echo "| no request fails during a rollout (issue 11) | $ROLL_FAILED | $(yes_no "$ROLL_FAILED == 0") |"
)

CPU=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MACHINE=$(
	echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') at $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?'):" \
		"$(nproc) CPUs ($CPU), Linux $(uname -r), $(go version | awk '{ print $3 }')," \
		"$("$NGINX" -v 2>&1 | sed 's|.*version: ||'), $(wrk -v 2>&1 | awk 'NR == 1 { print $1, $2 }')." \
		"BENCH_DURATION=$DUR BENCH_ROUNDS=$ROUNDS BENCH_SAMPLES=$SAMPLES."
)

echo
echo "$MACHINE"
echo
echo "$TABLE"

# docs/benchmarks.md: replace what lies between the markers, keep the rest.
BEGIN='<!-- bench:begin (written by bench/run.sh) -->'
END='<!-- bench:end -->'
if [[ ! -f $OUT ]] || ! grep -qF "$BEGIN" "$OUT"; then
	cat >"$OUT" <<EOF
# Benchmarks

\`make bench\` (bench/run.sh) measures ancmd's reverse proxy against nginx
and against the backend alone, and ancmd's own costs; bench/README.md says
what each number means. The section below is rewritten by every run.

$BEGIN
$END
EOF
fi
{
	echo "$BEGIN"
	echo "$MACHINE"
	echo
	echo "$TABLE"
	echo "$END"
} >"$TMP/section.md"
awk -v begin="$BEGIN" -v end="$END" -v section="$TMP/section.md" '
	$0 == begin { while ((getline l < section) > 0) print l; skip = 1; next }
	$0 == end { skip = 0; next }
	!skip' "$OUT" >"$TMP/out.md"
cp "$TMP/out.md" "$OUT"
log "wrote $OUT"
