#!/usr/bin/env bash
# Fuzz Parley's parsers with libFuzzer.
#   Fuzz/run.sh [SECONDS] [TARGET...]     (default: 10 s each, every target)
# Builds parley-fuzz with Fuzz/toolset.json (libFuzzer + AddressSanitizer)
# into .build-fuzz, runs each target from its seeds in Fuzz/seeds/TARGET, keeps
# the growing corpus in .build-fuzz/corpus/TARGET and any crash input in
# .build-fuzz/crashes/TARGET. Exits non-zero if any target crashed.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(stun sdp candidate rtp rtcp vp8)

swift build -c release --scratch-path .build-fuzz --product parley-fuzz --toolset Fuzz/toolset.json 2>&1 | tail -1
bin=.build-fuzz/release/parley-fuzz
status=0
for t in "${targets[@]}"; do
  corpus=.build-fuzz/corpus/$t
  crashes=.build-fuzz/crashes/$t
  mkdir -p "$corpus" "$crashes"
  log=.build-fuzz/$t.log
  if PARLEY_FUZZ_TARGET=$t ASAN_OPTIONS=detect_leaks=0 "$bin" "$corpus" "Fuzz/seeds/$t" \
       -max_total_time="$seconds" -max_len=8192 -artifact_prefix="$crashes/" -print_final_stats=1 >"$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    echo "fuzz $t: ${seconds}s, $runs executions, no crash"
  else
    echo "fuzz $t: CRASH (input in $crashes, log $log)"
    tail -40 "$log"
    status=1
  fi
done
exit $status
