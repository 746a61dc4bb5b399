//! `lxcfs-rs kube webhook` as a process of the test's own: started on an ephemeral port of
//! 127.0.0.1 (the port read from its "listening on" log line), its log collected all along,
//! killed by its pid and reaped on drop.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running webhook server.
pub struct WebhookServer {
    /// The process.
    pub child: Child,
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    log: Arc<Mutex<Vec<String>>>,
}

impl WebhookServer {
    /// Runs `lxcfs-rs ARGS` (a `kube webhook` listening on `127.0.0.1:0`) and waits up to
    /// 20 s for its "listening on 127.0.0.1:PORT" line; panics with its log otherwise.
    pub fn start<S: AsRef<OsStr>>(args: &[S]) -> WebhookServer {
        let mut child = Command::new(super::BIN)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting lxcfs-rs kube webhook");
        let stderr = child.stderr.take().expect("the webhook's stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = log.clone();
        // Drained all along, so a chatty server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        let mut server = WebhookServer {
            child,
            port: 0,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let port = server.log.lock().unwrap().iter().find_map(|l| {
                l.split("listening on 127.0.0.1:")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|p| p.parse::<u16>().ok())
            });
            if let Some(port) = port {
                server.port = port;
                return server;
            }
            if Instant::now() > deadline || server.child.try_wait().unwrap().is_some() {
                panic!(
                    "the webhook did not start: {:?}",
                    server.log.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The log lines containing `what`, waiting up to 5 s for one to arrive (lines come
    /// through a thread: a just-answered review's line may not be there yet).
    pub fn logged(&self, what: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let found: Vec<String> = self
                .log
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.contains(what))
                .cloned()
                .collect();
            if !found.is_empty() || Instant::now() > deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for WebhookServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
