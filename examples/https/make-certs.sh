#!/usr/bin/env bash
# make-certs.sh: a local CA and a certificate for each host of ancm.hcl, in
# tls/ beside this script. For trying the example only: use real
# certificates (or the acme block) in production.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p tls
cd tls
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
	-subj "/CN=ancm example CA" -keyout ca.key -out ca.pem 2>/dev/null
for host in shop.example.com blog.example.com; do
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$host" \
		-keyout "$host.key" -out "$host.csr" 2>/dev/null
	openssl x509 -req -in "$host.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
		-extfile <(printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n' "$host") \
		-out "$host.crt" 2>/dev/null
	rm "$host.csr"
done
echo "certificates in $(pwd): ca.pem, shop.example.com.crt, blog.example.com.crt"
