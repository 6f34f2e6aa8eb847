#!/usr/bin/env bash
# Fuzzes the running server against its own /openapi.json with schemathesis: no 5xx, every
# status and body as documented. Usage: tests/compat/schemathesis.sh PATH_TO_OTPD_BINARY
set -euo pipefail
binary=$(realpath "$1")
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'kill "${server:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"
"$binary" app create --name schemathesis --json > app.json
# The fuzzer sends made-up credentials to the token endpoint on purpose: the throttle of
# failed authentications (its own tests cover it) would hold back everything after 20.
OTPD_LIMITS__AUTH_FAILURES__MAX=0 "$binary" serve --listen 127.0.0.1:0 > serve.out 2> serve.log &
server=$!
for _ in $(seq 1 100); do
  base=$(sed -n 's/^otpd listening on //p' serve.out)
  [ -n "$base" ] && break
  sleep 0.1
done
[ -n "$base" ] || { echo "otpd did not start"; cat serve.log; exit 1; }
key=$(python3 -c "import json;print(json.load(open('app.json'))['apiKey'])")
basic=$(python3 -c "import json,base64;a=json.load(open('app.json'));print(base64.b64encode((a['accountSid']+':'+a['authToken']).encode()).decode())")
# POST /admin/v1/account/token rotates the auth token the fuzzer authenticates with: every
# later request would be refused. Its answers are checked against the document in
# crates/otpd/tests/openapi.rs instead.
"$root/.venv-schemathesis/bin/schemathesis" run "$base/openapi.json" \
  -H "X-API-KEY: $key" -H "Authorization: Basic $basic" \
  --exclude-path /admin/v1/account/token \
  --checks not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance \
  -n 25 --seed 1
