#!/usr/bin/env bash
# How soon the dashboard's pipeline page is interactive on a ledger: starts `dealledger serve` on
# DATA (a data directory, e.g. one `versus_duckdb.py --dir` left), waits for it, opens the page in
# headless Chromium (tests/browser/drive.mjs), and prints the time from navigation
# to the page drawn with its figures (a cold load, then two as-of dates picked on the open
# page), with the page's weight. A benchmark, not a test.
#
#   benches/dashboard_interactive.sh DATA [BINARY]
set -euo pipefail
data="$1"
binary="${2:-target/release/dealledger}"
here="$(cd "$(dirname "$0")/.." && pwd)"
log="$(mktemp)"
"$binary" --data "$data" serve --listen 127.0.0.1:0 >"$log" 2>&1 &
daemon=$!
trap 'kill $daemon 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 600); do
  url="$(sed -n 's/^listening on //p' "$log")"
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { cat "$log" >&2; exit 1; }
curl -sf "$url/readyz" >/dev/null
weight=0
for asset in / /assets/app.js /assets/app.css; do
  weight=$((weight + $(curl -sf "$url$asset" | wc -c)))
done
plan="$(mktemp)"
shots="$(mktemp -d)"
printf '{"url": "%s", "shots": "%s", "steps": [%s]}' "$url" "$shots" \
  '{"page": "pipeline", "hash": "pipeline"}, {"page": "pipeline", "hash": "pipeline?as_of=2025-06-30", "until": "document.body.innerText.includes(\"As of 2025-06-30\")"}, {"page": "pipeline", "hash": "pipeline?as_of=2025-12-31", "until": "document.body.innerText.includes(\"As of 2025-12-31\")"}' >"$plan"
node --experimental-websocket "$here/tests/browser/drive.mjs" chromium "$plan" | python3 -c '
import json, sys
steps = json.load(sys.stdin)["steps"]
print("page weight: '"$weight"' bytes (HTML, script and style, uncompressed)")
labels = ["a cold load (page, script, style, report, drawing)", "as of 2025-06-30 (a past as-of: the report folds every deal)", "as of 2025-12-31 (the same)"]
for label, s in zip(labels, steps):
    print("pipeline page interactive in %d ms, %s (ready %s, console errors %d)" % (s["interactive_ms"], label, s["ready"], len(s["errors"])))
'
rm -rf "$plan" "$shots"
