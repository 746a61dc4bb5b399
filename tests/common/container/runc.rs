//! Running containers: `runc` with a state directory of its own, the containers it runs, and
//! the barrier that lets several of them read at the same moment.

use std::fs::{self, File};
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::{Value, json};

use super::{PRELUDE, Report, Rootfs, Spec};
use crate::common::{TestDir, describe, mountinfo, signal, unique, v1_mounts, wait_until};

/// A directory bind-mounted at `/sync` in containers: each writes `<NAME>.ready` and waits
/// for `go`, so the test can let several containers read at the same moment. `idle` is a
/// FIFO the waiting shells time out on.
pub struct Barrier {
    dir: TestDir,
}

impl Barrier {
    /// A new, empty barrier directory, writable by user-namespaced containers too.
    pub fn new() -> Barrier {
        let dir = TestDir::new();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777))
            .expect("chmod 777 of the barrier directory");
        let idle = dir.join("idle");
        nix::unistd::mkfifo(&idle, nix::sys::stat::Mode::from_bits_truncate(0o666))
            .unwrap_or_else(|e| panic!("mkfifo {}: {e}", idle.display()));
        // mkfifo's mode is cut by the umask; user-namespaced containers open it too.
        fs::set_permissions(&idle, fs::Permissions::from_mode(0o666)).expect("chmod the FIFO");
        Barrier { dir }
    }

    /// The directory on the host.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Waits (up to 30 s) until every container has called `ready`; panics with a
    /// container's output if it exits first.
    pub fn wait_ready(&self, containers: &mut [&mut Container]) {
        let end = Instant::now() + Duration::from_secs(30);
        for c in containers.iter_mut() {
            let flag = self.dir.join(&format!("{}.ready", c.name));
            loop {
                if flag.exists() {
                    break;
                }
                if let Some(how) = c.exited() {
                    panic!(
                        "container {} exited ({how}) before it was ready: {}",
                        c.name,
                        c.output_so_far()
                    );
                }
                assert!(
                    Instant::now() < end,
                    "container {} was not ready within 30 s: {}",
                    c.name,
                    c.output_so_far()
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Lets every waiting container go on.
    pub fn go(&self) {
        fs::write(self.dir.join("go"), "").expect("writing the go file");
    }
}

impl Default for Barrier {
    fn default() -> Self {
        Barrier::new()
    }
}

/// A `runc --root` state directory of its own, so tests never see each other's containers.
pub struct Runc {
    state: TestDir,
}

impl Runc {
    /// A fresh state directory.
    pub fn new() -> Runc {
        Runc {
            state: TestDir::new(),
        }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new("runc");
        cmd.arg("--root").arg(self.state.path());
        cmd.stdin(Stdio::null());
        cmd
    }

    /// `runc --root STATE ARGS`, run to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running runc {args:?}: {e}"))
    }

    /// Starts `spec` in the foreground of a `runc run` child (as `docker run` without `-d`),
    /// with a unique container id and cgroup (`/lxcfs-rs-ct-<pid>-<n>` in every hierarchy).
    pub fn start(&self, spec: Spec) -> Container<'_> {
        let mut c = self.container(spec);
        let child = self
            .command()
            .args(["run", "--bundle"])
            .arg(c.bundle.path())
            .arg(&c.id)
            .stdout(c.output_file("stdout"))
            .stderr(c.output_file("stderr"))
            .spawn()
            .unwrap_or_else(|e| panic!("starting runc run: {e}"));
        c.child = Some(child);
        c
    }

    /// Creates `spec` with `runc create` (as `docker create`): its namespaces and mounts are
    /// made, and `runc init` waits in them until [`Container::start_created`]. The container
    /// is detached (the process writes to files of the bundle), so runc keeps no exit status
    /// of it: its output is the proof of how it ended. Panics unless runc created it.
    pub fn create(&self, spec: Spec) -> Container<'_> {
        let mut c = self.container(spec);
        c.detached = true;
        let out = self
            .command()
            .args(["create", "--bundle"])
            .arg(c.bundle.path())
            .arg(&c.id)
            .stdout(c.output_file("stdout"))
            .stderr(c.output_file("stderr"))
            .status()
            .unwrap_or_else(|e| panic!("running runc create: {e}"));
        assert!(
            out.success(),
            "runc create {} exited with {out}: {}",
            c.name,
            c.output_so_far()
        );
        c
    }

    /// `spec` made a container of ours, not started: a unique container id and cgroup
    /// (`/lxcfs-rs-ct-<pid>-<n>` in every hierarchy), its `config.json` written.
    fn container(&self, spec: Spec) -> Container<'_> {
        let Spec {
            name,
            mut config,
            bundle,
            rootfs,
        } = spec;
        let id = unique("lxcfs-rs-ct");
        config["linux"]["cgroupsPath"] = json!(format!("/{id}"));
        let text = serde_json::to_string_pretty(&config).expect("serialising config.json");
        fs::write(bundle.join("config.json"), text).expect("writing config.json");
        Container {
            runc: self,
            name,
            id,
            child: None,
            detached: false,
            status: None,
            bundle,
            started: Instant::now(),
            _rootfs: rootfs,
        }
    }
}

impl Runc {
    /// Starts `specs` (each with `barrier`), waits until every one is ready, releases them
    /// at once so they read at the same time, and returns their reports in order.
    pub fn run_together<const N: usize>(
        &self,
        barrier: &Barrier,
        specs: [Spec; N],
        timeout: Duration,
    ) -> [Report; N] {
        let mut containers = specs.map(|spec| self.start(spec));
        barrier.wait_ready(&mut containers.each_mut());
        barrier.go();
        containers.each_mut().map(|c| c.wait(timeout))
    }
}

impl Default for Runc {
    fn default() -> Self {
        Runc::new()
    }
}

/// A container running in the foreground of a `runc run` child.
pub struct Container<'r> {
    runc: &'r Runc,
    /// Short name given to [`Spec::new`].
    pub name: String,
    /// runc's container id, also the cgroup's name.
    pub id: String,
    /// `runc run` in the foreground; `None` for a detached container.
    child: Option<Child>,
    /// Made by [`Runc::create`]: no `runc run` child, and runc keeps no exit status.
    detached: bool,
    status: Option<ExitStatus>,
    bundle: TestDir,
    started: Instant,
    /// Keeps the root filesystem alive while the container uses it.
    _rootfs: Arc<Rootfs>,
}

impl Container<'_> {
    /// Time since `runc run` was started: no process of the container can be older.
    pub fn age(&self) -> Duration {
        self.started.elapsed()
    }

    /// A file of the bundle (created empty) for the container's output.
    fn output_file(&self, name: &str) -> File {
        File::create(self.bundle.join(name))
            .unwrap_or_else(|e| panic!("creating the {name} file: {e}"))
    }

    /// `runc start` of a container [`Runc::create`] made; panics unless runc started it.
    pub fn start_created(&mut self) {
        let out = self.runc.run(&["start", &self.id]);
        assert!(
            out.status.success(),
            "runc start {}: {}",
            self.name,
            describe(&out)
        );
        self.started = Instant::now();
    }

    /// runc's word for the container's state (`created`, `running`, `stopped`); `None` when
    /// runc knows no such container.
    pub fn state(&self) -> Option<String> {
        let out = self.runc.run(&["state", &self.id]);
        if !out.status.success() {
            return None;
        }
        let state: Value = serde_json::from_slice(&out.stdout).ok()?;
        state["status"].as_str().map(str::to_string)
    }

    /// How the container ended, once it has: its `runc run`'s exit status, or for a
    /// detached container that runc says it stopped.
    pub fn exited(&mut self) -> Option<String> {
        if self.detached {
            let alive = matches!(self.state().as_deref(), Some("running" | "created"));
            return (!alive)
                .then(|| "stopped (runc keeps no exit status of a detached container)".into());
        }
        self.try_wait().map(|st| st.to_string())
    }

    /// The exit status, once `runc run` has exited (never, for a detached container).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none()
            && let Some(child) = self.child.as_mut()
        {
            self.status = child.try_wait().ok().flatten();
        }
        self.status
    }

    /// What the container printed so far, for messages.
    pub fn output_so_far(&self) -> String {
        let read = |f: &str| {
            fs::read_to_string(self.bundle.join(f)).unwrap_or_else(|e| format!("({f}: {e})"))
        };
        format!(
            "\n--- stdout of {} ---\n{}\n--- stderr ---\n{}",
            self.name,
            read("stdout"),
            read("stderr")
        )
    }

    /// Host pid of the container's init, from `runc state`.
    pub fn init_pid(&self) -> u32 {
        let out = self.runc.run(&["state", &self.id]);
        assert!(
            out.status.success(),
            "runc state {}: {}",
            self.id,
            describe(&out)
        );
        let state: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("parsing runc state: {e}: {}", describe(&out)));
        state["pid"]
            .as_u64()
            .unwrap_or_else(|| panic!("no pid in runc state: {}", describe(&out))) as u32
    }

    /// `runc exec` of `argv` in the container (a process that enters its namespaces with
    /// setns, as `docker exec` does); panics unless it exits 0.
    pub fn exec(&self, argv: &[&str]) -> String {
        self.exec_with(&[], argv)
    }

    /// [`Container::exec`] with `flags` given to `runc exec` before the container's id.
    fn exec_with(&self, flags: &[&str], argv: &[&str]) -> String {
        let mut args = vec!["exec"];
        args.extend_from_slice(flags);
        args.push(self.id.as_str());
        args.extend_from_slice(argv);
        let out = self.runc.run(&args);
        assert!(
            out.status.success(),
            "runc exec {} {argv:?}: {}",
            self.name,
            describe(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `runc exec` of `script` (after [`PRELUDE`]) in busybox `sh`, cut into sections.
    pub fn exec_report(&self, script: &str) -> Report {
        self.exec_report_with(&[], script)
    }

    /// [`Container::exec_report`] with the process in the container's memory sub-cgroup
    /// `sub` (`runc exec --cgroup memory:SUB`), as [`Container::memory_sub_cgroup`] made it.
    pub fn exec_report_in_memory_cgroup(&self, sub: &MemorySubCgroup, script: &str) -> Report {
        let flag = format!("memory:{}", sub.name);
        self.exec_report_with(&["--cgroup", &flag], script)
    }

    fn exec_report_with(&self, flags: &[&str], script: &str) -> Report {
        let started = Instant::now();
        let full = format!("{PRELUDE}\n{script}");
        let stdout = self.exec_with(flags, &["/bin/sh", "-c", &full]);
        Report::parse(&format!("{} (exec)", self.name), stdout, started.elapsed())
    }

    /// A cgroup `name` below the container's own in the v1 memory hierarchy, limited to
    /// `limit` bytes, for a `runc exec` reader whose cgroup differs from the container
    /// init's. Removed when dropped (drop it before the container).
    pub fn memory_sub_cgroup(&self, name: &str, limit: u64) -> MemorySubCgroup {
        let mount = v1_mounts()
            .remove("memory")
            .expect("a v1 memory hierarchy (checked by can_mount)");
        let dir = mount.join(&self.id).join(name);
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let sub = MemorySubCgroup {
            name: name.to_string(),
            dir,
        };
        let file = sub.dir.join("memory.limit_in_bytes");
        fs::write(&file, limit.to_string())
            .unwrap_or_else(|e| panic!("writing {limit} to {}: {e}", file.display()));
        sub
    }

    /// Waits up to `timeout` for the container to exit and returns its report; panics with
    /// its output unless it exited 0 (on timeout it is killed first). A detached container
    /// has no exit status: what it printed must show it finished.
    pub fn wait(&mut self, timeout: Duration) -> Report {
        let exited = wait_until(timeout, || self.exited().is_some());
        let elapsed = self.age();
        if !exited {
            self.kill();
            panic!(
                "container {} did not exit within {timeout:?} (killed it): {}",
                self.name,
                self.output_so_far()
            );
        }
        if let Some(status) = self.status {
            assert!(
                status.success(),
                "container {} exited with {status}: {}",
                self.name,
                self.output_so_far()
            );
        }
        let stdout = fs::read_to_string(self.bundle.join("stdout")).expect("container stdout");
        Report::parse(&self.name, stdout, elapsed)
    }

    /// Kills the container (only ours: by its unique id in our own state directory), then
    /// its `runc run`.
    fn kill(&mut self) {
        if self.detached {
            if self.exited().is_none() {
                let _ = self.runc.run(&["kill", &self.id, "KILL"]);
                wait_until(Duration::from_secs(5), || self.exited().is_some());
            }
        } else if self.try_wait().is_none() {
            let _ = self.runc.run(&["kill", &self.id, "KILL"]);
            if let Some(child) = self.child.as_mut() {
                if wait_until(Duration::from_secs(5), || {
                    child.try_wait().ok().flatten().is_some()
                }) {
                    self.status = child.try_wait().ok().flatten();
                } else {
                    signal(child.id(), Signal::SIGKILL);
                    self.status = child.wait().ok();
                }
            }
        }
        let _ = self.runc.run(&["delete", "--force", &self.id]);
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        self.kill();
        // runc removes its cgroups when the container exits; after a kill it may not have.
        // The name is unique to this container, so anything by that name is ours.
        let dirs: Vec<PathBuf> = mountinfo()
            .into_iter()
            .filter(|m| m.fstype == "cgroup" || m.fstype == "cgroup2")
            .map(|m| m.mount_point.join(&self.id))
            .collect();
        for d in dirs {
            let gone = wait_until(Duration::from_secs(3), || match fs::remove_dir(&d) {
                Ok(()) => true,
                Err(e) => {
                    e.kind() == ErrorKind::NotFound || e.raw_os_error() != Some(nix::libc::EBUSY)
                }
            });
            if !gone {
                eprintln!("warning: could not remove cgroup {} (busy)", d.display());
            }
        }
    }
}

/// A memory cgroup below a container's (see [`Container::memory_sub_cgroup`]); removed on
/// drop once the processes run in it have exited.
pub struct MemorySubCgroup {
    /// Its name below the container's cgroup.
    name: String,
    /// Its directory.
    dir: PathBuf,
}

impl Drop for MemorySubCgroup {
    fn drop(&mut self) {
        let gone = wait_until(Duration::from_secs(3), || match fs::remove_dir(&self.dir) {
            Ok(()) => true,
            Err(e) => e.kind() == ErrorKind::NotFound || e.raw_os_error() != Some(nix::libc::EBUSY),
        });
        if !gone {
            eprintln!(
                "warning: could not remove cgroup {} (busy)",
                self.dir.display()
            );
        }
    }
}
