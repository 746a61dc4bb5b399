//! Podman with its storage, state, configuration and cgroups in places of its own, so tests
//! neither see nor leave anything of the host's: vfs storage (no overlay mounts), runc (crun
//! refuses hybrid hosts), cgroupfs, and the ulimits podman needs on these machines.

use std::fs;
use std::path::Path;
use std::process::Command;

use super::container::Rootfs;
use super::{TestDir, checked, have_program, remove_cgroup_tree, skip, unique};

/// The controllers `podman kube play` puts its pods' cgroups under (`libpod_parent/`); the
/// pods of a test are removed from each by name.
const KUBE_CGROUP_ROOT: &str = "libpod_parent";

/// A Podman of the test's own, with the busybox root filesystem imported as an image.
pub struct Podman {
    /// Storage, run and temporary directories, and `containers.conf`.
    pub dir: TestDir,
    /// The parent cgroup (`--cgroup-parent`) of the containers `podman run` starts.
    pub parent: String,
    /// The busybox image.
    pub image: String,
    /// Cgroup paths (relative to a controller's root) of pods `kube play` started.
    kube_cgroups: std::cell::RefCell<Vec<String>>,
}

impl Podman {
    /// Podman with the busybox root filesystem imported as an image; `None` (after saying
    /// why) when the test cannot run.
    pub fn new(rootfs: &Rootfs) -> Option<Podman> {
        if !have_program("podman") {
            skip("podman is not installed (scripts/deps.sh test installs it)");
            return None;
        }
        let dir = TestDir::new();
        // `kube play` takes no --ulimit: without these the infra container fails here with
        // "error setting rlimit type 7".
        fs::write(
            dir.join("containers.conf"),
            "[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n",
        )
        .expect("writing containers.conf");
        // The same storage as the flags of `argv`, for podman run by scripts (build-image),
        // which know no flags of ours.
        let at = |d: &str| dir.join(d).to_str().expect("utf-8 path").to_string();
        fs::write(
            dir.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
                at("storage"),
                at("run")
            ),
        )
        .expect("writing storage.conf");
        let podman = Podman {
            parent: unique("lxcfs-rs-test-podman"),
            image: "localhost/lxcfs-rs-test:busybox".into(),
            dir,
            kube_cgroups: Default::default(),
        };
        let tar = podman.dir.join("rootfs.tar");
        rootfs.archive(&tar);
        let mut import = podman.command();
        import.arg("import").arg(&tar).arg(&podman.image);
        checked(import, &["podman", "import"]);
        Some(podman)
    }

    /// `podman` and the global flags that keep it in our directories.
    pub fn argv(&self) -> Vec<String> {
        let at = |d: &str| self.dir.join(d).to_str().expect("utf-8 path").to_string();
        let mut argv: Vec<String> = ["podman", "--root"].map(String::from).into();
        argv.push(at("storage"));
        argv.push("--runroot".into());
        argv.push(at("run"));
        argv.push("--tmpdir".into());
        argv.push(at("tmp"));
        argv.extend(
            [
                "--storage-driver",
                "vfs",
                "--cgroup-manager",
                "cgroupfs",
                "--runtime",
                "runc",
                "--events-backend",
                "file",
            ]
            .map(String::from),
        );
        argv
    }

    /// The environment every `podman` here runs with: our `containers.conf` and
    /// `storage.conf`.
    pub fn env(&self) -> [(&'static str, std::path::PathBuf); 2] {
        [
            ("CONTAINERS_CONF", self.dir.join("containers.conf")),
            ("CONTAINERS_STORAGE_CONF", self.dir.join("storage.conf")),
        ]
    }

    /// [`Podman::argv`] as a command, with [`Podman::env`].
    pub fn command(&self) -> Command {
        let argv = self.argv();
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..]);
        c.envs(self.env());
        c
    }

    /// Runs podman with `args`; panics (with its output) unless it exits 0. Returns stdout.
    pub fn run(&self, args: &[&str]) -> String {
        let mut c = self.command();
        c.args(args);
        let what: Vec<&str> = std::iter::once("podman")
            .chain(args.iter().copied().take(2))
            .collect();
        checked(c, &what)
    }

    /// The flags of a `podman run` with limits: 1 CPU, `memory`.
    pub fn run_flags(&self, memory: &str) -> String {
        format!(
            "run --rm --network none --cgroup-parent /{} \
             --ulimit nofile=20000:20000 --ulimit nproc=32768:32768 \
             -m {memory} --cpuset-cpus 0",
            self.parent
        )
    }

    /// `podman kube play` of the pod in `yaml`; the pod's cgroups are removed when we drop.
    /// Returns the pod's name as podman reports it.
    pub fn kube_play(&self, yaml: &Path) -> String {
        let out = self.run(&["kube", "play", "--network", "none", yaml.to_str().unwrap()]);
        let pod = out
            .lines()
            .skip_while(|l| !l.starts_with("Pod:"))
            .nth(1)
            .map(str::trim)
            .unwrap_or_else(|| panic!("kube play named no pod:\n{out}"))
            .to_string();
        let cgroup = self.run(&["pod", "inspect", "--format", "{{.CgroupPath}}", &pod]);
        self.kube_cgroups
            .borrow_mut()
            .push(cgroup.trim().trim_start_matches('/').to_string());
        pod
    }

    /// `podman kube down` of the pods in `yaml`.
    pub fn kube_down(&self, yaml: &Path) {
        self.run(&["kube", "down", yaml.to_str().unwrap()]);
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // Whatever a failed test left running: every pod and container of our own storage.
        for args in [&["pod", "rm", "-fa"][..], &["rm", "-fa"][..]] {
            let mut c = self.command();
            let _ = c.args(args).output();
        }
        for cgroup in self.kube_cgroups.borrow().iter() {
            if cgroup.starts_with(KUBE_CGROUP_ROOT) && cgroup.len() > KUBE_CGROUP_ROOT.len() {
                remove_cgroup_tree(cgroup);
            }
        }
        remove_cgroup_tree(&self.parent);
        if !self.kube_cgroups.borrow().is_empty() {
            // podman creates the parent itself and again when it needs it; one that still
            // holds someone's pods is not empty and stays.
            for m in super::mountinfo() {
                if m.fstype == "cgroup" || m.fstype == "cgroup2" {
                    let root = m.mount_point.join(KUBE_CGROUP_ROOT);
                    // conmon's cgroup, shared by every pod's monitor: empty once ours exit.
                    let _ = fs::remove_dir(root.join("conmon"));
                    let _ = fs::remove_dir(root);
                }
            }
        }
    }
}
