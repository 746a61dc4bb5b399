//! Host deployment: the systemd unit verifies, `scripts/install.sh` installs and starts the
//! daemon, and the static executable the container image ships runs with nothing beside it.

#[macro_use]
mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

/// The repository's root (tests run from the package directory).
fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `scripts/install.sh` with `env` and `args`, installing our test binary; panics
/// unless it exits 0.
fn install(env: &[(&str, &Path)], args: &[&str]) -> String {
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("scripts/install.sh"))
        .args(["--binary", BIN])
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("running install.sh");
    assert_succeeds(&out, "install.sh");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stops a daemon started by install.sh (by the pid in its pidfile) and detaches its mount
/// if the test fails halfway.
struct Installed {
    pidfile: PathBuf,
    mnt: PathBuf,
}

impl Drop for Installed {
    fn drop(&mut self) {
        if let Some(pid) = fs::read_to_string(&self.pidfile)
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
        {
            signal(pid, nix::sys::signal::Signal::SIGTERM);
            wait_until(Duration::from_secs(5), || {
                !Path::new(&format!("/proc/{pid}")).exists()
            });
        }
        if is_mounted(&self.mnt) {
            let _ = nix::mount::umount2(&self.mnt, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

#[test]
fn systemd_unit_verifies_and_keeps_its_promises() {
    require!(
        program "systemd-analyze",
        "systemd-analyze is missing (Debian package systemd; scripts/deps.sh test installs it)"
    );
    require!(nix::unistd::geteuid().is_root(), "install.sh needs root");
    let dir = TestDir::new();
    install(
        &[("PREFIX", &dir.join("usr")), ("UNITDIR", &dir.join("unit"))],
        &["--no-start"],
    );
    let agent_unit = dir.join("unit/lxcfs-rs-seccomp.service");
    let agent_text = fs::read_to_string(&agent_unit).expect("the agent's unit is installed");
    for want in [
        "Type=notify",
        "FileDescriptorStoreMax=4096",
        "Restart=always",
        &format!(
            "ExecStart={} seccomp-agent",
            dir.join("usr/bin/lxcfs-rs").display()
        ),
    ] {
        assert!(
            agent_text.lines().any(|l| l == want),
            "{want} in {}:\n{agent_text}",
            agent_unit.display()
        );
    }
    let unit = dir.join("unit/lxcfs-rs.service");
    let verify = |path: &Path| {
        Command::new("systemd-analyze")
            .args(["verify", path.to_str().unwrap()])
            .output()
            .expect("running systemd-analyze")
    };
    for unit in [&unit, &agent_unit] {
        let out = verify(unit);
        assert!(
            out.status.success() && !String::from_utf8_lossy(&out.stderr).contains("lxcfs-rs"),
            "systemd-analyze verify {}\n{}",
            unit.display(),
            describe(&out)
        );
    }

    let text = fs::read_to_string(&unit).unwrap();
    let bin = dir.join("usr/bin/lxcfs-rs");
    let values = |key: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        values("ExecStart"),
        [format!("{} /var/lib/lxcfs", bin.display())]
    );
    assert_eq!(values("Type"), ["notify"], "started means mounted");
    assert_eq!(values("Restart"), ["always"]);
    assert_eq!(values("OOMScoreAdjust"), ["-1000"]);
    assert_eq!(
        values("ExecStopPost"),
        Vec::<String>::new(),
        "an unmount after every stop would detach the mount a restart keeps"
    );
    assert_eq!(values("ExecReload"), ["/bin/kill -USR1 $MAINPID"]);
    assert_eq!(values("FileDescriptorStoreMax"), ["64"]);
    assert_eq!(values("RestartSec"), ["100ms"]);
    assert_eq!(values("KillMode"), ["mixed"]);
    let before: Vec<String> = values("Before")
        .iter()
        .flat_map(|v| v.split_whitespace().map(str::to_string))
        .collect();
    for runtime in [
        "docker.service",
        "containerd.service",
        "podman.service",
        "crio.service",
        "lxc.service",
        "kubelet.service",
    ] {
        assert!(
            before.iter().any(|b| b == runtime),
            "not Before={runtime}: {before:?}"
        );
    }
    assert_eq!(
        values("Conflicts"),
        ["lxcfs.service"],
        "the C lxcfs serves the same mount point"
    );
    for own_namespace in ["PrivateTmp", "ProtectSystem", "PrivateMounts"] {
        assert!(
            values(own_namespace).is_empty(),
            "{own_namespace} would hide the mount from the host"
        );
    }

    // The check can fail: a unit whose executable is missing does not verify.
    let broken = dir.join("unit/broken.service");
    fs::write(
        &broken,
        text.replace(bin.to_str().unwrap(), "/nonexistent/lxcfs-rs"),
    )
    .unwrap();
    assert!(!verify(&broken).status.success(), "a broken unit verified");
}

#[test]
fn install_script_starts_replaces_and_stops_the_daemon() {
    require!(mount);
    let dir = TestDir::new();
    let mnt = dir.join("mnt");
    let pidfile = dir.join("lxcfs-rs.pid");
    let env = [
        ("PREFIX", dir.join("usr")),
        ("UNITDIR", dir.join("unit")),
        ("MOUNTPOINT", mnt.clone()),
        ("PIDFILE", pidfile.clone()),
        ("LOGFILE", dir.join("lxcfs-rs.log")),
    ];
    let env: Vec<(&str, &Path)> = env.iter().map(|(k, v)| (*k, v.as_path())).collect();
    let _guard = Installed {
        pidfile: pidfile.clone(),
        mnt: mnt.clone(),
    };
    let out = install(&env, &["--no-systemd"]);
    assert!(out.contains("serving"), "{out}");
    assert!(fuse_mount_at(&mnt).is_some(), "not mounted: {out}");
    let pid = |f: &Path| fs::read_to_string(f).unwrap().trim().to_string();
    let first = pid(&pidfile);
    let meminfo = fs::read_to_string(mnt.join("proc/meminfo")).unwrap();
    assert!(meminfo.starts_with("MemTotal:"), "{meminfo}");

    // The installed hooks point at the installed binary and mount point.
    let hook = fs::read_to_string(dir.join("usr/share/lxcfs-rs/lxc.mount.hook")).unwrap();
    assert!(
        hook.contains(&format!(
            "{} hook lxc {}",
            dir.join("usr/bin/lxcfs-rs").display(),
            mnt.display()
        )),
        "{hook}"
    );
    let oci: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(dir.join("usr/share/lxcfs-rs/lxcfs-rs-hook.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        oci["hook"]["path"],
        dir.join("usr/bin/lxcfs-rs").to_str().unwrap()
    );
    assert_eq!(oci["stages"][0], "createContainer");

    // Installing again (an upgrade) replaces the running daemon.
    install(&env, &["--no-systemd"]);
    let second = pid(&pidfile);
    assert_ne!(first, second, "the old daemon kept running");
    assert!(
        !Path::new(&format!("/proc/{first}")).exists() || {
            let comm = fs::read_to_string(format!("/proc/{first}/comm")).unwrap_or_default();
            comm.trim() != "lxcfs-rs"
        }
    );
    assert!(fuse_mount_at(&mnt).is_some());

    signal(second.parse().unwrap(), nix::sys::signal::Signal::SIGTERM);
    assert!(
        wait_until(Duration::from_secs(5), || fuse_mount_at(&mnt).is_none()),
        "SIGTERM did not unmount"
    );
    assert!(
        wait_until(Duration::from_secs(5), || !pidfile.exists()),
        "pidfile left behind"
    );
}

#[test]
fn static_executable_runs_in_an_empty_root() {
    require!(mount);
    require!(
        program "readelf",
        "readelf (binutils) is missing; scripts/deps.sh installs gcc, which brings it \
         (build-static and this test check the executable with it)"
    );
    // The image's build step, as the Dockerfile runs it: in a build context holding only
    // what its COPY lines bring, so a file the build needs and the image lacks shows here.
    let dockerfile = fs::read_to_string(repo().join("packaging/docker/Dockerfile")).unwrap();
    assert!(dockerfile.contains("RUN cp \"$(scripts/build-static)\" /lxcfs-rs"));
    assert!(dockerfile.contains("FROM scratch"));
    let context = build_context(&dockerfile);
    let out = Command::new(context.join("scripts/build-static"))
        .env(
            "CARGO_TARGET_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("static"),
        )
        .output()
        .expect("running scripts/build-static");
    assert_succeeds(&out, "build-static");
    let exe = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if let Err(e) = static_elf(Path::new(&exe)) {
        panic!("build-static printed {exe}, which is not static: {e}");
    }
    // The check can fail: the test build of the binary is an ordinary dynamic one.
    assert!(
        static_elf(Path::new(BIN)).is_err(),
        "{BIN} (a dynamic build) passed the static check"
    );

    // What `FROM scratch` gives it: the executable alone, plus what `docker run --privileged
    // --pid=host` brings (/proc, /sys, /dev). A reader limited to 256 MiB reads through it.
    let root = TestDir::new();
    for d in ["proc", "sys", "dev", "var/lib/lxcfs"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::copy(&exe, root.join("lxcfs-rs")).unwrap();
    let cg = Cgroup::new();
    cg.set_memory_limit(256 << 20);
    let script = r#"
        set -e
        mount --rbind /proc "$1/proc"; mount --rbind /sys "$1/sys"; mount --rbind /dev "$1/dev"
        chroot "$1" /lxcfs-rs /var/lib/lxcfs 2>"$1/log" & daemon=$!
        i=0; until [ -e "$1/var/lib/lxcfs/proc/meminfo" ]; do
            i=$((i+1)); [ $i -lt 100 ] || { cat "$1/log"; exit 1; }; sleep 0.05
        done
        head -n 1 "$1/var/lib/lxcfs/proc/meminfo"
        kill -TERM $daemon; wait $daemon
    "#;
    let out = cg.run(&sh_in_private_mount_ns(
        &[],
        script,
        &[root.path().to_str().unwrap()],
    ));
    assert_eq!(kb(&out, "MemTotal"), 262144, "{out}");
}

/// Whether the ELF file at `path` runs with nothing beside it, as `readelf` sees it: no
/// program interpreter (the dynamic loader) and no shared library it needs. `Err` names
/// what makes it dynamic.
fn static_elf(path: &Path) -> Result<(), String> {
    let readelf = |flag: &str| {
        let out = Command::new("readelf")
            .args(["--wide", flag])
            .arg(path)
            .output()
            .unwrap_or_else(|e| panic!("running readelf: {e}"));
        assert_succeeds(&out, &format!("readelf {flag} {}", path.display()));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mut dynamic = Vec::new();
    if readelf("--program-headers").contains("INTERP") {
        dynamic.push("a program interpreter (INTERP)".to_string());
    }
    let needed: Vec<String> = readelf("--dynamic")
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .map(|l| l.trim().to_string())
        .collect();
    if !needed.is_empty() {
        dynamic.push(format!("shared libraries: {needed:?}"));
    }
    if dynamic.is_empty() {
        Ok(())
    } else {
        Err(dynamic.join("; "))
    }
}

/// The files the Dockerfile's build stage copies in (its `COPY SRC... DST` lines before
/// `FROM scratch`, with `WORKDIR /src` as the context root), copied from the repository
/// into a fresh directory.
fn build_context(dockerfile: &str) -> TestDir {
    let context = TestDir::new();
    let build_stage = dockerfile
        .split("FROM scratch")
        .next()
        .expect("a build stage");
    let mut copies = 0;
    for line in build_stage.lines().map(str::trim) {
        let Some(args) = line.strip_prefix("COPY ") else {
            continue;
        };
        let words: Vec<&str> = args.split_whitespace().collect();
        let (dst, srcs) = words.split_last().expect("COPY SRC... DST");
        for src in srcs {
            let from = repo().join(src);
            // `COPY a b ./` puts files in the directory; `COPY src ./src` names the target.
            let to = if dst.ends_with('/') {
                context
                    .join(dst)
                    .join(Path::new(src).file_name().expect("a file name"))
            } else {
                context.join(dst)
            };
            copy_tree(&from, &to);
            copies += 1;
        }
    }
    assert!(copies > 0, "no COPY line in the Dockerfile's build stage");
    context
}

/// Copies a file, or a directory with everything below it, keeping file modes.
fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        fs::create_dir_all(to).unwrap_or_else(|e| panic!("creating {}: {e}", to.display()));
        for entry in fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
            let entry = entry.expect("directory entry");
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::copy(from, to)
            .unwrap_or_else(|e| panic!("copying {} to {}: {e}", from.display(), to.display()));
    }
}

/// The `CMD` line of a Dockerfile.
fn cmd_line(dockerfile: &str) -> Vec<String> {
    let line = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("CMD "))
        .expect("a CMD line");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("CMD {line} is not exec form: {e}"))
}

/// Both images run the daemon as a container must: in the host's mount namespace, taking
/// over from an older container, and waiting (not exiting) after handing over; and the
/// image without a build stage copies nothing but the executable.
#[test]
fn both_images_run_the_daemon_the_same_way() {
    let read = |f: &str| {
        fs::read_to_string(repo().join("packaging/docker").join(f))
            .unwrap_or_else(|e| panic!("reading packaging/docker/{f}: {e}"))
    };
    let (source, scratch) = (read("Dockerfile"), read("Dockerfile.scratch"));
    let want = [
        "--host-mount-ns",
        "--takeover-if-running",
        "--wait-after-handoff",
        "/var/lib/lxcfs",
    ];
    assert_eq!(cmd_line(&source), want);
    assert_eq!(cmd_line(&scratch), want);
    for text in [&source, &scratch] {
        assert!(text.contains("ENTRYPOINT [\"/lxcfs-rs\"]"), "{text}");
    }
    let steps: Vec<&str> = scratch
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    assert_eq!(
        steps[..2],
        ["FROM scratch", "COPY lxcfs-rs /lxcfs-rs"],
        "{scratch}"
    );
    // The image's flags are the daemon's: it would exit at once on an unknown one.
    let out = run_bin(&["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in &want[..3] {
        assert!(help.contains(flag), "{flag} in --help:\n{help}");
    }
}

#[test]
fn build_image_refuses_an_unknown_tool_in_one_line() {
    let out = Command::new(repo().join("scripts/build-image"))
        .args(["--tool", "rkt"])
        .output()
        .expect("running scripts/build-image");
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("--tool must be docker or podman"),
        "{stderr}"
    );
}
