//! The command line: lxcfs's flags, plus `show`.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use thiserror::Error;

use crate::bind::{BindError, Runtime};
use crate::cgroup::CgroupError;
use crate::daemon::DaemonError;
use crate::hook::HookError;
use crate::seccomp::profile::ProfileFormat;
use crate::show::ShowError;
use crate::view::ViewOptions;

/// Where lxcfs (and so lxcfs-rs) mounts by default.
pub const DEFAULT_MOUNTPOINT: &str = "/var/lib/lxcfs";

/// Why a command failed: one type for everything the command line runs, each keeping its
/// cause as `source()`, so `main` prints the whole chain once.
#[derive(Debug, Error)]
pub enum CliError {
    /// The daemon could not start or stopped with an error.
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    /// `show` could not find the cgroup hierarchies.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// `show` failed.
    #[error(transparent)]
    Show(#[from] ShowError),
    /// `bind-args` failed.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// A hook failed.
    #[error("hook")]
    Hook(#[from] HookError),
    /// `reattach` could not run.
    #[error(transparent)]
    Reattach(#[from] crate::reattach::ReattachError),
    /// `seccomp-agent` could not start.
    #[error(transparent)]
    Agent(#[from] crate::seccomp::AgentError),
    /// `seccomp-profile` could not make a profile.
    #[error(transparent)]
    Profile(#[from] crate::seccomp::profile::ProfileError),
    /// A `kube` command failed.
    #[error(transparent)]
    Kube(#[from] crate::kube::KubeError),
    /// `kube manifests` could not make the manifests.
    #[error(transparent)]
    Manifests(#[from] crate::kube::manifests::ManifestError),
    /// `probe` found the mount point not served.
    #[error(transparent)]
    Probe(#[from] crate::probe::ProbeError),
}

/// lxcfs-rs: per-container /proc/meminfo, cpuinfo, stat, uptime, loadavg, diskstats, swaps
/// and /sys/devices/system/cpu, computed from each reader's cgroup limits.
#[derive(Debug, Parser)]
#[command(
    name = "lxcfs-rs",
    version,
    disable_version_flag = true,
    disable_help_flag = true
)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Cli {
    /// Print a file as a process would read it, without mounting anything.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The daemon's own flags.
    #[command(flatten)]
    pub daemon: DaemonArgs,

    /// Flags that change what the files show.
    #[command(flatten)]
    pub view: ViewArgs,

    /// Flags for every command.
    #[command(flatten)]
    pub global: GlobalArgs,

    /// Print help.
    #[arg(short = 'h', short_alias = 'n', long, action = ArgAction::Help, global = true)]
    pub help: Option<bool>,

    /// Print the version.
    #[arg(short = 'v', long, action = ArgAction::Version)]
    pub version: Option<bool>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print what process PID would read from each FILE of the mount (all files when none
    /// is named), e.g. `lxcfs-rs show --pid 1234 proc/meminfo`.
    Show(ShowArgs),
    /// Print the `-v SRC:DST:rw` flags that bind every file of the mount into a container:
    /// `docker run $(lxcfs-rs bind-args) IMAGE` (or `lxc.mount.entry` lines with
    /// `--runtime lxc`).
    BindArgs(BindArgsArgs),
    /// Bind the mount's files into a starting container: an OCI `createContainer` hook
    /// (`hook oci`, OCI state on stdin) or an LXC mount hook (`hook lxc`).
    Hook(HookArgs),
    /// Show how the lxcfs-rs serving MOUNTPOINT is: supervisor and worker pids, version,
    /// handle generation, whether the kernel resends requests, requests waiting, worker
    /// restarts, reads and host-value fallbacks.
    Status(StatusArgs),
    /// Re-bind the live files over every dead lxcfs mount in every container (after a daemon
    /// was stopped or killed, or after switching from the C lxcfs); lxcfs-rs does this itself
    /// whenever it mounts afresh.
    Reattach(ReattachArgs),
    /// Answer containers' sysinfo(2) calls (busybox free, glibc sysconf(_SC_PHYS_PAGES), JVMs
    /// without container support) from their view of the files, for runtimes given the
    /// profile `seccomp-profile` prints. Takes -l, -u and --enable-cfs as the daemon does.
    SeccompAgent(SeccompAgentArgs),
    /// Exit 0 when an lxcfs filesystem serves MOUNTPOINT (judged from mountinfo, then by
    /// reading its proc/meminfo within 1 s); otherwise exit 1 with one line saying why: not
    /// mounted, not lxcfs, stale (its daemon is gone), too slow, or a read error.
    Probe(ProbeArgs),
    /// Print a seccomp profile that sends sysinfo(2) to the agent: the runtime's default (or
    /// FILE's) rules with sysinfo moved to SCMP_ACT_NOTIFY and listenerPath set.
    SeccompProfile(SeccompProfileArgs),
    /// Kubernetes: inject the files into pods (`kube webhook`, or `kube patch` for one
    /// AdmissionReview on stdin).
    Kube(KubeArgs),
}

/// Flags of `kube`.
#[derive(Debug, Args)]
pub struct KubeArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: KubeCommand,
}

/// The `kube` subcommands.
#[derive(Debug, Subcommand)]
pub enum KubeCommand {
    /// Answer one admission.k8s.io/v1 AdmissionReview read on stdin with the response the
    /// webhook would send (the JSON patch that adds the hostPath volumes and mounts).
    Patch(KubePatchArgs),
    /// Serve the mutating admission webhook over HTTPS: POST /mutate (pods opted in by the
    /// lxcfs-rs.io/inject: "true" annotation), POST /mutate-namespace (pods of namespaces
    /// labelled lxcfs-rs.io/inject=enabled, unless annotated "false"), GET /readyz.
    Webhook(KubeWebhookArgs),
    /// Print the YAML for `kubectl apply -f -`: the Namespace, the DaemonSet and the
    /// injection (the webhook with newly generated certificates, MutatingAdmissionPolicies,
    /// or none). Every run with `--inject webhook` rotates the certificates.
    Manifests(KubeManifestsArgs),
}

/// Flags of `kube webhook`.
#[derive(Debug, Args)]
pub struct KubeWebhookArgs {
    /// The serving certificate (PEM, the chain's leaf first).
    #[arg(long, value_name = "FILE")]
    pub cert: PathBuf,

    /// The serving certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,

    /// The address and port to listen on.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8443")]
    pub listen: std::net::SocketAddr,

    /// How often to check the certificate and key files for changes (a rotated Secret);
    /// SIGHUP reloads them at once.
    #[arg(long, value_name = "SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub recheck_every: u64,

    /// Where lxcfs-rs is mounted on the nodes (the hostPath volumes' directory).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_MOUNTPOINT)]
    pub mount_point: PathBuf,
}

/// Flags of `kube manifests`.
#[derive(Debug, Args)]
pub struct KubeManifestsArgs {
    /// The namespace of the DaemonSet and the webhook.
    #[arg(long, value_name = "N", default_value = crate::kube::manifests::DEFAULT_NAMESPACE,
          value_parser = crate::kube::manifests::check_namespace)]
    pub namespace: String,

    /// The lxcfs-rs image.
    #[arg(long, value_name = "IMAGE", default_value_t = crate::kube::manifests::default_image(),
          value_parser = crate::kube::manifests::check_image)]
    pub image: String,

    /// Where the daemon mounts on every node.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_MOUNTPOINT,
          value_parser = crate::kube::targets::check_mount_point)]
    pub mount_point: String,

    /// How opted-in pods get the files.
    #[arg(long, value_enum, default_value_t = crate::kube::manifests::Inject::Webhook)]
    pub inject: crate::kube::manifests::Inject,
}

impl KubeManifestsArgs {
    /// The manifests these flags ask for.
    pub fn options(&self) -> crate::kube::manifests::Options {
        crate::kube::manifests::Options {
            namespace: self.namespace.clone(),
            image: self.image.clone(),
            mount_point: self.mount_point.clone(),
            inject: self.inject,
        }
    }
}

/// Flags of `kube patch`.
#[derive(Debug, Args)]
pub struct KubePatchArgs {
    /// Where lxcfs-rs is mounted on the nodes (the hostPath volumes' directory).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_MOUNTPOINT)]
    pub mount_point: PathBuf,

    /// The pod's namespace carries the label lxcfs-rs.io/inject=enabled: inject unless the
    /// pod's annotation says "false".
    #[arg(long)]
    pub namespace_opted_in: bool,
}

/// Flags of `seccomp-agent`.
#[derive(Debug, Args)]
pub struct SeccompAgentArgs {
    /// The socket runtimes connect to (the profile's listenerPath).
    #[arg(long, value_name = "PATH", default_value = crate::host::own::SECCOMP_SOCKET)]
    pub socket: PathBuf,
}

/// Flags of `seccomp-profile`.
#[derive(Debug, Args)]
pub struct SeccompProfileArgs {
    /// The format: Docker's and Podman's (`--security-opt seccomp=FILE`) or the OCI spec's
    /// (runc, crun, containerd and CRI-O Localhost profiles).
    #[arg(long, value_enum, default_value_t = ProfileFormat::Oci)]
    pub runtime: ProfileFormat,

    /// The profile to start from [default: Podman's installed default with --runtime podman;
    /// otherwise allow every other call].
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,

    /// The agent's socket.
    #[arg(long, value_name = "PATH", default_value = crate::host::own::SECCOMP_SOCKET)]
    pub socket: PathBuf,
}

/// Flags of `reattach`.
#[derive(Debug, Args)]
pub struct ReattachArgs {
    /// Print one JSON object instead of a line per mount namespace.
    #[arg(long)]
    pub json: bool,

    /// Only the mount namespace of this pid, from this process (the helper lxcfs-rs runs for
    /// each namespace).
    #[arg(long, hide = true)]
    pub pid: Option<u32>,

    /// With `--pid`: the dead devices (`major:minor`, comma separated) to replace.
    #[arg(long, hide = true, value_delimiter = ',')]
    pub dead: Vec<String>,

    /// Where lxcfs-rs is mounted.
    #[arg(default_value = DEFAULT_MOUNTPOINT)]
    pub mountpoint: PathBuf,
}

/// Flags of `probe`.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Where lxcfs is mounted.
    #[arg(default_value = DEFAULT_MOUNTPOINT)]
    pub mountpoint: PathBuf,
}

/// Flags of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print one JSON object instead of `key: value` lines.
    #[arg(long)]
    pub json: bool,

    /// Where lxcfs-rs is mounted.
    #[arg(default_value = DEFAULT_MOUNTPOINT)]
    pub mountpoint: PathBuf,
}

/// Flags of `bind-args`.
#[derive(Debug, Args)]
pub struct BindArgsArgs {
    /// The container tool the flags are for.
    #[arg(long, value_enum, default_value_t = Runtime::Docker)]
    pub runtime: Runtime,

    /// Where lxcfs-rs is mounted.
    #[arg(default_value = DEFAULT_MOUNTPOINT)]
    pub mountpoint: PathBuf,
}

/// Flags of `hook`.
#[derive(Debug, Args)]
pub struct HookArgs {
    /// Which hook interface calls us.
    #[arg(value_enum)]
    pub kind: HookKind,

    /// Where lxcfs-rs is mounted.
    #[arg(default_value = DEFAULT_MOUNTPOINT)]
    pub mountpoint: PathBuf,
}

/// The hook interfaces `hook` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HookKind {
    /// OCI runtime `createContainer` hook: the container state arrives on stdin.
    Oci,
    /// LXC `lxc.hook.mount`: the root filesystem is `$LXC_ROOTFS_MOUNT`.
    Lxc,
}

/// Flags of the daemon.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Where to mount the filesystem; created when missing.
    #[arg(default_value = DEFAULT_MOUNTPOINT)]
    pub mountpoint: PathBuf,

    /// Stay in the foreground (lxcfs-rs always does; accepted for compatibility).
    #[arg(short = 'f', long)]
    pub foreground: bool,

    /// Log every request (debug level).
    #[arg(short = 'd', long)]
    pub debug: bool,

    /// Write our pid to FILE and hold it locked while running; a second daemon with the
    /// same pidfile refuses to start.
    #[arg(short = 'p', long, value_name = "FILE")]
    pub pidfile: Option<PathBuf>,

    /// Mount options, comma separated (lxcfs passes these to FUSE): `allow_other`, `ro`,
    /// `nonempty`, `direct_io` are what lxcfs-rs does anyway; others go to the kernel.
    #[arg(short = 'o', value_name = "OPTIONS", action = ArgAction::Append)]
    pub options: Vec<String>,

    /// Threads serving FUSE requests [default: the number of CPUs, at least 4, at most 16].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,

    /// Take the mount over from the lxcfs-rs serving MOUNTPOINT (an upgrade): it hands its
    /// FUSE connection to this process and exits without unmounting; readers see a pause.
    #[arg(long)]
    pub takeover: bool,

    /// Take the mount over (as --takeover) when a running lxcfs-rs answers for MOUNTPOINT,
    /// mount afresh otherwise: what a container or pod started beside an older one runs, so
    /// the new one takes over with no failed read and the first one simply mounts.
    #[arg(long, conflicts_with = "takeover")]
    pub takeover_if_running: bool,

    /// After handing the mount over to a successor, do not exit: stay, holding no FUSE
    /// descriptor and no pidfile, until SIGTERM or SIGINT, then exit 0 without touching the
    /// mount. A container that exited would be restarted by Docker's --restart or the kubelet
    /// and take the mount back.
    #[arg(long)]
    pub wait_after_handoff: bool,

    /// Never rely on the kernel resending the requests a crashed worker held (what kernels
    /// before 6.9 get anyway): such requests fail with ECONNABORTED instead of being answered
    /// by the next worker. For tests and for comparing.
    #[arg(long)]
    pub no_resend: bool,

    /// Serve over FUSE-over-io_uring when the kernel offers it (Linux 6.14+ with
    /// /sys/module/fuse/parameters/enable_uring set to 1, host-wide): requests stay on the
    /// reader's CPU and cost one system call instead of two. Experimental: the kernel cannot
    /// resend requests a crashed worker held on the ring, so a crash or a takeover can leave
    /// readers waiting (see README).
    #[arg(long)]
    pub io_uring: bool,

    /// Serve as the worker of a supervisor (lxcfs-rs starts its workers itself).
    #[arg(long, hide = true)]
    pub worker: bool,

    /// Use pidfds for process tracking (lxcfs flag; lxcfs-rs never forks into namespaces,
    /// so this is accepted and has no effect).
    #[arg(long, hide = true)]
    pub enable_pidfd: bool,
}

/// Flags for the daemon and every subcommand.
#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// Join the host's mount namespace (pid 1's) before anything else, for lxcfs-rs run in a
    /// container with --pid=host --privileged: the daemon then mounts on the host's mount
    /// point and uses the host's /run/lxcfs-rs, and `probe` or `status` look at the host's.
    #[arg(long, global = true)]
    pub host_mount_ns: bool,
}

/// Flags that change what the files show (for the daemon and for `show`).
#[derive(Debug, Args, Clone)]
pub struct ViewArgs {
    /// Per-container /proc/loadavg (otherwise the host's file is served).
    #[arg(short = 'l', long, global = true)]
    pub enable_loadavg: bool,

    /// Show no swap: SwapTotal and SwapFree are 0 and /proc/swaps lists no device.
    #[arg(short = 'u', long, global = true)]
    pub disable_swap: bool,

    /// Count CPUs from the CFS quota too (a 1.5-CPU quota shows 2 CPUs).
    #[arg(long, global = true)]
    pub enable_cfs: bool,

    /// Read host files below DIR instead of / (for tests with fixture trees).
    #[arg(long, hide = true, value_name = "DIR", global = true)]
    pub host_root: Option<PathBuf>,
}

/// Takes `--host-mount-ns` out of a command line (program name first), wherever it stands
/// before a `--`: whether it was there, and the rest for clap. clap cannot take it before a
/// subcommand (`lxcfs-rs --host-mount-ns probe MNT`, the form health checks are written in):
/// a flag there makes it read the subcommand's name as the daemon's mount point.
pub fn take_host_mount_ns(args: Vec<OsString>) -> (Vec<OsString>, bool) {
    let mut found = false;
    let mut rest = Vec::with_capacity(args.len());
    let mut after_dashes = false;
    for arg in args {
        if !after_dashes && arg == "--host-mount-ns" {
            found = true;
            continue;
        }
        after_dashes |= arg == "--";
        rest.push(arg);
    }
    (rest, found)
}

/// FUSE serving threads without `--threads`: one per CPU within 4..=16 (a read blocks on
/// kernel file reads, so a few threads beyond the CPUs keep them busy; more than 16 only adds
/// contention).
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(4, usize::from)
        .clamp(4, 16)
}

impl DaemonArgs {
    /// The FUSE worker threads to run: `--threads`, or [`default_threads`].
    pub fn threads(&self) -> usize {
        self.threads.map_or_else(default_threads, usize::from)
    }
}

impl ViewArgs {
    /// The view options these flags select.
    pub fn options(&self) -> ViewOptions {
        ViewOptions {
            cpus_from_quota: self.enable_cfs,
            show_swap: !self.disable_swap,
            cgroup_loadavg: self.enable_loadavg,
        }
    }
}

/// Flags of `show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The process whose view to print (a host pid).
    #[arg(long)]
    pub pid: u32,

    /// Files relative to the mount (`proc/meminfo`, `/proc/meminfo` also works).
    pub files: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let argv = std::iter::once("lxcfs-rs")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        let (rest, host_mount_ns) = take_host_mount_ns(argv);
        let mut cli = Cli::try_parse_from(rest)?;
        cli.global.host_mount_ns |= host_mount_ns;
        Ok(cli)
    }

    #[test]
    fn lxcfs_command_lines_parse() {
        let cli = parse(&[
            "-f",
            "-l",
            "--enable-cfs",
            "-p",
            "/run/x.pid",
            "-u",
            "/mnt/l",
        ])
        .unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.daemon.mountpoint, PathBuf::from("/mnt/l"));
        assert_eq!(cli.daemon.pidfile, Some(PathBuf::from("/run/x.pid")));
        let o = cli.view.options();
        assert!(o.cgroup_loadavg && o.cpus_from_quota && !o.show_swap);
        let cli = parse(&["-o", "allow_other,nonempty", "--threads", "8"]).unwrap();
        assert_eq!(cli.daemon.mountpoint, PathBuf::from(DEFAULT_MOUNTPOINT));
        assert_eq!(cli.daemon.options, vec!["allow_other,nonempty"]);
        assert_eq!(cli.daemon.threads(), 8);
        let cli = parse(&[]).unwrap();
        assert!(
            (4..=16).contains(&cli.daemon.threads()),
            "default within 4..=16"
        );
    }

    #[test]
    fn show_parses() {
        let cli = parse(&["show", "--pid", "42", "proc/meminfo", "--enable-cfs"]).unwrap();
        let Some(Command::Show(show)) = cli.command else {
            panic!("not show")
        };
        assert_eq!(show.pid, 42);
        assert_eq!(show.files, vec!["proc/meminfo"]);
        assert!(cli.view.enable_cfs);
    }

    #[test]
    fn bind_args_and_hook_parse() {
        let Some(Command::BindArgs(b)) = parse(&["bind-args"]).unwrap().command else {
            panic!("not bind-args")
        };
        assert_eq!(b.runtime, Runtime::Docker);
        assert_eq!(b.mountpoint, PathBuf::from(DEFAULT_MOUNTPOINT));
        let cli = parse(&["bind-args", "--runtime", "podman", "/mnt/l"]).unwrap();
        let Some(Command::BindArgs(b)) = cli.command else {
            panic!("not bind-args")
        };
        assert_eq!(
            (b.runtime, b.mountpoint),
            (Runtime::Podman, PathBuf::from("/mnt/l"))
        );
        let Some(Command::Hook(h)) = parse(&["hook", "oci"]).unwrap().command else {
            panic!("not hook")
        };
        assert_eq!(h.kind, HookKind::Oci);
        assert!(parse(&["bind-args", "--runtime", "rkt"]).is_err());
        assert!(parse(&["hook"]).is_err());
    }

    #[test]
    fn status_and_the_restart_flags_parse() {
        let Some(Command::Status(st)) = parse(&["status", "--json", "/mnt/l"]).unwrap().command
        else {
            panic!("not status")
        };
        assert!(st.json);
        assert_eq!(st.mountpoint, PathBuf::from("/mnt/l"));
        let Some(Command::Status(st)) = parse(&["status"]).unwrap().command else {
            panic!("not status")
        };
        assert_eq!(st.mountpoint, PathBuf::from(DEFAULT_MOUNTPOINT));
        let Some(Command::Reattach(r)) = parse(&["reattach", "--json"]).unwrap().command else {
            panic!("not reattach")
        };
        assert!(r.json && r.pid.is_none());
        assert_eq!(r.mountpoint, PathBuf::from(DEFAULT_MOUNTPOINT));
        let cli = parse(&["--no-resend", "--worker", "/m"]).unwrap();
        assert!(cli.daemon.no_resend && cli.daemon.worker);
        let cli = parse(&["--takeover-if-running", "--wait-after-handoff", "/m"]).unwrap();
        assert!(cli.daemon.takeover_if_running && cli.daemon.wait_after_handoff);
        assert!(!cli.daemon.takeover);
        assert!(parse(&["--takeover", "--takeover-if-running"]).is_err());
    }

    #[test]
    fn probe_parses() {
        let Some(Command::Probe(p)) = parse(&["probe"]).unwrap().command else {
            panic!("not probe")
        };
        assert_eq!(p.mountpoint, PathBuf::from(DEFAULT_MOUNTPOINT));
        let Some(Command::Probe(p)) = parse(&["probe", "/mnt/l"]).unwrap().command else {
            panic!("not probe")
        };
        assert_eq!(p.mountpoint, PathBuf::from("/mnt/l"));
        assert!(parse(&["probe", "/a", "/b"]).is_err());
    }

    #[test]
    fn host_mount_ns_goes_anywhere_on_the_line() {
        assert!(
            parse(&["--host-mount-ns", "/m"])
                .unwrap()
                .global
                .host_mount_ns
        );
        assert!(
            parse(&["/m", "--host-mount-ns"])
                .unwrap()
                .global
                .host_mount_ns
        );
        let cli = parse(&["--host-mount-ns", "probe", "/m"]).unwrap();
        assert!(cli.global.host_mount_ns && matches!(cli.command, Some(Command::Probe(_))));
        assert!(
            parse(&["status", "--host-mount-ns"])
                .unwrap()
                .global
                .host_mount_ns
        );
        assert!(!parse(&["probe"]).unwrap().global.host_mount_ns);
        assert!(parse(&["--", "--host-mount-ns"]).is_ok_and(|c| !c.global.host_mount_ns));
        let cli = Cli::try_parse_from(["lxcfs-rs", "status", "--host-mount-ns"]).unwrap();
        assert!(
            cli.global.host_mount_ns,
            "clap itself takes it after a subcommand"
        );
    }

    #[test]
    fn bad_flags_are_refused() {
        assert!(parse(&["--no-such-flag"]).is_err());
        assert!(parse(&["--threads", "0"]).is_err());
        assert!(parse(&["show"]).is_err());
        assert!(parse(&["seccomp-profile", "--runtime", "lxc"]).is_err());
    }

    #[test]
    fn seccomp_commands_parse() {
        use std::path::Path;
        let Some(Command::SeccompAgent(a)) = parse(&["seccomp-agent", "-l"]).unwrap().command
        else {
            panic!("not seccomp-agent")
        };
        assert_eq!(a.socket, PathBuf::from(crate::host::own::SECCOMP_SOCKET));
        let cli = parse(&["seccomp-agent", "--socket", "/s"]).unwrap();
        assert!(
            matches!(cli.command, Some(Command::SeccompAgent(a)) if a.socket == Path::new("/s"))
        );
        let cli = parse(&["seccomp-profile", "--runtime", "podman", "--from", "/f"]).unwrap();
        let Some(Command::SeccompProfile(p)) = cli.command else {
            panic!("not seccomp-profile")
        };
        assert_eq!(p.runtime, ProfileFormat::Podman);
        assert_eq!(p.from, Some(PathBuf::from("/f")));
    }

    #[test]
    fn kube_commands_parse() {
        let cli = parse(&["kube", "patch", "--namespace-opted-in"]).unwrap();
        let Some(Command::Kube(KubeArgs {
            command: KubeCommand::Patch(p),
        })) = cli.command
        else {
            panic!("not kube patch")
        };
        assert!(p.namespace_opted_in);
        assert_eq!(p.mount_point, PathBuf::from(DEFAULT_MOUNTPOINT));
        let cli = parse(&["kube", "webhook", "--cert", "c", "--key", "k"]).unwrap();
        let Some(Command::Kube(KubeArgs {
            command: KubeCommand::Webhook(w),
        })) = cli.command
        else {
            panic!("not kube webhook")
        };
        assert_eq!(w.listen.to_string(), "0.0.0.0:8443");
        assert_eq!(w.recheck_every, 30);
        assert_eq!((w.cert, w.key), (PathBuf::from("c"), PathBuf::from("k")));
        assert!(parse(&["kube", "webhook", "--cert", "c"]).is_err());
        assert!(
            parse(&[
                "kube", "webhook", "--cert", "c", "--key", "k", "--listen", "x"
            ])
            .is_err()
        );
        assert!(parse(&["kube"]).is_err());
    }

    #[test]
    fn kube_manifests_parses_and_checks_its_flags() {
        use crate::kube::manifests::{Inject, Options};
        let Some(Command::Kube(KubeArgs {
            command: KubeCommand::Manifests(m),
        })) = parse(&["kube", "manifests"]).unwrap().command
        else {
            panic!("not kube manifests")
        };
        assert_eq!(m.options(), Options::default());
        let cli = parse(&[
            "kube",
            "manifests",
            "--namespace",
            "lx",
            "--image",
            "r/i:2",
            "--mount-point",
            "/run/l",
            "--inject",
            "policy",
        ])
        .unwrap();
        let Some(Command::Kube(KubeArgs {
            command: KubeCommand::Manifests(m),
        })) = cli.command
        else {
            panic!("not kube manifests")
        };
        let o = m.options();
        assert_eq!(
            (
                o.namespace.as_str(),
                o.image.as_str(),
                o.mount_point.as_str(),
                o.inject
            ),
            ("lx", "r/i:2", "/run/l", Inject::Policy)
        );
        for bad in [
            &["--namespace", "Bad_NS"][..],
            &["--image", "a b"],
            &["--mount-point", "rel"],
            &["--mount-point", "/a:b"],
            &["--inject", "nri"],
        ] {
            let args: Vec<&str> = ["kube", "manifests"].iter().chain(bad).copied().collect();
            assert!(parse(&args).is_err(), "{bad:?}");
        }
    }
}
