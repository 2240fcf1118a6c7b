#!/usr/bin/env bash
# The whole test suite: installs what it needs, then formatting, lints, build and every test
# (unit, integration, and end-to-end against real nats-server and mcod processes).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

scripts/install-deps.sh --agents
mco_nats_path

# Each step says when it started (seconds since the script did), so a slow CI run shows
# which step to look at.
step() { printf '\n==> %s (at %d s)\n' "$*" "$SECONDS"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo build (binaries and examples the end-to-end tests run)"
cargo build --workspace --bins --examples --locked

step "mco-client without default features: builds, and pulls in no CLI or database crates"
cargo check -p mco-client --no-default-features --examples --locked
if cargo tree -p mco-client --no-default-features -e normal --locked | grep -E '^[^a-z]*(clap|anyhow|rusqlite|postgres) '; then
  echo "mco-client without default features depends on a crate it must not" >&2
  exit 1
fi

step "cargo test"
log=$(mktemp -t mco-test.XXXXXX)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"
passed=$(grep -Eo '^test result: ok\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '; [0-9]+ failed' "$log" | awk '{s+=$2} END {print s+0}')

step "fuzz targets (bounded)"
# Ten seconds a target: a smoke run that every change gets; longer hunts set MCO_FUZZ_SECONDS.
MCO_FUZZ_SECONDS=${MCO_FUZZ_SECONDS:-10} scripts/fuzz.sh

echo
echo "suite took $SECONDS s"
echo "$passed passed, $failed failed"
