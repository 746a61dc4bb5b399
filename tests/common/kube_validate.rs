//! `kubernetes-validate` (PyPI): Kubernetes' own OpenAPI schemas for each release, checked
//! offline. Installed on first use into a virtual environment under the build's `target/`
//! directory, so nothing of the host's Python changes and a clean clone installs it again.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::fcntl::{Flock, FlockArg};

/// The validator release: its schemas go from Kubernetes 1.25 to 1.37.
const VERSION: &str = "1.37.0";

/// The Kubernetes releases every manifest and patched pod is checked against.
pub const RELEASES: &[&str] = &[
    "1.30.0", "1.31.0", "1.32.0", "1.33.0", "1.34.0", "1.35.0", "1.36.0", "1.37.0",
];

/// The build's `target/` directory: the test executable lives in `target/<profile>/deps/`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// The `kubernetes-validate` executable, installing it first when missing; `Err` says why
/// it cannot be had (no `python3 -m venv`, no package index).
pub fn validator() -> Result<PathBuf, String> {
    let venv = target_dir().join(format!("kubernetes-validate-{VERSION}"));
    let exe = venv.join("bin/kubernetes-validate");
    fs::create_dir_all(target_dir()).map_err(|e| format!("creating target/: {e}"))?;
    // Test executables run at the same time: one installs, the others wait for it.
    let lock = fs::File::create(target_dir().join("kubernetes-validate.lock"))
        .map_err(|e| format!("creating the install lock: {e}"))?;
    let _held = Flock::lock(lock, FlockArg::LockExclusive)
        .map_err(|(_, e)| format!("locking the install: {e}"))?;
    if exe.is_file() {
        return Ok(exe);
    }
    let _ = fs::remove_dir_all(&venv);
    let python = if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    let out = Command::new(python)
        .args(["-m", "venv"])
        .arg(&venv)
        .output()
        .map_err(|e| format!("running {python} -m venv: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{python} -m venv failed (scripts/deps.sh test installs python3-venv): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let out = Command::new(venv.join("bin/pip"))
        .args([
            "install",
            "--quiet",
            &format!("kubernetes-validate=={VERSION}"),
        ])
        .output()
        .map_err(|e| format!("running pip: {e}"))?;
    if !out.status.success() || !exe.is_file() {
        let _ = fs::remove_dir_all(&venv);
        return Err(format!(
            "pip install kubernetes-validate=={VERSION} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(exe)
}

/// Validates `files` with `--strict` against each of `releases`: `Ok` with the validator's
/// report when every document passes with no warning (an unknown kind or version is only a
/// warning to the validator, but a manifest a release does not know is a failure here),
/// `Err` with the report otherwise.
pub fn validate(files: &[&Path], releases: &[&str]) -> Result<String, String> {
    let exe = validator()?;
    let mut cmd = Command::new(exe);
    cmd.arg("--strict");
    for r in releases {
        cmd.args(["-k", r]);
    }
    cmd.args(files);
    let out = cmd
        .output()
        .map_err(|e| format!("running kubernetes-validate: {e}"))?;
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let warned = report
        .lines()
        .any(|l| l.starts_with("WARN") || l.starts_with("ERROR"));
    if out.status.success() && !warned && !report.trim().is_empty() {
        Ok(report)
    } else {
        Err(report)
    }
}
