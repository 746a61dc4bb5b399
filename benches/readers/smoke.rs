//! The program's own test, run when it is started without `--bench` (as `cargo test` starts
//! it): the histogram, the content check, the target specs, the goals and the chart on known
//! input, a real benchmark of the kernel, the C lxcfs, lxcfs-rs and the floor
//! (examples/floor.rs) for a fraction of a second with a small scale mode and hostile
//! reader, and a refused benchmark of a mount that shows the host's files.
//! Like libtest, it takes name filters and `--list`.

use std::fs;
use std::os::unix::fs::symlink;
use std::panic::catch_unwind;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

use clap::Parser;

use crate::args::{Args, Target};
use crate::bench;
use crate::check::{self, Expected};
use crate::common::{Daemon, TestDir};
use crate::goals::{self, Goal};
use crate::histogram::Histogram;
use crate::report::Row;
use crate::results::{Phase, Results};

/// The tests, by name.
const TESTS: &[(&str, fn())] = &[
    (
        "histogram_quantiles_are_within_a_bucket",
        histogram_quantiles_are_within_a_bucket,
    ),
    (
        "content_check_tells_a_daemon_from_the_host",
        content_check_tells_a_daemon_from_the_host,
    ),
    ("target_specs_parse", target_specs_parse),
    (
        "goals_are_measured_from_the_rows",
        goals_are_measured_from_the_rows,
    ),
    ("chart_draws_a_png", chart_draws_a_png),
    (
        "bench_measures_the_kernel_lxcfs_lxcfs_rs_and_the_floor",
        bench_measures_the_kernel_lxcfs_lxcfs_rs_and_the_floor,
    ),
    (
        "bench_refuses_targets_that_show_the_host",
        bench_refuses_targets_that_show_the_host,
    ),
    (
        "bench_holds_sleeping_threads_in_the_readers_cgroup",
        bench_holds_sleeping_threads_in_the_readers_cgroup,
    ),
];

/// Runs the tests whose names contain one of the non-flag `args` (all without one).
pub fn main(args: &[String]) -> ExitCode {
    if args.iter().any(|a| a == "--list") {
        for (name, _) in TESTS {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let selected: Vec<_> = (TESTS.iter())
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    println!("\nrunning {} tests", selected.len());
    let mut failed = Vec::new();
    for (name, test) in selected.iter().copied() {
        let ok = catch_unwind(test).is_ok();
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        if !ok {
            failed.push(*name);
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        selected.len() - failed.len(),
        failed.len()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn histogram_quantiles_are_within_a_bucket() {
    let mut h = Histogram::default();
    assert_eq!(h.quantile(0.5), None, "an empty histogram has no median");
    for us in 1..=1000u64 {
        h.record(us * 1000);
    }
    for (q, want) in [(0.5, 500_000.0), (0.99, 990_000.0), (0.999, 999_000.0)] {
        let got = h.quantile(q).expect("a quantile");
        assert!(
            (got / want - 1.0).abs() < 0.025,
            "quantile {q} of 1..=1000 µs: {got} ns, expected {want} ns within one bucket"
        );
    }
    let decoded = Histogram::decode(&h.encode()).expect("decoding");
    assert_eq!(decoded, h, "encode and decode must round-trip");
    let mut twice = h.clone();
    twice.merge(&h);
    assert_eq!(twice.total(), 2000);
    assert_eq!(
        twice.quantile(0.5),
        h.quantile(0.5),
        "merging a copy moves no quantile"
    );
    assert!(
        Histogram::decode("5:1 x").is_err(),
        "garbage must not decode"
    );
}

fn content_check_tells_a_daemon_from_the_host() {
    let expected = Expected {
        host_mem_kb: 8_000_000,
        host_cpus: 4,
        limit_kb: 262_144,
        daemon_cpus: vec![1],
    };
    let meminfo = |kb: u64| format!("MemTotal:       {kb} kB\nMemFree:  1 kB\n");
    let cpuinfo = |n: usize| {
        (0..n)
            .map(|i| format!("processor\t: {i}\nflags\t: x\n\n"))
            .collect::<String>()
    };
    let stat = |n: usize| {
        let lines: String = (0..n).map(|i| format!("cpu{i} 1 2 3 4\n")).collect();
        format!("cpu  1 2 3 4\n{lines}intr 5\n")
    };
    let cases: &[(&str, String, String)] = &[
        ("proc/meminfo", meminfo(262_144), meminfo(8_000_000)),
        ("proc/cpuinfo", cpuinfo(1), cpuinfo(4)),
        ("proc/stat", stat(1), stat(4)),
        (
            "sys/devices/system/cpu/online",
            "0\n".into(),
            "0-3\n".into(),
        ),
        (
            "proc/uptime",
            "0.52 0.30\n".into(),
            "86400.12 300000.00\n".into(),
        ),
    ];
    for (file, daemon_view, host_view) in cases {
        let check = |daemon: bool, text: &str| expected.check(file, daemon, text.as_bytes());
        assert_eq!(
            check(true, daemon_view),
            Ok(()),
            "{file}: the cgroup's view, from a daemon"
        );
        assert!(
            check(true, host_view).is_err(),
            "{file}: the host's view from a daemon must be refused"
        );
        assert!(check(true, "").is_err(), "{file}: empty must be refused");
        if *file != "proc/uptime" {
            assert_eq!(
                check(false, host_view),
                Ok(()),
                "{file}: the host's view, from the kernel"
            );
            assert!(
                check(false, daemon_view).is_err(),
                "{file}: the kernel must show the host's view"
            );
        }
    }
    // A limit at or above the host's memory would make the two views equal: refused.
    assert!(Expected::new(u64::MAX / 2, "0", 0.5).is_err());
    // A target of fixed content (the floor) is checked by its size alone.
    assert_eq!(check::fixed("proc/meminfo", 4, b"abcd"), Ok(()));
    assert!(check::fixed("proc/meminfo", 4, b"abc").is_err());
    assert!(check::fixed("proc/stat", 4, stat(1).as_bytes()).is_err());
}

fn target_specs_parse() {
    let me = std::process::id();
    let dir = TestDir::new();
    let root = dir.path().display();
    let t = Target::parse("kernel=/").expect("the kernel");
    assert_eq!((t.daemon, t.fixed), (None, None));
    let t = Target::parse(&format!("ours={root},pid={me}")).expect("a daemon");
    assert_eq!((t.daemon, t.fixed), (Some(me as i32), None));
    let t = Target::parse(&format!("floor={root},pid={me},fixed=1400")).expect("the floor");
    assert_eq!((t.daemon, t.fixed), (Some(me as i32), Some(1400)));
    // This process holds no io_uring: seen as /dev/fuse; a given transport is taken as is.
    assert_eq!(t.transport, "/dev/fuse", "{t:?}");
    let t = Target::parse(&format!("ours={root},pid={me},transport=io_uring")).expect("given");
    assert_eq!(
        (t.transport.as_str(), t.transport_source.as_str()),
        ("io_uring", "as given")
    );
    assert_eq!(
        Target::parse("kernel=/").expect("the kernel").transport,
        "kernel"
    );
    for bad in [
        "kernel=/,pid=1".to_string(),
        "kernel=/,fixed=1400".to_string(),
        format!("ours={root}"),
        format!("floor={root},fixed=1400"),
        format!("floor={root},pid={me},fixed=0"),
        format!("floor={root},pid={me},fixed=x"),
        format!("floor={root},pid={me},floor"),
        format!("ours={root},pid={me},transport=carrier-pigeon"),
        "kernel=/,transport=io_uring".to_string(),
    ] {
        assert!(Target::parse(&bad).is_err(), "{bad:?} must be refused");
    }
}

/// Runs the benchmark with `flags`, its table going to a buffer; returns the results or the
/// error, and the table.
fn bench_with(flags: &[String]) -> (Result<Results, String>, String) {
    let mut argv = vec!["readers".to_string()];
    argv.extend(flags.iter().cloned());
    let args = Args::try_parse_from(&argv).unwrap_or_else(|e| panic!("parsing {argv:?}: {e}"));
    let mut table = Vec::new();
    let result = bench::run(&args, &mut table);
    let table = String::from_utf8(table).expect("a UTF-8 table");
    print!("{table}");
    (result, table)
}

/// `-T NAME=ROOT,pid=PID` for a daemon (PID: the process that serves, whose CPU is
/// measured).
fn target(name: &str, d: &Daemon) -> [String; 2] {
    [
        "-T".into(),
        format!("{name}={},pid={}", d.mnt.display(), d.serving_pid()),
    ]
}

/// The floor (examples/floor.rs), built as the benchmark was (a no-op after `cargo test`,
/// which builds the examples; `cargo test --bench readers` does not), and where it is.
fn floor_binary() -> PathBuf {
    // target/<profile>/deps/readers-<hash>: the profile this program was built in.
    let exe = std::env::current_exe().expect("the benchmark's path");
    let profile = (exe.parent().and_then(|deps| deps.parent()))
        .and_then(|dir| dir.file_name())
        .and_then(|name| name.to_str())
        .unwrap_or("debug")
        .to_string();
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "--locked", "--example", "floor"])
        .arg("--message-format=json-render-diagnostics")
        .stderr(Stdio::inherit());
    match profile.as_str() {
        "debug" => {}
        "release" => drop(cargo.arg("--release")),
        other => drop(cargo.args(["--profile", other])),
    }
    let out = cargo.output().expect("running cargo build --example floor");
    assert!(out.status.success(), "cargo build --example floor failed");
    // The artifact message of the example names its binary.
    (String::from_utf8_lossy(&out.stdout).lines())
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["target"]["name"] == "floor")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo named no floor executable")
}

fn bench_measures_the_kernel_lxcfs_lxcfs_rs_and_the_floor() {
    require!(mount);
    require!(program "lxcfs", "the C lxcfs is not installed (scripts/deps.sh test)");
    let ours = Daemon::start(&["-l", "--enable-cfs"]);
    let theirs = Daemon::start_c_lxcfs();
    let floor = Daemon::start_named("floor", Command::new(floor_binary()), &[]);
    let mut flags: Vec<String> = vec!["-T".into(), "kernel=/".into()];
    flags.extend(target("lxcfs", &theirs));
    flags.extend(target("ours", &ours));
    let [t, spec] = target("floor", &floor);
    flags.extend([t, format!("{spec},fixed=1400")]);
    flags.extend(["-n", "1,2", "-d", "0.3", "-w", "0.1", "-r", "1"].map(String::from));
    let out = TestDir::new();
    let json = out.join("run.json");
    flags.extend(["--scale", "3", "--hostile-fds", "300", "--json"].map(String::from));
    flags.push(json.display().to_string());
    let (results, table) = bench_with(&flags);
    let results = results.unwrap_or_else(|e| panic!("the benchmark failed: {e}"));
    let written: Results = serde_json::from_str(&fs::read_to_string(&json).expect("the JSON"))
        .expect("the JSON parses as results");
    assert_eq!(
        written.rows.len(),
        results.rows.len(),
        "the JSON holds every row"
    );
    if fs::metadata(crate::chart::FONT).is_ok() {
        let png = fs::read(json.with_extension("png")).expect("the chart beside the JSON");
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    }
    check_scale_and_hostile(&results, &table);
    let rows: Vec<Row> = (results.rows.iter())
        .filter(|r| r.phase == "uring-off")
        .cloned()
        .collect();

    let files = ["proc/meminfo", "proc/cpuinfo", "proc/stat", "proc/uptime"];
    assert_eq!(
        rows.len(),
        (files.len() + 1) * 2 * 4,
        "a row per file, reader count and target:\n{table}"
    );
    assert!(
        table.contains(&format!(
            "floor={} (daemon pid {}, fixed 1400-byte files, ",
            floor.mnt.display(),
            floor.pid
        )),
        "the header names the floor:\n{table}"
    );
    for r in &rows {
        let line = format!("{r:?}");
        // Even a debug build on a busy machine reads far faster; zero means nothing was read.
        assert!(r.reads_per_s >= 20.0, "implausible throughput: {line}");
        assert!(
            0.0 < r.p50_us && r.p50_us <= r.p99_us && r.p99_us <= r.p999_us,
            "latency quantiles out of order: {line}"
        );
        let daemon = r.target != "kernel";
        assert_eq!(
            r.cpu_ms_per_1k.is_some(),
            daemon,
            "daemon CPU only for daemons: {line}"
        );
        assert_eq!(
            r.rss_mib.is_some_and(|m| m >= 1.0),
            daemon,
            "daemon RSS only for daemons: {line}"
        );
        assert!(
            table
                .lines()
                .any(|l| l.starts_with(&r.file) && l.contains(&format!(" {} ", r.target))),
            "no table line for {line}:\n{table}"
        );
    }
    for (file, n) in files
        .iter()
        .chain(["sys/devices/system/cpu/online"].iter())
        .flat_map(|f| [(f, 1), (f, 2)])
    {
        let of = |t: &str| {
            rows.iter()
                .find(|r| r.file == *file && r.readers == n && r.target == t)
                .expect("a row")
        };
        let (kernel, lxcfs, ours) = (of("kernel"), of("lxcfs"), of("ours"));
        assert_eq!(
            lxcfs.ratio,
            Some(1.0),
            "lxcfs, the first daemon, is the baseline"
        );
        for row in [ours, of("floor")] {
            let ratio = row.ratio.expect("a ratio");
            assert!(
                (ratio - row.reads_per_s / lxcfs.reads_per_s).abs() < 1e-9,
                "{row:?}"
            );
        }
        // Four FUSE round trips through a daemon against none: the kernel is always faster.
        assert!(
            kernel.reads_per_s > ours.reads_per_s.max(lxcfs.reads_per_s),
            "{file} n={n}:\n{table}"
        );
    }
    for name in ["lxcfs", "ours", "floor"] {
        let cpu: f64 = rows
            .iter()
            .filter(|r| r.target == name)
            .filter_map(|r| r.cpu_ms_per_1k)
            .sum();
        assert!(
            cpu > 0.0,
            "{name}: serving thousands of reads took no CPU time?\n{table}"
        );
    }
}

/// What `--scale 3 --hostile-fds 300` must have produced against lxcfs and lxcfs-rs.
fn check_scale_and_hostile(results: &Results, table: &str) {
    let scale = results.scale.as_ref().expect("scale mode ran");
    assert_eq!(scale.cgroups, 3);
    let viewers: Vec<&str> = scale.rss.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(
        viewers,
        ["lxcfs", "ours"],
        "RSS of the daemons with views:\n{table}"
    );
    for r in &scale.rss {
        assert_eq!(r.failures, 0, "{r:?}");
        assert!(r.idle_rss_mib > 0.0 && r.after_rss_mib > 0.0, "{r:?}");
    }
    let scaled = results.rows.iter().filter(|r| r.phase == "scaled").count();
    assert_eq!(scaled, 5 * 2 * 3, "every daemon measured again:\n{table}");
    let hostile: Vec<&str> = results.hostile.iter().map(|h| h.target.as_str()).collect();
    assert_eq!(
        hostile,
        ["lxcfs", "ours"],
        "the hostile reader against each:\n{table}"
    );
    for h in &results.hostile {
        assert_eq!((h.fds_held, &h.open_error), (300, &None), "{h:?}");
        assert!(h.held_rss_mib > 0.0, "{h:?}");
        assert_eq!(h.victim.len(), 2, "{h:?}");
        assert!(h.victim.iter().all(|v| v.content_ok), "{h:?}");
    }
    let cgroups = fs::read_dir("/sys/fs/cgroup/memory").expect("the memory hierarchy");
    let left: Vec<String> = cgroups
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&format!("lxcfs-rs-bench-{}", std::process::id())))
        .collect();
    assert!(left.is_empty(), "cgroups left behind: {left:?}");
    for g in &results.goals {
        assert!(
            g.met.is_some() || g.note.is_some(),
            "a goal neither measured nor explained: {g:?}"
        );
    }
    assert!(
        table.contains("# goals:"),
        "the goals are printed:\n{table}"
    );
}

/// A row of `phase` for the goal and chart tests.
fn row(phase: &str, target: &str, file: &str, readers: usize, reads: f64, cpu: f64) -> Row {
    Row {
        phase: phase.into(),
        transport: if target == "kernel" {
            "kernel"
        } else {
            "/dev/fuse"
        }
        .into(),
        file: file.into(),
        readers,
        target: target.into(),
        reads_per_s: reads,
        p50_us: 100.0,
        p99_us: if target == "ours" { 400.0 } else { 1000.0 },
        p999_us: 2000.0,
        cpu_ms_per_1k: (target != "kernel").then_some(cpu),
        rss_mib: (target != "kernel").then_some(5.0),
        ratio: None,
    }
}

/// Results of one /dev/fuse phase: ours makes `ours` reads/s where lxcfs makes 1000, on two
/// files and 1 and 8 readers.
fn sample_results(ours: [f64; 2]) -> Results {
    let mut r = Results::default();
    r.settings.files = vec!["proc/meminfo".into(), "proc/stat".into()];
    r.settings.readers = vec![1, 8];
    r.phases.push(Phase {
        name: "uring-off".into(),
        ..Phase::default()
    });
    for (file, ours) in r.settings.files.clone().iter().zip(ours) {
        for n in [1, 8] {
            r.rows
                .push(row("uring-off", "kernel", file, n, 40_000.0, 0.0));
            r.rows
                .push(row("uring-off", "lxcfs", file, n, 1000.0, 300.0));
            r.rows.push(row("uring-off", "ours", file, n, ours, 90.0));
            r.rows
                .push(row("uring-off", "floor", file, n, 4000.0, 40.0));
        }
    }
    r
}

fn goals_are_measured_from_the_rows() {
    let r = sample_results([3500.0, 2500.0]);
    let goals = goals::evaluate(&r);
    let find = |name: &str, scope: &str| -> &Goal {
        (goals.iter())
            .find(|g| g.goal == name && g.scope == scope)
            .unwrap_or_else(|| panic!("no goal {name:?} [{scope}] in {goals:#?}"))
    };
    let g = find("reads/s vs the C lxcfs, 8 readers", "/dev/fuse");
    assert_eq!(g.values.len(), 2, "{g:?}");
    let (worst, best) = (g.worst.as_ref().unwrap(), g.best.as_ref().unwrap());
    assert_eq!((worst.value, worst.at.as_str()), (2.5, "stat n=8"), "{g:?}");
    assert_eq!(
        (best.value, best.at.as_str()),
        (3.5, "meminfo n=8"),
        "{g:?}"
    );
    assert_eq!(g.met, Some(false), "2.5× misses 3×: {g:?}");
    assert_eq!(
        find("reads/s vs the C lxcfs, 1 reader", "/dev/fuse").met,
        Some(true)
    );
    // 2500/4000 = 0.625 misses 0.7 on stat; CPU 90/300 = 0.3 ≤ 1/3; p99 400/1000 ≤ 1/2.
    assert_eq!(
        find("reads/s vs the floor (same transport)", "/dev/fuse").met,
        Some(false)
    );
    assert_eq!(
        find("daemon CPU per read vs the C lxcfs", "/dev/fuse").met,
        Some(true)
    );
    assert_eq!(
        find("p99 latency, 8 readers, vs the C lxcfs", "/dev/fuse").met,
        Some(true)
    );
    // What was not run is said, not judged.
    let uring = find("reads/s vs the C lxcfs, 1 reader", "io_uring");
    assert_eq!(uring.met, None, "{uring:?}");
    assert!(
        uring.note.as_deref().unwrap().contains("no io_uring phase"),
        "{uring:?}"
    );
    for g in goals
        .iter()
        .filter(|g| g.scope == "scale mode" || g.scope == "hostile reader")
    {
        assert_eq!(g.met, None, "{g:?}");
        assert!(g.note.is_some(), "{g:?}");
    }
    // An io_uring phase in which lxcfs-rs still served over /dev/fuse: said so.
    let mut r = r;
    r.phases.push(Phase {
        name: "uring-on".into(),
        ..Phase::default()
    });
    let more: Vec<Row> = (r.rows.iter())
        .map(|x| Row {
            phase: "uring-on".into(),
            ..x.clone()
        })
        .collect();
    r.rows.extend(more.clone());
    let goals = goals::evaluate(&r);
    let uring = (goals.iter())
        .find(|g| g.scope == "io_uring")
        .expect("the io_uring line");
    assert!(
        uring
            .note
            .as_deref()
            .unwrap()
            .contains("/dev/fuse with enable_uring=1"),
        "{uring:?}"
    );
    // Once it does serve over io_uring, its goals are measured there too.
    r.rows.retain(|x| x.phase != "uring-on");
    r.rows.extend(more.into_iter().map(|x| Row {
        transport: if x.target == "ours" || x.target == "floor" {
            "io_uring".into()
        } else {
            x.transport
        },
        ..x
    }));
    let goals = goals::evaluate(&r);
    let one = (goals.iter())
        .find(|g| g.scope == "io_uring" && g.goal == "reads/s vs the C lxcfs, 1 reader")
        .expect("the io_uring line");
    assert_eq!(
        (one.met, one.values.len()),
        (Some(false), 2),
        "2.5-3.5× misses 5×: {one:?}"
    );
    assert!(
        goals.iter().filter(|g| g.scope == "io_uring").count() >= 5,
        "{goals:#?}"
    );
}

fn chart_draws_a_png() {
    require!(
        fs::metadata(crate::chart::FONT).is_ok(),
        "no DejaVu Sans (scripts/deps.sh test installs fonts-dejavu-core)"
    );
    let dir = TestDir::new();
    let png = dir.join("chart.png");
    let r = sample_results([3500.0, 2500.0]);
    crate::chart::draw(&r, &png).unwrap_or_else(|e| panic!("drawing: {e}"));
    let bytes = fs::read(&png).expect("the PNG");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        bytes.len() > 5000,
        "a chart, not a blank: {} bytes",
        bytes.len()
    );
}

fn bench_refuses_targets_that_show_the_host() {
    require!(mount);
    let me = std::process::id();
    // A tree that is the host's own /proc and /sys under another name.
    let host = TestDir::new();
    symlink("/proc", host.join("proc")).expect("symlink");
    symlink("/sys", host.join("sys")).expect("symlink");
    let flags = |root: &TestDir, file: &str| {
        [
            "-T",
            &format!("decoy={},pid={me}", root.path().display()),
            "-f",
            file,
            "-n",
            "1",
            "-d",
            "0.2",
        ]
        .map(String::from)
        .to_vec()
    };
    let (result, table) = bench_with(&flags(&host, "proc/uptime"));
    let err = result
        .err()
        .unwrap_or_else(|| panic!("the host's files were benchmarked as a daemon's:\n{table}"));
    assert!(
        err.contains("decoy") && err.contains("MemTotal"),
        "refused for the wrong reason: {err}"
    );
    assert!(
        table.is_empty(),
        "nothing may be measured before the check: {table}"
    );

    // A target said to serve fixed content (the floor) is checked by its size alone: a file
    // a byte short is refused.
    let short = TestDir::new();
    fs::create_dir_all(short.join("proc")).expect("mkdir");
    fs::write(short.join("proc/meminfo"), [b'x'; 1399]).expect("write");
    let mut fixed = flags(&short, "proc/meminfo");
    fixed[1].push_str(",fixed=1400");
    let (result, table) = bench_with(&fixed);
    let err = result
        .err()
        .unwrap_or_else(|| panic!("a wrong-size file was benchmarked as a floor's:\n{table}"));
    assert!(
        err.contains("decoy") && err.contains("1399 bytes, expected the fixed 1400 bytes"),
        "refused for the wrong reason: {err}"
    );

    // The right MemTotal but the host's CPUs: each file is checked, not only meminfo.
    require!(
        fs::read_to_string("/sys/devices/system/cpu/online").is_ok_and(|t| t.trim() != "0"),
        "the host has one CPU, which a cpuset cannot narrow"
    );
    let half = TestDir::new();
    fs::create_dir_all(half.join("proc")).expect("mkdir");
    fs::write(half.join("proc/meminfo"), "MemTotal: 262144 kB\n").expect("write");
    symlink("/proc/cpuinfo", half.join("proc/cpuinfo")).expect("symlink");
    let (result, table) = bench_with(&flags(&half, "proc/cpuinfo"));
    let err = result
        .err()
        .unwrap_or_else(|| panic!("the host's cpuinfo was benchmarked as a daemon's:\n{table}"));
    assert!(
        err.contains("proc/cpuinfo") && err.contains("CPUs, expected 1"),
        "refused for the wrong reason: {err}"
    );
}

/// `--threads N`: the benchmark starts only once N sleeping threads have joined the
/// readers' cgroup (`Sleepers::start` waits for them), says so above the table, and leaves
/// neither the threads nor the cgroup behind.
fn bench_holds_sleeping_threads_in_the_readers_cgroup() {
    require!(mount);
    let ours = Daemon::start(&["-l"]);
    let mut flags = target("ours", &ours).to_vec();
    flags.extend(
        [
            "-f",
            "proc/stat",
            "-n",
            "1",
            "-d",
            "0.3",
            "-w",
            "0.1",
            "-r",
            "1",
            "--threads",
            "100",
            "--no-hostile",
        ]
        .map(String::from),
    );
    let (rows, table) = bench_with(&flags);
    let rows = rows.unwrap_or_else(|e| panic!("the benchmark failed: {e}"));
    assert_eq!(
        rows.rows.len(),
        1,
        "one file, one reader count, one target:\n{table}"
    );
    assert!(
        table.contains("# 100 sleeping threads held in the readers' cgroup"),
        "the header says so:\n{table}"
    );
    let cgroup = format!("lxcfs-rs-bench-{}", std::process::id());
    let left: Vec<PathBuf> = crate::common::v1_mounts()
        .values()
        .map(|mount| mount.join(&cgroup))
        .filter(|d| d.exists())
        .collect();
    assert!(left.is_empty(), "the readers' cgroup is left: {left:?}");
}
