//! A container's `config.json`, made from `runc spec` and filled in.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use serde_json::{Value, json};

use super::{BOUND_FILES, Barrier, PRELUDE, Rootfs, open_to_all};
use crate::common::{TestDir, describe};

/// A container's bundle: its `config.json`, made from `runc spec`, being filled in.
pub struct Spec {
    /// Short name, for messages and the barrier (`$NAME` in the script).
    pub(super) name: String,
    /// The `config.json` being filled in.
    pub(super) config: Value,
    /// The bundle directory (holds `config.json`, then the container's output).
    pub(super) bundle: TestDir,
    /// Keeps the root filesystem alive while the container uses it.
    pub(super) rootfs: Arc<Rootfs>,
}

impl Spec {
    /// A container running `script` (after [`PRELUDE`]) with busybox `sh` as its pid 1, in
    /// the namespaces `runc spec` chooses (pid, network, ipc, uts, mount), no limits yet.
    pub fn new(name: &str, rootfs: &Arc<Rootfs>, script: &str) -> Spec {
        let bundle = TestDir::new();
        open_to_all(bundle.path());
        let out = Command::new("runc")
            .arg("spec")
            .current_dir(bundle.path())
            .output()
            .unwrap_or_else(|e| panic!("running runc spec: {e}"));
        assert!(out.status.success(), "runc spec: {}", describe(&out));
        let path = bundle.join("config.json");
        let mut config: Value = serde_json::from_str(&fs::read_to_string(&path).expect("config"))
            .unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
        config["root"]["path"] = json!(rootfs.path());
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!(["/bin/sh", "-c", format!("{PRELUDE}\n{script}")]);
        config["process"]["env"] = json!(["PATH=/bin", format!("NAME={name}")]);
        config["hostname"] = json!(name);
        Spec {
            name: name.to_string(),
            config,
            bundle,
            rootfs: rootfs.clone(),
        }
    }

    /// `linux.resources.memory.limit`.
    pub fn memory(mut self, bytes: u64) -> Spec {
        self.resources()["memory"] = json!({ "limit": bytes });
        self
    }

    /// `linux.resources.cpu.cpus` (and `mems` 0, the only node here and on most hosts).
    pub fn cpus(mut self, list: &str) -> Spec {
        let cpu = self.cpu();
        cpu["cpus"] = json!(list);
        cpu["mems"] = json!("0");
        self
    }

    /// `linux.resources.cpu.quota` / `period` (µs).
    pub fn quota(mut self, quota: i64, period: u64) -> Spec {
        let cpu = self.cpu();
        cpu["quota"] = json!(quota);
        cpu["period"] = json!(period);
        self
    }

    fn resources(&mut self) -> &mut Value {
        let linux = &mut self.config["linux"];
        if linux.get("resources").is_none() {
            linux["resources"] = json!({});
        }
        &mut linux["resources"]
    }

    fn cpu(&mut self) -> &mut Value {
        let res = self.resources();
        if res.get("cpu").is_none() {
            res["cpu"] = json!({});
        }
        &mut res["cpu"]
    }

    /// A read-write bind mount of `source` (file or directory) at `destination`, as
    /// `docker run -v source:destination:rw` makes it.
    pub fn bind(self, source: &Path, destination: &str) -> Spec {
        self.bind_with(source, destination, &["rbind", "rw"])
    }

    /// A bind mount of `source` at `destination` with mount `options` (`rbind`, `ro`, ...).
    pub fn bind_with(mut self, source: &Path, destination: &str, options: &[&str]) -> Spec {
        let mounts = self.config["mounts"]
            .as_array_mut()
            .expect("config.json has a mounts array");
        mounts.push(json!({
            "type": "bind",
            "source": source,
            "destination": destination,
            "options": options,
        }));
        self
    }

    /// The daemon's [`BOUND_FILES`] under `mnt` bound over the container's own.
    pub fn lxcfs(self, mnt: &Path) -> Spec {
        self.lxcfs_files(mnt, BOUND_FILES, &["rbind", "rw"])
    }

    /// `files` (paths relative to `mnt`, as in [`BOUND_FILES`]) bound over the container's
    /// own with mount `options`.
    pub fn lxcfs_files(mut self, mnt: &Path, files: &[&str], options: &[&str]) -> Spec {
        for f in files {
            self = self.bind_with(&mnt.join(f), &format!("/{f}"), options);
        }
        self
    }

    /// A read-only root filesystem (`root.readonly`; `runc spec` sets it too, this makes a
    /// test that needs it independent of runc's default).
    pub fn read_only_root(mut self) -> Spec {
        self.config["root"]["readonly"] = json!(true);
        self
    }

    /// Like [`Spec::lxcfs`], but the whole `sys/devices/system/cpu` directory instead of its
    /// `online` file.
    pub fn lxcfs_with_cpu_dir(mut self, mnt: &Path) -> Spec {
        for f in BOUND_FILES.iter().filter(|f| f.starts_with("proc/")) {
            self = self.bind(&mnt.join(f), &format!("/{f}"));
        }
        self.bind(
            &mnt.join("sys/devices/system/cpu"),
            "/sys/devices/system/cpu",
        )
    }

    /// The barrier's directory at `/sync`.
    pub fn barrier(self, barrier: &Barrier) -> Spec {
        self.bind(barrier.path(), "/sync")
    }

    fn namespaces(&mut self) -> &mut Vec<Value> {
        self.config["linux"]["namespaces"]
            .as_array_mut()
            .expect("config.json has linux.namespaces")
    }

    /// No pid namespace of its own (`docker run --pid=host`).
    pub fn host_pid_namespace(mut self) -> Spec {
        self.namespaces().retain(|ns| ns["type"] != "pid");
        self
    }

    /// Joins the pid namespace of host pid `pid` (a pod's containers sharing one, or
    /// `docker run --pid=container:X`).
    pub fn join_pid_namespace_of(mut self, pid: u32) -> Spec {
        for ns in self.namespaces() {
            if ns["type"] == "pid" {
                ns["path"] = json!(format!("/proc/{pid}/ns/pid"));
            }
        }
        self
    }

    /// Adds capability `cap` (e.g. `CAP_SYS_ADMIN`) to the bounding, effective and permitted
    /// sets of the container's process, as `docker run --cap-add` does.
    pub fn capability(mut self, cap: &str) -> Spec {
        for set in ["bounding", "effective", "permitted"] {
            let list = self.config["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap_or_else(|| panic!("config.json has no process.capabilities.{set}"));
            list.push(json!(cap));
        }
        self
    }

    /// A user namespace mapping container uids and gids `0..size` to host `host_id..`: an
    /// unprivileged container, whose root is an ordinary user on the host.
    pub fn user_namespace(mut self, host_id: u32, size: u32) -> Spec {
        self.namespaces().push(json!({ "type": "user" }));
        let map = json!([{ "containerID": 0, "hostID": host_id, "size": size }]);
        self.config["linux"]["uidMappings"] = map.clone();
        self.config["linux"]["gidMappings"] = map;
        self
    }

    /// `linux.seccomp` set to `profile` (e.g. the agent's, which sends `sysinfo` to it).
    pub fn seccomp(mut self, profile: &Value) -> Spec {
        self.config["linux"]["seccomp"] = profile.clone();
        self
    }

    /// The host's `/usr` (read-only) and `/etc/java-17-openjdk` bound in, so that dynamically
    /// linked host programs (a JVM) run in the busybox root filesystem, whose `/lib` and
    /// `/lib64` point into `/usr` as on a merged-usr host.
    pub fn host_usr(self) -> Spec {
        self.bind_with(Path::new("/usr"), "/usr", &["rbind", "ro"])
            .bind_with(
                Path::new("/etc/java-17-openjdk"),
                "/etc/java-17-openjdk",
                &["rbind", "ro"],
            )
    }

    /// An OCI `createContainer` hook running `path` with `args` (`args[0]` is its argv[0]).
    pub fn create_container_hook(mut self, path: &str, args: &[&str]) -> Spec {
        self.config["hooks"]["createContainer"] = json!([{ "path": path, "args": args }]);
        self
    }
}
