//! Which `struct sysinfo` a notified call wants, from the ABI the kernel reports for it
//! (`seccomp_data.arch`), never from our own build.

use crate::render::sysinfo::Layout;

/// `AUDIT_ARCH_X86_64`: x86_64 and x32 callers.
const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
/// `AUDIT_ARCH_I386`: 32-bit x86 callers (`int 0x80`, or an i386 program).
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
/// `AUDIT_ARCH_AARCH64`.
const AUDIT_ARCH_AARCH64: u32 = 0xC000_00B7;
/// `AUDIT_ARCH_ARM`: 32-bit arm callers on arm64.
const AUDIT_ARCH_ARM: u32 = 0x4000_0028;
/// The x32 ABI's bit in x86_64 system call numbers.
const X32_SYSCALL_BIT: i32 = 0x4000_0000;

/// The layout to write for a call of `nr` under `arch`, or `None` when it is no `sysinfo`
/// we know how to answer (then the kernel answers it).
///
/// x86_64 `sysinfo` is 99 (x32: 99 with the x32 bit, same 64-bit struct); i386 and arm
/// `sysinfo` are 116 (the 32-bit `compat_sysinfo`); aarch64's is 179.
pub fn layout(arch: u32, nr: i32) -> Option<Layout> {
    match (arch, nr) {
        (AUDIT_ARCH_X86_64, 99) => Some(Layout::Native),
        (AUDIT_ARCH_X86_64, n) if n == (99 | X32_SYSCALL_BIT) => Some(Layout::Native),
        (AUDIT_ARCH_I386, 116) | (AUDIT_ARCH_ARM, 116) => Some(Layout::Compat),
        (AUDIT_ARCH_AARCH64, 179) => Some(Layout::Native),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_abi_gets_its_struct_and_anything_else_none() {
        assert_eq!(layout(AUDIT_ARCH_X86_64, 99), Some(Layout::Native));
        assert_eq!(layout(AUDIT_ARCH_X86_64, 0x4000_0063), Some(Layout::Native));
        assert_eq!(layout(AUDIT_ARCH_I386, 116), Some(Layout::Compat));
        assert_eq!(layout(AUDIT_ARCH_ARM, 116), Some(Layout::Compat));
        assert_eq!(layout(AUDIT_ARCH_AARCH64, 179), Some(Layout::Native));
        // Another call (a profile notifying more than sysinfo) or an unknown ABI.
        assert_eq!(layout(AUDIT_ARCH_X86_64, 116), None);
        assert_eq!(layout(AUDIT_ARCH_I386, 99), None);
        assert_eq!(layout(0xC000_00F3, 179), None);
    }
}
