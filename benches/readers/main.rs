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
//! Run without `--bench`, as `cargo test` runs it, the program is its own smoke test
//! ([`smoke`]), so it cannot rot unnoticed.

#[macro_use]
#[path = "../../tests/common/mod.rs"]
mod common;

mod args;
mod bench;
mod cgroup;
mod check;
mod histogram;
mod reader;
mod readers;
mod report;
mod sample;
mod sleepers;
mod smoke;

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
