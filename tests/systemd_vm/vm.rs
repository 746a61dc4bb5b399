//! Booting the systemd VM once for every test, and what it sent back.

use std::sync::OnceLock;
use std::time::Duration;

use crate::common::BIN;
use crate::common::qemu_vm::{Booted, Frames, VmScript, boot_once, last_lines};
use crate::summary::Summary;

/// scripts/sysvm/vm. Preparing the first time runs debootstrap (about a minute here) besides
/// fetching the kernel and qemu; later runs reuse them and take seconds. The boot: systemd,
/// the install and the four steps take 60-80 s under TCG on the development machines (the
/// payload stops itself at 170 s, and the VM with it).
const SYSVM: VmScript = VmScript {
    name: "sysvm",
    what: "the systemd VM",
    script: "scripts/sysvm/vm",
    cache_var: "SYSVM_CACHE",
    keep_var: "SYSVM_KEEP",
    prepare_timeout: Duration::from_secs(480),
    boot_timeout: Duration::from_secs(240),
};

/// What the VM sent back.
pub(crate) struct Vm {
    files: Frames,
    /// The payload's summary.
    pub(crate) summary: Summary,
}

/// The one boot all tests share: its output, or `None` (after `skip`) when the pieces
/// cannot be had here. Panics, in every test, when the boot itself failed.
pub(crate) fn vm() -> Option<&'static Vm> {
    static VM: OnceLock<Booted<Vm>> = OnceLock::new();
    boot_once(&VM, boot_vm)
}

/// Boots the VM. Outer `Err`: a failure; inner `Err`: a reason to skip.
fn boot_vm() -> Booted<Vm> {
    let (files, times) = match SYSVM.run(BIN)? {
        Ok(done) => done,
        Err(skip_reason) => return Ok(Err(skip_reason)),
    };
    let text = |name: &str| String::from_utf8_lossy(files.get(name).map_or(&[][..], |b| b));
    let summary = Summary::parse(&text("summary"))?;
    // The measurements, for whoever runs the test with --nocapture.
    eprintln!(
        "sysvm: prepared in {:.1} s; booted, ran the payload and powered off in {:.1} s\n{}\n--- boot ---\n{}",
        times.prepare.as_secs_f64(),
        times.boot.as_secs_f64(),
        text("summary").trim_end(),
        text("boot").trim_end()
    );
    Ok(Ok(Vm { files, summary }))
}

impl Vm {
    /// The text of file `name` the payload sent (empty when it sent none).
    pub(crate) fn text(&self, name: &str) -> String {
        String::from_utf8_lossy(self.files.get(name).map_or(&[][..], |b| b)).into_owned()
    }

    /// What a failure message about `step` shows: its summary lines, the readers' first
    /// failures in it, and the end of the daemon's journal.
    pub(crate) fn context(&self, step: &str) -> String {
        let prefix = format!("{step} ");
        let failures: Vec<&str> = Vec::from_iter(self.text_lines("failures", &prefix));
        format!(
            "--- the step's summary ---\n{}\n--- what the step's command said, and the readers' first failures (step reader START_US DURATION_US FILE RESULT BYTES) ---\n{}\n--- journalctl -u lxcfs-rs (end) ---\n{}",
            self.summary.lines_of(step),
            failures.join("\n"),
            last_lines(&self.text("journal"), 40)
        )
    }

    /// The lines of file `name` that start with `prefix`.
    fn text_lines<'a>(&'a self, name: &str, prefix: &'a str) -> impl Iterator<Item = &'a str> {
        self.files
            .get(name)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or_default()
            .lines()
            .filter(move |l| l.starts_with(prefix))
    }
}
