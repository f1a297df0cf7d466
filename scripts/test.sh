#!/usr/bin/env bash
# The full test suite, as a new user and CI run it:
#   ./scripts/test.sh
# It installs what it needs (the Rust components it uses), then runs the
# formatting and lint gates and every test: unit, contract and end-to-end.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
if ! command -v cargo >/dev/null; then
  echo "error: cargo not found; install Rust from https://rustup.rs" >&2
  exit 1
fi
if command -v rustup >/dev/null; then
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi
cargo --version

step "format (cargo fmt --check)"
cargo fmt --all -- --check

step "lint (cargo clippy --all-targets -- -D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests (cargo test --workspace)"
cargo test --workspace --locked
