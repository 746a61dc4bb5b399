//! The board: a small shared-memory file (a memfd) that the supervisor creates and keeps,
//! and each worker maps. It holds what must outlive a worker: the session state (the INIT
//! handshake, so a successor never waits for an INIT that will not come again), the last
//! handle generation, whether the kernel resends, the SIGUSR2 switch, the counters `status`
//! shows, and the journal of requests in flight that tells a crash's poison pill. It travels
//! with the `/dev/fuse` descriptors (to a re-executed supervisor, to systemd's fd store), so a
//! restarted service finds it all again.
//!
//! Layout: the [`Slots`] struct at offset 0, mapped shared; the state blob (JSON) after
//! [`STATE_AT`], read and written as file bytes.

use std::io;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};

use crate::fuse::RESENT;
use crate::stats::Counters;

/// Serving threads a worker may run (one journal slot each).
pub const MAX_THREADS: usize = 256;
/// Poison pills remembered.
const POISON: usize = 64;
/// Marks a board; the last byte is the layout version.
const MAGIC: u64 = u64::from_le_bytes(*b"lxcfsrs1");
/// Where the state blob starts: past the slots, page aligned.
pub const STATE_AT: u64 = 64 * 1024;
/// The largest state blob kept.
const STATE_MAX: usize = 60 * 1024;
/// Where the io_uring entries' buffers start (`fuse::uring::arena`): past the state blob,
/// so that a worker finds what its predecessor left in them.
pub const RING_AT: u64 = 1024 * 1024;

/// What `resend` holds.
pub mod resend {
    /// Not yet known (no worker has started).
    pub const UNKNOWN: u32 = 0;
    /// The kernel requeues requests a dead worker held (`FUSE_NOTIFY_RESEND`, Linux 6.9).
    pub const YES: u32 = 1;
    /// It cannot, or `--no-resend` said not to use it.
    pub const NO: u32 = 2;
}

/// The shared fields. Plain atomics, `repr(C)`: every process that maps the board sees the
/// same bytes.
#[repr(C)]
pub struct Slots {
    magic: AtomicU64,
    /// The handle generation the last worker served under.
    pub generation: AtomicU32,
    /// See [`resend`].
    pub resend: AtomicU32,
    /// 1: files rendered for their readers; 0: the host's own (SIGUSR2).
    pub virtualized: AtomicU32,
    /// The serving worker's pid (0 between workers).
    pub worker_pid: AtomicU32,
    /// Bytes of the state blob at [`STATE_AT`].
    pub state_len: AtomicU32,
    _pad: AtomicU32,
    /// Workers that died and were replaced.
    pub restarts: AtomicU64,
    /// Requests answered: the watchdog's sign of progress.
    pub replies: AtomicU64,
    /// What `status` reports.
    pub counters: Counters,
    /// Per serving thread: the `unique` of the request it is serving, 0 when idle.
    pub in_flight: [AtomicU64; MAX_THREADS],
    /// The base uniques that were in flight at the last crash.
    last_crash: [AtomicU64; MAX_THREADS],
    /// Base uniques in flight at two crashes in a row: answered EIO when they come back.
    poison: [AtomicU64; POISON],
    poison_next: AtomicU64,
    /// Snapshot lengths by handle (see [`crate::fs::SnapshotLedger`]), direct-mapped by the
    /// handle's counter. Appended last: a board made by an older binary reads as empty here.
    snapshot_len: [AtomicU64; LEDGER],
    /// What open files keep, for `status`. Appended after the ledger for the same reason.
    pub kept: crate::stats::Kept,
}

/// Slots of the snapshot ledger: the handles most recently read, one each.
const LEDGER: usize = 4096;
/// Bits of a ledger entry holding the length; longer snapshots are not noted.
const LEN_BITS: u32 = 20;

const _: () = assert!(std::mem::size_of::<Slots>() as u64 <= STATE_AT);

/// A mapped board.
pub struct Board {
    fd: OwnedFd,
    slots: NonNull<Slots>,
}

// SAFETY: the mapping is shared memory accessed only through atomics; the pointer stays valid
// until drop.
unsafe impl Send for Board {}
// SAFETY: as above.
unsafe impl Sync for Board {}

impl Board {
    /// A new board in a fresh memfd, files virtualized.
    pub fn create() -> io::Result<Board> {
        let fd = nix::sys::memfd::memfd_create(
            "lxcfs-rs-state",
            nix::sys::memfd::MFdFlags::MFD_CLOEXEC,
        )?;
        nix::unistd::ftruncate(&fd, STATE_AT as i64)?;
        let board = Board::map(fd)?;
        board.reset();
        Ok(board)
    }

    /// The board in `fd` (inherited or adopted). A file that is not a board of this layout is
    /// started afresh: its counters are lost, the service is not.
    pub fn open(fd: OwnedFd) -> io::Result<Board> {
        let len = nix::sys::stat::fstat(&fd)?.st_size as u64;
        if len < STATE_AT {
            nix::unistd::ftruncate(&fd, STATE_AT as i64)?;
        }
        let board = Board::map(fd)?;
        if board.slots().magic.load(Ordering::Acquire) != MAGIC {
            log::warn!("the inherited state board has another layout; starting it afresh");
            board.reset();
        }
        Ok(board)
    }

    fn map(fd: OwnedFd) -> io::Result<Board> {
        let len = NonZeroUsize::new(std::mem::size_of::<Slots>()).expect("Slots is not empty");
        // SAFETY: a shared mapping of a file at least this long; only atomics touch it.
        let ptr = unsafe {
            mmap(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                &fd,
                0,
            )?
        };
        Ok(Board {
            fd,
            slots: ptr.cast(),
        })
    }

    fn reset(&self) {
        let s = self.slots();
        s.virtualized.store(1, Ordering::Relaxed);
        s.magic.store(MAGIC, Ordering::Release);
    }

    /// The shared fields.
    pub fn slots(&self) -> &Slots {
        // SAFETY: mapped for our lifetime; zeroed memory is valid for atomics.
        unsafe { self.slots.as_ref() }
    }

    /// The memfd, to pass on.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Keeps `blob` (the session state) for whoever serves next.
    pub fn write_state(&self, blob: &[u8]) -> io::Result<()> {
        if blob.len() > STATE_MAX {
            return Err(io::Error::other(format!(
                "a session state of {} bytes is over the board's {STATE_MAX}",
                blob.len()
            )));
        }
        let n = nix::sys::uio::pwrite(&self.fd, blob, STATE_AT as i64)?;
        if n != blob.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short write of the session state",
            ));
        }
        self.slots()
            .state_len
            .store(blob.len() as u32, Ordering::Release);
        Ok(())
    }

    /// The session state kept, if a worker ever wrote one.
    pub fn read_state(&self) -> io::Result<Option<Vec<u8>>> {
        let len = self.slots().state_len.load(Ordering::Acquire) as usize;
        if len == 0 {
            return Ok(None);
        }
        let mut blob = vec![0u8; len.min(STATE_MAX)];
        let n = nix::sys::uio::pread(&self.fd, &mut blob, STATE_AT as i64)?;
        blob.truncate(n);
        Ok(Some(blob))
    }

    /// After a worker died: notes which requests it held, and marks as poison those that
    /// were also held at the crash before (the same request crashing worker after worker).
    /// Returns how many it held. Allocates nothing.
    pub fn record_crash(&self) -> usize {
        let s = self.slots();
        let mut before = [0u64; MAX_THREADS];
        for (b, slot) in before.iter_mut().zip(&s.last_crash) {
            *b = slot.swap(0, Ordering::Relaxed);
        }
        let mut held = 0;
        for slot in &s.in_flight {
            let base = slot.swap(0, Ordering::Relaxed) & !RESENT;
            if base == 0 {
                continue;
            }
            if before.contains(&base) {
                let i = s.poison_next.fetch_add(1, Ordering::Relaxed) as usize % POISON;
                s.poison[i].store(base, Ordering::Relaxed);
            }
            s.last_crash[held].store(base, Ordering::Relaxed);
            held += 1;
        }
        held
    }

    /// Whether the request first delivered as `base` was in flight at the last crash: a
    /// suspect, which the next worker serves only one at a time.
    pub fn was_in_flight_at_last_crash(&self, base: u64) -> bool {
        base != 0
            && self
                .slots()
                .last_crash
                .iter()
                .any(|p| p.load(Ordering::Relaxed) == base)
    }

    /// Whether the request first delivered as `base` is a poison pill.
    pub fn is_poisoned(&self, base: u64) -> bool {
        base != 0
            && self
                .slots()
                .poison
                .iter()
                .any(|p| p.load(Ordering::Relaxed) == base)
    }

    /// A ledger entry's key for handle `fh`: its generation's low 8 bits and its counter's
    /// low 36, above the length. Never 0 (counters start at 1).
    fn ledger_key(fh: u64) -> u64 {
        ((fh >> 40) & 0xff) << 56 | (fh & ((1 << 36) - 1)) << LEN_BITS
    }

    /// Notes that handle `fh`'s snapshot is `len` bytes long.
    pub fn note_snapshot(&self, fh: u64, len: usize) {
        if len >= 1 << LEN_BITS {
            return;
        }
        let slot = &self.slots().snapshot_len[(fh as usize) % LEDGER];
        // One word: a worker dying halfway leaves the old entry or the new one, never a mix.
        slot.store(Board::ledger_key(fh) | len as u64, Ordering::Relaxed);
    }

    /// The length last noted for handle `fh`, if its entry was not overwritten since.
    pub fn noted_snapshot(&self, fh: u64) -> Option<usize> {
        let entry = self.slots().snapshot_len[(fh as usize) % LEDGER].load(Ordering::Relaxed);
        let mask = (1u64 << LEN_BITS) - 1;
        (entry != 0 && entry & !mask == Board::ledger_key(fh)).then_some((entry & mask) as usize)
    }

    /// The ledger's entries in use, as little-endian words, for a successor (`--takeover`).
    pub fn ledger_bytes(&self) -> Vec<u8> {
        self.slots()
            .snapshot_len
            .iter()
            .map(|e| e.load(Ordering::Relaxed))
            .filter(|&e| e != 0)
            .flat_map(u64::to_le_bytes)
            .collect()
    }

    /// Takes over a predecessor's [`Board::ledger_bytes`]: each entry goes back to its slot
    /// (the low bits of the handle's counter, kept in the entry).
    pub fn restore_ledger(&self, bytes: &[u8]) {
        let slots = &self.slots().snapshot_len;
        for word in bytes.chunks_exact(8) {
            let entry = u64::from_le_bytes(word.try_into().unwrap_or_default());
            if entry != 0 {
                let slot = (entry >> LEN_BITS) as usize % LEDGER;
                slots[slot].store(entry, Ordering::Relaxed);
            }
        }
    }

    /// Forgets what a cleanly parked worker left (nothing should be in flight).
    pub fn clear_in_flight(&self) {
        for slot in &self.slots().in_flight {
            slot.store(0, Ordering::Relaxed);
        }
    }
}

impl Drop for Board {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unmapped once.
        let _ = unsafe { munmap(self.slots.cast(), std::mem::size_of::<Slots>()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ledger_keeps_each_handles_last_length_until_overwritten() {
        let board = Board::create().unwrap();
        let fh = 3u64 << 40 | 17;
        assert_eq!(board.noted_snapshot(fh), None);
        board.note_snapshot(fh, 12);
        board.note_snapshot(fh, 13);
        assert_eq!(board.noted_snapshot(fh), Some(13));
        // Another generation's handle with the same counter is another handle.
        assert_eq!(board.noted_snapshot(4u64 << 40 | 17), None);
        // The same slot taken by a later handle: the earlier one is no longer known.
        let later = 3u64 << 40 | (17 + LEDGER as u64);
        board.note_snapshot(later, 5);
        assert_eq!(board.noted_snapshot(fh), None);
        assert_eq!(board.noted_snapshot(later), Some(5));
        board.note_snapshot(fh, 1 << LEN_BITS);
        assert_eq!(board.noted_snapshot(fh), None, "too long to note");
        assert_eq!(board.noted_snapshot(later), Some(5));
        // A successor's board gets the entries back in their slots.
        board.note_snapshot(fh + 1, 700);
        let successor = Board::create().unwrap();
        successor.restore_ledger(&board.ledger_bytes());
        assert_eq!(successor.noted_snapshot(later), Some(5));
        assert_eq!(successor.noted_snapshot(fh + 1), Some(700));
        assert_eq!(successor.noted_snapshot(fh), None);
        successor.restore_ledger(&[1, 2, 3]);
        assert_eq!(board.ledger_bytes().len(), 16, "two entries in use");
    }

    #[test]
    fn a_request_in_flight_at_two_crashes_in_a_row_is_poison() {
        let board = Board::create().unwrap();
        let s = board.slots();
        s.in_flight[0].store(0x16, Ordering::Relaxed);
        s.in_flight[3].store(0x20, Ordering::Relaxed);
        assert_eq!(board.record_crash(), 2);
        assert!(!board.is_poisoned(0x16), "one crash proves nothing");
        assert!(board.was_in_flight_at_last_crash(0x16) && board.was_in_flight_at_last_crash(0x20));
        assert!(!board.was_in_flight_at_last_crash(0x30) && !board.was_in_flight_at_last_crash(0));
        // Resent to the next worker, which dies serving it again; 0x20 was answered.
        s.in_flight[1].store(0x16 | RESENT, Ordering::Relaxed);
        s.in_flight[2].store(0x30, Ordering::Relaxed);
        assert_eq!(board.record_crash(), 2);
        assert!(board.is_poisoned(0x16));
        assert!(!board.is_poisoned(0x20) && !board.is_poisoned(0x30));
        assert!(!board.is_poisoned(0));
        // A crash with nothing in flight breaks the chain for 0x30.
        assert_eq!(board.record_crash(), 0);
        s.in_flight[0].store(0x30 | RESENT, Ordering::Relaxed);
        board.record_crash();
        assert!(!board.is_poisoned(0x30));
    }

    #[test]
    fn state_and_counters_are_seen_through_another_mapping() {
        let board = Board::create().unwrap();
        board.write_state(br#"{"version":1}"#).unwrap();
        board.slots().restarts.store(3, Ordering::Relaxed);
        let again = Board::open(board.fd().try_clone_to_owned().unwrap()).unwrap();
        assert_eq!(again.read_state().unwrap().unwrap(), br#"{"version":1}"#);
        assert_eq!(again.slots().restarts.load(Ordering::Relaxed), 3);
        assert_eq!(again.slots().virtualized.load(Ordering::Relaxed), 1);
        assert!(board.write_state(&vec![b' '; STATE_MAX + 1]).is_err());
    }

    #[test]
    fn a_file_that_is_not_a_board_starts_afresh() {
        let file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut &file, b"not a board").unwrap();
        let board = Board::open(file.into()).unwrap();
        assert_eq!(board.read_state().unwrap(), None);
        assert_eq!(board.slots().virtualized.load(Ordering::Relaxed), 1);
    }
}
