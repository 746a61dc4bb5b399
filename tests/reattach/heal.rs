//! Supervisor and worker SIGKILLed (the connection is lost: nothing holds it), then lxcfs-rs
//! started again on the same mount point: it mounts afresh, and its pass re-binds the live
//! mount into every namespace that held the dead one (restart.md §7 item 12, §8 test 4).

use std::time::Duration;

use crate::common::scene::{Scene, monotonic_ms, must, problems, stuck};
use crate::common::status::{kill_supervisor_and_worker, try_status};
use crate::common::{Daemon, fuse_dev};
use crate::namespaces::{changed, dead_counts, heal_problems};
use crate::outage::{Fleet, OUTAGE, Timeline, has_summary_line, reader_problems, report_recovery};
use crate::reference::Rebinder;
use crate::report::{reattach_json, report_problems};

/// Who re-binds the live mount into the containers after the fresh start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pass {
    /// lxcfs-rs itself (the feature); then `lxcfs-rs reattach --json` is run once more.
    Daemon,
    /// The test's [`Rebinder`] (the harness proven while the daemon does not do it).
    Reference,
}

/// How long the reference pass waits for the daemon's own pass to end (its `reattach:`
/// line) before it runs, so that the two never re-bind at the same time.
const DAEMON_PASS_GRACE: Duration = Duration::from_millis(800);

/// The fleet reading from lxcfs-rs on the scene's mount point; supervisor and worker
/// SIGKILLed; the late container started during the outage; lxcfs-rs started again after
/// [`OUTAGE`]; `pass` re-binds. Then the checks: every reader recovered within the limit and
/// saw its own view, no container restarted, every namespace shows the live mount where the
/// dead one was (covered dead ones counted in the report), no task stuck in D state; for
/// [`Pass::Daemon`] the daemon logged its summary and a second pass by hand changes nothing
/// and reports what is left covered.
pub(crate) fn sigkill_and_fresh_start(pass: Pass) {
    let Some(s) = Scene::new() else {
        return;
    };
    let rebinder = (pass == Pass::Reference).then(Rebinder::build);
    let mut old = Daemon::start_on(&s.mnt, &s.log("old"), &[]);
    let dead = vec![fuse_dev(&s.mnt)];
    let worker = try_status(&s.mnt).ok().and_then(|st| st.worker_pid);
    let mut fleet = Fleet::start(&s, &s.mnt);
    let before = fleet.namespaces();

    let killed_at = monotonic_ms();
    kill_supervisor_and_worker(&mut old, worker);
    std::thread::sleep(OUTAGE / 2);
    fleet.start_late();
    let rest = (killed_at + OUTAGE.as_millis() as u64).saturating_sub(monotonic_ms());
    std::thread::sleep(Duration::from_millis(rest));
    let started_at = monotonic_ms();
    let new = Daemon::start_replacing(&s.mnt, &s.log("new"), &[], &dead[0]);
    let live = fuse_dev(&s.mnt);
    let t = Timeline {
        killed_at,
        started_at,
    };
    let mut bad = Vec::new();
    if let Some(rebinder) = &rebinder {
        crate::common::wait_until(DAEMON_PASS_GRACE, || has_summary_line(&new.log()));
        let at_pass = fleet.namespaces();
        let report = rebinder.pass(&s.mnt, &live, &dead, &at_pass);
        eprintln!(
            "the reference pass, {} ms after the start: {report:?}",
            monotonic_ms() - started_at
        );
        bad.extend(report_problems(
            &report,
            &at_pass,
            &fleet.namespaces(),
            &dead,
            &live,
        ));
    }
    t.sleep_past_limit(Duration::from_millis(500));
    let after = fleet.namespaces();
    bad.extend(fleet.restarted());
    let second = (pass == Pass::Daemon).then(|| {
        let (report, _) = reattach_json(&s.mnt);
        (report, fleet.namespaces())
    });
    let stuck = stuck(&worker.into_iter().collect::<Vec<_>>());
    let stopped = fleet.stop();
    report_recovery(
        "supervisor and worker SIGKILLed, then a fresh start",
        &stopped,
        &t,
    );
    eprintln!(
        "dead connection {dead:?}, live {live}; after the pass: {:#?}",
        dead_counts(&after, &dead, &live)
    );

    if let Err(e) = stopped.views() {
        bad.push(e);
    }
    bad.extend(reader_problems(&stopped, &t));
    bad.extend(heal_problems(&before, &after, &dead, &live));
    if let Some((report, after_second)) = second {
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
    must(problems(
        &format!(
            "after SIGKILL of supervisor and worker and a fresh start ({pass:?} pass), the \
             containers did not all heal"
        ),
        bad,
    ));
    drop(new);
}

#[test]
fn a_fresh_start_heals_every_container_within_2_s() {
    sigkill_and_fresh_start(Pass::Daemon);
}
