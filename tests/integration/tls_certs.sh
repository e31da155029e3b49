#!/usr/bin/env bash
# tls_certs.sh <dir>: makes the certificates the TLS tests use, with the
# openssl CLI, into <dir> (created; files already there are replaced):
#   ca.pem ca.key              the test CA
#   server.pem server.key      "localhost" and 127.0.0.1, signed by the CA
#   untrusted.pem              the same key, signed by another CA
#   expired.pem                the same key, signed by the CA, valid only
#                              in January 2020
#   wronghost.pem              the same key, signed by the CA, for
#                              "weft-other.test" only (a host mismatch)
# EC P-256 keys: quick to make.  openssl 3.0's `x509 -req` cannot
# backdate a certificate, so the expired one comes from `openssl ca`
# with -startdate/-enddate and a minimal configuration.
# Used by tests/test_tls.c and tests/integration/tls_*.sh.
set -euo pipefail
dir=${1:?usage: tls_certs.sh <dir>}
mkdir -p "$dir"
cd "$dir"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
	-out "$1" 2>/dev/null; }
key ca.key
key other.key
key server.key
openssl req -x509 -new -key ca.key -out ca.pem -days 30 \
	-subj /CN=weft-test-ca 2>/dev/null
openssl req -x509 -new -key other.key -out other.pem -days 30 \
	-subj /CN=weft-other-ca 2>/dev/null
openssl req -new -key server.key -out server.csr -subj /CN=localhost \
	2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >san.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key \
	-CAcreateserial -out server.pem -days 30 -extfile san.ext 2>/dev/null
openssl x509 -req -in server.csr -CA other.pem -CAkey other.key \
	-CAcreateserial -out untrusted.pem -days 30 -extfile san.ext \
	2>/dev/null
printf 'subjectAltName=DNS:weft-other.test\n' >other.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key \
	-CAcreateserial -out wronghost.pem -days 30 -extfile other.ext \
	2>/dev/null
rm -rf ca.db
mkdir ca.db
: >ca.db/index.txt
echo 01 >ca.db/serial
cat >ca.cnf <<'EOF'
[ca]
default_ca = test
[test]
dir = ./ca.db
database = $dir/index.txt
new_certs_dir = $dir
serial = $dir/serial
default_md = sha256
policy = any
[any]
commonName = supplied
EOF
openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key \
	-in server.csr -out expired.pem -startdate 20200101000000Z \
	-enddate 20200201000000Z -extfile san.ext -notext 2>/dev/null
