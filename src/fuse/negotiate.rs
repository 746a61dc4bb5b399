//! The INIT handshake: what the kernel offered, what lxcfs-rs answered.
//!
//! The answer is a pure function of the offer, so a successor that adopts the connection,
//! or answers a late INIT, agrees with what the kernel was told the first time.

use fuse_abi::linux::{
    FUSE_ASYNC_READ, FUSE_BIG_WRITES, FUSE_HAS_RESEND, FUSE_KERNEL_MINOR_VERSION,
    FUSE_KERNEL_VERSION, FUSE_MAX_PAGES, fuse_init_out,
};
use serde::{Deserialize, Serialize};

use super::request::InitIn;
use super::uring::abi::FUSE_OVER_IO_URING;

/// The oldest protocol minor served: 7.23 made `fuse_init_out` its present 64 bytes, and
/// every kernel since Linux 3.15 speaks it.
pub const MIN_MINOR: u32 = 23;
/// The largest write the kernel may send. lxcfs-rs is read-only, so this only sizes the
/// read buffers (the kernel refuses a read of `/dev/fuse` into a buffer smaller than a
/// header plus `max_write`).
const MAX_WRITE: u32 = 128 * 1024;
/// Pages per request: a READ may ask for up to 1 MiB, as under fuser before.
const MAX_PAGES: u16 = 256;
/// Capabilities lxcfs-rs asks for (those fuser 0.18 asked for, which the mount has always
/// had). Never `FUSE_REQUEST_TIMEOUT`: a daemon restart longer than the timeout would abort
/// the connection.
const WANTED: u64 = (FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_MAX_PAGES) as u64;

/// The handshake's outcome: the kernel's offer and the answer, which a successor adopting
/// the connection must keep using.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Negotiated {
    /// The kernel's protocol minor.
    pub kernel_minor: u32,
    /// Every capability the kernel offered (`flags | flags2 << 32`), `FUSE_HAS_RESEND` among
    /// them.
    pub kernel_flags: u64,
    /// The kernel's read-ahead limit, echoed.
    pub max_readahead: u32,
    /// The minor both sides speak: the lower of the kernel's and ours.
    pub minor: u32,
    /// The capabilities agreed.
    pub flags: u64,
    /// The largest write the kernel sends.
    pub max_write: u32,
    /// Pages per request.
    pub max_pages: u16,
}

/// Why an INIT was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NegotiateError {
    /// The kernel speaks a protocol too old to serve.
    #[error(
        "the kernel speaks FUSE {major}.{minor}; lxcfs-rs needs {FUSE_KERNEL_VERSION}.{MIN_MINOR} or later"
    )]
    TooOld {
        /// Kernel major.
        major: u32,
        /// Kernel minor.
        minor: u32,
    },
}

impl Negotiated {
    /// The answer to `offer`, asking for FUSE-over-io_uring when `io_uring` and the kernel
    /// offers it.
    pub fn from_offer(offer: InitIn, io_uring: bool) -> Result<Self, NegotiateError> {
        if offer.major != FUSE_KERNEL_VERSION || offer.minor < MIN_MINOR {
            return Err(NegotiateError::TooOld {
                major: offer.major,
                minor: offer.minor,
            });
        }
        Ok(Negotiated {
            kernel_minor: offer.minor,
            kernel_flags: offer.flags,
            max_readahead: offer.max_readahead,
            minor: offer.minor.min(FUSE_KERNEL_MINOR_VERSION),
            flags: offer.flags & (WANTED | if io_uring { FUSE_OVER_IO_URING } else { 0 }),
            max_write: MAX_WRITE,
            max_pages: MAX_PAGES,
        })
    }

    /// Whether requests come over io_uring once every queue has an entry.
    pub fn uses_io_uring(&self) -> bool {
        self.flags & FUSE_OVER_IO_URING != 0
    }

    /// Whether the kernel accepts `FUSE_NOTIFY_RESEND` (Linux 6.9 and later).
    pub fn has_resend(&self) -> bool {
        self.kernel_flags & FUSE_HAS_RESEND != 0
    }

    /// The `fuse_init_out` that says so.
    pub fn init_out(&self) -> fuse_init_out {
        fuse_init_out {
            major: FUSE_KERNEL_VERSION,
            minor: self.minor,
            max_readahead: self.max_readahead,
            flags: self.flags as u32,
            flags2: (self.flags >> 32) as u32,
            max_background: 0,
            congestion_threshold: 0,
            max_write: self.max_write,
            time_gran: 1,
            max_pages: self.max_pages,
            ..Default::default()
        }
    }

    /// Bytes a read of `/dev/fuse` needs room for: the kernel refuses (EINVAL) a buffer
    /// smaller than a header, a write's arguments and `max_write`.
    pub fn read_buffer_size(max_write: u32) -> usize {
        (max_write as usize + 4096).max(fuse_abi::linux::FUSE_MIN_READ_BUFFER as usize)
    }

    /// The read buffer size for a session that has not negotiated yet.
    pub fn default_read_buffer_size() -> usize {
        Self::read_buffer_size(MAX_WRITE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What kernel 6.18 offered on this project's machine (restart.md T0).
    const OFFER_618: InitIn = InitIn {
        major: 7,
        minor: 45,
        max_readahead: 131072,
        flags: 0x5fd73fffffb,
    };

    #[test]
    fn answers_kernel_6_18_with_our_minor_and_the_old_flags() {
        let n = Negotiated::from_offer(OFFER_618, false).unwrap();
        assert_eq!(n.minor, 40);
        assert_eq!(
            n.flags,
            u64::from(FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_MAX_PAGES)
        );
        assert!(n.has_resend());
        let out = n.init_out();
        assert_eq!((out.major, out.minor), (7, 40));
        assert_eq!(out.max_readahead, 131072);
        assert_eq!(out.max_pages, 256);
        assert_eq!(out.flags2, 0);
    }

    #[test]
    fn io_uring_is_asked_for_only_when_wanted_and_offered() {
        let offered = InitIn {
            flags: 0x7fd73fffffb,
            ..OFFER_618
        };
        assert!(
            Negotiated::from_offer(offered, true)
                .unwrap()
                .uses_io_uring()
        );
        assert_eq!(
            Negotiated::from_offer(offered, true)
                .unwrap()
                .init_out()
                .flags2,
            1 << 9
        );
        assert!(
            !Negotiated::from_offer(offered, false)
                .unwrap()
                .uses_io_uring()
        );
        assert!(
            !Negotiated::from_offer(OFFER_618, true)
                .unwrap()
                .uses_io_uring()
        );
    }

    #[test]
    fn an_older_kernel_minor_is_spoken_and_resend_is_absent() {
        let n = Negotiated::from_offer(
            InitIn {
                minor: 31,
                flags: 0x3fffffb,
                ..OFFER_618
            },
            false,
        )
        .unwrap();
        assert_eq!(n.minor, 31);
        assert!(!n.has_resend());
    }

    #[test]
    fn too_old_or_foreign_protocols_are_refused() {
        for (major, minor) in [(7, 22), (8, 45), (6, 40)] {
            assert_eq!(
                Negotiated::from_offer(
                    InitIn {
                        major,
                        minor,
                        ..OFFER_618
                    },
                    false
                ),
                Err(NegotiateError::TooOld { major, minor })
            );
        }
    }

    #[test]
    fn read_buffers_fit_a_write_and_the_kernel_minimum() {
        assert_eq!(Negotiated::read_buffer_size(128 * 1024), 135168);
        assert_eq!(Negotiated::read_buffer_size(0), 8192);
    }
}
