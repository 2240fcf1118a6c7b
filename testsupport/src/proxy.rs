//! TCP proxies on the network path of a test: [`RecordingProxy`] records what crosses it, as
//! someone on the path would see it; [`DelayProxy`] holds back what one side sends for a
//! fixed time, as a distant node's link would (this kernel has no `netem`).
//!
//! Not for: changing the bytes that cross them.

use std::io::Read;
use std::net::{TcpListener, TcpStream};

/// A TCP proxy on a free loopback port that forwards every connection to `127.0.0.1:<target>`
/// and records the bytes of both directions: what anyone on the network path between a
/// client and its server sees. Stops accepting when dropped.
pub struct RecordingProxy {
    port: u16,
    recorded: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    stopping: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl RecordingProxy {
    /// Starts forwarding to `127.0.0.1:<target>`.
    pub fn start(target: u16) -> RecordingProxy {
        let (listener, port) = bind_free();
        let proxy = RecordingProxy {
            port,
            recorded: Default::default(),
            stopping: Default::default(),
        };
        let recorded = proxy.recorded.clone();
        accept_loop(
            listener,
            target,
            proxy.stopping.clone(),
            move |from, to, _| {
                let recorded = recorded.clone();
                std::thread::spawn(move || relay(from, to, &recorded));
            },
        );
        proxy
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Everything recorded so far, both directions of every connection.
    pub fn recorded(&self) -> Vec<u8> {
        self.recorded
            .lock()
            .map(|r| r.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Whether the recorded bytes contain `needle` anywhere.
    pub fn saw(&self, needle: &str) -> bool {
        let recorded = self.recorded();
        recorded
            .windows(needle.len().max(1))
            .any(|w| w == needle.as_bytes())
    }

    /// Forgets what was recorded.
    pub fn clear(&self) {
        match self.recorded.lock() {
            Ok(mut r) => r.clear(),
            Err(p) => p.into_inner().clear(),
        }
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        stop_accepting(&self.stopping, self.port);
    }
}

/// Which way bytes cross a proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the connecting client to the server.
    ToServer,
    /// From the server back to the client.
    ToClient,
}

/// A TCP proxy on a free loopback port that forwards every connection to
/// `127.0.0.1:<target>`, delivering what the client sends `delay` late (in order, as it was
/// sent); what the server sends passes at once. A node connected through it answers
/// everything `delay` late, as one on a distant link does. Stops accepting when dropped.
pub struct DelayProxy {
    port: u16,
    stopping: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl DelayProxy {
    /// Starts forwarding to `127.0.0.1:<target>`, holding back the client's bytes `delay`.
    pub fn start(target: u16, delay: std::time::Duration) -> DelayProxy {
        let (listener, port) = bind_free();
        let stopping: std::sync::Arc<std::sync::atomic::AtomicBool> = Default::default();
        accept_loop(listener, target, stopping.clone(), move |from, to, way| {
            let delay = if way == Direction::ToServer {
                delay
            } else {
                std::time::Duration::ZERO
            };
            std::thread::spawn(move || relay_late(from, to, delay));
        });
        DelayProxy { port, stopping }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        stop_accepting(&self.stopping, self.port);
    }
}

/// A listener on a free loopback port, and the port.
fn bind_free() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let port = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("local_addr: {e}"))
        .port();
    (listener, port)
}

/// Accepts connections on `listener` until `stopping`, connecting each to `target` and
/// handing both directions to `relay` (each with a clone of the two streams).
fn accept_loop<F>(
    listener: TcpListener,
    target: u16,
    stopping: std::sync::Arc<std::sync::atomic::AtomicBool>,
    relay: F,
) where
    F: Fn(TcpStream, TcpStream, Direction) + Send + 'static,
{
    use std::sync::atomic::Ordering;
    std::thread::spawn(move || {
        for client in listener.incoming() {
            if stopping.load(Ordering::SeqCst) {
                return;
            }
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                continue;
            };
            for (from, to, way) in [
                (&client, &server, Direction::ToServer),
                (&server, &client, Direction::ToClient),
            ] {
                let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) else {
                    continue;
                };
                relay(from, to, way);
            }
        }
    });
}

fn stop_accepting(stopping: &std::sync::atomic::AtomicBool, port: u16) {
    stopping.store(true, std::sync::atomic::Ordering::SeqCst);
    // Wakes the accepting thread, which then sees it should stop.
    let _ = TcpStream::connect(("127.0.0.1", port));
}

/// Copies `from` to `to`, each chunk `delay` after it was read, until either side closes.
fn relay_late(mut from: TcpStream, mut to: TcpStream, delay: std::time::Duration) {
    use std::io::Write;
    let (chunks, due) = std::sync::mpsc::channel::<(std::time::Instant, Vec<u8>)>();
    let writer = std::thread::spawn(move || {
        for (at, chunk) in due {
            if let Some(wait) = at.checked_duration_since(std::time::Instant::now()) {
                std::thread::sleep(wait);
            }
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if chunks
            .send((std::time::Instant::now() + delay, buf[..n].to_vec()))
            .is_err()
        {
            break;
        }
    }
    drop(chunks);
    let _ = writer.join();
}

/// Copies `from` to `to`, appending every chunk to `recorded`, until either side closes.
fn relay(mut from: TcpStream, mut to: TcpStream, recorded: &std::sync::Mutex<Vec<u8>>) {
    use std::io::Write;
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        match recorded.lock() {
            Ok(mut r) => r.extend_from_slice(&buf[..n]),
            Err(p) => p.into_inner().extend_from_slice(&buf[..n]),
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}
