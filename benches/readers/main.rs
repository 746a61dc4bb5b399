//! The read benchmark: how fast readers that loop open → read to EOF → close get a file
//! from each of several targets, side by side in one run: the kernel's own `/proc`
//! (`kernel=/`), the C lxcfs, lxcfs-rs and the floor (examples/floor.rs: fixed files on
//! lxcfs-rs's own FUSE session layer, as fast as that transport goes), each mounted by
//! `scripts/bench`.
//!
//! `cargo bench --bench readers -- -T NAME=ROOT[,pid=PID][,fixed=BYTES]... [-f FILES] ...`
//! (see `--help`, or [`args::Args`]). For each file and reader count, N reader processes,
//! each in the benchmark's cgroup (a memory limit, a cpuset and a CFS quota) and the init of
//! a pid namespace of its own, as containers read, loop for a warmup and then a measured
//! window; targets take turns within each round, and the median of the rounds is reported:
//! reads/s, p50/p99/p99.9 latency, the daemon's CPU time per 1000 reads and its RSS, and each
//! target's throughput against the first daemon target's.
//!
//! Before anything is measured, a reader checks what each target shows it ([`check`]): a
//! daemon must show the cgroup's limits (one of fixed content, its fixed size), so a broken
//! mount is refused instead of timed.
//!
//! After the table, in a run's first phase: scale mode ([`scale`], `--scale N`: N other
//! cgroups with live tasks; the daemons' RSS after a reader in each, and their cost per read
//! again) and the hostile reader ([`hostile`]: one process holding 100,000 descriptors).
//! Then every phase's results so far go to a JSON file ([`results`]) and a PNG chart
//! ([`chart`]), and after the last phase the goals are printed ([`goals`]).
//! `scripts/bench` runs two phases, remounting lxcfs-rs and the floor between them with
//! FUSE-over-io_uring enabled ([`transport`]).
//!
//! Run without `--bench`, as `cargo test` runs it, the program is its own smoke test
//! ([`smoke`]), so it cannot rot unnoticed.

#[macro_use]
#[path = "../../tests/common/mod.rs"]
mod common;

mod args;
mod bench;
mod cgroup;
mod chart;
mod check;
mod goals;
mod histogram;
mod hostile;
mod reader;
mod readers;
mod report;
mod results;
mod sample;
mod scale;
mod sleepers;
mod smoke;
mod transport;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    if !argv.iter().any(|a| a == "--bench") {
        return smoke::main(&argv[1..]);
    }
    let args = args::Args::parse();
    bench::stop_on_interrupt();
    match bench::run(&args, &mut std::io::stdout()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}
