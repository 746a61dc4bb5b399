//! A real Docker engine (Debian's docker.io, started by the test with everything in places
//! of its own, see [`common::docker`]):
//!
//! - `docker run $(lxcfs-rs bind-args MNT) -m 256m --cpuset-cpus 0` typed through a shell
//!   gives the container its own values in every bound file, `docker exec` too, and the same
//!   run without the flags sees the host;
//! - the daemon's image (`scripts/build-image`) run with `--privileged --pid=host` mounts on
//!   a mount point of the host (the test's) and serves containers; `probe` passes from the
//!   host and from inside the image;
//! - a second daemon container takes over from the first while a container reads, with no
//!   failed read, and the first waits until `docker stop`;
//! - after `docker stop` of the only daemon container, a new one re-binds the running
//!   containers' dead files.
//!
//! Needs root, /dev/fuse, cgroup v1, busybox-static, gcc and docker.io (skipped otherwise,
//! failing when CI is set). The tests run one at a time: a daemon mounting afresh re-binds
//! every dead lxcfs bind on the host, other tests' containers' too.

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use common::container::Rootfs;
use common::docker::{Dockerd, build_daemon_image, privileged_flags};
use common::*;

/// One test at a time (see the header).
static SERIAL: Mutex<()> = Mutex::new(());

/// The daemon's arguments in the image's default command, with a test mount point.
const DAEMON_FLAGS: [&str; 3] = [
    "--host-mount-ns",
    "--takeover-if-running",
    "--wait-after-handoff",
];

/// What the bind-args containers print: the values the bound files fix, whether each file
/// is an lxcfs mount (`lxcfs:PATH=1`) and readable (`readable:PATH=1`), the first words of
/// swaps and slabinfo, and sysconf's CPU counts.
const REPORT: &str = r#"
echo total=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
echo online=$(cat /sys/devices/system/cpu/online)
echo processors=$(grep -c ^processor /proc/cpuinfo)
echo statcpus=$(grep -c '^cpu[0-9]' /proc/stat)
echo cpudirs=$(ls /sys/devices/system/cpu | grep -c '^cpu[0-9]')
echo uptime=$(cut -d' ' -f1 /proc/uptime)
for f in /proc/meminfo /proc/cpuinfo /proc/stat /proc/uptime /proc/swaps /proc/loadavg \
         /proc/diskstats /proc/slabinfo /sys/devices/system/cpu; do
    echo "lxcfs:$f=$(grep -c " $f .* - fuse.lxcfs " /proc/self/mountinfo)"
done
for f in /proc/swaps /proc/loadavg /proc/diskstats /proc/slabinfo; do
    cat $f >/dev/null && echo "readable:$f=1"
done
echo swapshead=$(head -n 1 /proc/swaps | awk '{print $1}')
echo slabhead=$(head -n 1 /proc/slabinfo | awk '{print $1}')
echo loadfields=$(awk '{print NF}' /proc/loadavg)
/bin/probe sysconf
"#;

/// The `key=value` (or `key value`, as the probe prints) lines of a report.
fn report(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once('=').or_else(|| l.split_once(' ')))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// A shell command line, single-quoted.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The host's MemTotal (kB) and online CPU list.
fn host_view() -> (u64, String) {
    (
        kb(&fs::read_to_string("/proc/meminfo").unwrap(), "MemTotal"),
        fs::read_to_string("/sys/devices/system/cpu/online")
            .unwrap()
            .trim()
            .to_string(),
    )
}

/// Asserts a report shows a 256 MiB, one-CPU container, every file bound from lxcfs.
#[track_caller]
fn assert_container_view(out: &str, what: &str) {
    let r = report(out);
    let get = |k: &str| r.get(k).map(String::as_str).unwrap_or("(missing)");
    let expect = [
        ("total", "262144"),
        ("online", "0"),
        ("processors", "1"),
        ("statcpus", "1"),
        ("cpudirs", "1"),
        ("onln", "1"),
        ("conf", "1"),
        ("swapshead", "Filename"),
        ("slabhead", "slabinfo"),
        ("loadfields", "5"),
    ];
    for (key, want) in expect {
        assert_eq!(get(key), want, "{what}: {key}\n{out}");
    }
    for f in [
        "/proc/meminfo",
        "/proc/cpuinfo",
        "/proc/stat",
        "/proc/uptime",
        "/proc/swaps",
        "/proc/loadavg",
        "/proc/diskstats",
        "/proc/slabinfo",
        "/sys/devices/system/cpu",
    ] {
        assert_eq!(get(&format!("lxcfs:{f}")), "1", "{what}: {f} bound\n{out}");
    }
    for f in [
        "/proc/swaps",
        "/proc/loadavg",
        "/proc/diskstats",
        "/proc/slabinfo",
    ] {
        assert_eq!(
            get(&format!("readable:{f}")),
            "1",
            "{what}: {f} read\n{out}"
        );
    }
    let up: f64 = get("uptime").parse().unwrap_or(f64::MAX);
    assert!(
        up < 60.0,
        "{what}: uptime {up} is not the container's\n{out}"
    );
}

/// Asserts a report shows the host's files.
#[track_caller]
fn assert_host_view(out: &str, what: &str) {
    let r = report(out);
    let get = |k: &str| r.get(k).map(String::as_str).unwrap_or("(missing)");
    let (total, online) = host_view();
    assert_eq!(get("total"), total.to_string(), "{what}: MemTotal\n{out}");
    assert_eq!(get("online"), online, "{what}: online\n{out}");
    let host_processors = fs::read_to_string("/proc/cpuinfo")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    assert_eq!(
        get("processors"),
        host_processors.to_string(),
        "{what}: cpuinfo processors\n{out}"
    );
    assert_eq!(get("lxcfs:/proc/meminfo"), "0", "{what}\n{out}");
}

/// What every test starts from: one test at a time, the root filesystem and an engine with
/// it imported (fields drop in order: the engine, with its containers, first).
struct Scene {
    docker: Dockerd,
    _rootfs: Arc<Rootfs>,
    _serial: MutexGuard<'static, ()>,
}

impl Scene {
    /// `None` (after saying why) when the test cannot run here.
    fn new() -> Option<Scene> {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        if !cpus_0_and_1_online() {
            return None;
        }
        let rootfs = Rootfs::shared();
        let docker = Dockerd::start(&rootfs)?;
        Some(Scene {
            docker,
            _rootfs: rootfs,
            _serial: serial,
        })
    }
}

// ---------------------------------------------------------------------------------------
// a. bind-args with the test's daemon
// ---------------------------------------------------------------------------------------

#[test]
fn docker_run_with_bind_args_typed_through_a_shell() {
    require!(mount);
    let daemon = Daemon::start(&[]);
    let Some(scene) = Scene::new() else {
        return;
    };
    let docker = &scene.docker;
    let flags = format!("$({BIN} bind-args {})", daemon.mnt.display());
    let line = |middle: &str| {
        format!(
            "{} run --rm --network none {middle} -m 256m --cpuset-cpus 0 {} /bin/sh -c {}",
            docker.shell_prefix(),
            docker.busybox,
            quote(REPORT)
        )
    };
    let run = |middle: &str| {
        let mut c = Command::new("sh");
        c.arg("-c").arg(line(middle));
        checked(c, &["sh -c", "docker run"])
    };
    assert_container_view(&run(&flags), "docker run with bind-args");

    // A reader that enters a running container (`docker exec`) sees the same.
    let started = format!(
        "{} run -d --name reader --network none {flags} -m 256m --cpuset-cpus 0 {} sleep 600",
        docker.shell_prefix(),
        docker.busybox
    );
    let mut c = Command::new("sh");
    c.arg("-c").arg(&started);
    checked(c, &["sh -c", "docker run -d"]);
    let out = docker.checked(&["exec", "reader", "/bin/sh", "-c", REPORT]);
    assert_container_view(&out, "docker exec into a bind-args container");

    // The control: the same container without the flags sees the host.
    assert_host_view(&run(""), "docker run without bind-args");
}

// ---------------------------------------------------------------------------------------
// b, c, d. the daemon's image
// ---------------------------------------------------------------------------------------

/// Daemon containers on a test mount point: stopped (the serving one unmounts) and
/// removed on drop, then whatever is left at the mount point detached and its handoff socket
/// removed, pass or fail.
struct DaemonContainers<'a> {
    docker: &'a Dockerd,
    image: String,
    names: Vec<String>,
    /// The mount point (the host's, as `--host-mount-ns` makes the daemon see it).
    mnt: PathBuf,
    _dir: TestDir,
}

impl<'a> DaemonContainers<'a> {
    fn new(docker: &'a Dockerd) -> DaemonContainers<'a> {
        let dir = TestDir::new();
        let mnt = dir.join("mnt");
        fs::create_dir(&mnt).unwrap();
        DaemonContainers {
            image: build_daemon_image(docker),
            docker,
            names: Vec::new(),
            mnt,
            _dir: dir,
        }
    }

    fn mnt(&self) -> &str {
        self.mnt.to_str().expect("utf-8 path")
    }

    /// `docker run -d --privileged --pid=host --cgroupns=host IMAGE FLAGS MNT` as `name`
    /// (see [`privileged_flags`] for machines where `--privileged` cannot work).
    fn start(&mut self, name: &str) {
        let privileged = privileged_flags();
        let mut args = vec!["run", "-d", "--name", name];
        args.extend(privileged.iter().map(String::as_str));
        args.extend([
            "--pid=host",
            "--cgroupns=host",
            "--network",
            "none",
            &self.image,
        ]);
        args.extend(DAEMON_FLAGS);
        let mnt = self.mnt().to_string();
        args.push(&mnt);
        self.docker.checked(&args);
        self.names.push(name.to_string());
    }

    /// Waits (30 s) until an lxcfs mount at the mount point serves meminfo here.
    fn wait_served(&self, name: &str) {
        let meminfo = self.mnt.join("proc/meminfo");
        let served = wait_until(Duration::from_secs(30), || {
            fuse_mount_at(&self.mnt).is_some()
                && fs::read_to_string(&meminfo).is_ok_and(|t| t.starts_with("MemTotal:"))
        });
        assert!(
            served,
            "daemon container {name} did not serve {} within 30 s; its log:\n{}",
            self.mnt.display(),
            self.docker.logs(name)
        );
    }

    /// The `-v` flags binding the mount's files, from `lxcfs-rs bind-args`.
    fn bind_args(&self) -> Vec<String> {
        let out = run_bin(&["bind-args", self.mnt()]);
        assert_succeeds(&out, "lxcfs-rs bind-args");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }

    /// `docker run -d` of a busybox container as `name`, limited to 256 MiB, with the files
    /// bound, running `script`.
    fn workload(&self, name: &str, script: &str) {
        let binds = self.bind_args();
        let mut args = vec![
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "none",
            "-m",
            "256m",
        ];
        args.extend(binds.iter().map(String::as_str));
        args.extend([self.docker.busybox.as_str(), "/bin/sh", "-c", script]);
        self.docker.checked(&args);
    }

    /// The host pid of container `name`'s first process.
    fn container_pid(&self, name: &str) -> Option<u32> {
        self.docker.inspect(name, "{{.State.Pid}}").parse().ok()
    }

    /// The parent of the supervisor serving the mount point (`lxcfs-rs status`).
    fn supervisor_parent(&self) -> Option<u32> {
        parent_of(common::status::status(&self.mnt).supervisor_pid)
    }

    /// MemTotal (kB) as container `name` reads it now, or the error its read got.
    fn mem_total_in(&self, name: &str) -> Result<u64, String> {
        let out = self
            .docker
            .output(&["exec", name, "/bin/cat", "/proc/meminfo"]);
        if !out.status.success() {
            return Err(describe(&out));
        }
        Ok(kb(&String::from_utf8_lossy(&out.stdout), "MemTotal"))
    }
}

impl Drop for DaemonContainers<'_> {
    fn drop(&mut self) {
        for name in self.names.iter().rev() {
            let _ = self.docker.output(&["stop", "-t", "10", name]);
            let _ = self.docker.output(&["rm", "-f", name]);
        }
        if fuse_mount_at(&self.mnt).is_some() {
            let _ = nix::mount::umount2(&self.mnt, nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = fs::remove_file(lxcfs_rs::daemon::handoff::socket_path(
            Path::new(lxcfs_rs::host::own::HANDOFF_DIR),
            &self.mnt,
        ));
    }
}

#[test]
fn the_daemon_image_mounts_on_the_host_and_serves_containers() {
    require!(mount);
    let Some(scene) = Scene::new() else {
        return;
    };
    let mut daemons = DaemonContainers::new(&scene.docker);
    daemons.start("lxcfs-a");
    daemons.wait_served("lxcfs-a");
    daemons.workload("work", "sleep 600");
    assert_eq!(daemons.mem_total_in("work"), Ok(262144));

    let out = run_bin(&["probe", daemons.mnt()]);
    assert_succeeds(&out, "lxcfs-rs probe from the host");
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(line.contains("serves (lxcfs-rs "), "{line}");
    let inside = scene.docker.output(&[
        "exec",
        "lxcfs-a",
        "/lxcfs-rs",
        "--host-mount-ns",
        "probe",
        daemons.mnt(),
    ]);
    assert_succeeds(&inside, "lxcfs-rs --host-mount-ns probe inside the image");
    // The supervisor the host's handoff socket names is the child of the container's first
    // process (which stays in the container's mount namespace, for `docker exec`).
    assert_eq!(
        daemons.supervisor_parent(),
        daemons.container_pid("lxcfs-a")
    );
}

#[test]
fn a_second_daemon_container_takes_over_while_a_container_reads() {
    require!(mount);
    let Some(scene) = Scene::new() else {
        return;
    };
    let docker = &scene.docker;
    let mut daemons = DaemonContainers::new(docker);
    daemons.start("lxcfs-old");
    daemons.wait_served("lxcfs-old");
    let dev = fuse_mount_at(&daemons.mnt).expect("mounted").dev;
    // Every round: a right MemTotal counts a read, anything else (a failed or wrong read)
    // appends a line to /tmp/failures.
    daemons.workload(
        "reader",
        "i=0; while :; do \
           if grep -q '^MemTotal: *262144 kB' /proc/meminfo; then i=$((i+1)); echo $i >/tmp/reads; \
           else echo failed >>/tmp/failures; fi; usleep 10000; done",
    );
    let reads = || -> u64 {
        let out = docker.output(&["exec", "reader", "/bin/cat", "/tmp/reads"]);
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    };
    let failures = || -> String {
        let out = docker.output(&[
            "exec",
            "reader",
            "/bin/sh",
            "-c",
            "cat /tmp/failures 2>/dev/null",
        ]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(
        wait_until(Duration::from_secs(20), || reads() >= 10),
        "the reader does not read: {} reads, failures {:?}",
        reads(),
        failures()
    );

    daemons.start("lxcfs-new");
    let handed = wait_until(Duration::from_secs(30), || {
        docker.logs("lxcfs-old").contains("waiting for SIGTERM")
    });
    assert!(
        handed,
        "the old daemon container did not hand over; its log:\n{}\nthe new one's:\n{}",
        docker.logs("lxcfs-old"),
        docker.logs("lxcfs-new")
    );
    assert_eq!(docker.inspect("lxcfs-old", "{{.State.Running}}"), "true");
    assert_eq!(
        daemons.supervisor_parent(),
        daemons.container_pid("lxcfs-new"),
        "the new container's daemon serves"
    );
    docker.checked(&["stop", "-t", "10", "lxcfs-old"]);
    assert_eq!(
        docker.inspect("lxcfs-old", "{{.State.ExitCode}}"),
        "0",
        "{}",
        docker.logs("lxcfs-old")
    );
    let after_stop = reads();
    assert!(
        wait_until(Duration::from_secs(20), || reads() >= after_stop + 10),
        "the reader stopped reading after the old container's stop: failures {:?}",
        failures()
    );
    assert_eq!(
        fuse_mount_at(&daemons.mnt).map(|m| m.dev),
        Some(dev),
        "the same FUSE connection serves throughout"
    );
    assert_eq!(failures(), "", "failed reads ({} good)", reads());
    assert_eq!(daemons.mem_total_in("reader"), Ok(262144));
}

#[test]
fn a_new_daemon_container_re_binds_a_running_containers_dead_files() {
    require!(mount);
    let Some(scene) = Scene::new() else {
        return;
    };
    let docker = &scene.docker;
    let mut daemons = DaemonContainers::new(docker);
    daemons.start("lxcfs-first");
    daemons.wait_served("lxcfs-first");
    daemons.workload("work", "sleep 600");
    assert_eq!(daemons.mem_total_in("work"), Ok(262144));

    // A clean stop unmounts: the container's binds are dead.
    docker.checked(&["stop", "-t", "10", "lxcfs-first"]);
    assert_eq!(docker.inspect("lxcfs-first", "{{.State.ExitCode}}"), "0");
    assert!(
        fuse_mount_at(&daemons.mnt).is_none(),
        "docker stop unmounts"
    );
    let dead = daemons.mem_total_in("work");
    assert!(
        dead.as_ref()
            .is_err_and(|e| e.contains("Transport endpoint is not connected")),
        "with no daemon the container's meminfo must fail: {dead:?}"
    );

    daemons.start("lxcfs-second");
    daemons.wait_served("lxcfs-second");
    let healed = wait_until(Duration::from_secs(10), || {
        daemons.mem_total_in("work") == Ok(262144)
    });
    assert!(
        healed,
        "the running container's files were not re-bound within 10 s: {:?}; the new daemon's \
         log:\n{}",
        daemons.mem_total_in("work"),
        docker.logs("lxcfs-second")
    );
    assert!(
        docker.logs("lxcfs-second").contains("re-bound"),
        "{}",
        docker.logs("lxcfs-second")
    );
}
