//! Making a FUSE mount: open `/dev/fuse`, `mount(2)` with its descriptor, as libfuse does.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::mount::MsFlags;

/// Mounts a FUSE filesystem of type `fstype` (`fuse.NAME`) from `source` at `mountpoint`,
/// open to every user, with `flags` and the extra kernel `options`, and returns the
/// `/dev/fuse` descriptor that serves it. The kernel's INIT is the first request on it.
pub fn mount(
    mountpoint: &Path,
    source: &str,
    fstype: &str,
    flags: MsFlags,
    options: &[String],
) -> io::Result<OwnedFd> {
    let root_mode = std::fs::metadata(mountpoint)?.mode();
    let fuse: OwnedFd = OpenOptions::new()
        .read(true)
        .write(true)
        .open(crate::host::own::DEV_FUSE)?
        .into();
    let mut data = format!(
        "fd={},rootmode={root_mode:o},user_id={},group_id={},allow_other",
        fuse.as_raw_fd(),
        nix::unistd::getuid(),
        nix::unistd::getgid()
    );
    for o in options {
        data.push(',');
        data.push_str(o);
    }
    nix::mount::mount(
        Some(source),
        mountpoint,
        Some(fstype),
        flags,
        Some(data.as_str()),
    )?;
    Ok(fuse)
}
