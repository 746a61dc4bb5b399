//! The seccomp user-notification descriptor a runtime hands us: receive a notification,
//! check it is still pending, answer it. Three ioctls (`seccomp_unotify(2)`).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::libc;

/// One notified system call, as the kernel describes it.
#[derive(Debug, Clone, Copy)]
pub struct Call {
    /// The notification's id, valid until answered or until the caller is gone.
    pub id: u64,
    /// The calling thread as our pid namespace numbers it (0: not visible to us).
    pub tid: u32,
    /// `AUDIT_ARCH_*` of the call (the caller's ABI).
    pub arch: u32,
    /// The system call number in that ABI.
    pub nr: i32,
    /// Its arguments.
    pub args: [u64; 6],
}

/// How a notification is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The call returns 0, its result written by us.
    Done,
    /// The call fails with this errno.
    Errno(i32),
    /// The kernel runs the call itself (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`): the caller gets
    /// the kernel's own answer, never garbage.
    Continue,
}

/// A seccomp listener descriptor.
#[derive(Debug)]
pub struct Listener(OwnedFd);

impl Listener {
    /// Wraps a descriptor received from a runtime.
    pub fn new(fd: OwnedFd) -> Listener {
        Listener(fd)
    }

    /// Waits for the next notification; `Ok(None)` once no task can raise one any more
    /// (every task of the filter has exited: `POLLHUP`).
    pub fn next(&self) -> io::Result<Option<Call>> {
        loop {
            let mut pfd = libc::pollfd {
                fd: self.0.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut pfd, 1, -1) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(e);
            }
            if pfd.revents & libc::POLLIN == 0 {
                if pfd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
                    return Ok(None);
                }
                continue;
            }
            // The kernel insists on a zeroed buffer.
            // SAFETY: a plain C struct, all zeros is valid.
            let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
            // SAFETY: the ioctl writes one seccomp_notif into `req`.
            let r = unsafe {
                libc::ioctl(
                    self.0.as_raw_fd(),
                    libc::SECCOMP_IOCTL_NOTIF_RECV as _,
                    &mut req,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                // ENOENT: the caller was killed or interrupted before we took it; the next
                // notification is another call.
                if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EINTR)) {
                    continue;
                }
                return Err(e);
            }
            return Ok(Some(Call {
                id: req.id,
                tid: req.pid,
                arch: req.data.arch,
                nr: req.data.nr,
                args: req.data.args,
            }));
        }
    }

    /// Whether notification `id` is still pending: its caller has not gone, so what we opened
    /// for it (its `/proc/<tid>/mem`) is really its own.
    pub fn still_pending(&self, id: u64) -> bool {
        let mut id = id;
        // SAFETY: the ioctl reads one u64.
        unsafe {
            libc::ioctl(
                self.0.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_ID_VALID as _,
                &mut id,
            ) == 0
        }
    }

    /// Answers notification `id`. ENOENT (the caller is gone, or a signal restarted its call
    /// as a new notification) is not an error: nobody waits for this answer any more.
    pub fn answer(&self, id: u64, answer: Answer) -> io::Result<()> {
        let (error, flags) = match answer {
            Answer::Done => (0, 0),
            Answer::Errno(e) => (-e, 0),
            Answer::Continue => (0, libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32),
        };
        let mut resp = libc::seccomp_notif_resp {
            id,
            val: 0,
            error,
            flags,
        };
        // SAFETY: the ioctl reads one seccomp_notif_resp.
        let r = unsafe {
            libc::ioctl(
                self.0.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SEND as _,
                &mut resp,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ENOENT) {
                return Err(e);
            }
        }
        Ok(())
    }
}
