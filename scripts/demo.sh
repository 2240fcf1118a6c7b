#!/usr/bin/env bash
# A demo fleet on this machine: its own nats-server (JetStream, free port, temporary store),
# six mcod daemons with different facts, classes and collectives, a registry service, and a few
# mco commands that show discovery and filters. Everything is stopped and removed at the end, unless --keep.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

keep=false
[ "${1:-}" = "--keep" ] && keep=true

scripts/install-deps.sh
mco_nats_path
echo "==> building mco, mcod and mco-web"
cargo build --quiet --bins
bin="$PWD/target/debug"

work=$(mktemp -d -t mco-demo.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  # Daemons drain and exit within their grace period; anything left after that is killed.
  for _ in $(seq 50); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.2
  done
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
if ! $keep; then trap cleanup EXIT; fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
nats-server -a 127.0.0.1 -p "$port" -js -sd "$work/jetstream" >"$work/nats.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done

# Real keys: an issuer, a server token per node, a client token for the demo's caller.
keys="$work/keys"
"$bin/mco" keys issuer --dir "$keys" >/dev/null
"$bin/mco" keys client demo --issuer-key "$keys/issuer.key" --dir "$keys" >/dev/null

# identity country cpus os-family collective classes...
nodes=(
  "web1.example.net uk 4 debian uk role::web webserver"
  "web2.example.net uk 2 debian uk role::web webserver"
  "web3.example.net de 8 redhat eu role::web"
  "db1.example.net  fr 16 debian eu role::db"
  "db2.example.net  uk 8 debian uk role::db backup"
  "cache1.example.net de 2 debian eu role::cache"
)
for line in "${nodes[@]}"; do
  read -r id country cpus family collective classes <<<"$line"
  dir="$work/$id"; mkdir -p "$dir"
  printf 'country: %s\ncpus: %s\nos:\n  family: %s\nenvironment: production\n' "$country" "$cpus" "$family" >"$dir/facts.yaml"
  tr ' ' '\n' <<<"$classes" >"$dir/classes.txt"
  "$bin/mco" keys server "$id" --issuer-key "$keys/issuer.key" --dir "$dir" >/dev/null
  cat >"$dir/mcod.toml" <<TOML
identity = "$id"
brokers = ["nats://127.0.0.1:$port"]
collectives = ["mco", "$collective"]
facts_files = ["facts.yaml"]
classes_file = "classes.txt"
issuer_keys = ["$keys/issuer.pub"]
key_file = "$id.key"
token_file = "$id.token"
audit_file = "audit.log"
state_dir = "state"

[registration]
interval_seconds = 10
splay_seconds = 1
TOML
  "$bin/mcod" --config "$dir/mcod.toml" >"$dir/mcod.log" 2>&1 &
  pids+=($!)
  last_node_pid=$!
done

# The registry service stores the nodes' signed registrations in an SQLite file; it runs with
# the first node's configuration (its brokers, collectives, trusted issuer).
first="$(awk '{print $1}' <<<"${nodes[0]}")"
"$bin/mcod" --config "$work/$first/mcod.toml" registry --db "$work/registry.sqlite" --expire-after 60 \
  >"$work/registry.log" 2>&1 &
pids+=($!)

cat >"$work/client.toml" <<TOML
brokers = ["nats://127.0.0.1:$port"]
collectives = ["mco", "uk", "eu"]
key_file = "$keys/demo.key"
token_file = "$keys/demo.token"
issuer_keys = ["$keys/issuer.pub"]

# The web gateway (mco-web) reads the same file; its callers sign with their own keys.
[web]
callers_file = "$work/web-callers.toml"
credentials_dir = "$keys"
TOML
export MCO_CONFIG="$work/client.toml"

for _ in $(seq 50); do
  [ "$("$bin/mco" find --dt 1 2>/dev/null | wc -l)" -ge ${#nodes[@]} ] && break
  sleep 0.2
done

# mco reads a piped stdin as a node list; the demo's own stdin is not meant for it.
show() {
  printf '\n\033[1m$ mco %s\033[0m\n' "$*"
  "$bin/mco" "$@" </dev/null || true
}
showsh() {
  printf '\n\033[1m$ %s\033[0m\n' "$1"
  (PATH="$bin:$PATH"; eval "$1") </dev/null || true
}
show ping
show rpc rpcutil ping -W country=uk
show find -F 'cpus>=8'
show find -C /^role::db/ -F country=uk
show find -S "(country=uk and /web/) or os.family=redhat"
show facts country
show rpc rpcutil collective_info -T eu
show rpc rpcutil get_fact fact=os.family -I web3.example.net -j
show inventory web1.example.net
printf 'web1.example.net\ndb1.example.net\n' >"$work/nodes.txt"
show find --nodes "$work/nodes.txt"
show rpc rpcutil ping --nodes "$work/nodes.txt" -v
showsh "mco rpc rpcutil get_fact fact=country -j | jq '[.[] | select(.data.value==\"uk\")]' | mco rpc rpcutil ping"
# Wait for every node's first registration (each waits a random splay of up to a second).
for _ in $(seq 50); do
  [ "$("$bin/mco" find --dm registry --do url="$work/registry.sqlite" 2>/dev/null | wc -l)" -ge ${#nodes[@]} ] && break
  sleep 0.2
done
show find --dm registry --do url="$work/registry.sqlite" -S "(country=uk and /web/) or os.family=redhat"
show rpc rpcutil ping --dm registry --do url="$work/registry.sqlite" -W "country=uk role::db" -v
show rpc rpcutil ping --batch 2 --batch-sleep 0.5
show find --limit-nodes 50% --limit-seed 1
# A direct request to a node that is down waits in JetStream and runs when it starts
kill "$last_node_pid"
while kill -0 "$last_node_pid" 2>/dev/null; do sleep 0.1; done
last="$(awk '{print $1}' <<<"${nodes[-1]}")"
show rpc rpcutil ping -I "$last" --ttl 300 -t 1
"$bin/mcod" --config "$work/$last/mcod.toml" >>"$work/$last/mcod.log" 2>&1 &
pids+=($!)
sleep 2
printf '\n\033[1m$ grep rpcutil %s | tail -1\033[0m  (the queued ping ran when the node came back)\n' "$last/audit.log"
grep '"rpcutil"' "$work/$last/audit.log" | tail -1 || true
show keys show "$keys/demo.token"

# The web gateway: a bearer token for the caller "demo", whose own key signs its requests.
web_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
web_token=$("$bin/mco-web" token add demo 2>/dev/null)
"$bin/mco-web" --listen "127.0.0.1:$web_port" >"$work/mco-web.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$web_port") 2>/dev/null && break; sleep 0.1; done
web="http://127.0.0.1:$web_port"
export TOKEN=$web_token
showsh "curl -s -H \"Authorization: Bearer \$TOKEN\" -d '{\"inputs\": {\"fact\": \"country\"}, \"filter\": {\"fact\": [\"country=uk\"]}}' $web/api/v1/agents/rpcutil/actions/get_fact | jq -c '.replies[] | [.sender, .data.value]'"
showsh "curl -sN -H \"Authorization: Bearer \$TOKEN\" -H 'Accept: application/x-ndjson' -d '{\"filter\": {\"with\": [\"role::db\"]}}' $web/api/v1/agents/rpcutil/actions/ping | jq -c '[.event, .data.sender // .data.discovered // .data.stats.responded]'"
printf '\n\033[1m$ tail -2 %s\033[0m\n' "web1.example.net/audit.log"
tail -2 "$work/web1.example.net/audit.log"

if $keep; then
  cat <<MSG

The fleet is still running (nats-server on port $port, files in $work).
  export MCO_CONFIG=$work/client.toml
  $bin/mco ping
The web console: $web/  (bearer token: $web_token)
Stop it with: kill ${pids[*]}; rm -rf $work
MSG
fi
