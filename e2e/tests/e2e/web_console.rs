//! The gateway's browser console in a real browser: Debian's Chromium, headless, driven
//! through chromedriver (WebDriver) by fantoccini. An operator logs in with a bearer token,
//! picks `rpcutil get_fact` from the DDL-generated pickers, narrows the call with a fact
//! filter, and sees exactly the matching nodes' replies arrive in the table (a screenshot of
//! that goes to `docs/web-console.png` with `MCO_BLESS=1`); a required input left empty is marked beside its
//! field and nothing reaches any node.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use mco_testsupport::web::WebGateway;
use mco_testsupport::{free_port, require_program};
use serde_json::json;

use crate::five_nodes;

/// A chromedriver on a free loopback port, killed (with the browsers it started) on drop.
struct ChromeDriver {
    child: Child,
    port: u16,
}

impl ChromeDriver {
    fn start() -> ChromeDriver {
        let program = require_program("chromedriver", "apt-get install chromium-driver");
        let port = free_port();
        let mut command = Command::new(program);
        command
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group, so the browsers it starts go with it.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start chromedriver: {e}"));
        let mut driver = ChromeDriver { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = driver.child.try_wait() {
                panic!("chromedriver exited before listening: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        driver
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // SAFETY: signals only the process group this guard created.
        unsafe {
            libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &ChromeDriver, chromium: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium.display().to_string(),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1400,1000"],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url())
        .await
        .unwrap_or_else(|e| panic!("cannot open a Chromium session: {e}"))
}

/// The first element matching `css`, waiting up to `limit` for it to appear.
async fn wait_css(client: &Client, css: &str, limit: Duration) -> fantoccini::elements::Element {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(found) = client.find(Locator::Css(css)).await {
            return found;
        }
        if Instant::now() >= deadline {
            let page = client.source().await.unwrap_or_default();
            panic!("no element {css} after {limit:?}; page:\n{page}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn nodes_in_table(client: &Client) -> Vec<String> {
    let mut nodes = Vec::new();
    for row in client
        .find_all(Locator::Css("#results tr.reply"))
        .await
        .unwrap()
    {
        nodes.push(row.attr("data-node").await.unwrap().unwrap_or_default());
    }
    nodes.sort();
    nodes
}

/// Clicks the element with `id`.
async fn click(client: &Client, id: &str) {
    client
        .find(Locator::Id(id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn console_session(client: &Client, gateway: &WebGateway, fleet: &mco_testsupport::Fleet) {
    let long = Duration::from_secs(20);
    client.goto(&gateway.url()).await.unwrap();
    let token = wait_css(client, "#token", long).await;
    token.send_keys(gateway.token("alice")).await.unwrap();
    click(client, "login-button").await;
    let who = wait_css(client, "#whoami.good", long).await;
    assert!(who.text().await.unwrap().contains("alice"));

    wait_css(client, "#agent option[value=\"rpcutil\"]", long).await;
    client
        .find(Locator::Id("agent"))
        .await
        .unwrap()
        .select_by_value("rpcutil")
        .await
        .unwrap();
    wait_css(client, "#action option[value=\"get_fact\"]", long).await;
    client
        .find(Locator::Id("action"))
        .await
        .unwrap()
        .select_by_value("get_fact")
        .await
        .unwrap();
    let fact = wait_css(client, "#input-fact", long).await;
    fact.send_keys("country").await.unwrap();
    client
        .find(Locator::Id("filter-fact"))
        .await
        .unwrap()
        .send_keys("country=uk")
        .await
        .unwrap();
    click(client, "run").await;
    wait_css(client, "#stats[data-done=\"true\"]", long).await;
    assert_eq!(
        nodes_in_table(client).await,
        ["db2", "web1", "web2"],
        "the rows are the nodes with country=uk"
    );
    assert!(
        client
            .find_all(Locator::Css("#results tr.failed"))
            .await
            .unwrap()
            .is_empty(),
        "no reply failed"
    );
    let bars = client
        .find_all(Locator::Css("#aggregates .bar"))
        .await
        .unwrap();
    assert!(!bars.is_empty(), "the summary of values is drawn");

    let png = client.screenshot().await.unwrap();
    // The README's picture is refreshed with MCO_BLESS=1; otherwise the shot goes to a
    // scratch directory, so a test run leaves the checkout as it was.
    let scratch = tempfile::tempdir().unwrap();
    let shot = if std::env::var_os("MCO_BLESS").is_some() {
        Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/web-console.png"
        ))
        .to_path_buf()
    } else {
        scratch.path().join("web-console.png")
    };
    let shot = shot.as_path();
    std::fs::create_dir_all(shot.parent().unwrap()).unwrap();
    std::fs::write(shot, &png).unwrap();
    let size = std::fs::metadata(shot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 0, "{} is empty", shot.display());

    // A required input left empty: marked beside the field, and nothing is sent.
    let asked = || -> usize { fleet.nodes.iter().map(|n| n.audit().len()).sum() };
    let before = asked();
    fact.clear().await.unwrap();
    click(client, "run").await;
    let error = wait_css(client, "[data-input=\"fact\"] .field-error", long).await;
    assert!(!error.text().await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(asked(), before, "no node was asked");
    assert_eq!(
        nodes_in_table(client).await,
        ["db2", "web1", "web2"],
        "the last call's results stay"
    );

    // A filter the gateway refuses (400, field filter.fact[0]): shown beside that field.
    fact.send_keys("country").await.unwrap();
    let filter = client.find(Locator::Id("filter-fact")).await.unwrap();
    filter.clear().await.unwrap();
    filter.send_keys("=x").await.unwrap();
    click(client, "run").await;
    wait_css(client, ".field:has(#filter-fact) .field-error", long).await;
    assert!(client
        .find_all(Locator::Css("[data-input=\"fact\"] .field-error"))
        .await
        .unwrap()
        .is_empty());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(asked(), before, "no node was asked");
}

#[test]
fn the_console_runs_an_action_in_a_real_browser_and_checks_inputs_first() {
    let chromium = require_program("chromium", "apt-get install chromium");
    let fleet = five_nodes();
    let gateway = WebGateway::start(&fleet, &["alice"]);
    let driver = ChromeDriver::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = browser(&driver, &chromium).await;
        // Close the session whether or not the checks pass; report their failure after.
        let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(
            console_session(&client, &gateway, &fleet),
        ))
        .await;
        let _ = client.close().await;
        if let Err(panic) = outcome {
            eprintln!("mco-web log:\n{}", gateway.log());
            std::panic::resume_unwind(panic);
        }
    });
}
