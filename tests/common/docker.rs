//! A Docker engine of the test's own: `dockerd` (Debian's docker.io, which starts its own
//! containerd) with its data, state, socket, containerd namespaces and cgroups all in places
//! of the test's, driven by `/usr/bin/docker -H unix://SOCKET`, with the busybox root
//! filesystem imported as an image.
//!
//! Nothing of the host's is touched: no iptables rules, no bridge, an empty daemon config,
//! a data root and exec root under a temporary directory, and containers in cgroups below a
//! parent named for the test. On drop every container and image is removed, dockerd is
//! stopped by its pid (SIGTERM, then SIGKILL of that pid and of the containerd it started),
//! whatever is still mounted under its directories is detached, and its cgroups removed.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;

use super::container::{Rootfs, can_run_containers};
use super::{
    TestDir, describe, mountinfo, remove_cgroup_tree, signal, skip, unique, wait_timeout,
    wait_until,
};

/// Debian's engine.
pub const DOCKERD: &str = "/usr/sbin/dockerd";
/// Debian's client, which speaks the engine's API version (another client may come first on
/// PATH).
pub const DOCKER: &str = "/usr/bin/docker";
/// Where every dockerd makes its plugin socket directory, whatever its exec root.
const RUN_DOCKER: &str = "/run/docker";

/// A running dockerd of the test's own.
pub struct Dockerd {
    child: Option<Child>,
    /// dockerd's pid.
    pub pid: u32,
    /// Its API socket.
    pub socket: PathBuf,
    /// The cgroup (below every hierarchy's root) its containers are created below.
    pub parent: String,
    /// The busybox image ([`Rootfs`] imported).
    pub busybox: String,
    log: PathBuf,
    dir: TestDir,
    /// Whether `/run/docker` was made by this dockerd.
    made_run_docker: bool,
}

impl Dockerd {
    /// Starts dockerd and imports the busybox root filesystem; `None` (after saying why:
    /// a panic in CI) when the test cannot run here.
    pub fn start(rootfs: &Rootfs) -> Option<Dockerd> {
        if !can_run_containers() {
            return None;
        }
        for program in [DOCKERD, DOCKER] {
            if !Path::new(program).is_file() {
                skip(&format!(
                    "{program} is missing (Debian package docker.io; scripts/deps.sh test \
                     should install it)"
                ));
                return None;
            }
        }
        let dir = TestDir::new();
        let name = unique("lxcfs-rs-test-docker");
        let (data, exec, config) = (dir.join("data"), dir.join("exec"), dir.join("daemon.json"));
        for d in [&data, &exec, &dir.join("client")] {
            fs::create_dir(d).unwrap_or_else(|e| panic!("creating {}: {e}", d.display()));
        }
        // Its identity key, /etc/docker/key.json unless the config says otherwise (there is
        // no flag for it).
        let key = dir.join("key.json");
        fs::write(
            &config,
            serde_json::json!({ "deprecated-key-path": key }).to_string(),
        )
        .unwrap();
        // dockerd makes this plugin directory wherever its exec root is: removed after it
        // when it made it.
        let made_run_docker = !Path::new(RUN_DOCKER).exists();
        let socket = dir.join("docker.sock");
        let log = dir.join("dockerd.log");
        let out = File::create(&log).expect("creating dockerd's log");
        let err = out.try_clone().expect("cloning the log handle");
        let child = Command::new(DOCKERD)
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--ip-forward=false",
            ])
            .args(["--ip-masq=false", "--bridge=none", "--userland-proxy=false"])
            .arg("--config-file")
            .arg(&config)
            .arg("--data-root")
            .arg(&data)
            .arg("--exec-root")
            .arg(&exec)
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .args(["--containerd-namespace", &name])
            .args(["--containerd-plugins-namespace", &format!("{name}-plugins")])
            .args(["--exec-opt", "native.cgroupdriver=cgroupfs"])
            .arg("--cgroup-parent")
            .arg(format!("/{name}"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {DOCKERD}: {e}"));
        let mut dockerd = Dockerd {
            pid: child.id(),
            child: Some(child),
            socket,
            parent: name,
            busybox: String::new(),
            log,
            dir,
            made_run_docker,
        };
        let mut exited = None;
        let up = wait_until(Duration::from_secs(60), || {
            if let Some(Ok(Some(st))) = dockerd.child.as_mut().map(Child::try_wait) {
                exited = Some(st);
                return true;
            }
            dockerd.socket.exists() && dockerd.output(&["version"]).status.success()
        });
        if let Some(st) = exited {
            dockerd.child = None;
            skip(&format!(
                "dockerd exited ({st}) instead of starting; its log:\n{}",
                dockerd.log()
            ));
            return None;
        }
        if !up {
            skip(&format!(
                "dockerd did not answer within 60 s; its log:\n{}",
                dockerd.log()
            ));
            return None;
        }
        dockerd.busybox = format!("{}:busybox", dockerd.parent);
        let tar = dockerd.dir.join("rootfs.tar");
        rootfs.archive(&tar);
        let import = ["import", tar.to_str().unwrap(), dockerd.busybox.as_str()];
        dockerd.checked(&import);
        Some(dockerd)
    }

    /// `docker -H unix://SOCKET` with a client configuration directory of its own.
    pub fn command(&self) -> Command {
        let mut c = Command::new(DOCKER);
        c.arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .env("DOCKER_CONFIG", self.dir.join("client"))
            .stdin(Stdio::null());
        c
    }

    /// The client as a shell would type it: `/usr/bin/docker -H unix://SOCKET`.
    pub fn shell_prefix(&self) -> String {
        format!(
            "DOCKER_CONFIG={} {DOCKER} -H unix://{}",
            self.dir.join("client").display(),
            self.socket.display()
        )
    }

    /// The environment that points other programs' docker at this engine (`DOCKER_HOST`).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DOCKER_HOST", format!("unix://{}", self.socket.display())),
            (
                "DOCKER_CONFIG",
                self.dir.join("client").to_str().unwrap().to_string(),
            ),
        ]
    }

    /// `docker ARGS`, run to completion.
    pub fn output(&self, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running docker {args:?}: {e}"))
    }

    /// `docker ARGS`; panics (with its output and dockerd's log) unless it exits 0. Returns
    /// its stdout.
    #[track_caller]
    pub fn checked(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "docker {args:?}: {}\n--- dockerd's log (tail) ---\n{}",
            describe(&out),
            self.log_tail()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A field of `docker inspect` (a Go template such as `{{.State.Running}}`).
    pub fn inspect(&self, container: &str, template: &str) -> String {
        self.checked(&["inspect", "-f", template, container])
            .trim()
            .to_string()
    }

    /// `docker logs CONTAINER` (stdout and stderr), for messages.
    pub fn logs(&self, container: &str) -> String {
        let out = self.output(&["logs", container]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// dockerd's log.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_else(|e| format!("(cannot read the log: {e})"))
    }

    /// The last 40 lines of dockerd's log.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Every container and image of this engine removed (all are the test's).
    fn remove_all(&self) {
        let ids = |args: &[&str]| -> Vec<String> {
            String::from_utf8_lossy(&self.output(args).stdout)
                .split_whitespace()
                .map(str::to_string)
                .collect()
        };
        let containers = ids(&["ps", "-aq"]);
        if !containers.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(containers.iter().map(String::as_str));
            let _ = self.output(&args);
        }
        let images = ids(&["images", "-q"]);
        if !images.is_empty() {
            let mut args = vec!["rmi", "-f"];
            args.extend(images.iter().map(String::as_str));
            let _ = self.output(&args);
        }
    }

    /// The pid of the containerd this dockerd started (it writes it under its exec root).
    fn containerd_pid(&self) -> Option<u32> {
        fs::read_to_string(self.dir.join("exec/containerd/containerd.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.remove_all();
        }
        let containerd = self.containerd_pid();
        if let Some(mut child) = self.child.take() {
            signal(self.pid, Signal::SIGTERM);
            if wait_timeout(&mut child, Duration::from_secs(20)).is_none() {
                eprintln!("dockerd {} ignored SIGTERM for 20 s; killing it", self.pid);
                signal(self.pid, Signal::SIGKILL);
                let _ = child.wait();
            }
        }
        // dockerd stops its containerd; if it could not, that pid (read from its own file)
        // is ours to end.
        if let Some(pid) = containerd
            && !wait_until(Duration::from_secs(10), || {
                !Path::new(&format!("/proc/{pid}")).exists()
            })
        {
            signal(pid, Signal::SIGKILL);
        }
        // Overlay and shm mounts of containers, the exec root's netns files: deepest first.
        let root = self.dir.path().to_path_buf();
        let mut left: Vec<PathBuf> = mountinfo()
            .into_iter()
            .map(|m| m.mount_point)
            .filter(|p| p.starts_with(&root))
            .collect();
        left.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for p in left {
            let _ = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH);
        }
        remove_cgroup_tree(&self.parent);
        if self.made_run_docker {
            // Only when empty: another engine may have started in the meantime.
            let _ = fs::remove_dir(Path::new(RUN_DOCKER).join("plugins"));
            let _ = fs::remove_dir(RUN_DOCKER);
        }
    }
}

/// The `--host-mount-ns` image of lxcfs-rs (`scripts/build-image`), built into `dockerd`
/// with a tag of the test's own; the release build it makes is shared with the packaging
/// test's (same target directory), so only the first run of either compiles.
pub fn build_daemon_image(dockerd: &Dockerd) -> String {
    let tag = format!("{}:lxcfs-rs", dockerd.parent);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-image");
    let mut cmd = Command::new(&script);
    cmd.args(["--tool", DOCKER, "--tag", &tag])
        .env(
            "CARGO_TARGET_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("static"),
        )
        .stdin(Stdio::null());
    for (k, v) in dockerd.env() {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "scripts/build-image: {}",
        describe(&out)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(printed.trim(), tag, "build-image prints the tag it built");
    tag
}

/// The capabilities' names as Docker spells them, by number.
const CAPS: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// `--privileged`, or where the test runs without some capability in its bounding set (a
/// sandbox; `--privileged` asks runc for every capability the kernel knows, and runc fails
/// with "unable to apply caps"), what it amounts to for lxcfs-rs: every capability we have,
/// no seccomp or AppArmor profile, and `/dev/fuse` allowed by the devices cgroup.
pub fn privileged_flags() -> Vec<String> {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let bounding = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(u64::MAX);
    let last: usize = fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(CAPS.len() - 1);
    let missing: Vec<&str> = (0..=last.min(CAPS.len() - 1))
        .filter(|&c| bounding & (1 << c) == 0)
        .map(|c| CAPS[c])
        .collect();
    if missing.is_empty() {
        return vec!["--privileged".into()];
    }
    let mut flags: Vec<String> = ["--cap-add", "ALL"].map(String::from).into();
    for cap in missing {
        flags.extend(["--cap-drop".into(), cap.to_string()]);
    }
    flags.extend(
        [
            "--security-opt",
            "seccomp=unconfined",
            "--security-opt",
            "apparmor=unconfined",
            "--device",
            "/dev/fuse",
        ]
        .map(String::from),
    );
    flags
}
