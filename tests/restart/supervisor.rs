//! Two builds of the daemon with different versions, and its failpoints.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use crate::common::{BIN, TestDir, describe, skip};

/// The version of the package under test: what the original build reports.
pub(crate) const PKG_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The 25 bytes the binary holds once; a build's tag replaces the eight dashes.
const TAG_MARKER: &[u8] = b"@@lxcfs-rs-tag:--------@@";

/// `bytes` with the eight dashes of its one [`TAG_MARKER`] replaced by `tag`; an error unless
/// the marker occurs exactly once (a second copy could be the one the version is read from).
pub(crate) fn patch_tag(bytes: &[u8], tag: &str) -> Result<Vec<u8>, String> {
    if tag.len() != 8 || !tag.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!("tag {tag:?} is not 8 ASCII letters and digits"));
    }
    let at: Vec<usize> = bytes
        .windows(TAG_MARKER.len())
        .enumerate()
        .filter(|(_, w)| *w == TAG_MARKER)
        .map(|(i, _)| i)
        .collect();
    let [at] = at[..] else {
        return Err(format!(
            "the version marker {:?} occurs {} times, expected once",
            String::from_utf8_lossy(TAG_MARKER),
            at.len()
        ));
    };
    let mut out = bytes.to_vec();
    let dashes = at + TAG_MARKER.len() - 2 - 8;
    out[dashes..dashes + 8].copy_from_slice(tag.as_bytes());
    Ok(out)
}

/// A build of the daemon to run: the binary under test, or a copy of it.
pub(crate) struct Build {
    /// The executable.
    pub(crate) path: PathBuf,
    /// The version it reports.
    pub(crate) version: String,
    /// Holds a copy.
    _dir: Option<TestDir>,
}

impl Build {
    /// The binary under test.
    pub(crate) fn original() -> Build {
        Build {
            path: PathBuf::from(BIN),
            version: PKG_VERSION.to_string(),
            _dir: None,
        }
    }

    /// A copy of the binary under test tagged `tag` (see [`patch_tag`]): it reports
    /// `<version>+<tag>`. Panics when the binary has no single marker.
    pub(crate) fn tagged(tag: &str) -> Build {
        let bytes = fs::read(BIN).unwrap_or_else(|e| panic!("reading {BIN}: {e}"));
        let patched = patch_tag(&bytes, tag)
            .unwrap_or_else(|e| panic!("cannot make a second build of {BIN}: {e}"));
        Build::copy_of(patched, format!("{PKG_VERSION}+{tag}"))
    }

    /// An identical copy of the binary under test at another path (an "upgrade" that today's
    /// daemon can take, which has no version marker).
    pub(crate) fn identical_copy() -> Build {
        let bytes = fs::read(BIN).unwrap_or_else(|e| panic!("reading {BIN}: {e}"));
        Build::copy_of(bytes, PKG_VERSION.to_string())
    }

    fn copy_of(bytes: Vec<u8>, version: String) -> Build {
        let dir = TestDir::new();
        let path = dir.join("lxcfs-rs");
        fs::write(&path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod 755");
        Build {
            path,
            version,
            _dir: Some(dir),
        }
    }

    /// A command running this build.
    pub(crate) fn command(&self) -> Command {
        Command::new(&self.path)
    }

    /// The version `--version` prints (its last word).
    pub(crate) fn reported_version(&self) -> String {
        let out = self
            .command()
            .arg("--version")
            .output()
            .unwrap_or_else(|e| panic!("running {} --version: {e}", self.path.display()));
        assert!(out.status.success(), "--version: {}", describe(&out));
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .last()
            .unwrap_or_default()
            .to_string()
    }
}

/// Whether the daemon has failpoints: only debug builds read `LXCFS_RS_FAILPOINTS`, and this
/// test crate is built in the same profile as the binary. Skips (fails under CI) otherwise.
pub(crate) fn have_failpoints() -> bool {
    cfg!(debug_assertions)
        || skip("the daemon's failpoints exist in debug builds only (run without --release)")
}

/// The binary under test with failpoints `spec` (`hang:proc/loadavg`, `crash:proc/uptime`)
/// and no core dumps: a worker aborted by a failpoint must not leave a core file behind.
pub(crate) fn with_failpoints(spec: &str) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env("LXCFS_RS_FAILPOINTS", spec);
    // SAFETY: setrlimit is async-signal-safe and touches nothing of the parent.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0)
                .map_err(io::Error::from)
        });
    }
    cmd
}
