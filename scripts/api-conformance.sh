#!/usr/bin/env bash
# Runs schemathesis with openapi.yaml against the function served locally (make run's
# machinery; `make test` runs it through scripts/smoke-run.sh): every stateless check
# (server errors, documented status codes, content types, headers and body schemas,
# negative and positive data, missing auth, unsupported methods), bounded and seeded
# so a run is repeatable. Exits non-zero on any failure.
# Usage: scripts/api-conformance.sh [BASE_URL] [TOKEN] [SPEC]
#   BASE_URL defaults to make run's http://127.0.0.1:9000; TOKEN to a fresh token for
#   the demo album (scripts/devtoken.py, JWT_SECRET as make run sets it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
url=${1:-http://127.0.0.1:9000}
export JWT_SECRET=${JWT_SECRET:-dev-secret-for-local-runs-only-0123456789abcdef}
token=${2:-$(python3 scripts/devtoken.py --album 00100000123BB121)}
spec=$(realpath "${3:-openapi.yaml}")
scripts/install-tools.sh api
# Schemathesis keeps state in its working directory (.schemathesis/, .hypothesis/):
# keep it out of the project, where `cargo lambda watch` would restart the function
# on it and drop the request in flight.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
# Checks that need state across calls (use_after_free, ensure_resource_availability,
# object_level_authorization) are left out: the API has no create or read operation.
# scripts/conformance_hooks.py: no non-UTF-8 text bodies (the local emulator's limit).
PYTHONPATH="$root/scripts" SCHEMATHESIS_HOOKS=conformance_hooks \
  "$root/.tools/api/bin/schemathesis" --config-file "$root/scripts/schemathesis.toml" run "$spec" --url "$url" \
  --header "Authorization: Token token=\"$token\"" \
  --phases examples,coverage,fuzzing \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,positive_data_acceptance,missing_required_header,unsupported_method,allow_header_conformance,ignored_auth \
  --max-examples "${CONFORMANCE_EXAMPLES:-100}" --seed "${CONFORMANCE_SEED:-1}" \
  --generation-database none --generation-with-security-parameters false \
  --workers 1 --request-timeout 60 --no-color --output-sanitize true
