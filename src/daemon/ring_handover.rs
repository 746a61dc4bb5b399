//! What the worker of a daemon handing its mount over (`--takeover`) left unanswered in its
//! io_uring entries, carried to the successor in the handoff's state: the successor's board
//! is its own, so without this its first worker would find the arena empty, and those
//! requests would wait until unmount (the kernel never resends ring requests).

use base64::Engine as _;
use log::{info, warn};
use serde_json::{Value, json};

use super::board::{Board, RING_AT};
use crate::fuse::uring::arena::{self, Layout, Left};

/// The key in the state's `app` object.
const KEY: &str = "io_uring_left";
/// The most encoded bytes handed over: the whole handoff message holds 64 KiB, the
/// snapshot ledger included.
const MAX_BYTES: usize = 16 * 1024;

/// Adds to `app` what the (parked) worker left unanswered in the ring entries on `board`.
pub(super) fn hand_over(board: &Board, app: &mut Value) {
    let (layout, left) = match arena::left_in(board.fd(), RING_AT) {
        Ok(Some(found)) => found,
        Ok(None) => return,
        Err(e) => {
            warn!("cannot read the io_uring entries for the successor: {e}");
            return;
        }
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut size = 0;
    let mut entries = Vec::new();
    for l in &left {
        let entry = json!({
            "slot": l.slot,
            "header": b64.encode(&l.header),
            "payload": b64.encode(&l.payload),
        });
        size += entry.to_string().len();
        if size > MAX_BYTES {
            warn!(
                "{} of {} requests left in io_uring entries do not fit the handoff; they wait \
                 until unmount",
                left.len() - entries.len(),
                left.len()
            );
            break;
        }
        entries.push(entry);
    }
    if let Some(app) = app.as_object_mut() {
        app.insert(
            KEY.into(),
            json!({
                "queues": layout.queues,
                "payload": layout.payload,
                "address": layout.address,
                "left": entries,
            }),
        );
    }
}

/// Lays out the arena on our `board` as the predecessor's was, with what it left, and takes
/// that out of the state (kept on the board in a space too small for it).
pub(super) fn restore(board: &Board, app: &mut Value) {
    let Some(handed) = app.as_object_mut().and_then(|a| a.remove(KEY)) else {
        return;
    };
    match parse(&handed) {
        Some((layout, left)) => match arena::put_back(board.fd(), RING_AT, layout, &left) {
            Ok(()) if left.is_empty() => {}
            Ok(()) => info!(
                "{} requests the predecessor left in io_uring entries are answered by our \
                 worker",
                left.len()
            ),
            Err(e) => warn!("cannot lay out the predecessor's io_uring entries: {e}"),
        },
        None => warn!("the predecessor's io_uring entries are unreadable; left unanswered"),
    }
}

/// The layout and slots in `handed`; `None` when anything is missing or malformed.
fn parse(handed: &Value) -> Option<(Layout, Vec<Left>)> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let number = |v: &Value, k: &str| v.get(k)?.as_u64();
    let layout = Layout {
        queues: usize::try_from(number(handed, "queues")?).ok()?,
        payload: usize::try_from(number(handed, "payload")?).ok()?,
        address: number(handed, "address")?,
    };
    let left = handed
        .get("left")?
        .as_array()?
        .iter()
        .map(|e| {
            Some(Left {
                slot: usize::try_from(number(e, "slot")?).ok()?,
                header: b64.decode(e.get("header")?.as_str()?).ok()?,
                payload: b64.decode(e.get("payload")?.as_str()?).ok()?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some((layout, left))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_was_left_reaches_the_successors_board_and_leaves_the_state() {
        let theirs = Board::create().unwrap();
        let layout = Layout {
            queues: 2,
            payload: 8192,
            address: 0x2000_0000_0000,
        };
        // A request the kernel put in slot 5 (commit_id = unique = 42), with 3 payload bytes.
        let mut header = vec![0u8; crate::fuse::uring::queue::NOTES_END];
        header[8..16].copy_from_slice(&42u64.to_ne_bytes());
        header[264..272].copy_from_slice(&42u64.to_ne_bytes());
        header[272..276].copy_from_slice(&3u32.to_ne_bytes());
        let left = vec![Left {
            slot: 5,
            header,
            payload: b"abc".to_vec(),
        }];
        arena::put_back(theirs.fd(), RING_AT, layout, &left).unwrap();
        let mut app = json!({"mountpoint": "/m"});
        hand_over(&theirs, &mut app);
        assert!(app.get(KEY).is_some());

        let ours = Board::create().unwrap();
        restore(&ours, &mut app);
        assert_eq!(app, json!({"mountpoint": "/m"}), "taken out of the state");
        assert_eq!(
            arena::left_in(ours.fd(), RING_AT).unwrap(),
            Some((layout, left)),
            "the same layout, address and slot"
        );
        // Garbage is refused, not laid out.
        let mut bad = json!({ KEY: {"queues": 2, "left": [{"slot": "x"}]} });
        restore(&ours, &mut bad);
        assert_eq!(bad, json!({}));
    }
}
