#!/usr/bin/env bash
# The full test suite, as a new user and CI run it:
#   ./scripts/test.sh
# It installs what it needs — the Rust components it uses, and a Python
# virtualenv with moto's AWS-compatible server (in $FANOUT_VENV, default
# ./.venv) — then runs the formatting and lint gates and every test: unit,
# pipeline, contract (embedded and AWS adapters, the latter against moto's
# server on a free loopback port) and end-to-end; and the client SDK's
# tests (Node.js, npm packages from its lockfile) against the real local
# stack, with the demo and dashboard pages in headless Chromium (installed
# with apt-get when missing); and the end-to-end suite once more with the
# built Lambda bootstraps as the stack's functions (`--lambdas`).
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned so every machine tests against the same tools.
MOTO_VERSION="5.2.5"
SAM_CLI_VERSION="1.170.0"
CHECKOV_VERSION="3.2.459"
VENV="${FANOUT_VENV:-$PWD/.venv}"
# The template tools get their own virtualenv: their pins need not agree
# with moto's.
INFRA_VENV="${FANOUT_INFRA_VENV:-$PWD/.venv-infra}"

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

step "python virtualenv with moto's server ($VENV)"
if ! python3 -m venv --help >/dev/null 2>&1; then
  if command -v apt-get >/dev/null; then
    echo "python3 with venv is missing; installing it with apt-get"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq python3 python3-venv python3-pip
  else
    echo "error: python3 with the venv module is required (for moto's server)" >&2
    exit 1
  fi
fi
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
"$VENV/bin/moto_server" --version 2>/dev/null || true

step "python virtualenv with the SAM CLI and checkov ($INFRA_VENV)"
[ -x "$INFRA_VENV/bin/python" ] || python3 -m venv "$INFRA_VENV"
"$INFRA_VENV/bin/pip" install --quiet --disable-pip-version-check \
  "aws-sam-cli==$SAM_CLI_VERSION" "checkov==$CHECKOV_VERSION"

step "format (cargo fmt --check)"
cargo fmt --all -- --check

step "lint (cargo clippy --all-targets -- -D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "template: sam validate (SAM translation), sam validate --lint (cfn-lint), checkov"
export SAM_CLI_TELEMETRY=0
"$INFRA_VENV/bin/sam" validate --region us-east-1 -t infra/template.yaml
"$INFRA_VENV/bin/sam" validate --lint --region us-east-1 -t infra/template.yaml
# Skipped checks and their reasons are in infra/checkov.yaml.
"$INFRA_VENV/bin/checkov" --skip-download --quiet --compact \
  --config-file infra/checkov.yaml -f infra/template.yaml

step "build the tests"
cargo test --workspace --locked --no-run

# The fuzz targets are their own workspace (cargo fuzz builds them with
# libFuzzer's flags); checking them here keeps them building.
step "fuzz targets (cargo check in shared/core/fuzz)"
(cd shared/core/fuzz && cargo check --locked --bins \
  --target-dir "${CARGO_TARGET_DIR:-$PWD/../../../target}/fuzz")

step "client SDK (clients/js): npm ci, build, API reference, tests against the local stack, pages in Chromium"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "error: the client SDK's tests need Node.js 20 or newer with npm (https://nodejs.org)" >&2
  exit 1
fi
NODE_MAJOR="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$NODE_MAJOR" -lt 20 ]; then
  echo "error: Node.js $(node --version) is too old for the client SDK's tests; 20 or newer is needed" >&2
  exit 1
fi
CHROMIUM="${FANOUT_CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
  if command -v apt-get >/dev/null; then
    echo "Chromium is missing; installing Debian's chromium with apt-get (for the page tests)"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
  else
    echo "error: the page tests need Chromium at $CHROMIUM (set FANOUT_CHROMIUM to another path)" >&2
    exit 1
  fi
fi
export FANOUT_CHROMIUM="$CHROMIUM"
npm --prefix clients/js ci --no-audit --no-fund --loglevel=error
npm --prefix clients/js run --silent build
npm --prefix clients/js run --silent docs >/dev/null
cargo build -p fanout-local --locked
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
FANOUT_LOCAL_BIN="$TARGET_DIR/debug/fanout-local" npm --prefix clients/js test
echo "page screenshots: clients/js/test-results/"

step "start moto's server"
MOTO_PORT="$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
MOTO_LOG="$(mktemp -t fanout-moto.XXXXXX.log)"
# moto's own server, with DynamoDB's per-item atomicity (see the script).
"$VENV/bin/python" scripts/moto_server.py -H 127.0.0.1 -p "$MOTO_PORT" >"$MOTO_LOG" 2>&1 &
MOTO_PID=$!
trap 'kill "$MOTO_PID" 2>/dev/null || true; wait "$MOTO_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if "$VENV/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$MOTO_PORT/moto-api/', timeout=1)" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$MOTO_PID" 2>/dev/null; then
    echo "error: moto's server exited; its log:" >&2
    cat "$MOTO_LOG" >&2
    exit 1
  fi
  sleep 0.2
done
echo "moto's server on http://127.0.0.1:$MOTO_PORT (pid $MOTO_PID, log $MOTO_LOG)"

# The AWS sides of the contract suites (and the AWS-backend end-to-end
# tests) run against it; with REQUIRED set they fail rather than skip.
export FANOUT_TEST_AWS_ENDPOINT="http://127.0.0.1:$MOTO_PORT"
export FANOUT_TEST_AWS_REQUIRED=1
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1

step "tests (cargo test --workspace)"
cargo test --workspace --locked

step "client SDK's stack tests again, on the AWS backend (moto)"
FANOUT_SDK_TEST_BACKEND=aws FANOUT_LOCAL_BIN="$TARGET_DIR/debug/fanout-local" npm --prefix clients/js run --silent test:stack

step "end-to-end suite again, on the AWS backend (DynamoDB, EventBridge, SQS on moto)"
FANOUT_E2E_BACKEND=aws cargo test -p fanout-local --locked --test e2e --test auth --test streams --test signals --test presence --test sweeper --test pages

step "IAM: a moto server that enforces it, an administrator, and each function's role from the SAM-translated template"
"$INFRA_VENV/bin/python" -m unittest discover -s infra/iam -p 'test_*.py'
IAM_PORT="$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
IAM_DIR="$(mktemp -d -t fanout-iam.XXXXXX)"
# The first 3 requests are not checked: they create the administrator.
INITIAL_NO_AUTH_ACTION_COUNT=3 "$VENV/bin/python" scripts/moto_server.py -H 127.0.0.1 -p "$IAM_PORT" >"$IAM_DIR/moto.log" 2>&1 &
IAM_MOTO_PID=$!
trap 'kill "$MOTO_PID" "$IAM_MOTO_PID" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
until "$VENV/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$IAM_PORT/moto-api/', timeout=1)" 2>/dev/null; do
  kill -0 "$IAM_MOTO_PID" 2>/dev/null || { cat "$IAM_DIR/moto.log" >&2; exit 1; }
  sleep 0.2
done
"$INFRA_VENV/bin/python" infra/iam/roles.py load --endpoint "http://127.0.0.1:$IAM_PORT" --out "$IAM_DIR"
mkdir -p "$IAM_DIR/calls"

step "end-to-end suites again, with the built bootstraps as the functions, each under its own role (their Lambda Runtime API served by the stack; DynamoDB, EventBridge, SQS and Secrets Manager on moto with IAM enforced)"
cargo build --workspace --bins --locked
(
  set -a; . "$IAM_DIR/admin.env"; set +a
  FANOUT_TEST_AWS_ENDPOINT="http://127.0.0.1:$IAM_PORT" FANOUT_E2E_BACKEND=aws \
    FANOUT_E2E_LAMBDAS="$TARGET_DIR/debug" FANOUT_E2E_LAMBDA_ROLES="$IAM_DIR/roles.json" \
    FANOUT_E2E_CALL_LOG="$IAM_DIR/calls" \
    cargo test -p fanout-local --locked --test e2e --test auth --test streams --test signals --test presence --test sweeper --test pages
)

step "IAM: every recorded call against its function's role (resources too), and every grant against the calls"
"$INFRA_VENV/bin/python" infra/iam/roles.py check --calls "$IAM_DIR/calls" --report "$IAM_DIR/report.md"
echo "report: $IAM_DIR/report.md"
