//! systemd's file descriptor store without systemd (PID 1 here is not systemd): the test
//! binds the notify socket, keeps the descriptors the supervisor stores there, kills
//! supervisor and worker together, and starts the binary again with those descriptors as
//! systemd passes them (`LISTEN_FDS`, `LISTEN_FDNAMES`, `LISTEN_PID`, fds from 3).

use std::io::IoSlice;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::socket::{ControlMessage, MsgFlags, UnixAddr, sendmsg};

use crate::common::fdstore::NotifySocket;
use crate::common::loads::Loads;
use crate::common::status::{current_worker, kill_supervisor_and_worker, read_within, status};
use crate::common::{BIN, Daemon, TestDir, describe, fuse_dev};
use crate::{PAUSE, Scene, must, stuck};

#[test]
fn supervisor_and_worker_killed_together_come_back_from_the_fd_store() {
    let Some(s) = Scene::new() else {
        return;
    };
    let notify = NotifySocket::bind(s.dir.path());
    let mut cmd = Command::new(BIN);
    cmd.env("NOTIFY_SOCKET", &notify.path);
    // Keeps its connection id: if the restarted instance never serves, its drop detaches
    // the stale mount.
    let mut first = Daemon::start_cmd_on(cmd, &s.mnt, &s.log("first"), &[]);
    let store = notify.collect(Duration::from_secs(10), &["fuse", "state"], || first.log());
    eprintln!(
        "stored descriptors {:?}; messages {:?}",
        store.names(),
        store.messages
    );
    let dev = fuse_dev(&s.mnt);
    let worker = current_worker(&s.mnt);
    let loads = Loads::start(&s, &s.mnt);
    std::thread::sleep(PAUSE);

    kill_supervisor_and_worker(&mut first, Some(worker));
    let outage = Instant::now();
    std::thread::sleep(PAUSE);
    let mut second =
        Daemon::spawn_cmd_on(store.command(Path::new(BIN)), &s.mnt, &s.log("second"), &[]);
    if let Err(e) = read_within(&s.mnt.join("proc/meminfo"), Duration::from_secs(10)) {
        panic!(
            "the instance started with the stored descriptors does not serve: {e}; its log:\n{}",
            second.log()
        );
    }
    eprintln!("served again {:?} after the kill", outage.elapsed());
    second.wait_mounted();
    let st = status(&s.mnt);
    std::thread::sleep(PAUSE);
    let stopped = loads.stop();
    stopped.report("supervisor and worker killed, restarted from the fd store");

    assert_eq!(
        (st.supervisor_pid, st.dev.as_str()),
        (second.pid, dev.as_str()),
        "the restarted supervisor serves the same connection: {st:?}"
    );
    assert_eq!(fuse_dev(&s.mnt), dev, "the same connection stays mounted");
    must(stopped.views());
    must(stopped.no_failures());
    must(stopped.kept_descriptor_read_on());
    let stuck = stuck(&[worker]);
    assert!(stuck.is_empty(), "stuck: {stuck:?}");
    drop(second);
    drop(store);
}

/// The stand-in itself, without the daemon: descriptors sent with `FDSTORE=1` come back at
/// 3, 4, ... of a process whose `LISTEN_PID` is its own pid, named in order.
#[test]
fn the_fd_store_stand_in_hands_descriptors_over_as_systemd_does() {
    let dir = TestDir::new();
    let notify = NotifySocket::bind(dir.path());
    let client = UnixDatagram::unbound().expect("a datagram socket");
    for (name, text) in [("fuse", "first"), ("state", "second")] {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("writing a file to store");
        let file = std::fs::File::open(&path).expect("opening it");
        let msg = format!("FDSTORE=1\nFDNAME={name}");
        let fds = [file.as_raw_fd()];
        sendmsg::<UnixAddr>(
            client.as_raw_fd(),
            &[IoSlice::new(msg.as_bytes())],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            Some(&UnixAddr::new(&notify.path).expect("an address")),
        )
        .expect("sending a descriptor");
    }
    client
        .send_to(b"READY=1", &notify.path)
        .expect("sending READY=1");
    let store = notify.collect(Duration::from_secs(5), &["fuse", "state"], String::new);
    assert_eq!(store.names(), ["fuse", "state"]);
    let out = store
        .command(Path::new("/bin/sh"))
        .args([
            "-c",
            "echo $LISTEN_PID $$ $LISTEN_FDS $LISTEN_FDNAMES; cat <&3; cat <&4",
        ])
        .output()
        .expect("running sh");
    let text = String::from_utf8_lossy(&out.stdout);
    let (head, files) = text.split_once('\n').expect("two parts");
    let words: Vec<&str> = head.split(' ').collect();
    assert!(
        out.status.success() && words.len() == 4 && words[0] == words[1],
        "LISTEN_PID is the process's own pid: {}",
        describe(&out)
    );
    assert_eq!(&words[2..], ["2", "fuse:state"]);
    assert_eq!(files, "firstsecond");
}
