//! The ring entries' buffers in a shared file, mapped at the same address by every worker of
//! a mount, so that a worker can answer what its predecessor left in an entry.
//!
//! The kernel (6.18) keeps, for each registered entry, the *addresses* of its two buffers and
//! finds a request to commit by its `unique` alone, whoever commits it. It never resends what
//! sat in an entry of a worker that died. A successor that maps the same file at the same
//! address sees the request the kernel copied there (header, first argument, payload) and
//! can serve it and commit it from its own ring; the kernel then re-arms that entry with the
//! successor's command, and the entry is the successor's from then on.
//!
//! Layout from `offset` in the file: a [`Head`] page saying where and how the slots were
//! laid out, then [`SLOTS`] slots per queue, each a page for the header (the kernel's 288
//! bytes, then the queue's note of what it answered) and the payload buffer, page aligned.

use std::io;
use std::num::NonZeroUsize;
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;

use log::{debug, warn};
use nix::fcntl::{FallocateFlags, fallocate};
use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::queue::{HEADER_SPAN, NOTES_END, payload_in_use, unanswered};

/// Slots per queue: twice the entries a worker registers, so that a successor has fresh
/// slots beside the ones it adopts.
pub const SLOTS: usize = 2 * super::queue::ENTRIES;
/// The page at the start holding the [`Head`].
const HEAD_SPAN: usize = 4096;
/// Marks a laid-out arena; the last byte is the layout version.
const MAGIC: u64 = u64::from_le_bytes(*b"lxrsrng1");
/// Where the first worker asks to map the arena: far below where the kernel puts
/// libraries and thread stacks, so that a later worker (a new process, laid out afresh)
/// finds the range free too. Where it is taken or beyond the address space, the kernel
/// picks.
const ADDRESS_HINT: usize = 0x2000_0000_0000;

/// What the first page says.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
struct Head {
    magic: u64,
    queues: u64,
    slots: u64,
    payload: u64,
    /// Where the worker that laid it out mapped it, and every later one must.
    address: u64,
}

/// The arena of one mount, mapped into this process.
pub struct Arena {
    base: NonNull<u8>,
    len: NonZeroUsize,
    payload: usize,
    inherited: bool,
}

// SAFETY: the mapping is plain shared memory that lives as long as the `Arena`; each queue
// thread touches only its own queue's slots (`slot`), which `Queue` keeps to itself.
unsafe impl Send for Arena {}
// SAFETY: as above.
unsafe impl Sync for Arena {}

/// The two buffers of one slot.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    /// The header buffer (`fuse_uring_req_header`), page aligned.
    pub header: NonNull<u8>,
    /// The payload buffer, page aligned, of the arena's payload size.
    pub payload: NonNull<u8>,
}

impl Arena {
    /// Maps the arena of `fd` at `offset` for `queues` queues of payloads of `payload`
    /// bytes. Where a predecessor laid out the same arena, it is mapped at the
    /// predecessor's address and [`inherited`](Self::inherited); otherwise (the first
    /// worker, another layout, or that address taken here) it is laid out afresh with every
    /// slot empty.
    pub fn open(
        fd: BorrowedFd<'_>,
        offset: u64,
        queues: usize,
        payload: usize,
    ) -> io::Result<Self> {
        let stride = HEADER_SPAN + payload.next_multiple_of(4096);
        let len = queues
            .checked_mul(SLOTS)
            .and_then(|n| n.checked_mul(stride))
            .and_then(|n| n.checked_add(HEAD_SPAN))
            .and_then(NonZeroUsize::new)
            .ok_or_else(|| io::Error::other("the io_uring arena's size overflows"))?;
        let mut want = Head {
            magic: MAGIC,
            queues: queues as u64,
            slots: SLOTS as u64,
            payload: payload as u64,
            address: 0,
        };
        let mut found = [0u8; std::mem::size_of::<Head>()];
        let n = nix::sys::uio::pread(fd, &mut found, offset as i64)?;
        let found = Head::read_from_bytes(&found).unwrap_or_default();
        if n == found.as_bytes().len()
            && found.address != 0
            && found
                == (Head {
                    address: found.address,
                    ..want
                })
        {
            match map(fd, offset, len, Some(found.address as usize), true) {
                Ok(base) => {
                    debug!("io_uring arena mapped again at {:#x}", found.address);
                    return Ok(Arena {
                        base,
                        len,
                        payload,
                        inherited: true,
                    });
                }
                Err(e) => warn!(
                    "cannot map the io_uring entries' buffers at {:#x} again ({e}): requests the \
                     previous worker left in its entries cannot be answered",
                    found.address
                ),
            }
        }
        let end = offset as i64 + len.get() as i64;
        if nix::sys::stat::fstat(fd)?.st_size < end {
            nix::unistd::ftruncate(fd, end)?;
        }
        // Empty every slot without touching its pages: no slot holds a request then.
        fallocate(
            fd,
            FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE,
            offset as i64,
            len.get() as i64,
        )?;
        let base = match map(fd, offset, len, Some(ADDRESS_HINT), true) {
            Ok(base) => base,
            Err(e) => {
                debug!("io_uring arena not at {ADDRESS_HINT:#x} ({e}); the kernel picks");
                map(fd, offset, len, None, false)?
            }
        };
        want.address = base.as_ptr() as u64;
        nix::sys::uio::pwrite(fd, want.as_bytes(), offset as i64)?;
        Ok(Arena {
            base,
            len,
            payload,
            inherited: false,
        })
    }

    /// Whether the slots may hold requests a predecessor left unanswered.
    pub fn inherited(&self) -> bool {
        self.inherited
    }

    /// The payload size every slot has.
    pub fn payload(&self) -> usize {
        self.payload
    }

    /// Slot `index` (below [`SLOTS`]) of queue `qid`; `None` beyond the arena.
    pub fn slot(&self, qid: usize, index: usize) -> Option<Slot> {
        if index >= SLOTS {
            return None;
        }
        let stride = HEADER_SPAN + self.payload.next_multiple_of(4096);
        let at = qid
            .checked_mul(SLOTS)?
            .checked_add(index)?
            .checked_mul(stride)?
            .checked_add(HEAD_SPAN)?;
        if at + stride > self.len.get() {
            return None;
        }
        // SAFETY: `at + stride` is within the mapping, checked above.
        let header = unsafe { self.base.add(at) };
        // SAFETY: as above.
        let payload = unsafe { self.base.add(at + HEADER_SPAN) };
        Some(Slot { header, payload })
    }
}

/// A slot holding a request nobody answered, as read from the arena's file: what a
/// daemon taking the mount over puts back into its own (see [`left_in`], [`put_back`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Left {
    /// The slot's index, counted over all queues.
    pub slot: usize,
    /// Its header buffer up to the end of the notes.
    pub header: Vec<u8>,
    /// Its payload bytes in use.
    pub payload: Vec<u8>,
}

/// Where and how an arena was laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Ring queues (possible CPUs).
    pub queues: usize,
    /// Payload bytes of each slot.
    pub payload: usize,
    /// Where the workers mapped it.
    pub address: u64,
}

/// The arena's layout in `fd` at `offset` and its slots holding requests nobody answered,
/// read without mapping it (the supervisor hands them to the daemon taking the mount over,
/// whose own board would otherwise start empty); `None` where no arena was laid out.
pub fn left_in(fd: BorrowedFd<'_>, offset: u64) -> io::Result<Option<(Layout, Vec<Left>)>> {
    let mut head = [0u8; std::mem::size_of::<Head>()];
    let n = nix::sys::uio::pread(fd, &mut head, offset as i64)?;
    let head = Head::read_from_bytes(&head).unwrap_or_default();
    if n != std::mem::size_of::<Head>() || head.magic != MAGIC || head.slots != SLOTS as u64 {
        return Ok(None);
    }
    let layout = Layout {
        queues: head.queues as usize,
        payload: head.payload as usize,
        address: head.address,
    };
    let stride = HEADER_SPAN + layout.payload.next_multiple_of(4096);
    let mut left = Vec::new();
    for slot in 0..layout.queues * SLOTS {
        let at = offset + (HEAD_SPAN + slot * stride) as u64;
        let mut header = vec![0u8; NOTES_END];
        if nix::sys::uio::pread(fd, &mut header, at as i64)? != NOTES_END
            || unanswered(&header).is_none()
        {
            continue;
        }
        let mut payload = vec![0u8; payload_in_use(&header).min(layout.payload)];
        let n = nix::sys::uio::pread(fd, &mut payload, (at + HEADER_SPAN as u64) as i64)?;
        payload.truncate(n);
        left.push(Left {
            slot,
            header,
            payload,
        });
    }
    Ok(Some((layout, left)))
}

/// Lays out the arena of `fd` at `offset` as `layout` says, every slot empty but those of
/// `left`, so that this daemon's first worker maps it at the predecessor's address and
/// answers what the predecessor's worker left.
pub fn put_back(fd: BorrowedFd<'_>, offset: u64, layout: Layout, left: &[Left]) -> io::Result<()> {
    let stride = HEADER_SPAN + layout.payload.next_multiple_of(4096);
    let len = layout
        .queues
        .checked_mul(SLOTS * stride)
        .and_then(|n| n.checked_add(HEAD_SPAN))
        .ok_or_else(|| io::Error::other("the io_uring arena's size overflows"))?;
    let end = offset as i64 + len as i64;
    if nix::sys::stat::fstat(fd)?.st_size < end {
        nix::unistd::ftruncate(fd, end)?;
    }
    fallocate(
        fd,
        FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE,
        offset as i64,
        len as i64,
    )?;
    for l in left {
        if l.slot >= layout.queues * SLOTS
            || l.header.len() > HEADER_SPAN
            || l.payload.len() > layout.payload
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("slot {} handed over does not fit the arena", l.slot),
            ));
        }
        let at = offset + (HEAD_SPAN + l.slot * stride) as u64;
        nix::sys::uio::pwrite(fd, &l.header, at as i64)?;
        nix::sys::uio::pwrite(fd, &l.payload, (at + HEADER_SPAN as u64) as i64)?;
    }
    let head = Head {
        magic: MAGIC,
        queues: layout.queues as u64,
        slots: SLOTS as u64,
        payload: layout.payload as u64,
        address: layout.address,
    };
    nix::sys::uio::pwrite(fd, head.as_bytes(), offset as i64)?;
    Ok(())
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: our own mapping, of this length; no slot outlives the arena (queues hold an
        // `Arc` of it).
        let _ = unsafe { munmap(self.base.cast(), self.len.get()) };
    }
}

/// Maps `len` bytes of `fd` from `offset`, shared, at `address` (and nowhere else when
/// `exact`).
fn map(
    fd: BorrowedFd<'_>,
    offset: u64,
    len: NonZeroUsize,
    address: Option<usize>,
    exact: bool,
) -> io::Result<NonNull<u8>> {
    let mut flags = MapFlags::MAP_SHARED;
    if exact {
        flags |= MapFlags::MAP_FIXED_NOREPLACE;
    }
    // SAFETY: a new shared mapping; MAP_FIXED_NOREPLACE never replaces an existing one.
    let base = unsafe {
        mmap(
            address.and_then(NonZeroUsize::new),
            len,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            flags,
            fd,
            offset as i64,
        )
    }?;
    // Kernels before 4.17 take MAP_FIXED_NOREPLACE as a mere hint.
    if exact && address.is_some_and(|a| a != base.as_ptr() as usize) {
        // SAFETY: the mapping just made.
        let _ = unsafe { munmap(base, len.get()) };
        return Err(io::Error::from_raw_os_error(nix::libc::EEXIST));
    }
    Ok(base.cast())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn memfd() -> std::os::fd::OwnedFd {
        nix::sys::memfd::memfd_create("arena-test", nix::sys::memfd::MFdFlags::MFD_CLOEXEC).unwrap()
    }

    #[test]
    fn a_second_opening_finds_the_slots_at_the_same_address() {
        let fd = memfd();
        let first = Arena::open(fd.as_fd(), 8192, 2, 8192).unwrap();
        assert!(!first.inherited());
        let slot = first.slot(1, 3).unwrap();
        // SAFETY: a slot's header page is ours to write in a test.
        unsafe { slot.header.as_ptr().write(0x5a) };
        let address = slot.header.as_ptr() as usize;
        drop(first);
        let again = Arena::open(fd.as_fd(), 8192, 2, 8192).unwrap();
        assert!(again.inherited());
        let slot = again.slot(1, 3).unwrap();
        assert_eq!(slot.header.as_ptr() as usize, address, "same address");
        // SAFETY: as above.
        assert_eq!(unsafe { slot.header.as_ptr().read() }, 0x5a, "same bytes");
        assert!(again.slot(2, 0).is_none() && again.slot(0, SLOTS).is_none());
    }

    #[test]
    fn another_layout_starts_empty_and_an_arena_in_use_is_not_mapped_twice() {
        let fd = memfd();
        let first = Arena::open(fd.as_fd(), 0, 1, 8192).unwrap();
        let slot = first.slot(0, 0).unwrap();
        // SAFETY: as above.
        unsafe { slot.header.as_ptr().write(1) };
        // The address is taken (the first is still mapped): laid out afresh elsewhere.
        let second = Arena::open(fd.as_fd(), 0, 1, 8192).unwrap();
        assert!(!second.inherited());
        assert_ne!(second.slot(0, 0).unwrap().header, slot.header);
        drop(second);
        drop(first);
        // Another payload size is another layout: nothing of the old one is trusted.
        let third = Arena::open(fd.as_fd(), 0, 1, 16384).unwrap();
        assert!(!third.inherited());
        // SAFETY: as above.
        assert_eq!(
            unsafe { third.slot(0, 0).unwrap().header.as_ptr().read() },
            0
        );
    }
}
