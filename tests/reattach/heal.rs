//! The daemon lost and lxcfs-rs started afresh on the same mount point: its pass re-binds
//! the live mount into every namespace that held the dead one (restart.md §7 item 12, §8
//! test 4). [`outage`] stages it for both ways the old daemon goes (lxcfs-rs's supervisor
//! and worker SIGKILLed: the connection is lost, nothing holds it; or the C lxcfs stopped,
//! see [`crate::migrate`]) and for each re-binder, and collects what is wrong.

use std::time::Duration;

use crate::common::loads::Stopped;
use crate::common::scene::{Scene, monotonic_ms, must, problems, stuck};
use crate::common::status::{kill_supervisor_and_worker, try_status};
use crate::common::{Daemon, fuse_dev};
use crate::namespaces::{Namespaces, changed, dead_counts, heal_problems};
use crate::outage::{Fleet, OUTAGE, Timeline, has_summary_line, reader_problems, report_recovery};
use crate::reference::Rebinder;
use crate::report::{reattach_json, report_problems};

/// The daemon serving the fleet before the outage, and how it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Old {
    /// lxcfs-rs: supervisor and worker SIGKILLed; its dead mount stays at the mount point
    /// until the new daemon detaches it.
    LxcfsRs,
    /// The C lxcfs: stopped with SIGTERM (`systemctl stop lxcfs`); it unmounts the mount
    /// point as it exits, which takes it a few seconds, so nothing on the host ties the
    /// containers' dead binds to this mount point but their type.
    CLxcfs,
}

/// Who re-binds the live mount into the containers after the fresh start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pass {
    /// lxcfs-rs itself (the feature); then `lxcfs-rs reattach --json` is run once more.
    Daemon,
    /// The test's [`Rebinder`] (the harness proven while the daemon does not do it).
    Reference,
    /// Nobody: no daemon is started (the harness shown failing); the checks count from the
    /// end of the outage.
    Nobody,
}

/// How long the reference pass waits for the daemon's own pass to end (its `reattach:`
/// line) before it runs, so that the two never re-bind at the same time.
const DAEMON_PASS_GRACE: Duration = Duration::from_millis(800);

/// What one outage left: the problems found, and what they were found in.
pub(crate) struct Outcome {
    /// Everything wrong, as messages (empty when the containers healed as the contract says).
    pub(crate) problems: Vec<String>,
    /// What the probes reported.
    pub(crate) stopped: Stopped,
    /// The containers' namespaces before the outage.
    pub(crate) before: Namespaces,
    /// The same after the pass (or the outage, with [`Pass::Nobody`]).
    pub(crate) after: Namespaces,
    /// The old daemon's connection.
    pub(crate) dead: Vec<String>,
    /// The outage's moments.
    pub(crate) t: Timeline,
    /// Containers restarted meanwhile, as messages.
    pub(crate) restarted: Vec<String>,
}

/// The fleet reading from the `old` daemon on the scene's mount point; the old daemon gone;
/// the late container started during the outage; lxcfs-rs started afresh on the mount point
/// once the outage lasted [`OUTAGE`] (or when lxcfs is gone); `pass` re-binds. The checks:
/// every reader recovered within the limit, had no bad round after, and saw its own view; no
/// container restarted; every namespace shows the live mount where the dead one was (covered
/// dead ones counted in the report); no task stuck in D state; for [`Pass::Daemon`] the
/// daemon logged its summary and a second pass by hand changes nothing and reports what is
/// left covered. `None` (after saying why) when the scene cannot run here.
pub(crate) fn outage(old: Old, pass: Pass) -> Option<Outcome> {
    let s = Scene::new()?;
    let rebinder = (pass == Pass::Reference).then(Rebinder::build);
    let (mut old_daemon, worker) = match old {
        Old::LxcfsRs => {
            let d = Daemon::start_on(&s.mnt, &s.log("old"), &[]);
            let worker = try_status(&s.mnt).ok().and_then(|st| st.worker_pid);
            (d, worker)
        }
        Old::CLxcfs => (Daemon::start_c_lxcfs_on(&s.mnt, &s.log("lxcfs")), None),
    };
    let dead = vec![fuse_dev(&s.mnt)];
    let mut fleet = Fleet::start(&s, &s.mnt);
    let before = fleet.namespaces();

    let killed_at = monotonic_ms();
    match old {
        Old::LxcfsRs => {
            kill_supervisor_and_worker(&mut old_daemon, worker);
            std::thread::sleep(OUTAGE / 2);
            fleet.start_late();
            let rest = (killed_at + OUTAGE.as_millis() as u64).saturating_sub(monotonic_ms());
            std::thread::sleep(Duration::from_millis(rest));
        }
        Old::CLxcfs => {
            let exit = old_daemon.terminate();
            eprintln!(
                "lxcfs stopped after {} ms: {exit:?}",
                monotonic_ms() - killed_at
            );
            fleet.start_late();
        }
    }
    let started_at = monotonic_ms();
    let new = (pass != Pass::Nobody)
        .then(|| Daemon::start_replacing(&s.mnt, &s.log("new"), &[], &dead[0]));
    // With nobody started, no mount is live: "0:0" names none.
    let live = new.as_ref().map_or("0:0".to_string(), |_| fuse_dev(&s.mnt));
    let t = Timeline {
        killed_at,
        started_at,
    };
    let mut bad = Vec::new();
    if let (Some(rebinder), Some(new)) = (&rebinder, &new) {
        bad.extend(reference_pass(rebinder, new, &fleet, &dead, &live, &t));
    }
    t.sleep_past_limit(Duration::from_millis(500));
    let after = fleet.namespaces();
    let restarted = fleet.restarted();
    bad.extend(restarted.iter().cloned());
    let second = (pass == Pass::Daemon).then(|| {
        let (report, _) = reattach_json(&s.mnt);
        (report, fleet.namespaces())
    });
    let stuck = stuck(&worker.into_iter().collect::<Vec<_>>());
    let stopped = fleet.stop();
    report_recovery(&format!("{old:?} gone, {pass:?} pass"), &stopped, &t);
    eprintln!(
        "dead connection {dead:?}, live {live}; after the pass: {:#?}",
        dead_counts(&after, &dead, &live)
    );

    if dead.contains(&live) {
        bad.push(format!(
            "the new mount has the old one's device number {live}: the checks cannot tell \
             them apart"
        ));
    }
    // The first good values were the old daemon's; the new one's must agree (the probe
    // flags any change of MemTotal, processors or online list as wrong).
    if let Err(e) = stopped.views() {
        bad.push(e);
    }
    bad.extend(reader_problems(&stopped, &t));
    // Every bind shows the new connection: the containers read the new daemon's files.
    bad.extend(heal_problems(&before, &after, &dead, &live));
    if let (Some((report, after_second)), Some(new)) = (second, &new) {
        match report {
            Ok(r) => {
                eprintln!("`lxcfs-rs reattach --json` once more: {r:?}");
                bad.extend(
                    report_problems(&r, &after, &after_second, &dead, &live)
                        .into_iter()
                        .map(|p| format!("the second pass: {p}")),
                );
                bad.extend(
                    changed(&after, &after_second)
                        .into_iter()
                        .map(|p| format!("the second pass changed a namespace: {p}")),
                );
            }
            Err(e) => bad.push(e),
        }
        if !has_summary_line(&new.log()) {
            bad.push(format!(
                "the new daemon logged no line starting with `reattach:`; its log:\n{}",
                new.log()
            ));
        }
    }
    if !stuck.is_empty() {
        bad.push(format!("stuck in D state: {}", stuck.join("; ")));
    }
    // The new daemon goes before the old one's guard, which detaches its own leftovers only.
    drop(new);
    drop(old_daemon);
    Some(Outcome {
        problems: bad,
        stopped,
        before,
        after,
        dead,
        t,
        restarted,
    })
}

/// [`outage`], asserting that nothing is wrong.
pub(crate) fn must_heal(old: Old, pass: Pass) {
    let Some(out) = outage(old, pass) else {
        return;
    };
    must(problems(
        &format!(
            "after {old:?} was lost and lxcfs-rs started afresh ({pass:?} pass), the \
             containers did not all heal"
        ),
        out.problems,
    ));
}

/// The reference pass of `rebinder` over `fleet`, once `new` (serving `live` at its mount
/// point) ended its own pass or [`DAEMON_PASS_GRACE`] passed: what is wrong with its report.
fn reference_pass(
    rebinder: &Rebinder,
    new: &Daemon,
    fleet: &Fleet,
    dead: &[String],
    live: &str,
    t: &Timeline,
) -> Vec<String> {
    crate::common::wait_until(DAEMON_PASS_GRACE, || has_summary_line(&new.log()));
    let at_pass = fleet.namespaces();
    let report = rebinder.pass(&new.mnt, live, dead, &at_pass);
    eprintln!(
        "the reference pass, {} ms after the start: {report:?}",
        monotonic_ms() - t.started_at
    );
    report_problems(&report, &at_pass, &fleet.namespaces(), dead, live)
}

#[test]
fn a_fresh_start_heals_every_container_within_2_s() {
    must_heal(Old::LxcfsRs, Pass::Daemon);
}
