#!/usr/bin/env bash
# check-deb.sh DEB: inspect the package with dpkg-deb, install it with
# dpkg -i, run what it installed, and remove and purge it again, checking
# each step. Run as root on a Debian machine with no ancm package
# installed (CI does, through `make deb-check`).
set -euo pipefail
deb=${1:?usage: check-deb.sh DEB}
fail() { echo "check-deb: $*" >&2; exit 1; }
step() { echo "check-deb: $*"; }

[ "$(id -u)" = 0 ] || fail "needs root (dpkg -i)"
if dpkg-query -W -f='${Status}' ancm 2>/dev/null | grep -q 'install ok installed'; then
  fail "a package ancm is installed already; not touching it"
fi

step "inspect $deb"
contents=$(dpkg-deb -c "$deb")
for f in ./usr/bin/ancmd ./usr/bin/ancmctl ./usr/lib/systemd/system/ancmd.service \
  ./etc/ancm/ancm.hcl ./usr/share/man/man8/ancmd.8.gz ./usr/share/man/man1/ancmctl.1.gz \
  ./usr/share/man/man1/ancmctl-logs.1.gz ./usr/share/man/man5/ancm.hcl.5.gz ./usr/share/doc/ancm/configuration.md ./var/lib/ancm/; do
  grep -q " $f\$" <<<"$contents" || fail "$f is not in the package"
done
[ "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./conffiles)" = /etc/ancm/ancm.hcl ] ||
  fail "/etc/ancm/ancm.hcl is not the one conffile"
dpkg-deb -f "$deb" Package Version Architecture Depends

tmp=$(mktemp -d)
daemon=
cleanup() {
  [ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
  rm -rf "$tmp"
  if dpkg-query -W -f='${Status}' ancm 2>/dev/null | grep -q installed; then dpkg -P ancm >/dev/null || true; fi
}
trap cleanup EXIT

step "dpkg -i"
dpkg -i "$deb"
getent passwd ancm >/dev/null || fail "no user ancm"
[ "$(stat -c %U:%a /var/lib/ancm)" = ancm:750 ] || fail "/var/lib/ancm is $(stat -c %U:%a /var/lib/ancm), want ancm:750"
grep -q '^ExecStart=/usr/bin/ancmd serve -c /etc/ancm/ancm.hcl$' /usr/lib/systemd/system/ancmd.service ||
  fail "the unit does not run /usr/bin/ancmd"
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify /usr/lib/systemd/system/ancmd.service 2>&1 | grep -v 'network-online.target' || true
fi

step "ancmd validate -c /etc/ancm/ancm.hcl"
ancmd validate -c /etc/ancm/ancm.hcl
ancmd --help >/dev/null
ancmd version

step "ancmctl version against the installed ancmd"
# The installed config's listen and state_dir may be taken on this
# machine: the same daemon on a port of its own and a scratch state dir.
printf 'listen = "127.0.0.1:0"\nstate_dir = "%s"\n' "$tmp" > "$tmp/ancm.hcl"
ancmd serve -c "$tmp/ancm.hcl" 2>"$tmp/ancmd.log" &
daemon=$!
for _ in $(seq 100); do
  [ -S "$tmp/ancm.sock" ] && break
  kill -0 "$daemon" 2>/dev/null || { cat "$tmp/ancmd.log" >&2; fail "ancmd exited"; }
  sleep 0.1
done
out=$(ancmctl --addr "unix://$tmp/ancm.sock" version) || { echo "$out"; cat "$tmp/ancmd.log" >&2; fail "ancmctl version failed"; }
echo "$out"
grep -q '^Server:' <<<"$out" || fail "ancmctl version shows no server"
kill "$daemon" && wait "$daemon" || fail "ancmd did not exit 0 on SIGTERM"
daemon=

step "dpkg -r (the conffile stays)"
dpkg -r ancm
[ ! -e /usr/bin/ancmd ] || fail "/usr/bin/ancmd is still there after dpkg -r"
[ -e /etc/ancm/ancm.hcl ] || fail "dpkg -r removed the conffile"

step "dpkg -P (config and state go)"
dpkg -P ancm
[ ! -e /etc/ancm/ancm.hcl ] || fail "/etc/ancm/ancm.hcl is still there after dpkg -P"
[ ! -e /var/lib/ancm ] || fail "/var/lib/ancm is still there after dpkg -P"
step "ok"
