//! Booting the VM once for every test, and what it sent back.

use std::sync::OnceLock;
use std::time::Duration;

use crate::common::BIN;
use crate::common::qemu_vm::{Booted, Frames, VmScript, boot_once};

/// scripts/v2vm/vm. Booting, the whole payload and power-off take 35-45 s under TCG on the
/// development machines, some 8 s of it the restart scenario (restart.rs).
const V2VM: VmScript = VmScript {
    name: "v2vm",
    what: "the pure cgroup v2 VM",
    script: "scripts/v2vm/vm",
    cache_var: "V2VM_CACHE",
    keep_var: "V2VM_KEEP",
    prepare_timeout: Duration::from_secs(240),
    boot_timeout: Duration::from_secs(180),
};

/// What the VM sent back: the payload's files by name.
pub(crate) struct Vm {
    files: Frames,
}

/// The one boot all tests share: its output, or `None` (after `skip`) when the pieces
/// cannot be had here. Panics, in every test, when the boot itself failed.
pub(crate) fn vm() -> Option<&'static Vm> {
    static VM: OnceLock<Booted<Vm>> = OnceLock::new();
    boot_once(&VM, boot_vm)
}

/// Boots the VM. Outer `Err`: a failure; inner `Err`: a reason to skip.
fn boot_vm() -> Booted<Vm> {
    let (files, times) = match V2VM.run(BIN)? {
        Ok(done) => done,
        Err(skip_reason) => return Ok(Err(skip_reason)),
    };
    let kernel = files
        .get("uname")
        .map(|u| String::from_utf8_lossy(u).trim().to_string());
    eprintln!(
        "v2vm: prepared in {:.1} s; booted kernel {}, ran the payload and powered off in {:.1} s",
        times.prepare.as_secs_f64(),
        kernel.as_deref().unwrap_or("?"),
        times.boot.as_secs_f64()
    );
    Ok(Ok(Vm { files }))
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
