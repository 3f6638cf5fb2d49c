#!/usr/bin/env bash
# The whole test suite N times in a row on a clean clone of COMMIT, while two busy loops hold
# both cores (issue 26: "a test that fails one time in twenty is a failing test").
#
#   scripts/soak-suite.sh N [COMMIT] [OUT_DIR]
#
# Each run is `cargo test --workspace --no-fail-fast` with the tools required and the shared
# datasets named, as .ci/run has them. A line per run goes to OUT_DIR/summary.txt (and the
# failing tests under it); each run's whole output to OUT_DIR/run-K.log. CARGO_TARGET_DIR, when
# set, is used as the build cache (the clone's sources are what is tested).
set -u
n=${1:?usage: scripts/soak-suite.sh N [COMMIT] [OUT_DIR]}
repo=$(git rev-parse --show-toplevel)
commit=${2:-$(git -C "$repo" rev-parse HEAD)}
out=${3:-$(mktemp -d /tmp/soak.XXXXXX)}
mkdir -p "$out"
clone="$out/clone"
rm -rf "$clone" && git clone -q "$repo" "$clone" && git -C "$clone" checkout -q "$commit" || exit 1
datasets="$(cd "$repo/.." && pwd)/shared/datasets"
export DEALLEDGER_REQUIRE_TOOLS=1 DEALLEDGER_DATASETS="${DEALLEDGER_DATASETS:-$datasets}"
# nats-server from pip sits beside python3's scripts, which a shim-based PATH may not show.
PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null):$PATH"
export PATH
cd "$clone" || exit 1
cargo test --workspace --no-run -q >/dev/null 2>&1
yes >/dev/null & busy1=$!
yes >/dev/null & busy2=$!
trap 'kill $busy1 $busy2 2>/dev/null' EXIT
echo "soak of $commit: $n runs, output in $out"
for i in $(seq 1 "$n"); do
  started=$(date +%s)
  cargo test --workspace --no-fail-fast >"$out/run-$i.log" 2>&1
  rc=$?
  passed=$(grep -E '^test result' "$out/run-$i.log" | awk '{s += $4} END {print s + 0}')
  failed=$(grep -E '^test result' "$out/run-$i.log" | awk '{s += $6} END {print s + 0}')
  echo "run $i: rc=$rc passed=$passed failed=$failed seconds=$(($(date +%s) - started))" | tee -a "$out/summary.txt"
  grep -E '^test .* FAILED|panicked' "$out/run-$i.log" | tee -a "$out/summary.txt"
done
