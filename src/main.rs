//! The `lxcfs-rs` command: the daemon, or one of its subcommands (`show`, `bind-args`,
//! `hook`, `status`, `probe`, ...).

use std::process::ExitCode;

use lxcfs_rs::cli::{Cli, CliError, Command, HookKind, KubeCommand};
use lxcfs_rs::daemon::{self, DaemonConfig};
use lxcfs_rs::error_chain::Chain;
use lxcfs_rs::hook::{self, HookError};
use lxcfs_rs::host::HostPaths;
use lxcfs_rs::show::show;
use lxcfs_rs::view::View;

/// Parses the command line; a usage error is one line (as for every other start-up error)
/// and exit code 2, help and version print as usual.
fn parse_cli() -> Result<Cli, ExitCode> {
    use clap::{CommandFactory, FromArgMatches};
    let (args, host_mount_ns) = lxcfs_rs::cli::take_host_mount_ns(std::env::args_os().collect());
    Cli::command()
        .version(&*Box::leak(lxcfs_rs::version::version().into_boxed_str()))
        .try_get_matches_from(args)
        .and_then(|m| Cli::from_arg_matches(&m))
        .map(|mut cli| {
            cli.global.host_mount_ns |= host_mount_ns;
            cli
        })
        .map_err(|e| {
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
fn run_hook(kind: HookKind, mountpoint: &std::path::Path) -> Result<(), HookError> {
    let report = match kind {
        HookKind::Oci => hook::run_oci(mountpoint),
        HookKind::Lxc => hook::run_lxc(mountpoint),
    }?;
    for bound in &report.bound {
        log::debug!("hook: bound {bound}");
    }
    for skipped in &report.skipped {
        eprintln!("lxcfs-rs hook: not bound: {skipped}");
    }
    Ok(())
}

/// Runs the command `cli` names.
fn run(cli: &Cli) -> Result<(), CliError> {
    let host = cli
        .view
        .host_root
        .as_deref()
        .map(HostPaths::under)
        .unwrap_or_default();
    match &cli.command {
        Some(Command::Show(args)) => {
            let view = View::new(host.clone(), cli.view.options())?;
            show(
                &view,
                &host,
                args.pid,
                &args.files,
                &mut std::io::stdout().lock(),
            )?;
        }
        Some(Command::BindArgs(args)) => {
            print!(
                "{}",
                lxcfs_rs::bind::bind_args(&args.mountpoint, args.runtime)?
            );
        }
        Some(Command::Hook(args)) => run_hook(args.kind, &args.mountpoint)?,
        Some(Command::Status(args)) => {
            let status = daemon::handoff::ask_status(
                std::path::Path::new(lxcfs_rs::host::own::HANDOFF_DIR),
                &args.mountpoint,
            )
            .map_err(daemon::DaemonError::Status)?;
            if args.json {
                println!("{status}");
            } else if let Some(fields) = status.as_object() {
                for (key, value) in fields {
                    match value {
                        serde_json::Value::String(s) => println!("{key}: {s}"),
                        serde_json::Value::Null => println!("{key}: -"),
                        other => println!("{key}: {other}"),
                    }
                }
            }
        }
        Some(Command::Reattach(args)) => match args.pid {
            Some(pid) => {
                let report =
                    lxcfs_rs::reattach::reattach_namespace_of(pid, &args.mountpoint, &args.dead)?;
                if args.json {
                    println!("{}", serde_json::to_string(&report).unwrap_or_default());
                } else {
                    println!("{}", report.line());
                }
            }
            None => {
                let exe = std::path::Path::new("/proc/self/exe");
                let report = lxcfs_rs::reattach::reattach(&args.mountpoint, exe, &[])?;
                if args.json {
                    println!("{}", report.to_json());
                } else {
                    for ns in &report.namespaces {
                        println!("{}", ns.line());
                    }
                    println!("{}", report.summary());
                }
            }
        },
        Some(Command::SeccompAgent(args)) => {
            lxcfs_rs::seccomp::run(&lxcfs_rs::seccomp::AgentConfig {
                socket: args.socket.clone(),
                view: cli.view.options(),
                host,
            })?;
        }
        Some(Command::Probe(args)) => {
            let served = lxcfs_rs::probe::probe(&args.mountpoint, lxcfs_rs::probe::DEADLINE)?;
            println!(
                "{}",
                served.line(&lxcfs_rs::mounts::absolute(&args.mountpoint))
            );
        }
        Some(Command::SeccompProfile(args)) => {
            use lxcfs_rs::seccomp::profile;
            let base = profile::load_base(args.runtime, args.from.as_deref())?;
            let socket = args.socket.to_string_lossy();
            let (json, warnings) = profile::make(base, args.runtime, &socket)?;
            for w in warnings {
                eprintln!("lxcfs-rs seccomp-profile: {w}");
            }
            println!(
                "{}",
                serde_json::to_string_pretty(&json).unwrap_or_default()
            );
        }
        Some(Command::Kube(args)) => match &args.command {
            KubeCommand::Manifests(m) => {
                print!("{}", lxcfs_rs::kube::manifests::render(&m.options())?)
            }
            KubeCommand::Patch(p) => {
                lxcfs_rs::kube::run_patch(&p.mount_point, p.namespace_opted_in)?
            }
            KubeCommand::Webhook(w) => {
                lxcfs_rs::kube::run_webhook(lxcfs_rs::kube::webhook::WebhookConfig {
                    cert: w.cert.clone(),
                    key: w.key.clone(),
                    listen: w.listen,
                    mount_point: w.mount_point.clone(),
                    recheck_every: std::time::Duration::from_secs(w.recheck_every),
                })?
            }
        },
        None => daemon::run(DaemonConfig {
            mountpoint: cli.daemon.mountpoint.clone(),
            pidfile: cli.daemon.pidfile.clone(),
            threads: cli.daemon.threads(),
            options: cli.daemon.options.clone(),
            view: cli.view.options(),
            host,
            takeover: cli.daemon.takeover,
            takeover_if_running: cli.daemon.takeover_if_running,
            wait_after_handoff: cli.daemon.wait_after_handoff,
            no_resend: cli.daemon.no_resend,
            io_uring: cli.daemon.io_uring,
            worker: cli.daemon.worker,
            host_mount_ns: cli.global.host_mount_ns,
        })?,
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
    // First of all, while this process has one thread (setns refuses a process whose threads
    // share its root): every path below is then the host's.
    if cli.global.host_mount_ns {
        // The daemon keeps its first process in the container's namespace (see join_host).
        let keep_init = cli.command.is_none() && !cli.daemon.worker;
        match lxcfs_rs::mount_ns::join_host(keep_init) {
            Ok(lxcfs_rs::mount_ns::Joined::Switched(from)) => {
                log::debug!("joined the host's mount namespace ({from})");
            }
            Ok(lxcfs_rs::mount_ns::Joined::Already) => {}
            Err(e) => {
                eprintln!("lxcfs-rs: {}", Chain(&e));
                return ExitCode::FAILURE;
            }
        }
    }
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lxcfs-rs: {}", Chain(&e));
            ExitCode::FAILURE
        }
    }
}
