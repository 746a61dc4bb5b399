//! `lxcfs-rs seccomp-agent` on a socket of the test's own, started and always stopped by
//! the test (by its pid), and the profile that sends containers' `sysinfo` to it.

use std::fs::{self, File};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;

use super::{BIN, TestDir, describe, run_bin, signal, wait_timeout, wait_until};

/// A running seccomp agent.
pub struct Agent {
    child: Option<Child>,
    /// The socket runtimes connect to.
    pub socket: PathBuf,
    /// Its stdout and stderr.
    log: PathBuf,
    /// Holds the socket and the log.
    _dir: TestDir,
}

impl Agent {
    /// Starts an agent (debug log) and waits until its socket answers.
    pub fn start() -> Agent {
        Agent::start_with(Command::new(BIN))
    }

    /// Starts an agent as `cmd` runs it (e.g. with `NOTIFY_SOCKET` set), with the agent's
    /// arguments added, and waits until its socket answers.
    pub fn start_with(cmd: Command) -> Agent {
        let dir = TestDir::new();
        let mut agent = Agent {
            child: None,
            socket: dir.join("agent/seccomp.sock"),
            log: dir.join("agent.log"),
            _dir: dir,
        };
        agent.restart_with(cmd);
        agent
    }

    /// Starts the agent again on the same socket (after [`Agent::stop`]); its log goes on.
    pub fn restart(&mut self) {
        self.restart_with(Command::new(BIN));
    }

    /// Starts the agent again as `cmd` runs it (the binary under test, perhaps through a
    /// shell that hands it descriptors as systemd does), with the agent's arguments added.
    pub fn restart_with(&mut self, mut cmd: Command) {
        assert!(self.child.is_none(), "the agent is already running");
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("the agent's log");
        let child = cmd
            .arg("seccomp-agent")
            .arg("--socket")
            .arg(&self.socket)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {BIN} seccomp-agent: {e}"));
        self.child = Some(child);
        let up = wait_until(Duration::from_secs(10), || {
            UnixStream::connect(&self.socket).is_ok()
        });
        assert!(up, "the agent did not listen within 10 s: {}", self.log());
    }

    /// SIGKILLs the agent, as a crash would (no chance to clean anything up).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), Signal::SIGKILL);
            let _ = child.wait();
        }
    }

    /// Stops the agent (SIGTERM, then SIGKILL after 5 s), as a service manager would.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), Signal::SIGTERM);
            if wait_timeout(&mut child, Duration::from_secs(5)).is_none() {
                signal(child.id(), Signal::SIGKILL);
                let _ = child.wait();
            }
        }
    }

    /// What the agent logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_else(|e| format!("(agent log: {e})"))
    }

    /// `lxcfs-rs seccomp-profile --runtime oci` for this agent's socket, parsed.
    pub fn oci_profile(&self) -> serde_json::Value {
        let socket = self.socket.to_string_lossy();
        let out = run_bin(&["seccomp-profile", "--runtime", "oci", "--socket", &socket]);
        assert!(out.status.success(), "seccomp-profile: {}", describe(&out));
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("seccomp-profile printed no JSON: {e}: {}", describe(&out)))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop();
    }
}
