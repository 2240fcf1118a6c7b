//! `mco-bench`: the end-to-end benchmark. Starts its own `nats-server` (free loopback port,
//! temporary store, JetStream), then measures in one run mco through the real client library
//! against simulated fleets (and a real `mcod`), and the raw-NATS floor for the same message
//! patterns and sizes, and prints the figures with their ratios (`--json FILE` writes them).
//! See `bench/README.md` for what each figure means. Build it with `--release`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Parser;
use ed25519_dalek::{Signer, SigningKey};
use futures::StreamExt;
use mco_bench::discovery::DiscoveryBench;
use mco_bench::keys::{derived_key, Issuer};
use mco_bench::measure::{memory_mb, rounds_for, table, with_cpu, Figure, Samples};
use mco_bench::raw::{self, RawFleet, Work};
use mco_bench::sim::{
    client_credentials, client_round, message_sizes, ping_reply, raw_caller_round, Fleet, FleetSpec,
};
use mco_client::{Call, Client, Size};
use mco_spec::message::{new_request_id, now_millis};
use mco_spec::security::Credentials;
use mco_spec::{subjects, ReplyEnvelope};

/// Measure mco against raw NATS on this machine.
#[derive(Debug, Parser)]
#[command(name = "mco-bench", version, about, long_about = None)]
struct Cli {
    /// A quick smoke run: 100 and 1,000 nodes, few rounds, short load phases.
    #[arg(long)]
    quick: bool,
    /// Fleet sizes for the broadcast figures.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
    sizes: Vec<usize>,
    /// Broadcast rounds per size (fewer above 1,000 nodes).
    #[arg(long, default_value_t = 20)]
    rounds: usize,
    /// Direct round trips to one node per measurement.
    #[arg(long, default_value_t = 2000)]
    direct_samples: usize,
    /// Requests in flight for the requests-per-second figures.
    #[arg(long, default_value_t = 32)]
    in_flight: usize,
    /// Seconds of each load phase.
    #[arg(long, default_value_t = 3)]
    load_seconds: u64,
    /// NATS connections the simulated and raw fleets share.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Write the figures as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Skip the figures that run the real mcod and mco binaries.
    #[arg(long)]
    skip_processes: bool,
    /// Real `mcod` processes for the discovery figures.
    #[arg(long, default_value_t = 50)]
    discovery_daemons: usize,
    /// Measure only these parts (for iterating on one figure); every part by default.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Part>,
}

/// The parts of a run, for `--only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Part {
    /// Broadcast ping to every `--sizes` fleet, with the direct-to-many figures at 1,000.
    Broadcast,
    /// Direct requests to one node: round trip and rate.
    Direct,
    /// The client's signed-reply throughput.
    Client,
    /// The real `mcod` (memory, queued round trip) and `mco --version`.
    Processes,
    /// Wall time of `mco ping`, `mco rpc` and `mco find` with broadcast discovery, against
    /// `--discovery-daemons` real `mcod` and the `--sizes` of 1,000 and more simulated.
    Discovery,
    /// Event throughput: signed events of 1,000 nodes received by `Client::events` and by a
    /// real `mco events`, beside raw NATS for the same messages.
    Events,
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    if cli.quick {
        cli.sizes = vec![100, 1000];
        cli.rounds = 5;
        cli.direct_samples = 200;
        cli.load_seconds = 1;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mco-bench: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mco-bench: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Everything one run shares.
struct Bench {
    cli: Cli,
    broker: String,
    issuer: Issuer,
    caller: Credentials,
    /// Connections for the raw fleets, as many as the simulator uses.
    raw_connections: Vec<async_nats::Client>,
    /// The raw caller's own connection.
    raw_caller: async_nats::Client,
    figures: Vec<Figure>,
}

const TIMEOUT: Duration = Duration::from_secs(30);

/// How long one broadcast round may take before it counts as incomplete: far above any
/// complete round, even at 10,000 nodes.
const ROUND_TIMEOUT: Duration = Duration::from_secs(5);

async fn run(cli: Cli) -> anyhow::Result<()> {
    let nats = mco_testsupport::NatsServer::start();
    let outcome = measure(cli, nats.url()).await;
    if outcome.is_err() {
        // Slow consumers and the like are only in the broker's log.
        let log = nats.log();
        let after_start: Vec<&str> = log
            .lines()
            .skip_while(|l| !l.contains("Server is ready"))
            .skip(1)
            .collect();
        for line in after_start.iter().take(20) {
            eprintln!("nats-server: {line}");
        }
    }
    outcome
}

async fn measure(cli: Cli, broker: String) -> anyhow::Result<()> {
    let issuer = Issuer::generate()?;
    let caller = client_credentials(&issuer, "bench");
    let mut raw_connections = Vec::new();
    for _ in 0..cli.connections.max(1) {
        raw_connections.push(async_nats::connect(&broker).await?);
    }
    let raw_caller = async_nats::connect(&broker).await?;
    let mut bench = Bench {
        cli,
        broker,
        issuer,
        caller,
        raw_connections,
        raw_caller,
        figures: Vec::new(),
    };
    let costs = signature_costs();
    eprintln!(
        "ed25519 on this machine: sign {:.1} µs, verify {:.1} µs, batch verify {:.1} µs/signature",
        costs.sign_us, costs.verify_us, costs.batch_us
    );
    bench.figures.push(Figure::value(
        "ed25519 sign (reply)",
        1,
        "µs",
        costs.sign_us,
    ));
    bench.figures.push(Figure::value(
        "ed25519 verify (strict)",
        1,
        "µs",
        costs.verify_us,
    ));
    bench.figures.push(Figure::value(
        "ed25519 batch verify, per signature",
        256,
        "µs",
        costs.batch_us,
    ));

    let wanted = |part: Part| bench.cli.only.is_empty() || bench.cli.only.contains(&part);
    let (run_broadcast, run_direct, run_client) = (
        wanted(Part::Broadcast),
        wanted(Part::Direct),
        wanted(Part::Client),
    );
    let run_processes = wanted(Part::Processes) && !bench.cli.skip_processes;
    let run_discovery = wanted(Part::Discovery) && !bench.cli.skip_processes;
    let run_events = wanted(Part::Events);
    if run_broadcast {
        for n in bench.cli.sizes.clone() {
            broadcast(&mut bench, n).await?;
        }
    }
    if run_direct {
        direct(&mut bench).await?;
    }
    if run_client {
        client_throughput(&mut bench).await?;
    }
    if run_processes {
        processes(&mut bench).await?;
    }
    if run_discovery {
        discovery(&mut bench).await?;
    }
    if run_events {
        events(&mut bench).await?;
    }

    println!("{}", table(&bench.figures));
    if let Some(path) = &bench.cli.json {
        let doc = serde_json::json!({
            "command": std::env::args().collect::<Vec<_>>().join(" "),
            "machine": {"cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)},
            "ed25519_us": {"sign": costs.sign_us, "verify": costs.verify_us, "batch_verify_per_signature": costs.batch_us},
            "figures": bench.figures,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

struct Costs {
    sign_us: f64,
    verify_us: f64,
    batch_us: f64,
}

/// ed25519 costs for a reply-sized message, measured now (the same run as the figures).
fn signature_costs() -> Costs {
    const N: usize = 2048;
    let keys: Vec<SigningKey> = (0..256u32)
        .map(|i| {
            let mut seed = [3u8; 32];
            seed[..4].copy_from_slice(&i.to_le_bytes());
            SigningKey::from_bytes(&seed)
        })
        .collect();
    let message = vec![b'r'; 300];
    let started = Instant::now();
    let mut signatures = Vec::with_capacity(N);
    for i in 0..N {
        signatures.push(keys[i % keys.len()].sign(&message));
    }
    let sign_us = started.elapsed().as_secs_f64() * 1e6 / N as f64;
    let verifying: Vec<_> = keys.iter().map(SigningKey::verifying_key).collect();
    let started = Instant::now();
    for (i, s) in signatures.iter().enumerate() {
        let _ = verifying[i % keys.len()].verify_strict(&message, s);
    }
    let verify_us = started.elapsed().as_secs_f64() * 1e6 / N as f64;
    let messages: Vec<&[u8]> = (0..256).map(|_| message.as_slice()).collect();
    let started = Instant::now();
    let rounds = N / 256;
    for r in 0..rounds {
        let sigs = &signatures[r * 256..(r + 1) * 256];
        let _ = ed25519_dalek::verify_batch(&messages, sigs, &verifying);
    }
    let batch_us = started.elapsed().as_secs_f64() * 1e6 / N as f64;
    Costs {
        sign_us,
        verify_us,
        batch_us,
    }
}

impl Bench {
    async fn client(&self, collective: &str, signed: bool) -> anyhow::Result<Client> {
        let mut builder = Client::builder()
            .broker(self.broker.clone())
            .collectives([collective])
            .sender("bench-client")
            .timeout(TIMEOUT)
            .discovery_timeout(TIMEOUT)
            // Discovery must not end between two bursts of 10,000 replies.
            .discovery_end(mco_client::DiscoveryEnd::Window)
            .discovery_window(Duration::from_millis(500))
            .discovery_cache_lifetime(Duration::ZERO)
            .direct_threshold(0)
            // The simulator takes direct requests on plain subjects (see mco_bench::sim).
            .direct_queue(false);
        builder = if signed {
            builder
                .credentials(self.caller.clone())
                .trust(vec![self.issuer.public()], 60)
        } else {
            builder.insecure(true)
        };
        Ok(builder.connect().await?)
    }

    async fn fleet(&self, n: usize, collective: &str, signed: bool) -> anyhow::Result<Fleet> {
        let mut spec = FleetSpec::new(n, signed.then(|| self.issuer.clone()));
        spec.collectives = vec![collective.to_string()];
        spec.connections = self.cli.connections;
        Ok(Fleet::start(spec, &self.broker).await?)
    }

    /// A signed payload of `size` bytes for the raw floor with signatures.
    fn raw_payload(&self, size: usize, signed: bool) -> Bytes {
        let body = vec![b'q'; size.saturating_sub(64).max(1)];
        if signed {
            raw::sign_one(&self.caller.key, &body)
        } else {
            Bytes::from(vec![b'q'; size.max(1)])
        }
    }
}

/// Broadcast `rpcutil ping` to `n` simulated nodes, signed and unsigned, against the raw
/// floor for the same sizes (with and without the signature work).
///
/// The floors' raw fleets and the simulated fleets are all up at once and their rounds take
/// turns (raw, mco unsigned, the nodes' share, raw with signatures, mco signed, and again):
/// each figure and its floor are measured under the same load of the machine, so a machine
/// that slows down for a while slows both, and the ratio stays what it is.
async fn broadcast(bench: &mut Bench, n: usize) -> anyhow::Result<()> {
    let rounds = rounds_for(n, bench.cli.rounds);
    eprintln!("broadcast to {n} nodes, {rounds} rounds of each, taking turns");
    let (req_signed, reply_signed) = message_sizes(Some((&bench.caller, &bench.issuer)));
    let (req_plain, reply_plain) = message_sizes(None);
    let raw_fleet = RawFleet::start(
        &bench.raw_connections,
        &format!("raw{n}"),
        n,
        reply_plain,
        Work::None,
    )
    .await?;
    let raw_sig_fleet = RawFleet::start(
        &bench.raw_connections,
        &format!("rawsig{n}"),
        n,
        reply_signed.saturating_sub(64),
        Work::Signatures {
            caller: bench.caller.key.verifying_key(),
        },
    )
    .await?;
    let plain_payload = bench.raw_payload(req_plain, false);
    let signed_payload = bench.raw_payload(req_signed, true);
    let unsigned = SimUnderTest::start(bench, n, false).await?;
    let signed = SimUnderTest::start(bench, n, true).await?;

    let [mut floor, mut floor_sig, mut mco_unsigned, mut nodes_only, mut mco_signed] =
        std::array::from_fn(|_| Rounds::default());
    // One warm-up round of each first; at most as many rounds again are tried when some
    // miss replies.
    for round in 0..=rounds * 2 {
        let keep = round > 0;
        let caller = &bench.raw_caller;
        let named = |fleet: &RawFleet| {
            let subject = fleet.broadcast.clone();
            move |e: String| format!("raw broadcast to {n} ({subject}): {e}")
        };
        let (outcome, cpu) = with_cpu(raw::broadcast_round(
            caller,
            &raw_fleet.broadcast,
            plain_payload.clone(),
            n,
            None,
            ROUND_TIMEOUT,
        ))
        .await;
        floor.add_costed(keep, outcome.map_err(named(&raw_fleet)), cpu);
        mco_unsigned.add(keep, unsigned.round(n).await);
        let (outcome, cpu) = with_cpu(raw_caller_round(
            &bench.raw_caller,
            n,
            &unsigned.collective,
            ROUND_TIMEOUT,
        ))
        .await;
        nodes_only.add_costed(keep, outcome, cpu);
        let keys = Some(raw_sig_fleet.node_keys.as_slice());
        floor_sig.add(
            keep,
            raw::broadcast_round(
                caller,
                &raw_sig_fleet.broadcast,
                signed_payload.clone(),
                n,
                keys,
                ROUND_TIMEOUT,
            )
            .await
            .map_err(named(&raw_sig_fleet)),
        );
        mco_signed.add(keep, signed.round(n).await);
        let series = [&floor, &floor_sig, &mco_unsigned, &nodes_only, &mco_signed];
        if series.iter().all(|s| s.samples.len() >= rounds) {
            break;
        }
    }
    if n == 1000 {
        fan_out_floor(bench, &raw_sig_fleet, reply_signed).await?;
        direct_to_many(bench, &signed.client, &signed.fleet).await?;
    }
    drop((raw_fleet, raw_sig_fleet));
    signed.fleet.stop().await;
    unsigned.fleet.stop().await;

    let floor_cpu = floor.cpu_named("CPU per round: raw NATS broadcast", n);
    let nodes_only_cpu = nodes_only
        .cpu_named("CPU per round: nodes' share", n)
        .against(&floor_cpu, "raw");
    let floor = floor.named("raw NATS broadcast, all replies in", n);
    let floor_sig = floor_sig.named("raw NATS + signature work, broadcast", n);
    let mut signed = mco_signed
        .named("mco broadcast ping, signed", n)
        .against(&floor_sig, "raw+sig");
    if n == 1000 {
        let ok = signed.ratio.is_some_and(|r| r <= 1.5);
        signed = signed.target("<= 1.5x raw+sig", ok);
    }
    if n == 10_000 {
        let ok = signed.p50 < 1000.0;
        signed = signed.target("< 1000 ms", ok);
    }
    let mut unsigned = mco_unsigned
        .named("mco broadcast ping, unsigned", n)
        .against(&floor, "raw");
    if n >= 1000 {
        let ok = unsigned.ratio.is_some_and(|r| r <= 1.5);
        unsigned = unsigned.target("<= 1.5x raw", ok);
    }
    let nodes_only = nodes_only
        .named("nodes' share: raw caller, simulated nodes", n)
        .against(&floor, "raw");
    bench.figures.extend([
        floor,
        floor_sig,
        signed,
        unsigned,
        nodes_only,
        floor_cpu,
        nodes_only_cpu,
    ]);
    Ok(())
}

/// Timed rounds, what the kept ones cost in CPU (when measured) and how many were
/// incomplete.
#[derive(Default)]
struct Rounds {
    samples: Samples,
    cpu: Samples,
    incomplete: usize,
}

impl Rounds {
    /// Takes in a round's outcome: its time if it is kept, a count (and a line on stderr)
    /// if it missed replies.
    fn add(&mut self, keep: bool, outcome: Result<Duration, String>) {
        match outcome {
            Ok(t) if keep => self.samples.push(t),
            Ok(_) => {}
            Err(e) => {
                eprintln!("  {e}");
                self.incomplete += 1;
            }
        }
    }

    /// [`Self::add`], keeping the CPU time `cpu` of a kept round too.
    fn add_costed(&mut self, keep: bool, outcome: Result<Duration, String>, cpu: Duration) {
        if keep && outcome.is_ok() {
            self.cpu.push(cpu);
        }
        self.add(keep, outcome);
    }

    fn named(&self, name: &str, n: usize) -> Figure {
        Figure::timing(name, n, &self.samples).incomplete(self.incomplete)
    }

    /// The CPU time of the kept rounds, as a figure.
    fn cpu_named(&self, name: &str, n: usize) -> Figure {
        Figure::timing(name, n, &self.cpu).incomplete(self.incomplete)
    }
}

/// The floor for one request to each of 1,000 nodes (direct subjects), with signatures.
async fn fan_out_floor(bench: &mut Bench, fleet: &RawFleet, _reply: usize) -> anyhow::Result<()> {
    let n = fleet.node_keys.len();
    let targets: Vec<String> = (0..n).map(|i| fleet.direct(i)).collect();
    let (req_signed, _) = message_sizes(Some((&bench.caller, &bench.issuer)));
    let payload = bench.raw_payload(req_signed, true);
    let mut samples = Samples::new();
    for round in 0..=bench.cli.rounds {
        let t = raw::fan_out_round(
            &bench.raw_caller,
            &targets,
            payload.clone(),
            Some(&fleet.node_keys),
            TIMEOUT,
        )
        .await
        .map_err(|e| anyhow::anyhow!("raw fan-out to {n}: {e}"))?;
        if round > 0 {
            samples.push(t);
        }
    }
    bench.figures.push(Figure::timing(
        "raw NATS + sig, one request to each node",
        n,
        &samples,
    ));
    Ok(())
}

/// A simulated fleet and the client library talking to it, in a collective of their own.
struct SimUnderTest {
    collective: String,
    fleet: Fleet,
    client: Client,
}

impl SimUnderTest {
    async fn start(bench: &Bench, n: usize, signed: bool) -> anyhow::Result<SimUnderTest> {
        let collective = format!("b{n}{}", if signed { "s" } else { "u" });
        let fleet = bench.fleet(n, &collective, signed).await?;
        let client = bench.client(&collective, signed).await?;
        Ok(SimUnderTest {
            collective,
            fleet,
            client,
        })
    }

    /// One broadcast round through the client library ([`client_round`]).
    async fn round(&self, n: usize) -> Result<Duration, String> {
        client_round(&self.client, n, &self.collective, ROUND_TIMEOUT).await
    }
}

/// One direct request to each of the fleet's nodes, at once and in batches of 100.
async fn direct_to_many(bench: &mut Bench, client: &Client, fleet: &Fleet) -> anyhow::Result<()> {
    let nodes = fleet.identities();
    let n = nodes.len();
    let mut all = Samples::new();
    let mut batched = Samples::new();
    for round in 0..=bench.cli.rounds {
        let started = Instant::now();
        let result = client
            .call(Call::new("rpcutil", "ping").nodes(nodes.clone()))
            .await?
            .collect()
            .await;
        let t = started.elapsed();
        if result.stats.ok != n {
            bail!("direct to {n} nodes: only {} answered", result.stats.ok);
        }
        let started = Instant::now();
        let result = client
            .call(
                Call::new("rpcutil", "ping")
                    .nodes(nodes.clone())
                    .batch(Size::Count(100), Duration::ZERO),
            )
            .await?
            .collect()
            .await;
        let tb = started.elapsed();
        if result.stats.ok != n {
            bail!(
                "batched direct to {n} nodes: only {} answered",
                result.stats.ok
            );
        }
        if round > 0 {
            all.push(t);
            batched.push(tb);
        }
    }
    let floor = bench
        .figures
        .iter()
        .rfind(|f| f.name.starts_with("raw NATS + sig, one request"))
        .cloned();
    let mut a = Figure::timing("mco direct to each node, signed", n, &all);
    let mut b = Figure::timing("mco direct, batches of 100, signed", n, &batched);
    if let Some(floor) = floor {
        a = a.against(&floor, "raw+sig");
        b = b.against(&floor, "raw+sig");
    }
    bench.figures.extend([a, b]);
    Ok(())
}

/// Direct round trips to one node and requests per second with many in flight.
async fn direct(bench: &mut Bench) -> anyhow::Result<()> {
    eprintln!("direct requests to one node");
    let samples_n = bench.cli.direct_samples;
    let (req_signed, reply_signed) = message_sizes(Some((&bench.caller, &bench.issuer)));
    let (req_plain, reply_plain) = message_sizes(None);

    let mut raw_rtt = Samples::new();
    let mut raw_sig_rtt = Samples::new();
    let raw_rps;
    let raw_sig_rps;
    {
        let fleet =
            RawFleet::start(&bench.raw_connections, "rawd", 1, reply_plain, Work::None).await?;
        let payload = bench.raw_payload(req_plain, false);
        for _ in 0..samples_n {
            raw_rtt.push(
                raw::request_once(&bench.raw_caller, &fleet.direct(0), payload.clone(), None)
                    .await
                    .context("raw request failed")?,
            );
        }
        raw_rps = raw_rate(bench, &fleet.direct(0), payload, None).await;
        let work = Work::Signatures {
            caller: bench.caller.key.verifying_key(),
        };
        let fleet = RawFleet::start(
            &bench.raw_connections,
            "rawsigd",
            1,
            reply_signed.saturating_sub(64),
            work,
        )
        .await?;
        let payload = bench.raw_payload(req_signed, true);
        let key = fleet.node_keys[0];
        for _ in 0..samples_n {
            raw_sig_rtt.push(
                raw::request_once(
                    &bench.raw_caller,
                    &fleet.direct(0),
                    payload.clone(),
                    Some(&key),
                )
                .await
                .context("raw signed request failed")?,
            );
        }
        raw_sig_rps = raw_rate(bench, &fleet.direct(0), payload, Some(key)).await;
    }
    let raw_rtt = Figure::timing("raw NATS request/reply RTT", 1, &raw_rtt);
    let raw_sig_rtt = Figure::timing("raw NATS + 3 signature ops, RTT", 1, &raw_sig_rtt);
    let in_flight = bench.cli.in_flight;
    let raw_rps = Figure::value("raw NATS request/reply rate", in_flight, "req/s", raw_rps);
    let raw_sig_rps = Figure::value(
        "raw NATS + sig request/reply rate",
        in_flight,
        "req/s",
        raw_sig_rps,
    );

    let mut out = vec![
        raw_rtt.clone(),
        raw_sig_rtt.clone(),
        raw_rps.clone(),
        raw_sig_rps.clone(),
    ];
    for signed in [true, false] {
        let collective = if signed { "d1s" } else { "d1u" };
        let fleet = bench.fleet(1, collective, signed).await?;
        let client = bench.client(collective, signed).await?;
        let node = fleet.identities();
        let mut rtt = Samples::new();
        for _ in 0..samples_n {
            let started = Instant::now();
            let result = client
                .call(Call::new("rpcutil", "ping").nodes(node.clone()))
                .await?
                .collect()
                .await;
            if result.stats.ok != 1 {
                bail!("direct request: no reply ({:?})", result.stats);
            }
            rtt.push(started.elapsed());
        }
        let rate = mco_rate(bench, &client, &node).await;
        fleet.stop().await;
        if signed {
            let f =
                Figure::timing("mco direct RTT, signed", 1, &rtt).against(&raw_sig_rtt, "raw+sig");
            let ok = f.p50 < 0.5 && f.ratio.is_some_and(|r| r <= 1.5);
            out.push(f.target("p50 < 0.5 ms and <= 1.5x raw+sig", ok));
            out.push(
                Figure::value("mco direct rate, signed", in_flight, "req/s", rate)
                    .against(&raw_sig_rps, "raw+sig"),
            );
        } else {
            out.push(Figure::timing("mco direct RTT, unsigned", 1, &rtt).against(&raw_rtt, "raw"));
            out.push(
                Figure::value("mco direct rate, unsigned", in_flight, "req/s", rate)
                    .against(&raw_rps, "raw"),
            );
        }
    }
    bench.figures.extend(out);
    Ok(())
}

async fn raw_rate(
    bench: &Bench,
    subject: &str,
    payload: Bytes,
    key: Option<ed25519_dalek::VerifyingKey>,
) -> f64 {
    let client = bench.raw_caller.clone();
    let subject = subject.to_string();
    load_rate(bench, move || {
        let (client, subject, payload) = (client.clone(), subject.clone(), payload.clone());
        async move {
            let answered = raw::request_once(&client, &subject, payload, key.as_ref()).await;
            u64::from(answered.is_some())
        }
    })
    .await
}

async fn mco_rate(bench: &Bench, client: &Client, nodes: &[String]) -> f64 {
    let client = client.clone();
    let nodes = nodes.to_vec();
    load_rate(bench, move || {
        let (client, nodes) = (client.clone(), nodes.clone());
        async move {
            match client.call(Call::new("rpcutil", "ping").nodes(nodes)).await {
                Ok(replies) => replies.collect().await.stats.ok as u64,
                Err(_) => 0,
            }
        }
    })
    .await
}

/// Requests per second: `--in-flight` callers, each running `one` (which returns how many
/// requests it got answered) in a loop for `--load-seconds`.
async fn load_rate<F, Fut>(bench: &Bench, one: F) -> f64
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = u64> + Send,
{
    let until = Instant::now() + Duration::from_secs(bench.cli.load_seconds);
    let tasks: Vec<_> = (0..bench.cli.in_flight)
        .map(|_| {
            let one = one.clone();
            tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < until {
                    done += one().await;
                }
                done
            })
        })
        .collect();
    let started = Instant::now();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap_or(0);
    }
    total as f64 / started.elapsed().as_secs_f64()
}

/// How many signed replies a second the client accepts (decode, verify token and signature),
/// from 10,000 nodes with their own tokens: cold (every token new to the client) and warm.
/// Nodes and events each for the event figures.
const EVENT_NODES: usize = 1000;
const EVENTS_PER_NODE: usize = 20;

/// Signed events of [`EVENT_NODES`] nodes, published as fast as one connection can, received
/// by a raw subscriber (the floor), by `Client::events` (decoding, verifying each against its
/// node's token and subject) and by a real `mco events -j` writing JSON lines.
async fn events(bench: &mut Bench) -> anyhow::Result<()> {
    use mco_spec::event::{Event, EventEnvelope, Severity};
    let total = EVENT_NODES * EVENTS_PER_NODE;
    eprintln!("events: {total} from {EVENT_NODES} nodes");
    let mut messages = Vec::with_capacity(total);
    for i in 0..EVENT_NODES {
        let identity = format!("ev-{i:05}");
        let node = bench.issuer.server(
            &identity,
            &derived_key(&bench.issuer, "node", identity.as_bytes()),
        );
        for n in 0..EVENTS_PER_NODE {
            let event = Event {
                id: new_request_id(),
                kind: "bench.tick".into(),
                identity: identity.clone(),
                collective: "ev".into(),
                time: now_millis(),
                severity: Severity::Info,
                data: serde_json::json!({"n": n, "service": "httpd", "state": "running"}),
            };
            let payload = Bytes::from(EventEnvelope::signed(&event, &node)?.to_bytes()?);
            messages.push((subjects::event("ev", "bench.tick", &identity), payload));
        }
    }
    let publisher = async_nats::connect(&bench.broker).await?;
    let publish = |messages: Vec<(String, Bytes)>| {
        let publisher = publisher.clone();
        async move {
            for (subject, payload) in messages {
                publisher.publish(subject, payload).await?;
            }
            publisher.flush().await?;
            anyhow::Ok(())
        }
    };

    // The floor: the same messages to a raw subscriber.
    let raw = async_nats::connect(&bench.broker).await?;
    let mut subscriber = raw.subscribe(subjects::all_events("ev")).await?;
    raw.flush().await?;
    let started = Instant::now();
    let counting = tokio::spawn(async move {
        let mut seen = 0;
        while seen < total && subscriber.next().await.is_some() {
            seen += 1;
        }
        seen
    });
    publish(messages.clone()).await?;
    let seen = tokio::time::timeout(TIMEOUT, counting).await??;
    let floor_rate = seen as f64 / started.elapsed().as_secs_f64();
    if seen != total {
        bail!("raw: {seen} of {total} events");
    }
    let floor = Figure::value(
        "events received, raw NATS",
        EVENT_NODES,
        "events/s",
        floor_rate,
    );

    // The library.
    let client = bench.client("ev", true).await?;
    let mut stream = client
        .events(mco_client::EventQuery::new().collective("ev"))
        .await?;
    client.nats().flush().await?;
    let started = Instant::now();
    let counting = tokio::spawn(async move {
        let (mut seen, mut rejected) = (0, 0);
        while seen + rejected < total {
            match stream.next().await {
                Some(mco_client::EventItem::Event(_)) => seen += 1,
                Some(_) => rejected += 1,
                None => break,
            }
        }
        (seen, rejected)
    });
    publish(messages.clone()).await?;
    let (seen, rejected) = tokio::time::timeout(TIMEOUT, counting).await??;
    let library_rate = seen as f64 / started.elapsed().as_secs_f64();
    if seen != total {
        bail!("Client::events: {seen} of {total} events ({rejected} rejected)");
    }
    bench.figures.push(floor.clone());
    bench.figures.push(
        Figure::value(
            "events received by Client::events (signed, verified)",
            EVENT_NODES,
            "events/s",
            library_rate,
        )
        .against(&floor, "raw"),
    );

    // A real `mco events`, subscribed before the burst, writing JSON lines to a pipe.
    let dir = tempfile::tempdir()?;
    let (issuer, key, token) = bench
        .issuer
        .write_client(&dir.path().join("client"), "bench")?;
    let config = dir.path().join("client.toml");
    std::fs::write(
        &config,
        format!(
            "brokers = [{:?}]\ncollectives = [\"ev\"]\nkey_file = {:?}\ntoken_file = {:?}\nissuer_keys = [{:?}]\n",
            bench.broker,
            key.display().to_string(),
            token.display().to_string(),
            issuer.display().to_string()
        ),
    )?;
    let mut tail = tokio::process::Command::new(mco_testsupport::bin_path("mco"))
        .args([
            "events",
            "-j",
            "--count",
            &total.to_string(),
            "--for",
            "120",
        ])
        .env("MCO_CONFIG", &config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let mut out = tail.stdout.take().context("no stdout")?;
    // The tail is subscribed once it has connected; a second is ample on this machine.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    let reading = tokio::spawn(async move {
        let mut lines = 0usize;
        let mut buffer = vec![0u8; 1 << 16];
        loop {
            match tokio::io::AsyncReadExt::read(&mut out, &mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => lines += buffer[..n].iter().filter(|b| **b == b'\n').count(),
            }
        }
        lines
    });
    publish(messages).await?;
    let lines = tokio::time::timeout(Duration::from_secs(120), reading).await??;
    let cli_rate = lines as f64 / started.elapsed().as_secs_f64();
    let _ = tail.wait().await;
    if lines != total {
        bail!("mco events: {lines} of {total} events");
    }
    bench.figures.push(
        Figure::value(
            "events printed by mco events -j (signed, verified)",
            EVENT_NODES,
            "events/s",
            cli_rate,
        )
        .against(&floor, "raw"),
    );
    Ok(())
}

async fn client_throughput(bench: &mut Bench) -> anyhow::Result<()> {
    const N: usize = 10_000;
    eprintln!("client reply verification, {N} nodes");
    let client = bench.client("tp", true).await?;
    let id = new_request_id();
    let payloads: Vec<Vec<u8>> = (0..N)
        .map(|i| {
            let identity = format!("tp-{i:05}");
            let node = bench.issuer.server(
                &identity,
                &derived_key(&bench.issuer, "node", identity.as_bytes()),
            );
            ReplyEnvelope::signed(&ping_reply(&id, &identity), &node).and_then(|e| e.to_bytes())
        })
        .collect::<Result<_, _>>()?;
    for pass in ["cold", "warm"] {
        let started = Instant::now();
        let accepted = accept_all(&client, &payloads);
        let rate = N as f64 / started.elapsed().as_secs_f64();
        if accepted != N {
            bail!("the client accepted only {accepted} of {N} signed replies");
        }
        let mut f = Figure::value(
            &format!("client signed replies accepted ({pass} tokens)"),
            N,
            "replies/s",
            rate,
        );
        if pass == "warm" {
            f = f.target(">= 30000 replies/s", rate >= 30_000.0);
        }
        bench.figures.push(f);
    }
    Ok(())
}

/// Accepts replies the way a call's reply stream does: in batches of up to 256.
fn accept_all(client: &Client, payloads: &[Vec<u8>]) -> usize {
    payloads
        .chunks(256)
        .map(|chunk| {
            let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
            client
                .accept_replies(&refs)
                .iter()
                .filter(|r| r.is_ok())
                .count()
        })
        .sum()
}

/// The real binaries: `mcod`'s memory idle and under load (direct requests through the
/// JetStream queue), and `mco --version`.
/// The directory of the real `mco` and `mcod`: the running binary's.
fn binaries() -> anyhow::Result<(PathBuf, PathBuf, PathBuf)> {
    let dir = std::env::current_exe()?
        .parent()
        .map(Path::to_path_buf)
        .context("no directory for the running binary")?;
    let mcod = dir.join("mcod");
    let mco = dir.join("mco");
    if !mcod.is_file() || !mco.is_file() {
        bail!(
            "{} or {} is missing: build them first (cargo build --release --workspace --bins), or pass --skip-processes",
            mcod.display(),
            mco.display()
        );
    }
    Ok((dir, mcod, mco))
}

/// The discovery figures ([`mco_bench::discovery`]).
async fn discovery(bench: &mut Bench) -> anyhow::Result<()> {
    let (dir, _, _) = binaries()?;
    let (request_size, reply_size) = message_sizes(Some((&bench.caller, &bench.issuer)));
    let measuring = DiscoveryBench {
        broker: &bench.broker,
        issuer: &bench.issuer,
        bin_dir: &dir,
        raw_connections: &bench.raw_connections,
        raw_caller: &bench.raw_caller,
        samples: bench.cli.rounds.clamp(3, 10),
        request_size,
        reply_size,
        connections: bench.cli.connections,
    };
    let mut figures = measuring.real(bench.cli.discovery_daemons).await?;
    for n in bench.cli.sizes.iter().copied().filter(|n| *n >= 1000) {
        figures.extend(measuring.simulated(n).await?);
    }
    bench.figures.extend(figures);
    Ok(())
}

async fn processes(bench: &mut Bench) -> anyhow::Result<()> {
    let (_, mcod, mco) = binaries()?;
    eprintln!("real mcod: memory idle and under load");
    let tmp = tempfile::tempdir()?;
    let (issuer_pub, key, token) = bench
        .issuer
        .write_node(&tmp.path().join("keys"), "real-1")?;
    let config = tmp.path().join("mcod.toml");
    std::fs::write(
        &config,
        format!(
            "identity = \"real-1\"\nbrokers = [{:?}]\ncollectives = [\"real\"]\nissuer_keys = [{:?}]\nkey_file = {:?}\ntoken_file = {:?}\nstate_dir = {:?}\nlog_level = \"warn\"\n",
            bench.broker,
            issuer_pub.display().to_string(),
            key.display().to_string(),
            token.display().to_string(),
            tmp.path().join("state").display().to_string(),
        ),
    )?;
    let mut child = Command::new(&mcod)
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", mcod.display()))?;
    let pid = child.id();
    let outcome = real_mcod(bench, pid).await;
    let _ = child.kill();
    let _ = child.wait();
    outcome?;

    let mut version = Samples::new();
    for _ in 0..50 {
        let started = Instant::now();
        let status = Command::new(&mco)
            .arg("--version")
            .stdout(Stdio::null())
            .status()?;
        version.push(started.elapsed());
        if !status.success() {
            bail!("mco --version failed");
        }
    }
    let f = Figure::timing("mco --version wall time", 1, &version);
    let ok = f.p50 < 5.0;
    bench.figures.push(f.target("p50 < 5 ms", ok));
    Ok(())
}

async fn real_mcod(bench: &mut Bench, pid: u32) -> anyhow::Result<()> {
    let mut client = Client::builder()
        .broker(bench.broker.clone())
        .collectives(["real"])
        .sender("bench-client")
        .timeout(Duration::from_secs(5))
        .credentials(bench.caller.clone())
        .trust(vec![bench.issuer.public()], 60)
        .connect()
        .await?;
    let node = vec!["real-1".to_string()];
    // Wait until it answers (through its JetStream queue).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let result = client
            .call(
                Call::new("rpcutil", "ping")
                    .nodes(node.clone())
                    .timeout(Duration::from_secs(1)),
            )
            .await?
            .collect()
            .await;
        if result.stats.ok == 1 {
            break;
        }
        if Instant::now() > deadline {
            bail!("the real mcod did not answer within 20 s");
        }
        // A new client, so it looks at the queue again once mcod has made it.
        client = Client::builder()
            .broker(bench.broker.clone())
            .collectives(["real"])
            .sender("bench-client")
            .timeout(Duration::from_secs(5))
            .credentials(bench.caller.clone())
            .trust(vec![bench.issuer.public()], 60)
            .connect()
            .await?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (idle, _) = memory_mb(pid).context("cannot read mcod's memory from /proc")?;
    let f = Figure::value("mcod idle RSS", 1, "MB", idle);
    bench.figures.push(f.target("< 10 MB", idle < 10.0));

    let mut rtt = Samples::new();
    for _ in 0..bench.cli.direct_samples.min(500) {
        let started = Instant::now();
        let result = client
            .call(Call::new("rpcutil", "ping").nodes(node.clone()))
            .await?
            .collect()
            .await;
        if result.stats.ok != 1 {
            bail!("the real mcod did not answer a queued request");
        }
        rtt.push(started.elapsed());
    }
    bench.figures.push(Figure::timing(
        "mco direct RTT to real mcod, JetStream queue",
        1,
        &rtt,
    ));
    // VmHWM is the peak, so nothing needs to sample during the load.
    let rate = mco_rate(bench, &client, &node).await;
    let (rss, hwm) = memory_mb(pid).context("cannot read mcod's memory from /proc")?;
    bench.figures.push(Figure::value(
        "mco direct rate to real mcod, queued",
        bench.cli.in_flight,
        "req/s",
        rate,
    ));
    bench.figures.push(Figure::value(
        "mcod RSS after load",
        bench.cli.in_flight,
        "MB",
        rss,
    ));
    bench.figures.push(Figure::value(
        "mcod peak RSS (VmHWM)",
        bench.cli.in_flight,
        "MB",
        hwm,
    ));
    Ok(())
}
