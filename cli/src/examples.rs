//! The examples at the end of each application's `mco help COMMAND` (and `--help`, its
//! man page and the snapshots in cli/help/): one place to keep them, beside nothing else.
//! Not a tutorial: the README explains; these show the common command lines.

pub const PING: &str = "Examples:
  mco ping
  mco ping -W country=uk -t 2
  mco ping -I web1.example.net -I web2.example.net";

pub const RPC: &str = "Examples:
  mco rpc rpcutil ping
  mco rpc service restart service=httpd -W \"country=uk webserver\"
  mco rpc package status package=openssl -j | jq '.[] | .data.ensure'
  mco rpc puppet runonce force=true -C role::web --batch 10 --batch-sleep 5
  mco rpc service status service=sshd --table --display failed
  mco rpc rpcutil ping --jsonl | jq -c 'select(.data.pong < 1700000000)'
  mco find -F os.family=debian | mco rpc service status service=sshd
  mco rpc --agent service --action status --arg service=sshd";

pub const SERVICE: &str = "Examples:
  mco service httpd status
  mco service httpd restart -W \"country=uk webserver\"
  mco service httpd restart -y --batch 10%";

pub const PACKAGE: &str = "Examples:
  mco package openssl status
  mco package openssl update -C role::web --batch 20
  mco package htop install version=3.2.2-2 -I web1.example.net";

pub const PUPPET: &str = "Examples:
  mco puppet count
  mco puppet summary -C role::web
  mco puppet runonce --force -C role::db --batch 5
  mco puppet disable message=\"deploy in progress\" -W country=uk
  mco puppet runall 5 -C role::web";

pub const PLOT: &str = "Examples:
  mco plot puppet last_run_summary config_retrieval_time -C role::web
  mco plot rpcutil daemon_stats total --buckets 20
  mco plot rpcutil get_fact value fact=processors.count --png cpus.png";

pub const FIND: &str = "Examples:
  mco find
  mco find -S \"country=uk and not role::db\"
  mco find --dm registry --do url=/var/lib/mco/registry.sqlite -C webserver";

pub const FACTS: &str = "Examples:
  mco facts os.family
  mco facts country -C role::web -j";

pub const INVENTORY: &str = "Examples:
  mco inventory web1.example.net
  mco inventory web1.example.net -j | jq .facts
  mco inventory --list-collectives -C role::web
  mco inventory --collective-graph collectives.dot && dot -Tpng collectives.dot > collectives.png
  mco inventory --script report.mc -W country=uk

An inventory script (MCollective's format; fields are identity, facts[\"NAME\"], classes,
agents, collectives or a string, with .join(\",\"), .sort, .size, .upcase, .downcase):
  inventory do
    format \"%-30s %s\"
    fields { [ identity, facts[\"os.family\"] ] }
  end";

pub const PLUGIN: &str = "Examples:
  mco plugin doc
  mco plugin doc service
  mco plugin lint /etc/mco/agents/*.json
  mco plugin convert nrpe.ddl -o /etc/mco/agents/nrpe.json";

pub const KEYS: &str = "Examples:
  mco keys issuer --dir /etc/mco/ca
  mco keys client alice --issuer-key /etc/mco/ca/issuer.key --dir ~/.config/mco
  mco keys server web1.example.net --issuer-key /etc/mco/ca/issuer.key --dir /etc/mco
  mco keys verify ~/.config/mco/alice.token --issuer /etc/mco/ca/issuer.pub";

pub const REPLIES: &str = "Examples:
  id=$(uuidgen | tr -d -)
  mco replies deploy.42 --id \"$id\" --count 3 -j > replies.json &
  mco rpc puppet runonce -W role=web --reply-to deploy.42 --request-id \"$id\"";

pub const EVENTS: &str = "Examples:
  mco events
  mco events --type 'service.*' -C role::web
  mco events --since 1h --type puppet.run_started -j | jq -r .identity
  mco events --type node.started --count 1 --for 60
  mco events --on service.state_changed --where service=httpd --where state=running \\
    -C roles::frontend_web --run 'mco rpc puppet runonce -C roles::frontend_lb'";

pub const CONFIG: &str = "Examples:
  mco config
  MCO_CONFIG=/etc/mco/client.toml mco config --broker nats://nats1:4222
  mco config --check";

pub const COMPLETION: &str =
    "The agent and action names of mco rpc are those of the DDLs the configuration
knows (built in and in ddl_dirs) when the script is written: regenerate it after adding DDLs.

Examples:
  mco completion bash > /etc/bash_completion.d/mco
  mco completion zsh > \"${fpath[1]}/_mco\"
  mco completion fish > ~/.config/fish/completions/mco.fish";
