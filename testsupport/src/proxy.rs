//! [`RecordingProxy`]: a TCP proxy that records what crosses it, as someone on the network
//! path would see it.
//!
//! Not for: changing what crosses it.

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
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("local_addr: {e}"))
            .port();
        let proxy = RecordingProxy {
            port,
            recorded: Default::default(),
            stopping: Default::default(),
        };
        let recorded = proxy.recorded.clone();
        let stopping = proxy.stopping.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                for (from, to) in [(&client, &server), (&server, &client)] {
                    let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) else {
                        continue;
                    };
                    let recorded = recorded.clone();
                    std::thread::spawn(move || relay(from, to, &recorded));
                }
            }
        });
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
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        // Wakes the accepting thread, which then sees it should stop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
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
