#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (MCO_FUZZ_SECONDS each, default 20) and fails if
# any finds a crash. cargo-fuzz needs nightly-only compiler flags; RUSTC_BOOTSTRAP lets the
# stable toolchain accept them for this build only. A crash leaves its input under
# fuzz/artifacts/<target>/: turn it into a regression test before fixing.
#
# The targets are built without a sanitizer unless MCO_FUZZ_SANITIZER names one (address,
# leak, memory, thread): the parsers are safe Rust, where AddressSanitizer finds little that
# a panic would not, and its build costs CI about two minutes. Long hunts can turn it on:
#   MCO_FUZZ_SANITIZER=address MCO_FUZZ_SECONDS=600 scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${MCO_FUZZ_SECONDS:-20}
sanitizer=${MCO_FUZZ_SANITIZER:-none}
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz" >&2
  cargo install --quiet --locked cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1
targets=(decode_request parse_token parse_filter parse_policy load_ddl)
# One build of every target: one cargo invocation shares the dependency graph and links in
# parallel, where a build per `cargo fuzz run` would not.
cargo fuzz build --sanitizer "$sanitizer"
for target in "${targets[@]}"; do
  echo "==> fuzz $target for ${seconds}s"
  log=$(mktemp -t mco-fuzz.XXXXXX)
  if cargo fuzz run --sanitizer "$sanitizer" "$target" -- -max_total_time="$seconds" >"$log" 2>&1; then
    grep -E '^Done' "$log" || true
    rm -f "$log"
  else
    tail -40 "$log" >&2
    echo "fuzz: $target failed (a crash leaves its input in fuzz/artifacts/$target/); log: $log" >&2
    exit 1
  fi
done
