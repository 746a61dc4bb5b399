//! The `lxcfs-rs` command: the daemon, or `show`.

use std::process::ExitCode;

use clap::Parser;
use lxcfs_rs::cli::{Cli, Command, HookKind};
use lxcfs_rs::daemon::{self, DaemonConfig};
use lxcfs_rs::host::HostPaths;
use lxcfs_rs::show::show;
use lxcfs_rs::view::View;

/// Parses the command line; a usage error is one line (as for every other start-up error)
/// and exit code 2, help and version print as usual.
fn parse_cli() -> Result<Cli, ExitCode> {
    Cli::try_parse().map_err(|e| {
        use clap::error::ErrorKind::{DisplayHelp, DisplayVersion};
        if matches!(e.kind(), DisplayHelp | DisplayVersion) {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        // clap's first paragraph says what is wrong; the rest is usage and tips.
        let text = e.to_string();
        let what: Vec<&str> = text
            .lines()
            .take_while(|l| !l.trim().is_empty())
            .map(str::trim)
            .collect();
        eprintln!(
            "lxcfs-rs: {}; see lxcfs-rs --help",
            what.join(" ").trim_start_matches("error: ")
        );
        ExitCode::from(2)
    })
}

/// Runs a container hook. Skipped files are reported on stderr, which runtimes keep in
/// their logs; the container still starts.
fn run_hook(kind: HookKind, mountpoint: &std::path::Path) -> Result<(), String> {
    let report = match kind {
        HookKind::Oci => lxcfs_rs::hook::run_oci(mountpoint),
        HookKind::Lxc => lxcfs_rs::hook::run_lxc(mountpoint),
    }
    .map_err(|e| format!("hook: {e}"))?;
    for bound in &report.bound {
        log::debug!("hook: bound {bound}");
    }
    for skipped in &report.skipped {
        eprintln!("lxcfs-rs hook: not bound: {skipped}");
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = match parse_cli() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let level = if cli.daemon.debug { "debug" } else { "info" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
    let host = cli
        .view
        .host_root
        .as_deref()
        .map(HostPaths::under)
        .unwrap_or_default();
    let result = match &cli.command {
        Some(Command::Show(args)) => View::new(host.clone(), cli.view.options())
            .map_err(|e| e.to_string())
            .and_then(|view| {
                show(
                    &view,
                    &host,
                    args.pid,
                    &args.files,
                    &mut std::io::stdout().lock(),
                )
            }),
        Some(Command::BindArgs(args)) => lxcfs_rs::bind::bind_args(&args.mountpoint, args.runtime)
            .map(|text| print!("{text}"))
            .map_err(|e| e.to_string()),
        Some(Command::Hook(args)) => run_hook(args.kind, &args.mountpoint),
        None => daemon::run(DaemonConfig {
            mountpoint: cli.daemon.mountpoint.clone(),
            pidfile: cli.daemon.pidfile.clone(),
            threads: cli.daemon.threads(),
            options: cli.daemon.options.clone(),
            view: cli.view.options(),
            host,
        })
        .map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lxcfs-rs: {e}");
            ExitCode::FAILURE
        }
    }
}
