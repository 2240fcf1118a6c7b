#!/usr/bin/env bash
# Builds the Debian packages: `mco` (the client: mco, /etc/mco/client.toml, the built-in DDLs,
# man pages, shell completions) and `mcod` (the daemon: mcod, its systemd units,
# /etc/mco/mcod.toml), into target/debian/.
#
#   scripts/package.sh                      # release binaries (what is shipped)
#   scripts/package.sh --profile dev        # from the debug binaries already built (tests)
#
# Needs cargo-deb (installed with `cargo install cargo-deb --locked` if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
build=yes
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="$2"; shift 2 ;;
    --no-build) build=no; shift ;;
    *) echo "usage: $0 [--profile PROFILE] [--no-build]" >&2; exit 2 ;;
  esac
done
case "$profile" in dev) out=debug ;; *) out="$profile" ;; esac

if ! command -v cargo-deb >/dev/null 2>&1; then
  echo "installing cargo-deb" >&2
  cargo install cargo-deb --locked --quiet
fi
if [ "$build" = yes ]; then
  cargo build --profile "$profile" --locked -p mco-server -p mco-cli --bins
fi

# What the packages install that is made, not checked in: the daemon's config (the example
# with the identity left to the host name and key files named for any node) and the
# completions, with the built-in DDLs' agents and actions.
stage=target/package
rm -rf "$stage"
mkdir -p "$stage/completions"
sed -e 's/^identity = "web1.example.net"/# identity = "web1.example.net"  # default: the host name/' \
    -e 's/^key_file = "web1.example.net.key"/key_file = "node.key"/' \
    -e 's/^token_file = "web1.example.net.token"/token_file = "node.token"/' \
    server/mcod.example.toml >"$stage/mcod.toml"
grep -q '^key_file = "node.key"' "$stage/mcod.toml" || { echo "mcod.example.toml changed: update $0" >&2; exit 1; }
mco="target/$out/mco"
# An empty configuration: the completions know the built-in DDLs, not this machine's.
printf '' >"$stage/empty.toml"
for shell in bash zsh fish; do
  MCO_CONFIG="$stage/empty.toml" "$mco" completion "$shell" >"$stage/completions/$shell"
done

mkdir -p target/debian
for crate in mco-server mco-cli; do
  cargo deb --no-build --profile "$profile" -p "$crate" --output target/debian/ --quiet
done
