#!/usr/bin/env bash
# Checks the alert rules the chart ships: `promtool check rules` (syntax, PromQL, templates),
# `promtool test rules` (the unit tests beside them), and that every alert has unit tests and
# a runbook section its runbook_url points to. Installs promtool first if it is missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
files="$root/charts/backup-warden/files"
rules="$files/prometheus-rules.yaml"
tests="$files/prometheus-rules.test.yaml"
runbook="$root/docs/runbook.md"

promtool=$("$root/hack/promtool.sh")

"$promtool" check rules "$rules"
# promtool resolves rule_files relative to the test file
"$promtool" test rules "$tests"

failed=0
alerts=$(sed -n 's/^ *- alert: *\([A-Za-z0-9_]*\).*/\1/p' "$rules")
[ -n "$alerts" ] || { echo "no alerts found in $rules" >&2; exit 1; }
# GitHub's anchor of a Markdown heading: lower case, spaces to dashes, punctuation dropped
anchors=$(sed -n 's/^#\{1,6\} \(.*\)/\1/p' "$runbook" |
  tr '[:upper:]' '[:lower:]' | sed 's/[^a-z0-9 _-]//g; s/ /-/g')
for alert in $alerts; do
  if ! grep -q "alertname: *$alert *$" "$tests"; then
    echo "alert $alert has no unit test in $(basename "$tests")" >&2
    failed=1
  fi
done
for anchor in $(sed -n 's/^ *runbook_url: *[^#]*docs\/runbook\.md#\([A-Za-z0-9_-]*\).*/\1/p' "$rules"); do
  if ! grep -qx -- "$anchor" <<<"$anchors"; then
    echo "runbook_url anchor #$anchor has no heading in docs/runbook.md" >&2
    failed=1
  fi
done
n_alerts=$(wc -w <<<"$alerts")
n_urls=$(grep -c 'runbook_url: *https://github.com/narrative-io/backup-warden/blob/main/docs/runbook.md#' "$rules")
if [ "$n_urls" -ne "$n_alerts" ]; then
  echo "$n_alerts alerts but $n_urls runbook_url annotations pointing at docs/runbook.md" >&2
  failed=1
fi
if [ "$failed" -ne 0 ]; then
  echo "alert rules: FAILED" >&2
  exit 1
fi
echo "alert rules: $n_alerts alerts checked, unit-tested and documented in docs/runbook.md"
