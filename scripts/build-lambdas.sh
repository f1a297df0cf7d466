#!/usr/bin/env bash
# Builds every Lambda function with cargo-lambda, as AWS runs them
# (provided.al2023, `bootstrap`): arm64 when the aarch64 target installs,
# x86_64 otherwise. cargo-lambda and zig (its cross-linker) come from PyPI
# into the same virtualenv the test script uses ($FANOUT_VENV, default
# ./.venv). Prints each bootstrap's size.
#   ./scripts/build-lambdas.sh
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_LAMBDA_VERSION="1.9.2"
ZIGLANG_VERSION="0.13.0"
VENV="${FANOUT_VENV:-$PWD/.venv}"
FUNCTIONS=(authorizer connect disconnect message planner broadcaster sweeper)

step() { printf '\n==> %s\n' "$*"; }

step "cargo-lambda $CARGO_LAMBDA_VERSION and zig $ZIGLANG_VERSION ($VENV)"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check \
  "cargo-lambda==$CARGO_LAMBDA_VERSION" "ziglang==$ZIGLANG_VERSION"
export PATH="$VENV/bin:$PATH"
cargo lambda --version

ARCH_FLAG="--arm64"
ARCH="arm64"
if ! rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1; then
  echo "the aarch64-unknown-linux-gnu target did not install; building for x86_64"
  ARCH_FLAG="--x86-64"
  ARCH="x86_64"
fi

step "cargo lambda build --profile lambda $ARCH_FLAG (${FUNCTIONS[*]})"
PACKAGES=()
for f in "${FUNCTIONS[@]}"; do PACKAGES+=(-p "fanout-$f"); done
SECONDS=0
# The `lambda` profile is `release`, stripped and without debug info.
cargo lambda build --profile lambda "$ARCH_FLAG" "${PACKAGES[@]}"
echo "built in ${SECONDS}s"

step "bootstraps ($ARCH)"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
for f in "${FUNCTIONS[@]}"; do
  bootstrap="$TARGET_DIR/lambda/fanout-$f/bootstrap"
  if [ ! -f "$bootstrap" ]; then
    echo "error: $bootstrap was not built" >&2
    exit 1
  fi
  printf '  %-22s %8s bytes  (%s)\n' "fanout-$f" "$(stat -c %s "$bootstrap")" "$(file -b "$bootstrap" 2>/dev/null | cut -d, -f1-2 || echo "$ARCH")"
done
