//! `sysinfo(2)` answered by the seccomp agent (`lxcfs-rs seccomp-agent`, issue 13): runc
//! containers given the profile `lxcfs-rs seccomp-profile` prints, with our files bound too.
//! busybox `free`, glibc's `sysconf(_SC_PHYS_PAGES)`, a 32-bit `int 0x80` caller, a bad
//! pointer, 16 threads at once, `runc exec` processes and a JVM without container support all
//! get the container's numbers; a control container without the profile gets the host's.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::{RUN_LIMIT, Scene, host_uptime};
use crate::common::agent::Agent;
use crate::common::container::{Report, Spec};
use crate::common::fdstore::NotifySocket;
use crate::common::{BIN, MIB, TestDir, kb, parse_uptime, skip};

/// The containers' memory limit.
const LIMIT: u64 = 256 * MIB;

/// errno values as the probe prints them.
const EFAULT: i64 = 14;
const ENOSYS: i64 = 38;

/// busybox `free`'s `Mem:` line: total, used, free, shared, buff/cache, available (kB).
fn free_mem(r: &Report) -> Vec<u64> {
    let free = r.get("free");
    let line = free
        .lines()
        .find(|l| l.starts_with("Mem:"))
        .unwrap_or_else(|| panic!("container {}: no Mem: line from free:\n{free}", r.name));
    line.split_whitespace()
        .skip(1)
        .map(|w| {
            w.parse()
                .unwrap_or_else(|_| panic!("container {}: free printed {line:?}", r.name))
        })
        .collect()
}

/// The last line of a command's stderr.
fn stderr_line(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    text.lines().last().unwrap_or("").to_owned()
}

/// `sysinfo-probe show`'s totalram in bytes.
fn totalram(r: &Report, section: &str) -> i64 {
    assert_eq!(
        (r.number(section, "ret"), r.number(section, "errno")),
        (0, 0),
        "container {}: sysinfo failed in section {section}:\n{}",
        r.name,
        r.get(section)
    );
    r.number(section, "totalram") * r.number(section, "mem_unit")
}

#[test]
fn sysinfo_is_the_containers_with_the_agent_and_the_hosts_without() {
    let Some(s) = Scene::new(&[]) else {
        return;
    };
    let mut agent = Agent::start();
    let profile = agent.oci_profile();
    let script = "ready\nsec show; sysinfo-probe show\nsec free; free\n\
        sec meminfo; probe read /proc/meminfo\nsec uptime; probe read /proc/uptime\n\
        sec compat; sysinfo-probe compat\nsec badptr; sysinfo-probe badptr\n\
        sec threads; sysinfo-probe threads 16 50\n";
    let spec = Spec::new("sysinfo", &s.rootfs, script)
        .memory(LIMIT)
        .lxcfs(&s.d.mnt)
        .seccomp(&profile)
        .barrier(&s.barrier);
    let control = Spec::new("control", &s.rootfs, "sec show; sysinfo-probe show\n")
        .memory(LIMIT)
        .lxcfs(&s.d.mnt);
    let host_up = host_uptime();
    let mut c = s.runc.start(spec);
    s.barrier.wait_ready(&mut [&mut c]);
    // A process runc exec starts gets a filter and a listener of its own: a new connection.
    let exec = c.exec_report("sec show; sysinfo-probe show\n");
    s.barrier.go();
    let r = c.wait(RUN_LIMIT);
    let rc = s.runc.start(control).wait(RUN_LIMIT);
    let log = agent.log();
    agent.stop();

    let limit = LIMIT as i64;
    assert_eq!(
        totalram(&r, "show"),
        limit,
        "sysinfo totalram; agent log:\n{log}"
    );
    assert_eq!(
        r.number("show", "phys_bytes"),
        limit,
        "glibc sysconf(_SC_PHYS_PAGES) * page size is sysinfo's totalram"
    );
    // freeram is the meminfo view's MemFree, read a moment apart.
    let mem_free = kb(r.get("meminfo"), "MemFree") as i64 * 1024;
    let freeram = r.number("show", "freeram");
    assert!(
        (freeram - mem_free).abs() <= 8 * MIB as i64 && freeram <= limit,
        "sysinfo freeram {freeram} should be meminfo's MemFree {mem_free} (± 8 MiB)"
    );
    let (files_up, _) = parse_uptime(r.get("uptime"));
    let up = r.number("show", "uptime") as f64;
    assert!(
        up <= r.elapsed.as_secs_f64() + 1.0 && up + 1.0 >= files_up && up < host_up,
        "sysinfo uptime {up} s should be the container's age (at most {:.2} s, /proc/uptime \
         said {files_up}), not the host's {host_up} s",
        r.elapsed.as_secs_f64()
    );
    let procs = r.number("show", "procs");
    assert!(
        (1..20).contains(&procs),
        "sysinfo procs {procs} should count the container's few tasks"
    );

    // busybox free: total from sysinfo, cache and SReclaimable from /proc/meminfo; used
    // wrapped to 18014398505496284 while meminfo showed the host's slab.
    let mem = free_mem(&r);
    eprintln!(
        "with the agent: sysinfo totalram {} freeram {} uptime {up} procs {procs}; free:\n{}",
        totalram(&r, "show"),
        freeram,
        r.get("free")
    );
    assert_eq!(mem[0], 262_144, "free's total:\n{}", r.get("free"));
    assert!(
        mem[1] < 64 * 1024,
        "free's used {} kB should be the little a busybox container uses (no wrap):\n{}",
        mem[1],
        r.get("free")
    );

    // int 0x80: the 64-byte compat struct, nothing written past it.
    assert_eq!(
        (r.number("compat", "ret"), r.number("compat", "errno")),
        (0, 0),
        "32-bit sysinfo:\n{}",
        r.get("compat")
    );
    assert_eq!(
        r.number("compat", "totalram") * r.number("compat", "mem_unit"),
        limit,
        "32-bit sysinfo totalram"
    );
    assert_eq!(
        r.number("compat", "tail"),
        u32::MAX as i64,
        "the bytes after the 64-byte struct stay untouched"
    );
    assert_eq!(
        (r.number("badptr", "ret"), r.number("badptr", "errno")),
        (-1, EFAULT),
        "a bad pointer gets EFAULT, as from the kernel"
    );
    assert_eq!(
        (
            r.number("threads", "calls"),
            r.number("threads", "failed"),
            r.number("threads", "differing")
        ),
        (800, 0, 0),
        "16 threads x 50 calls at once, all answered with the limit"
    );
    assert_eq!(totalram(&exec, "show"), limit, "a runc exec process");

    // Without the profile the kernel answers: the host's memory, though the files are bound.
    assert_eq!(
        totalram(&rc, "show") as u64,
        s.host.mem_total() * 1024,
        "control container: sysinfo totalram is the host's"
    );
    assert!(
        log.matches("answering its sysinfo calls").count() >= 2,
        "one connection for the container, one for the exec:\n{log}"
    );
}

/// What happens to a running container's `sysinfo` when the agent stops and starts again:
/// the listener of every process started meanwhile dies with the agent, so those processes
/// get ENOSYS from then on; `runc exec` fails while the agent is down (runc cannot connect)
/// and works again once it is back, with a new listener for the exec'd process only.
#[test]
fn agent_stopped_and_restarted_while_a_container_runs() {
    let Some(s) = Scene::new(&[]) else {
        return;
    };
    let mut agent = Agent::start();
    let profile = agent.oci_profile();
    let script = "sec before; sysinfo-probe show\nready\nsec after; sysinfo-probe show\n\
        sec free; free\n";
    let spec = Spec::new("restart", &s.rootfs, script)
        .memory(LIMIT)
        .lxcfs(&s.d.mnt)
        .seccomp(&profile)
        .barrier(&s.barrier);
    let mut c = s.runc.start(spec);
    s.barrier.wait_ready(&mut [&mut c]);
    agent.stop();
    let refused = s.runc.run(&["exec", &c.id, "/bin/sysinfo-probe", "show"]);
    agent.restart();
    let exec = c.exec_report("sec show; sysinfo-probe show\n");
    s.barrier.go();
    let r = c.wait(RUN_LIMIT);

    eprintln!(
        "after the agent restarted: runc exec refused while down ({}), the container's own \
         process:\n{}\nand its busybox free:\n{}",
        stderr_line(&refused.stderr),
        r.get("after"),
        r.get("free")
    );
    assert_eq!(
        totalram(&r, "before"),
        LIMIT as i64,
        "before the agent stopped"
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("seccomp agent"),
        "runc exec while the agent is down should fail to connect, got: {stderr}"
    );
    assert_eq!(
        totalram(&exec, "show"),
        LIMIT as i64,
        "runc exec after the restart gets a new listener"
    );
    assert_eq!(
        (r.number("after", "ret"), r.number("after", "errno")),
        (-1, ENOSYS),
        "the container's own process lost its listener with the agent: ENOSYS, as documented"
    );
}

/// Under systemd the agent keeps every container's listener in the file descriptor store
/// (`FDSTORE=1`, `FDNAME=seccomp`): killed and started again with the kept listeners (as
/// systemd restarts a unit, `LISTEN_FDS`), it answers the container's own process on, which
/// without the store gets ENOSYS for good (the test above).
#[test]
fn an_agent_restarted_from_systemds_store_answers_the_container_on() {
    let Some(s) = Scene::new(&[]) else {
        return;
    };
    let dir = TestDir::new();
    let notify = NotifySocket::bind(dir.path());
    let mut under_systemd = Command::new(BIN);
    under_systemd.env("NOTIFY_SOCKET", &notify.path);
    let mut agent = Agent::start_with(under_systemd);
    let profile = agent.oci_profile();
    let script = "sec before; sysinfo-probe show\nready\nsec after; sysinfo-probe show\n";
    let spec = Spec::new("kept", &s.rootfs, script)
        .memory(LIMIT)
        .lxcfs(&s.d.mnt)
        .seccomp(&profile)
        .barrier(&s.barrier);
    let mut c = s.runc.start(spec);
    s.barrier.wait_ready(&mut [&mut c]);
    let store = notify.collect(Duration::from_secs(10), &["seccomp"], || agent.log());
    agent.kill();
    agent.restart_with(store.command(Path::new(BIN)));
    s.barrier.go();
    let r = c.wait(RUN_LIMIT);
    assert_eq!(totalram(&r, "before"), LIMIT as i64, "before the kill");
    assert_eq!(
        totalram(&r, "after"),
        LIMIT as i64,
        "the agent started again with the stored listener answers the container's own \
         process; agent log:\n{}",
        agent.log()
    );
    assert!(
        agent.log().contains("kept by systemd"),
        "the listener came back from the store: {}",
        agent.log()
    );
}

/// A JVM without container support (`-XX:-UseContainerSupport`, as every JVM before 8u191)
/// sizes its heap from `sysconf(_SC_PHYS_PAGES)`, i.e. `sysinfo(2)`: with the agent it picks
/// the heap the same JVM picks from the cgroup with container support, not one from the
/// host's memory.
///
/// At 256 MiB that is not a quarter: HotSpot gives a small machine MinRAMPercentage (50%)
/// when half of its memory is under the default MaxHeapSize (about 126 MiB), so both print
/// 132120576 here (126 MiB, the half rounded down to the heap alignment).
#[test]
fn a_jvm_without_container_support_sizes_its_heap_from_the_limit() {
    const JAVA: &str = "/usr/lib/jvm/java-17-openjdk-amd64/bin/java";
    if !std::path::Path::new(JAVA).exists() {
        skip(&format!(
            "{JAVA} is missing (scripts/deps.sh test installs openjdk-17-jre-headless)"
        ));
        return;
    }
    let Some(s) = Scene::new(&[]) else {
        return;
    };
    let agent = Agent::start();
    let profile = agent.oci_profile();
    let flags = "-XX:+PrintFlagsFinal -version 2>&1 | grep -E ' MaxHeapSize '";
    let script = format!(
        "sec without; {JAVA} -XX:-UseContainerSupport {flags}\n\
         sec with; {JAVA} -XX:+UseContainerSupport {flags}\n"
    );
    let spec = Spec::new("jvm", &s.rootfs, &script)
        .memory(LIMIT)
        .lxcfs(&s.d.mnt)
        .host_usr()
        .seccomp(&profile);
    let r = s.runc.start(spec).wait(Duration::from_secs(120));
    let heap = |section: &str| -> u64 {
        let line = r.get(section).trim().to_owned();
        line.split_whitespace()
            .nth(3)
            .and_then(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("no MaxHeapSize from java ({section}): {line:?}"))
    };
    let (without, with) = (heap("without"), heap("with"));
    eprintln!("MaxHeapSize: {without} without container support, {with} with");
    assert_eq!(
        without, with,
        "-XX:-UseContainerSupport (sysinfo, answered by the agent) should size the heap as the \
         JVM's own cgroup reading does"
    );
    assert!(
        without <= LIMIT / 2,
        "MaxHeapSize {without} should come from the {LIMIT}-byte limit, not the host's memory \
         ({} kB)",
        s.host.mem_total()
    );
}
