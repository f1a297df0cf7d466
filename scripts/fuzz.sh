#!/usr/bin/env bash
# Fuzzes fanout's parsers of untrusted input with cargo fuzz (libFuzzer):
# client frames, broadcast events, tokens, PutEvents and SQS requests.
#   ./scripts/fuzz.sh [RUNS]        # default 10,000,000 runs per target
# It installs cargo-fuzz when missing. The toolchain here is stable, so the
# build runs with RUSTC_BOOTSTRAP=1 (cargo fuzz passes unstable flags) and
# without a sanitizer (-s none: the code under test is safe Rust).
# Crashes land in shared/core/fuzz/artifacts/<target>/; each one found
# becomes a regression test in shared/core/tests/roundtrip.rs.
set -euo pipefail
cd "$(dirname "$0")/../shared/core/fuzz"

CARGO_FUZZ_VERSION="0.13.2"
RUNS="${1:-10000000}"
TARGETS=(client_frame broadcast_event token put_events sqs_request)

if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi
export RUSTC_BOOTSTRAP=1
for target in "${TARGETS[@]}"; do
  printf '\n==> %s (%s runs)\n' "$target" "$RUNS"
  SECONDS=0
  cargo fuzz run -s none -O "$target" -- -runs="$RUNS" -max_len=4096 2>&1 | grep -E '^Done|ERROR|panicked' || true
  echo "    ${SECONDS}s"
done
