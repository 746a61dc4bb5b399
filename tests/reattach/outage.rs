//! One outage as the tests stage it: the fleet reading, the daemon gone, a new one started;
//! and the checks of what the readers saw, with the measures each test reports.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::common::container::Container;
use crate::common::loads::{Loads, Stopped, Want};
use crate::common::scene::{Scene, monotonic_ms};
use crate::fleet::{fleet, late};
use crate::namespaces::{Member, Namespaces, namespaces};

/// How soon after the new daemon's start every container must read its own values again.
pub(crate) const HEAL_LIMIT: Duration = Duration::from_secs(2);

/// How long no daemon serves before the new one starts: reads fail meanwhile.
pub(crate) const OUTAGE: Duration = Duration::from_secs(1);

/// Between the containers' start and the disruption: every probe reads a few good rounds.
pub(crate) const PAUSE: Duration = Duration::from_millis(250);

/// The errnos a read of a dead connection fails with: ENOTCONN, or ECONNABORTED for a
/// request in flight when the connection died.
const OUTAGE_ERRNOS: &[&str] = &["ENOTCONN", "ECONNABORTED"];

/// The containers of [`fleet`] reading, and [`late`] created, not started.
pub(crate) struct Fleet<'s> {
    /// The running containers.
    loads: Loads<'s>,
    /// The created container and what it should read, until [`Fleet::start_late`].
    late: Option<(Container<'s>, Want)>,
    /// Every container, the late one too.
    pub(crate) members: Vec<Member>,
    /// The host pid of each container's init when the fleet was up: a restarted container
    /// has another.
    inits: BTreeMap<String, u32>,
}

impl<'s> Fleet<'s> {
    /// Creates [`late`] and starts [`fleet`], all bound to `mnt`; returns once every running
    /// probe read a round, and [`PAUSE`] later.
    pub(crate) fn start(s: &'s Scene, mnt: &Path) -> Fleet<'s> {
        let (spec, want) = late(s, mnt);
        let late = s.runc.create(spec);
        let loads = Loads::start_specs(s, fleet(s, mnt));
        let mut members: Vec<Member> = loads.containers().map(Member::of).collect();
        members.push(Member::of(&late));
        let inits = loads
            .containers()
            .chain([&late])
            .map(|c| (c.name.clone(), c.init_pid()))
            .collect();
        std::thread::sleep(PAUSE);
        Fleet {
            loads,
            late: Some((late, want)),
            members,
            inits,
        }
    }

    /// The mount namespaces of every container's processes now.
    pub(crate) fn namespaces(&self) -> Namespaces {
        namespaces(&self.members)
    }

    /// Starts the created container (during the outage: its binds are dead from its first
    /// read) and waits until its probe read one round.
    pub(crate) fn start_late(&mut self) {
        let (mut c, want) = self
            .late
            .take()
            .expect("the late container, not started yet");
        c.start_created();
        self.loads.adopt(c, want);
    }

    /// Containers restarted or gone: another init pid, or not running.
    pub(crate) fn restarted(&self) -> Vec<String> {
        let mut bad = Vec::new();
        for c in self.loads.containers() {
            let was = self.inits[&c.name];
            match c.state().as_deref() {
                Some("running") => {}
                other => bad.push(format!("container {} is {other:?}, not running", c.name)),
            }
            let now = c.init_pid();
            if now != was {
                bad.push(format!(
                    "container {}: its init is pid {now}, was {was} (restarted)",
                    c.name
                ));
            }
        }
        bad
    }

    /// Stops the probes; what each reported.
    pub(crate) fn stop(self) -> Stopped {
        assert!(self.late.is_none(), "the late container was never started");
        self.loads.stop()
    }
}

/// When the outage began and when the new daemon started (`CLOCK_MONOTONIC` ms).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeline {
    /// Just before the old daemon was killed or stopped.
    pub(crate) killed_at: u64,
    /// Just before the new daemon was started.
    pub(crate) started_at: u64,
}

impl Timeline {
    /// Sleeps until [`HEAL_LIMIT`] plus `margin` after the new daemon's start.
    pub(crate) fn sleep_past_limit(&self, margin: Duration) {
        let until = self.started_at + (HEAL_LIMIT + margin).as_millis() as u64;
        let now = monotonic_ms();
        if until > now {
            std::thread::sleep(Duration::from_millis(until - now));
        }
    }
}

/// Prints, per container, what the outage did to its reads: failed reads by errno, when
/// the reads recovered after the new daemon's start (or that they never did), the last bad
/// round.
pub(crate) fn report_recovery(what: &str, stopped: &Stopped, t: &Timeline) {
    stopped.report(what);
    for s in stopped.summaries() {
        let after = |at: u64| at as i64 - t.started_at as i64;
        let recovered = s
            .recoveries
            .iter()
            .find(|&&at| at >= t.killed_at)
            .map_or("never".to_string(), |&at| format!("at {:+} ms", after(at)));
        eprintln!(
            "{what}: container {}: outage of {} ms before the start; reads recovered {recovered} \
             of the new daemon's start; last bad round at {}; {} failed reads {:?}",
            s.name,
            t.started_at - t.killed_at,
            s.last_bad_ms
                .map_or("-".into(), |at| format!("{:+} ms", after(at))),
            s.failures,
            s.by_errno
        );
    }
}

/// What is wrong with the readers' view of the outage: each container's reads failed only
/// during it (from the kill on, with [`OUTAGE_ERRNOS`]) and failed at all (else it proved
/// nothing); they recovered, not before the new daemon's start, within [`HEAL_LIMIT`] of it,
/// and had no bad round after that; no content was ever wrong.
pub(crate) fn reader_problems(stopped: &Stopped, t: &Timeline) -> Vec<String> {
    let mut bad = Vec::new();
    for s in stopped.summaries() {
        let name = &s.name;
        if s.failures == 0 {
            bad.push(format!(
                "container {name}: no read failed, so the outage never reached it"
            ));
        }
        if s.wrong > 0 {
            bad.push(format!(
                "container {name}: {} wrong contents: {:?}",
                s.wrong,
                s.failure_lines()
            ));
        }
        let odd: Vec<&String> = s
            .by_errno
            .keys()
            .filter(|e| !OUTAGE_ERRNOS.contains(&e.as_str()))
            .collect();
        if !odd.is_empty() {
            bad.push(format!(
                "container {name}: reads failed with {odd:?}, not only {OUTAGE_ERRNOS:?}: {:?}",
                s.failure_lines()
            ));
        }
        if let Some(e) = s.events.iter().find(|e| e.at_ms < t.killed_at) {
            bad.push(format!(
                "container {name}: a failure before the outage (at {} ms, outage from {}): \
                 {e:?}",
                e.at_ms, t.killed_at
            ));
        }
        if let Some(at) = s
            .recoveries
            .iter()
            .find(|&&at| at >= t.killed_at && at < t.started_at)
        {
            bad.push(format!(
                "container {name}: reads recovered {} ms before the new daemon started \
                 (someone else re-bound its mounts?)",
                t.started_at - at
            ));
        }
        let healed = s.recoveries.iter().copied().find(|&at| at >= t.started_at);
        match healed {
            None => bad.push(format!(
                "container {name}: its reads never recovered after the new daemon's start \
                 ({} failed reads {:?}, the last bad round {} ms after the start)",
                s.failures,
                s.by_errno,
                s.last_bad_ms
                    .map_or(-1, |at| at as i64 - t.started_at as i64)
            )),
            Some(at) if at - t.started_at > HEAL_LIMIT.as_millis() as u64 => bad.push(format!(
                "container {name}: its reads recovered {} ms after the new daemon's start, \
                 later than {HEAL_LIMIT:?}",
                at - t.started_at
            )),
            Some(at) => {
                if let Some(last) = s.last_bad_ms.filter(|&b| b > at) {
                    bad.push(format!(
                        "container {name}: reads recovered {} ms after the start, but failed \
                         again {} ms after it",
                        at - t.started_at,
                        last - t.started_at
                    ));
                }
            }
        }
    }
    bad
}

/// Whether the daemon's `log` has the pass's summary line (its message starts with
/// `reattach:`, after env_logger's `[time LEVEL target]` prefix if any).
pub(crate) fn has_summary_line(log: &str) -> bool {
    log.lines().any(|l| {
        let message = l.split_once("] ").map_or(l, |(_, m)| m);
        message.starts_with("reattach:")
    })
}
