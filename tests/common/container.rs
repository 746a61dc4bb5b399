//! Real OCI containers run by `runc` for the end-to-end tests: a busybox root filesystem built
//! on the fly (no image pulls) with a static C probe, `config.json` made from `runc spec`,
//! the daemon's files bind-mounted over the container's `/proc` and `/sys` exactly as
//! `docker run -v /var/lib/lxcfs/proc/meminfo:/proc/meminfo:rw` does, and the container's
//! output cut into named sections.
//!
//! Every container is removed by its `Drop` guard (`runc kill`, `runc delete --force`, then
//! any cgroup directory runc left behind), so a failing assertion leaves nothing running.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::{Value, json};

use super::{
    TestDir, can_mount, describe, have_program, mountinfo, signal, skip, unique, wait_until,
};

/// The files a container gets from the daemon, as in lxcfs's documented `docker run -v` list.
pub const BOUND_FILES: &[&str] = &[
    "proc/cpuinfo",
    "proc/diskstats",
    "proc/loadavg",
    "proc/meminfo",
    "proc/stat",
    "proc/swaps",
    "proc/uptime",
    "sys/devices/system/cpu/online",
];

/// Where busybox-static installs the busybox the root filesystem is made of.
const BUSYBOX: &str = "/bin/busybox";

/// Source of `/bin/probe`, the container-side helper (see its header for the commands).
const PROBE_C: &str = r##"/* The end-to-end tests' helper inside containers (built with
 * gcc -static, so it needs no libraries in the busybox root filesystem). It reads files
 * with plain read(2), so what it prints is what any read-based tool sees, and asks glibc
 * what programs ask it.
 *
 *   probe read FILE...   the files' bytes, one read(2) loop each
 *   probe sysconf        "onln N", "conf N", "phys_kb N": sysconf(_SC_NPROCESSORS_ONLN),
 *                        sysconf(_SC_NPROCESSORS_CONF), sysconf(_SC_PHYS_PAGES) in kB
 *   probe touch MIB      "total", "before", "after": MemTotal, then MemAvailable before and
 *                        after touching MIB MiB of fresh memory, read while it is still held
 *   probe loadavg        "pid N" (our own pid as our pid namespace numbers it), then the file
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static char buf[1 << 20];

static size_t slurp(const char *path)
{
	int fd = open(path, O_RDONLY);
	size_t n = 0;

	if (fd < 0) {
		perror(path);
		exit(2);
	}
	for (;;) {
		ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);

		if (r < 0) {
			perror(path);
			exit(2);
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = 0;
	return n;
}

static long long meminfo_kb(const char *key)
{
	size_t k = strlen(key);
	char *line = buf;

	slurp("/proc/meminfo");
	while (line && *line) {
		if (!strncmp(line, key, k) && line[k] == ':')
			return atoll(line + k + 1);
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	fprintf(stderr, "probe: no %s line in /proc/meminfo\n", key);
	exit(2);
}

int main(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[1], "read")) {
		for (int i = 2; i < argc; i++) {
			size_t n = slurp(argv[i]);

			fwrite(buf, 1, n, stdout);
		}
	} else if (argc == 2 && !strcmp(argv[1], "sysconf")) {
		long long phys = (long long)sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGESIZE) / 1024;

		printf("onln %ld\nconf %ld\nphys_kb %lld\n", sysconf(_SC_NPROCESSORS_ONLN),
		       sysconf(_SC_NPROCESSORS_CONF), phys);
	} else if (argc == 3 && !strcmp(argv[1], "touch")) {
		size_t len = (size_t)atol(argv[2]) << 20;
		long long total = meminfo_kb("MemTotal");
		long long before = meminfo_kb("MemAvailable");
		char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED) {
			perror("mmap");
			return 2;
		}
		memset(p, 1, len);
		/* Keep the stores: the memory must really be charged while we read. */
		__asm__ volatile("" : : "r"(p) : "memory");
		long long after = meminfo_kb("MemAvailable");

		printf("total %lld\nbefore %lld\nafter %lld\n", total, before, after);
	} else if (argc == 2 && !strcmp(argv[1], "loadavg")) {
		size_t n = slurp("/proc/loadavg");

		printf("pid %d\n", (int)getpid());
		fwrite(buf, 1, n, stdout);
	} else {
		fprintf(stderr, "usage: probe read FILE... | sysconf | touch MIB | loadavg\n");
		return 2;
	}
	return fflush(stdout) == 0 ? 0 : 1;
}
"##;

/// Shell functions every container script can use.
///
/// `sec NAME` starts a section of the output (see [`Report`]); `ready` tells the test this
/// container is up, then waits for the test's go (a [`Barrier`]), so that several
/// containers do their reads at the same time (it polls with `read -t` on a FIFO nobody
/// writes rather than with `sleep`, so the waiting forks no task into the container that
/// would be newer than a reader's and show up as loadavg's last pid); `report` reads every
/// bound file with read(2) and records what common tools print; `splice_loop N` reads
/// files N times with busybox `cat`, which tries sendfile(2) first, into a pipe and into a
/// file.
pub const PRELUDE: &str = r#"
sec() { printf '\n::section %s\n' "$1"; }
ready() {
  : > "/sync/$NAME.ready"
  until [ -e /sync/go ]; do read -t 0.02 x <> /sync/idle; done
  return 0
}
report() {
  sec uptime; probe read /proc/uptime
  sec loadavg; probe loadavg
  sec meminfo; probe read /proc/meminfo
  sec cpuinfo; probe read /proc/cpuinfo
  sec stat; probe read /proc/stat
  sec online; probe read /sys/devices/system/cpu/online
  sec swaps; probe read /proc/swaps
  sec diskstats; probe read /proc/diskstats
  sec sysconf; probe sysconf
  sec nproc; nproc
  sec free; free
  sec top; top -b -n 1
}
splice_loop() {
  i=0
  while [ "$i" -lt "$1" ]; do
    echo "online-pipe $(cat /sys/devices/system/cpu/online)"
    cat /sys/devices/system/cpu/online > /dev/shm/online
    echo "online-file $(cat /dev/shm/online)"
    cat /proc/meminfo > /dev/shm/meminfo
    echo "memtotal-file $(grep MemTotal: /dev/shm/meminfo)"
    echo "meminfo-lines-file $(grep -c : /dev/shm/meminfo)"
    echo "processors-pipe $(cat /proc/cpuinfo | grep -c ^processor)"
    echo "stat-cpus-pipe $(cat /proc/stat | grep -c ^cpu)"
    i=$((i + 1))
  done
}
"#;

// ---------------------------------------------------------------------------------------
// Environment
// ---------------------------------------------------------------------------------------

/// Whether the container tests can run: [`can_mount`], plus `runc`, a static busybox and
/// `gcc` (with a static libc) for the probe. Returns false (after printing why) when the
/// test should be skipped; panics in CI.
pub fn can_run_containers() -> bool {
    if !can_mount() {
        return false;
    }
    if !have_program("runc") {
        return skip("runc is not installed (scripts/deps.sh test installs it)");
    }
    match is_static_elf(Path::new(BUSYBOX)) {
        Ok(true) => {}
        Ok(false) => {
            return skip(&format!(
                "{BUSYBOX} is dynamically linked; the container root filesystem needs \
                 busybox-static (scripts/deps.sh test installs it)"
            ));
        }
        Err(e) => {
            return skip(&format!(
                "{BUSYBOX}: {e}; install busybox-static (scripts/deps.sh test installs it)"
            ));
        }
    }
    if !have_program("gcc") {
        return skip("gcc is not installed (scripts/deps.sh installs gcc and libc6-dev)");
    }
    true
}

/// Whether the ELF file at `path` has no program interpreter (`PT_INTERP`), i.e. runs
/// without a dynamic loader in an otherwise empty root filesystem.
fn is_static_elf(path: &Path) -> Result<bool, String> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| e.to_string())?;
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 || bytes[5] != 1 {
        return Err("not a little-endian 64-bit ELF file".into());
    }
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(bytes[0x20..0x28].try_into().expect("8 bytes")) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        let ty = bytes
            .get(at..at + 4)
            .ok_or("truncated program headers")?
            .try_into()
            .map(u32::from_le_bytes)
            .map_err(|_| "truncated program headers")?;
        const PT_INTERP: u32 = 3;
        if ty == PT_INTERP {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Makes `dir` traversable and readable by everyone: a user-namespaced container's root is
/// an unprivileged host uid, and runc resolves the rootfs and bind sources as that uid.
pub fn open_to_all(dir: &Path) {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod 755 {}: {e}", dir.display()));
}

// ---------------------------------------------------------------------------------------
// Root filesystem
// ---------------------------------------------------------------------------------------

/// A busybox root filesystem with `/bin/probe`, shared read-only by all containers of a test
/// binary run: built by the first test that asks and removed when the last holder drops it.
pub struct Rootfs {
    dir: TestDir,
}

impl Rootfs {
    /// The shared root filesystem, built now if no test holds one.
    pub fn shared() -> Arc<Rootfs> {
        static SHARED: Mutex<Weak<Rootfs>> = Mutex::new(Weak::new());
        let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rootfs) = slot.upgrade() {
            return rootfs;
        }
        let rootfs = Arc::new(Rootfs::build());
        *slot = Arc::downgrade(&rootfs);
        rootfs
    }

    fn build() -> Rootfs {
        let dir = TestDir::new();
        open_to_all(dir.path());
        let root = dir.join("rootfs");
        // Mount points too: runc cannot create them in a user-namespaced container, whose
        // root does not own this directory.
        for d in ["bin", "dev", "proc", "sys", "tmp", "sync"] {
            fs::create_dir_all(root.join(d))
                .unwrap_or_else(|e| panic!("creating {}/{d}: {e}", root.display()));
        }
        open_to_all(&root);
        let bin = root.join("bin");
        fs::copy(BUSYBOX, bin.join("busybox")).unwrap_or_else(|e| panic!("copying {BUSYBOX}: {e}"));
        let list = Command::new(BUSYBOX)
            .arg("--list")
            .output()
            .unwrap_or_else(|e| panic!("{BUSYBOX} --list: {e}"));
        assert!(
            list.status.success(),
            "{BUSYBOX} --list: {}",
            describe(&list)
        );
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            // The list names busybox itself: a link there would replace the binary.
            if applet.is_empty() || applet == "busybox" || applet.contains('/') {
                continue;
            }
            symlink("busybox", bin.join(applet))
                .unwrap_or_else(|e| panic!("linking applet {applet}: {e}"));
        }
        let src = dir.join("probe.c");
        fs::write(&src, PROBE_C).expect("writing probe.c");
        let out = Command::new("gcc")
            .args(["-static", "-O1", "-o"])
            .arg(bin.join("probe"))
            .arg(&src)
            .output()
            .unwrap_or_else(|e| panic!("running gcc: {e}"));
        assert!(
            out.status.success(),
            "gcc -static could not build the probe (scripts/deps.sh installs gcc and \
             libc6-dev, whose libc.a static linking needs): {}",
            describe(&out)
        );
        Rootfs { dir }
    }

    /// The root filesystem's directory.
    pub fn path(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// The probe, which is static and so runs on the host too (for host reference values).
    pub fn probe(&self) -> PathBuf {
        self.path().join("bin/probe")
    }

    /// `probe ARGS` run on the host.
    pub fn probe_on_host(&self, args: &[&str]) -> String {
        let out = Command::new(self.probe())
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running the probe on the host: {e}"));
        assert!(out.status.success(), "probe {args:?}: {}", describe(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

// ---------------------------------------------------------------------------------------
// Barrier
// ---------------------------------------------------------------------------------------

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
                if let Some(st) = c.try_wait() {
                    panic!(
                        "container {} exited ({st}) before it was ready: {}",
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

// ---------------------------------------------------------------------------------------
// Container configuration
// ---------------------------------------------------------------------------------------

/// A container's bundle: its `config.json`, made from `runc spec`, being filled in.
pub struct Spec {
    /// Short name, for messages and the barrier (`$NAME` in the script).
    name: String,
    config: Value,
    bundle: TestDir,
    rootfs: Arc<Rootfs>,
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
    pub fn bind(mut self, source: &Path, destination: &str) -> Spec {
        let mounts = self.config["mounts"]
            .as_array_mut()
            .expect("config.json has a mounts array");
        mounts.push(json!({
            "type": "bind",
            "source": source,
            "destination": destination,
            "options": ["rbind", "rw"],
        }));
        self
    }

    /// The daemon's [`BOUND_FILES`] under `mnt` bound over the container's own.
    pub fn lxcfs(mut self, mnt: &Path) -> Spec {
        for f in BOUND_FILES {
            self = self.bind(&mnt.join(f), &format!("/{f}"));
        }
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

    /// An OCI `createContainer` hook running `path` with `args` (`args[0]` is its argv[0]).
    pub fn create_container_hook(mut self, path: &str, args: &[&str]) -> Spec {
        self.config["hooks"]["createContainer"] = json!([{ "path": path, "args": args }]);
        self
    }
}

// ---------------------------------------------------------------------------------------
// Running containers
// ---------------------------------------------------------------------------------------

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
        let stdout = File::create(bundle.join("stdout")).expect("creating the stdout file");
        let stderr = File::create(bundle.join("stderr")).expect("creating the stderr file");
        let started = Instant::now();
        let child = self
            .command()
            .args(["run", "--bundle"])
            .arg(bundle.path())
            .arg(&id)
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("starting runc run: {e}"));
        Container {
            runc: self,
            name,
            id,
            child: Some(child),
            status: None,
            bundle,
            started,
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
    child: Option<Child>,
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

    /// The exit status, once `runc run` has exited.
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
        let mut args = vec!["exec", self.id.as_str()];
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
        let started = Instant::now();
        let full = format!("{PRELUDE}\n{script}");
        let stdout = self.exec(&["/bin/sh", "-c", &full]);
        Report::parse(&format!("{} (exec)", self.name), stdout, started.elapsed())
    }

    /// Waits up to `timeout` for the container to exit and returns its report; panics with
    /// its output unless it exited 0 (on timeout it is killed first).
    pub fn wait(&mut self, timeout: Duration) -> Report {
        let exited = wait_until(timeout, || self.try_wait().is_some());
        let elapsed = self.age();
        if !exited {
            self.kill();
            panic!(
                "container {} did not exit within {timeout:?} (killed it): {}",
                self.name,
                self.output_so_far()
            );
        }
        let status = self.status.expect("exit status");
        assert!(
            status.success(),
            "container {} exited with {status}: {}",
            self.name,
            self.output_so_far()
        );
        let stdout = fs::read_to_string(self.bundle.join("stdout")).expect("container stdout");
        Report::parse(&self.name, stdout, elapsed)
    }

    /// Kills the container (only ours: by its unique id in our own state directory), then
    /// its `runc run`.
    fn kill(&mut self) {
        if self.try_wait().is_none() {
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

// ---------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------

/// A container's output cut at the `sec NAME` markers of [`PRELUDE`].
pub struct Report {
    /// The container's name, for messages.
    pub name: String,
    /// Everything it printed.
    pub raw: String,
    sections: BTreeMap<String, String>,
    /// From `runc run` to its exit: an upper bound for any uptime read inside.
    pub elapsed: Duration,
}

impl Report {
    fn parse(name: &str, raw: String, elapsed: Duration) -> Report {
        let mut sections = BTreeMap::new();
        // Each marker is preceded by a newline of its own, so a section keeps its bytes
        // exactly, final newline or not.
        for chunk in raw.split("\n::section ").skip(1) {
            let (title, body) = chunk.split_once('\n').unwrap_or((chunk, ""));
            sections.insert(title.to_string(), body.to_string());
        }
        Report {
            name: name.to_string(),
            raw,
            sections,
            elapsed,
        }
    }

    /// The text of section `title`; panics with the whole output if it is missing.
    pub fn get(&self, title: &str) -> &str {
        self.sections
            .get(title)
            .map(String::as_str)
            .unwrap_or_else(|| {
                panic!(
                    "container {} printed no section {title:?}; its output:\n{}",
                    self.name, self.raw
                )
            })
    }

    /// The `key value` lines of section `title` as numbers (the probe's `sysconf`, `touch`).
    pub fn numbers(&self, title: &str) -> BTreeMap<String, i64> {
        self.get(title)
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(' ')?;
                Some((k.to_string(), v.trim().parse().ok()?))
            })
            .collect()
    }

    /// One number of section `title`; panics with the section if it is missing.
    pub fn number(&self, title: &str, key: &str) -> i64 {
        *self.numbers(title).get(key).unwrap_or_else(|| {
            panic!(
                "container {}: no {key:?} in section {title:?}:\n{}",
                self.name,
                self.get(title)
            )
        })
    }

    /// The lines of section `title` grouped as `kind -> value -> count` (the splice loop
    /// prints `kind value` once per read).
    pub fn tally(&self, title: &str) -> BTreeMap<String, BTreeMap<String, usize>> {
        let mut out: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        for line in self.get(title).lines().filter(|l| !l.is_empty()) {
            let (kind, value) = line.split_once(' ').unwrap_or((line, ""));
            *out.entry(kind.to_string())
                .or_default()
                .entry(value.to_string())
                .or_default() += 1;
        }
        out
    }
}
