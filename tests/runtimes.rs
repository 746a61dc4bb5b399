//! The ways users hand the files to containers, each with a real runtime: `podman run` with
//! `lxcfs-rs bind-args` pasted in verbatim, the OCI hook through Podman's hooks directory
//! (runc runs it), and LXC with our mount hook and with the C lxcfs package's own hook.

#[macro_use]
mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::container::{self, Rootfs};
use common::podman::Podman;
use common::*;

/// What every container here prints: the values the bind mounts fix, one per line.
const REPORT: &str = "echo total=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo); \
    echo online=$(cat /sys/devices/system/cpu/online); \
    echo processors=$(grep -c ^processor /proc/cpuinfo); \
    echo statcpus=$(grep -c ^cpu /proc/stat); \
    echo cpudirs=$(ls /sys/devices/system/cpu | grep -c '^cpu[0-9]'); \
    echo uptime=$(cut -d' ' -f1 /proc/uptime); \
    /bin/probe sysconf";

/// The `key=value` (or `key value`, as the probe prints) lines of a report.
fn report(out: &str) -> std::collections::BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once('=').or_else(|| l.split_once(' ')))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The host's values, read directly, for the reports of containers without our files.
fn host_total_kb() -> u64 {
    kb(&fs::read_to_string("/proc/meminfo").unwrap(), "MemTotal")
}

/// Asserts a report shows a 1-CPU container with `total_kb` of memory, read through us.
fn assert_container_view(out: &str, total_kb: u64, what: &str) {
    let r = report(out);
    let get = |k: &str| r.get(k).map(String::as_str).unwrap_or("(missing)");
    assert_eq!(
        get("total"),
        total_kb.to_string(),
        "{what}: MemTotal\n{out}"
    );
    assert_eq!(get("online"), "0", "{what}: online\n{out}");
    assert_eq!(get("processors"), "1", "{what}: cpuinfo processors\n{out}");
    assert_eq!(
        get("statcpus"),
        "2",
        "{what}: /proc/stat cpu lines (cpu, cpu0)\n{out}"
    );
    assert_eq!(get("cpudirs"), "1", "{what}: cpuN directories\n{out}");
    assert_eq!(
        get("onln"),
        "1",
        "{what}: sysconf(_SC_NPROCESSORS_ONLN)\n{out}"
    );
    assert_eq!(
        get("conf"),
        "1",
        "{what}: sysconf(_SC_NPROCESSORS_CONF)\n{out}"
    );
    let up: f64 = get("uptime").parse().unwrap_or(f64::MAX);
    assert!(
        up < 30.0,
        "{what}: uptime {up} is not the container's\n{out}"
    );
}

/// Asserts a report shows the host (the files are the kernel's).
fn assert_host_view(out: &str, what: &str) {
    let r = report(out);
    let get = |k: &str| r.get(k).map(String::as_str).unwrap_or("(missing)");
    assert_eq!(
        get("total"),
        host_total_kb().to_string(),
        "{what}: MemTotal\n{out}"
    );
    let host_online = fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    assert_eq!(get("online"), host_online.trim(), "{what}: online\n{out}");
}

// ---------------------------------------------------------------------------------------
// Podman
// ---------------------------------------------------------------------------------------

/// `podman run` with limits (1 CPU, `memory`), then `middle` (flags, as a shell would split
/// them), the image and [`REPORT`]: one line through `sh -c`, as a user types it.
fn run_in_shell(podman: &Podman, memory: &str, middle: &str) -> String {
    let env: Vec<String> = podman
        .env()
        .iter()
        .map(|(k, v)| format!("{k}={}", v.display()))
        .collect();
    let line = format!(
        "{} {} {} {middle} {} /bin/sh -c {}",
        env.join(" "),
        podman.argv().join(" "),
        podman.run_flags(memory),
        podman.image,
        quote(REPORT)
    );
    run_argv(&["sh", "-c", &line])
}

/// What the Podman tests start from: our daemon, the shared root filesystem, and Podman with
/// it imported as an image (fields drop in this order: Podman first, the daemon last).
struct PodmanScene {
    podman: Podman,
    _rootfs: Arc<Rootfs>,
    daemon: Daemon,
}

impl PodmanScene {
    /// `None` (after saying why) when the test cannot run.
    fn new() -> Option<PodmanScene> {
        if !container::can_run_containers() || !cpus_0_and_1_online() {
            return None;
        }
        let daemon = Daemon::start(&[]);
        let rootfs = Rootfs::shared();
        let podman = Podman::new(&rootfs)?;
        Some(PodmanScene {
            podman,
            _rootfs: rootfs,
            daemon,
        })
    }
}

/// Runs `argv`; panics (with its output) unless it exits 0. Returns its stdout.
fn run_argv<S: AsRef<std::ffi::OsStr>>(argv: &[S]) -> String {
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..]);
    let what: Vec<String> = argv
        .iter()
        .take(3)
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    checked(c, &what.iter().map(String::as_str).collect::<Vec<_>>())
}

/// A file of `packaging/`, pointed at the binary under test and the mount at `mnt`, as
/// install.sh points it at the installed binary and mount point.
fn packaged(file: &str, mnt: &Path) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("packaging")
        .join(file);
    fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .replace("/usr/local/bin/lxcfs-rs", BIN)
        .replace("/var/lib/lxcfs", mnt.to_str().expect("utf-8 path"))
}

/// A shell command line, single-quoted.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[test]
fn podman_run_with_bind_args_pasted_verbatim() {
    let Some(scene) = PodmanScene::new() else {
        return;
    };
    let (daemon, podman) = (&scene.daemon, &scene.podman);
    // Exactly what the README tells users to type, through a shell.
    let flags = format!(
        "$({BIN} bind-args --runtime podman {})",
        daemon.mnt.display()
    );
    let out = run_in_shell(podman, "256m", &flags);
    assert_container_view(&out, 262144, "podman with bind-args");

    // The control: the same container without the flags sees the host.
    let out = run_in_shell(podman, "256m", "");
    assert_host_view(&out, "podman without bind-args");
}

/// `lxcfs-rs seccomp-profile --runtime podman` (Podman's installed default with sysinfo moved
/// to the agent) given to `podman run --security-opt seccomp=`: the container's sysinfo(2) is
/// answered by the agent. Podman's default lists sysinfo in its big allow list, and the
/// first rule for a call wins, so a profile that merely appended the notify rule would leave
/// the host's numbers.
#[test]
fn podman_with_the_generated_seccomp_profile_gets_sysinfo_from_the_agent() {
    let Some(scene) = PodmanScene::new() else {
        return;
    };
    let podman = &scene.podman;
    let agent = common::agent::Agent::start();
    let socket = agent.socket.to_str().expect("utf-8 path");
    let out = run_bin(&["seccomp-profile", "--runtime", "podman", "--socket", socket]);
    assert!(out.status.success(), "seccomp-profile: {}", describe(&out));
    let profile = podman.dir.join("seccomp.json");
    fs::write(&profile, &out.stdout).unwrap();
    let run = |seccomp: Option<&Path>| {
        let mut c = podman.command();
        c.args(podman.run_flags("256m").split_whitespace());
        if let Some(p) = seccomp {
            c.arg("--security-opt")
                .arg(format!("seccomp={}", p.display()));
        }
        c.args([podman.image.as_str(), "/bin/sysinfo-probe", "show"]);
        report(&checked(c, &["podman run --security-opt seccomp="]))
    };
    let total = |r: &std::collections::BTreeMap<String, String>| -> u64 {
        let n = |k: &str| -> u64 {
            r.get(k)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {k} from sysinfo-probe: {r:?}\n{}", agent.log()))
        };
        n("totalram") * n("mem_unit")
    };
    assert_eq!(
        total(&run(Some(&profile))),
        256 * MIB,
        "podman with the generated profile: sysinfo totalram is the limit"
    );
    assert_eq!(
        total(&run(None)),
        host_total_kb() * 1024,
        "podman with its default profile: sysinfo totalram is the host's"
    );
}

#[test]
fn oci_hook_binds_annotated_podman_containers() {
    let Some(scene) = PodmanScene::new() else {
        return;
    };
    let (daemon, podman) = (&scene.daemon, &scene.podman);
    let hooks = podman.dir.join("hooks.d");
    fs::create_dir(&hooks).unwrap();
    fs::write(
        hooks.join("lxcfs-rs.json"),
        packaged("oci/lxcfs-rs-hook.json", &daemon.mnt),
    )
    .unwrap();

    let run = |annotation: Option<&str>| {
        let mut c = podman.command();
        c.arg("--hooks-dir").arg(&hooks);
        c.args(podman.run_flags("128m").split_whitespace());
        if let Some(a) = annotation {
            c.args(["--annotation", a]);
        }
        c.args([podman.image.as_str(), "/bin/sh", "-c", REPORT]);
        checked(c, &["podman run --hooks-dir"])
    };
    assert_container_view(
        &run(Some("io.lxcfs-rs.enable=true")),
        131072,
        "podman with the OCI hook",
    );
    assert_host_view(&run(None), "podman without the annotation");
    assert_host_view(
        &run(Some("io.lxcfs-rs.enable=false")),
        "podman with the annotation false",
    );
}

/// The hook as a hand-written runc `config.json` names it, in a plain container and in an
/// unprivileged one (user namespace), where runc runs the hook as the container's root.
#[test]
fn oci_hook_in_runc_config_json() {
    require!(containers);
    require!(cpus_0_and_1);
    let daemon = Daemon::start(&[]);
    let rootfs = Rootfs::shared();
    container::open_to_all(daemon.mnt.parent().expect("mount point's parent"));
    let runc = container::Runc::new();
    let mnt = daemon.mnt.to_str().unwrap();
    let hook = |spec: container::Spec| {
        spec.memory(128 << 20)
            .cpus("0")
            .create_container_hook(BIN, &["lxcfs-rs", "hook", "oci", mnt])
    };
    let plain = hook(container::Spec::new("hooked", &rootfs, REPORT));
    let userns =
        hook(container::Spec::new("hooked-userns", &rootfs, REPORT)).user_namespace(100000, 65536);
    for spec in [plain, userns] {
        let mut c = runc.start(spec);
        let out = c.wait(std::time::Duration::from_secs(30)).raw.clone();
        assert_container_view(&out, 131072, &c.name);
    }
}

// ---------------------------------------------------------------------------------------
// LXC
// ---------------------------------------------------------------------------------------

/// An LXC container (`lxc-execute`) running [`REPORT`] in `rootfs` with a 256 MiB limit on
/// CPU 0, its cgroups below a test cgroup of its own, with `hook` as `lxc.hook.mount`;
/// `prefix` (a command that execs its arguments) runs before lxc-execute.
fn lxc_execute(rootfs: &Rootfs, hook: &Path, prefix: &[&str]) -> String {
    let hook = format!("lxc.hook.mount = {}\n", hook.display());
    lxc_execute_with(rootfs, &hook, prefix)
}

/// [`lxc_execute`] with `extra` (whole config lines) at the end of the container's config
/// instead of a hook.
fn lxc_execute_with(rootfs: &Rootfs, extra: &str, prefix: &[&str]) -> String {
    let dir = TestDir::new();
    let name = unique("lxcfs-rs-lxc");
    let cgroup = unique("lxcfs-rs-test-lxc");
    // LXC writes into the root filesystem's mount points; give it a copy.
    let root = dir.join("rootfs");
    run_argv(&[
        "cp".as_ref(),
        "-a".as_ref(),
        rootfs.path().as_os_str(),
        root.as_os_str(),
    ]);
    let container_dir = dir.join(&name);
    fs::create_dir(&container_dir).unwrap();
    let config = format!(
        "lxc.uts.name = {name}\n\
         lxc.rootfs.path = dir:{root}\n\
         lxc.net.0.type = empty\n\
         lxc.mount.auto = proc:mixed sys:ro\n\
         lxc.autodev = 1\n\
         lxc.apparmor.profile = unconfined\n\
         lxc.cgroup.dir.container = {cgroup}/payload\n\
         lxc.cgroup.dir.monitor = {cgroup}/monitor\n\
         lxc.cgroup.dir.monitor.pivot = {cgroup}/pivot\n\
         lxc.cgroup.memory.limit_in_bytes = 268435456\n\
         lxc.cgroup.cpuset.cpus = 0\n\
         {extra}",
        root = root.display(),
    );
    fs::write(container_dir.join("config"), config).unwrap();
    let log = dir.join("lxc.log");
    let (lxcpath, logfile) = (dir.path().to_str().unwrap(), log.to_str().unwrap());
    let mut argv: Vec<&str> = prefix.to_vec();
    argv.extend([
        "lxc-execute",
        "-n",
        &name,
        "-P",
        lxcpath,
        "-o",
        logfile,
        "-l",
        "INFO",
        "--",
        "/bin/sh",
        "-c",
        REPORT,
    ]);
    let mut c = Command::new(argv[0]);
    c.args(&argv[1..]);
    let out = c.output().expect("running lxc-execute");
    // LXC removes the container's cgroup, not the ones it made for itself below ours.
    remove_cgroup_tree(&cgroup);
    assert!(
        out.status.success(),
        "lxc-execute failed\n{}\n--- lxc log ---\n{}",
        describe(&out),
        fs::read_to_string(&log).unwrap_or_default()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn lxc_container_with_our_mount_hook() {
    require!(containers);
    require!(cpus_0_and_1);
    require!(
        program "lxc-execute",
        "lxc-execute is missing (Debian package lxc; scripts/deps.sh test installs it)"
    );
    let daemon = Daemon::start(&[]);
    let rootfs = Rootfs::shared();
    let dir = TestDir::new();
    let hook = dir.join("lxc.mount.hook");
    fs::write(&hook, packaged("lxc/lxc.mount.hook", &daemon.mnt)).unwrap();
    fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = lxc_execute(&rootfs, &hook, &[]);
    assert_container_view(&out, 262144, "LXC with lxcfs-rs's hook");
}

#[test]
fn lxc_container_with_the_lxcfs_packages_hook() {
    const STOCK_HOOK: &str = "/usr/share/lxcfs/lxc.mount.hook";
    require!(containers);
    require!(cpus_0_and_1);
    require!(
        program "lxc-execute",
        "lxc-execute is missing (Debian package lxc; scripts/deps.sh test installs it)"
    );
    require!(
        Path::new(STOCK_HOOK).exists(),
        "the lxcfs package's LXC hook is missing (scripts/deps.sh test installs lxcfs)"
    );
    let daemon = Daemon::start(&[]);
    let rootfs = Rootfs::shared();
    // The stock hook reads /var/lib/lxcfs: give it our mount there, in a mount namespace of
    // its own, so the host's /var/lib/lxcfs is never touched.
    let wrap = format!(
        "mkdir -p /var/lib/lxcfs && mount --bind {} /var/lib/lxcfs && exec \"$@\"",
        daemon.mnt.display()
    );
    let prefix = sh_in_private_mount_ns(&[], &wrap, &[]);
    let out = lxc_execute(&rootfs, Path::new(STOCK_HOOK), &prefix);
    assert_container_view(&out, 262144, "LXC with the lxcfs package's hook");
}

/// `lxcfs-rs bind-args --runtime lxc` pasted into a container's config, no hook: the
/// `lxc.mount.entry` lines alone bind the files.
#[test]
fn lxc_container_with_bind_args_entries() {
    require!(containers);
    require!(cpus_0_and_1);
    require!(
        program "lxc-execute",
        "lxc-execute is missing (Debian package lxc; scripts/deps.sh test installs it)"
    );
    let daemon = Daemon::start(&[]);
    let rootfs = Rootfs::shared();
    let mnt = daemon.mnt.to_str().expect("utf-8 path");
    let entries = run_argv(&[BIN, "bind-args", "--runtime", "lxc", mnt]);
    assert!(
        entries.lines().count() >= 9
            && entries.lines().all(|l| l.starts_with("lxc.mount.entry = ")),
        "bind-args --runtime lxc: expected an lxc.mount.entry line per file, got:\n{entries}"
    );
    let out = lxc_execute_with(&rootfs, &entries, &[]);
    assert_container_view(&out, 262144, "LXC with bind-args --runtime lxc entries");
}

/// `packaging/lxc/00-lxcfs-rs.conf` used as the README says: dropped into the
/// `common.conf.d` that a `common.conf` includes, which the container's config includes.
/// Both are test-local copies laid out as `/usr/share/lxc/config/` is (its `common.conf`
/// ends by including its `common.conf.d/`); the system's are never touched.
#[test]
fn lxc_container_with_the_packaged_common_conf_snippet() {
    require!(containers);
    require!(cpus_0_and_1);
    require!(
        program "lxc-execute",
        "lxc-execute is missing (Debian package lxc; scripts/deps.sh test installs it)"
    );
    let daemon = Daemon::start(&[]);
    let rootfs = Rootfs::shared();
    let dir = TestDir::new();
    let hook = dir.join("lxc.mount.hook");
    fs::write(&hook, packaged("lxc/lxc.mount.hook", &daemon.mnt)).unwrap();
    fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let snippets = dir.join("config/common.conf.d");
    fs::create_dir_all(&snippets).unwrap();
    let snippet = packaged("lxc/00-lxcfs-rs.conf", &daemon.mnt).replace(
        "/usr/local/share/lxcfs-rs/lxc.mount.hook",
        hook.to_str().expect("utf-8 path"),
    );
    fs::write(snippets.join("00-lxcfs-rs.conf"), snippet).unwrap();
    let common = dir.join("config/common.conf");
    fs::write(&common, format!("lxc.include = {}/\n", snippets.display())).unwrap();
    let out = lxc_execute_with(
        &rootfs,
        &format!("lxc.include = {}\n", common.display()),
        &[],
    );
    assert_container_view(&out, 262144, "LXC with 00-lxcfs-rs.conf in common.conf.d");
}

// ---------------------------------------------------------------------------------------
// Host tools through the bind mounts
// ---------------------------------------------------------------------------------------

#[test]
fn procps_tools_read_the_bound_files() {
    require!(mount);
    require!(cpus_0_and_1);
    for prog in ["free", "top", "uptime"] {
        require!(
            program prog,
            &format!("procps {prog} is missing (scripts/deps.sh test installs procps)")
        );
    }
    let daemon = Daemon::start(&[]);
    let cg = Cgroup::new();
    cg.set_memory_limit(256 << 20).set_cpus("0");
    // A container made by hand: its own pid namespace and /proc, our files bound over it.
    let script = r#"
        for f in meminfo stat uptime loadavg cpuinfo; do mount --bind "$1/proc/$f" "/proc/$f"; done
        echo free_total=$(free -k | awk '/^Mem:/ {print $2}')
        echo top_total=$(top -b -n 1 | awk '/^MiB Mem/ {print $4}')
        echo top_cpus=$(top -b -n 1 -1 | grep -c '^%Cpu')
        echo uptime=$(uptime)
    "#;
    let out = cg.run(&sh_in_private_mount_ns(
        &["--pid", "--fork", "--mount-proc"],
        script,
        &[daemon.mnt.to_str().unwrap()],
    ));
    let r = report(&out);
    let get = |k: &str| r.get(k).map(String::as_str).unwrap_or("(missing)");
    assert_eq!(get("free_total"), "262144", "procps free\n{out}");
    assert_eq!(get("top_total"), "256.0", "procps top\n{out}");
    assert_eq!(get("top_cpus"), "1", "procps top, one line per CPU\n{out}");
    assert!(get("uptime").contains("up 0 min"), "procps uptime\n{out}");
}

#[test]
fn bind_args_refuses_a_mount_point_nothing_serves() {
    let dir = TestDir::new();
    let out = run_bin(&["bind-args", dir.path().to_str().unwrap()]);
    assert_fails(&out, 1, "no lxcfs filesystem is mounted at");
    assert!(
        out.stdout.is_empty(),
        "printed flags anyway: {}",
        describe(&out)
    );
}
