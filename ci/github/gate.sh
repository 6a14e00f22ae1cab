#!/usr/bin/env bash
# The Helios action's gate step (action.yml): runs `helios gate` on INPUT_IMAGE, logs the text
# summary, appends the Markdown summary to $GITHUB_STEP_SUMMARY, writes helios.json,
# helios.sarif, helios.xml and helios.md under $RUNNER_TEMP/helios, and sets the step outputs
# allowed, policy-id, exit-code, artifact, sarif and artifact-dir. Exit status: 0 allowed (or
# denied with fail-on never), 1 denied, 2 could not decide (always a failure).
set -euo pipefail

bin="${HELIOS_BIN:-helios}"
fail_on="${INPUT_FAIL_ON:-deny}"
case "$fail_on" in
    deny | never) ;;
    *) echo "::error::fail-on must be deny or never, not '$fail_on'"; exit 2 ;;
esac
image="${INPUT_IMAGE:?the image input is empty}"
out="${RUNNER_TEMP:?RUNNER_TEMP is not set}/helios"
rm -rf "$out"
mkdir -p "$out"

args=(gate "$image"
    --artifact "$out/helios.json" --artifact "$out/helios.sarif"
    --artifact "$out/helios.xml" --artifact "$out/helios.md")
for path in ${INPUT_POLICY:-}; do args+=(--policy "$path"); done
for path in ${INPUT_DATA:-}; do args+=(--data "$path"); done
[[ -z "${INPUT_SCAN_FILE:-}" ]] || args+=(--scan-file "$INPUT_SCAN_FILE")
# The run that gated the image, as input.ci for the policy and in the JSON artifact.
context() { [[ -z "$2" ]] || args+=(--ci "$1=$2"); }
context run_id "${GITHUB_RUN_ID:-}"
context sha "${GITHUB_SHA:-}"
context ref "${GITHUB_REF:-}"
context repository "${GITHUB_REPOSITORY:-}"
context workflow "${GITHUB_WORKFLOW:-}"
while IFS= read -r line; do
    [[ -z "${line//[[:space:]]/}" ]] || args+=(--ci "$line")
done <<<"${INPUT_CI:-}"
# shellcheck disable=SC2206 # whitespace-separated by contract
extra=(${INPUT_ARGS:-})
args+=("${extra[@]}")

set +e
"$bin" "${args[@]}"
code=$?
set -e

json="$out/helios.json"
allowed="" policy_id=""
if [[ -f "$json" ]]; then
    read -r allowed policy_id < <(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))["decision"]
print(str(d["allowed"]).lower(), d["policy"]["id"])' "$json")
    [[ ! -f "$out/helios.md" || -z "${GITHUB_STEP_SUMMARY:-}" ]] || cat "$out/helios.md" >>"$GITHUB_STEP_SUMMARY"
fi
{
    echo "exit-code=$code"
    echo "allowed=$allowed"
    echo "policy-id=$policy_id"
    echo "artifact-dir=$out"
    if [[ -f "$json" ]]; then
        echo "artifact=$json"
        echo "sarif=$out/helios.sarif"
    fi
} >>"${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set}"

case "$code" in
    0) exit 0 ;;
    1)
        if [[ "$fail_on" == never ]]; then
            echo "::warning::$image is denied by policy $policy_id (fail-on: never)"
            exit 0
        fi
        echo "::error::$image is denied by policy $policy_id"
        exit 1
        ;;
    *)
        echo "::error::helios could not decide on $image (exit $code)"
        exit "$code"
        ;;
esac
