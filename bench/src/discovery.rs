//! The discovery figures of `mco-bench` (`--only discovery`): wall time of the real `mco`
//! binary running `mco ping`, `mco rpc rpcutil ping` (broadcast discovery, then the call) and
//! `mco find` against real `mcod` processes and against simulated fleets, each three ways:
//! with the discovery cache from the run before (`warm`, what an operator's second command
//! for a filter gets), with none (`cold`: the adaptive window alone) and with
//! `discovery_end = "window"` (the fixed 300 ms quiet window of MCollective, Choria and mco
//! before), beside the raw floor measured in the same run: one raw NATS publish to as many
//! subscribers, every reply in, and the process floor, `mco --version`.
//!
//! Not for: the request pipeline's cost (the broadcast figures measure that).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;

use crate::keys::Issuer;
use crate::measure::{Figure, Samples};
use crate::raw::{self, RawFleet, Work};
use crate::sim::{Fleet, FleetSpec};

/// What the discovery figures need from the run.
pub struct DiscoveryBench<'a> {
    /// The broker URL.
    pub broker: &'a str,
    /// The issuer of every token.
    pub issuer: &'a Issuer,
    /// Where `mco` and `mcod` are.
    pub bin_dir: &'a Path,
    /// Connections for the raw floor's subscribers.
    pub raw_connections: &'a [async_nats::Client],
    /// The raw floor's caller.
    pub raw_caller: &'a async_nats::Client,
    /// Timed runs per figure.
    pub samples: usize,
    /// A signed ping request's size, for the raw floor.
    pub request_size: usize,
    /// A signed ping reply's size.
    pub reply_size: usize,
    /// Connections of a simulated fleet.
    pub connections: usize,
}

/// The commands timed, with their names in the figures.
const COMMANDS: [(&str, &[&str]); 3] = [
    ("mco ping", &["ping", "-j"]),
    (
        "mco rpc, broadcast discovery",
        &["rpc", "rpcutil", "ping", "-j"],
    ),
    ("mco find", &["find", "-j"]),
];

/// Real `mcod` processes, killed when dropped.
struct RealFleet {
    children: Vec<Child>,
}

impl Drop for RealFleet {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl DiscoveryBench<'_> {
    /// The figures for `n` real `mcod` processes in collective `realdisc`.
    pub async fn real(&self, n: usize) -> anyhow::Result<Vec<Figure>> {
        let dir = tempfile::tempdir()?;
        let collective = "realdisc";
        let mcod = self.bin_dir.join("mcod");
        let mut fleet = RealFleet {
            children: Vec::new(),
        };
        for i in 0..n {
            let identity = format!("real-{i:03}");
            let node_dir = dir.path().join(&identity);
            let (issuer, key, token) = self.issuer.write_node(&node_dir.join("keys"), &identity)?;
            let facts = node_dir.join("facts.json");
            let country = ["uk", "de", "fr", "us"][i % 4];
            std::fs::write(&facts, format!("{{\"country\": \"{country}\"}}"))?;
            let config = node_dir.join("mcod.toml");
            std::fs::write(
                &config,
                format!(
                    "identity = {identity:?}\nbrokers = [{:?}]\ncollectives = [{collective:?}]\nissuer_keys = [{:?}]\nkey_file = {:?}\ntoken_file = {:?}\nstate_dir = {:?}\nfacts_files = [{:?}]\nlog_level = \"warn\"\n",
                    self.broker,
                    issuer.display().to_string(),
                    key.display().to_string(),
                    token.display().to_string(),
                    node_dir.join("state").display().to_string(),
                    facts.display().to_string(),
                ),
            )?;
            let child = Command::new(&mcod)
                .arg("--config")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .with_context(|| format!("cannot start {}", mcod.display()))?;
            fleet.children.push(child);
        }
        let figures = self
            .figures(dir.path(), collective, n, &format!("{n} mcod"), true)
            .await;
        drop(fleet);
        figures
    }

    /// The figures for `n` simulated nodes (signed) in collective `simdisc<n>`.
    pub async fn simulated(&self, n: usize) -> anyhow::Result<Vec<Figure>> {
        let dir = tempfile::tempdir()?;
        let collective = format!("simdisc{n}");
        let mut spec = FleetSpec::new(n, Some(self.issuer.clone()));
        spec.collectives = vec![collective.clone()];
        spec.connections = self.connections;
        let fleet = Fleet::start(spec, self.broker).await?;
        let figures = self
            .figures(dir.path(), &collective, n, &format!("{n} simulated"), false)
            .await;
        fleet.stop().await;
        figures
    }

    async fn figures(
        &self,
        dir: &Path,
        collective: &str,
        n: usize,
        label: &str,
        queued: bool,
    ) -> anyhow::Result<Vec<Figure>> {
        eprintln!("discovery: {label}");
        let configs = self.configs(dir, collective, queued)?;
        self.wait_for(&configs.window, n)?;
        let floor = self.raw_floor(n, collective).await?;
        let floor = Figure::timing(
            &format!("raw NATS broadcast, all replies in ({label})"),
            n,
            &floor,
        );
        let mut process = Samples::new();
        for _ in 0..self.samples.max(5) {
            process.push(self.timed(&configs.adaptive, &["--version"], None)?.0);
        }
        let process = Figure::timing(&format!("mco --version ({label})"), 1, &process);
        let mut figures = vec![floor.clone(), process];
        for (name, args) in COMMANDS {
            let mut cold = Samples::new();
            let mut warm = Samples::new();
            let mut window = Samples::new();
            let mut incomplete = [0usize; 3];
            for _ in 0..self.samples {
                let _ = std::fs::remove_dir_all(&configs.cache);
                let (took, complete) = self.timed(&configs.adaptive, args, Some(n))?;
                if complete {
                    cold.push(took);
                }
                incomplete[0] += usize::from(!complete);
            }
            // The cache the last cold run wrote is the first warm run's.
            for _ in 0..self.samples {
                let (took, complete) = self.timed(&configs.adaptive, args, Some(n))?;
                if complete {
                    warm.push(took);
                }
                incomplete[1] += usize::from(!complete);
            }
            for _ in 0..self.samples {
                let (took, complete) = self.timed(&configs.window, args, Some(n))?;
                if complete {
                    window.push(took);
                }
                incomplete[2] += usize::from(!complete);
            }
            for (how, samples, missed) in [
                ("warm cache", &warm, incomplete[1]),
                ("no cache", &cold, incomplete[0]),
                ("fixed 300 ms window", &window, incomplete[2]),
            ] {
                let mut f = Figure::timing(&format!("{name}, {how} ({label})"), n, samples)
                    .incomplete(missed)
                    .against(&floor, "raw");
                if label.ends_with("mcod") && how == "warm cache" && name != "mco find" {
                    let ok = f.p50 <= 100.0 && missed == 0;
                    f = f.target("<= 100 ms", ok);
                }
                figures.push(f);
            }
        }
        Ok(figures)
    }

    /// The raw floor: one publish to `n` subscribers of signed-size messages, every reply in.
    async fn raw_floor(&self, n: usize, collective: &str) -> anyhow::Result<Samples> {
        let fleet = RawFleet::start(
            self.raw_connections,
            &format!("raw{collective}"),
            n,
            self.reply_size,
            Work::None,
        )
        .await?;
        let payload = Bytes::from(vec![b'q'; self.request_size.max(1)]);
        let mut samples = Samples::new();
        for round in 0..=self.samples * 2 {
            let outcome = raw::broadcast_round(
                self.raw_caller,
                &fleet.broadcast,
                payload.clone(),
                n,
                None,
                Duration::from_secs(5),
            )
            .await;
            match outcome {
                Ok(t) if round > 0 => samples.push(t),
                Ok(_) => {}
                Err(e) => eprintln!("  raw broadcast to {n}: {e}"),
            }
            if samples.len() == self.samples {
                break;
            }
        }
        if samples.is_empty() {
            bail!("the raw floor for {n} subscribers never completed");
        }
        Ok(samples)
    }

    /// The two client configurations (adaptive with a cache, fixed window) for `collective`.
    fn configs(&self, dir: &Path, collective: &str, queued: bool) -> anyhow::Result<Configs> {
        let (issuer, key, token) = self.issuer.write_client(&dir.join("client"), "bench")?;
        let cache = dir.join("cache");
        let common = format!(
            "brokers = [{:?}]\ncollectives = [{collective:?}]\nkey_file = {:?}\ntoken_file = {:?}\nissuer_keys = [{:?}]\ndiscovery_timeout = 5\ntimeout = 10\ndirect_queue = {queued}\ndiscovery_cache_dir = {:?}\n",
            self.broker,
            key.display().to_string(),
            token.display().to_string(),
            issuer.display().to_string(),
            cache.display().to_string(),
        );
        let adaptive = dir.join("adaptive.toml");
        std::fs::write(&adaptive, &common)?;
        let window = dir.join("window.toml");
        std::fs::write(&window, format!("{common}discovery_end = \"window\"\n"))?;
        Ok(Configs {
            adaptive,
            window,
            cache,
        })
    }

    /// Waits until `mco ping` hears all `n` nodes.
    fn wait_for(&self, config: &Path, n: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.timed(config, &["ping", "-j"], Some(n))?.1 {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("not all {n} nodes answered mco ping within 60 s");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Runs `mco ARGS` with `config`: its wall time, and whether its JSON output has `n`
    /// entries (when `n` is given).
    fn timed(
        &self,
        config: &Path,
        args: &[&str],
        n: Option<usize>,
    ) -> anyhow::Result<(Duration, bool)> {
        let mco = self.bin_dir.join("mco");
        let started = Instant::now();
        let out = Command::new(&mco)
            .args(args)
            .env("MCO_CONFIG", config)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .with_context(|| format!("cannot run {}", mco.display()))?;
        let took = started.elapsed();
        let complete = match n {
            None => out.status.success(),
            Some(n) => {
                serde_json::from_slice::<serde_json::Value>(&out.stdout)
                    .ok()
                    .and_then(|v| v.as_array().map(Vec::len))
                    == Some(n)
            }
        };
        Ok((took, complete))
    }
}

struct Configs {
    adaptive: PathBuf,
    window: PathBuf,
    cache: PathBuf,
}
