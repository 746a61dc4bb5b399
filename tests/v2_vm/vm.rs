//! Booting the VM once for every test, and what it sent back.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::common::{BIN, TestDir, skip};

/// Fetching and unpacking the kernel and qemu the first time, and building the initramfs.
const PREPARE_TIMEOUT: Duration = Duration::from_secs(240);
/// One boot, the whole payload and power-off; 35-45 s under TCG on the development machines,
/// some 8 s of it the restart scenario (restart.rs).
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);

/// What the VM sent back: the payload's files by name.
pub(crate) struct Vm {
    files: BTreeMap<String, Vec<u8>>,
}

/// The one boot all tests share: its output, or `None` (after [`skip`]) when the pieces
/// cannot be had here. Panics, in every test, when the boot itself failed.
pub(crate) fn vm() -> Option<&'static Vm> {
    static VM: OnceLock<Result<Result<Vm, String>, String>> = OnceLock::new();
    match VM.get_or_init(boot_vm) {
        Ok(Ok(vm)) => Some(vm),
        Ok(Err(skip_reason)) => {
            skip(skip_reason);
            None
        }
        Err(failure) => panic!("{failure}"),
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/v2vm/vm")
}

/// Prepares and boots the VM. Outer `Err`: a failure; inner `Err`: a reason to skip.
/// Never panics, so that the `OnceLock` holds the outcome and no test boots a second time.
fn boot_vm() -> Result<Result<Vm, String>, String> {
    if std::env::consts::ARCH != "x86_64" {
        return Ok(Err(format!(
            "the test VM is x86_64 and runs the binary under test, which is {}",
            std::env::consts::ARCH
        )));
    }
    // The kernel and qemu are kept between runs; V2VM_CACHE=DIR puts them elsewhere (one
    // cache for several checkouts, or an empty one to see the first run).
    let cache = std::env::var_os("V2VM_CACHE").map_or_else(
        || Path::new(env!("CARGO_TARGET_TMPDIR")).join("v2vm"),
        PathBuf::from,
    );
    let work = TestDir::new();
    let started = Instant::now();

    let mut prepare = Command::new(script());
    prepare
        .arg("prepare")
        .arg(&cache)
        .arg(BIN)
        .arg(work.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that a timeout can stop apt-get and dpkg-deb with it.
        .process_group(0);
    let child = prepare
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", script().display()))?;
    let out = wait_output(child, PREPARE_TIMEOUT, true).map_err(|stderr| {
        format!(
            "{} prepare did not finish within {PREPARE_TIMEOUT:?} (killed it); stderr:\n{stderr}",
            script().display()
        )
    })?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.code() == Some(77) {
        let reason = stderr
            .lines()
            .find_map(|l| l.strip_prefix("v2vm: unavailable: "))
            .unwrap_or(stderr.trim());
        return Ok(Err(format!(
            "the pure cgroup v2 VM cannot be set up here: {reason}"
        )));
    }
    if !out.status.success() {
        return Err(format!(
            "{} prepare failed ({}):\n{stderr}",
            script().display(),
            out.status
        ));
    }
    let prepared = started.elapsed();

    // `vm boot` execs qemu: the child's pid is qemu's.
    let qemu = Command::new(script())
        .arg("boot")
        .arg(work.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {} boot: {e}", script().display()))?;
    let console = work.join("console.log");
    let tail = |why: String| {
        keep_logs(work.path());
        format!(
            "{why}\n--- last lines of the VM's console ({}) ---\n{}",
            console.display(),
            last_lines(&fs::read_to_string(&console).unwrap_or_default(), 60)
        )
    };
    let out = wait_output(qemu, BOOT_TIMEOUT, false).map_err(|stderr| {
        tail(format!(
            "the VM did not power off within {BOOT_TIMEOUT:?} (killed qemu); qemu's stderr:\n{stderr}"
        ))
    })?;
    if !out.status.success() {
        return Err(tail(format!(
            "qemu failed ({}); stderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    keep_logs(work.path());
    let payload = fs::read(work.join("payload.log")).unwrap_or_default();
    let files = parse_frames(&payload).map_err(tail)?;
    let kernel = files
        .get("uname")
        .map(|u| String::from_utf8_lossy(u).trim().to_string());
    eprintln!(
        "v2vm: prepared in {:.1} s; booted kernel {}, ran the payload and powered off in {:.1} s",
        prepared.as_secs_f64(),
        kernel.as_deref().unwrap_or("?"),
        (started.elapsed() - prepared).as_secs_f64()
    );
    Ok(Ok(Vm { files }))
}

/// With V2VM_KEEP=DIR, copies both serial logs there: the work directory goes with the test.
fn keep_logs(work: &Path) {
    if let Some(keep) = std::env::var_os("V2VM_KEEP") {
        let keep = PathBuf::from(keep);
        let _ = fs::create_dir_all(&keep);
        for f in ["console.log", "payload.log"] {
            let _ = fs::copy(work.join(f), keep.join(f));
        }
    }
}

/// Waits for `child`, reading its output; on timeout kills it (its process group when
/// `group`) and returns its stderr so far as the error.
fn wait_output(
    child: Child,
    timeout: Duration,
    group: bool,
) -> Result<std::process::Output, String> {
    let pid = child.id() as i32;
    let waiter = std::thread::spawn(move || child.wait_with_output());
    let end = Instant::now() + timeout;
    while !waiter.is_finished() {
        if Instant::now() > end {
            let target = if group { -pid } else { pid };
            let _ = kill(Pid::from_raw(target), Signal::SIGKILL);
            let out = waiter.join().ok().and_then(Result::ok);
            return Err(out.map_or_else(String::new, |o| {
                String::from_utf8_lossy(&o.stderr).into_owned()
            }));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    waiter
        .join()
        .map_err(|_| "the waiting thread panicked".to_string())?
        .map_err(|e| format!("waiting for the child: {e}"))
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Parses `=== FILE <name> <len>\n<bytes>\n` frames up to `=== END rc=<n>`, which must say 0.
fn parse_frames(bytes: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut files = BTreeMap::new();
    let mut rest = bytes;
    loop {
        let nl = rest.iter().position(|&b| b == b'\n').ok_or_else(|| {
            format!(
                "the payload's output ends without `=== END` after {} files (the VM stopped early?)",
                files.len()
            )
        })?;
        let header = String::from_utf8_lossy(&rest[..nl]).into_owned();
        rest = &rest[nl + 1..];
        if let Some(rc) = header.strip_prefix("=== END rc=") {
            return if rc == "0" {
                Ok(files)
            } else {
                Err(format!("the payload failed: {header}"))
            };
        }
        let mut words = header.split(' ');
        let (Some("==="), Some("FILE"), Some(name), Some(len), None) = (
            words.next(),
            words.next(),
            words.next(),
            words.next(),
            words.next(),
        ) else {
            return Err(format!(
                "unexpected line in the payload's output: {header:?}"
            ));
        };
        let len: usize = len
            .parse()
            .map_err(|e| format!("bad length in {header:?}: {e}"))?;
        if rest.len() < len + 1 || rest[len] != b'\n' {
            return Err(format!(
                "frame {header:?} is cut short or not followed by a newline"
            ));
        }
        files.insert(name.to_string(), rest[..len].to_vec());
        rest = &rest[len + 1..];
    }
}

impl Vm {
    /// The text of `name`, or a panic naming what dd said when it could not be read.
    pub(crate) fn file(&self, name: &str) -> String {
        match self.files.get(name) {
            Some(b) => String::from_utf8(b.clone())
                .unwrap_or_else(|e| panic!("{name} from the VM is not UTF-8: {e}")),
            None => match self.files.get(&format!("{name}.err")) {
                Some(err) => panic!(
                    "reading {name} in the VM failed: {}",
                    String::from_utf8_lossy(err)
                ),
                None => panic!(
                    "the VM sent no {name}; it sent: {:?}",
                    self.files.keys().collect::<Vec<_>>()
                ),
            },
        }
    }

    /// The text of `name`, or `None` when the VM sent no such file.
    pub(crate) fn file_if_sent(&self, name: &str) -> Option<String> {
        self.files
            .get(name)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }

    /// `name` parsed as one number.
    pub(crate) fn number(&self, name: &str) -> u64 {
        let t = self.file(name);
        t.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{name} from the VM is not a number ({e}): {t:?}"))
    }
}
