//! Kubernetes pods as far as these machines can run them: the daemon image (`FROM scratch`,
//! built offline) run as the DaemonSet runs it (privileged, host pid and cgroup namespaces,
//! `--host-mount-ns`, `--enable-cfs`, no mount of the mount point), and `podman kube play` of a
//! pod that `lxcfs-rs kube patch` injected: the pod sees its 256Mi and `cpu: "1"` through the
//! daemon container; the same pod without the annotation sees the host.

#[macro_use]
mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::admission::{patch_ops, patch_response, patched_pod};
use common::container::Rootfs;
use common::podman::Podman;
use common::*;

/// What each pod prints: the values the injected mounts fix.
const REPORT: &str = "echo total=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo); \
    echo online=$(cat /sys/devices/system/cpu/online); \
    echo processors=$(grep -c ^processor /proc/cpuinfo); \
    echo cpudirs=$(ls /sys/devices/system/cpu | grep -c '^cpu[0-9]')";

/// The daemon image's tag in the test's own Podman storage.
const DAEMON_IMAGE: &str = "localhost/lxcfs-rs:kube-test";

/// Detaches the daemon's mount if the test stops halfway (a killed daemon container leaves
/// a dead FUSE mount that would block the removal of the test directory).
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        if is_mounted(&self.0) {
            let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// Builds the daemon image with `scripts/build-image --tool podman` (the static executable
/// in a `scratch` image, offline) into `podman`'s storage.
fn build_daemon_image(podman: &Podman) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(repo.join("scripts/build-image"))
        .args(["--tool", "podman", "--tag", DAEMON_IMAGE])
        // The release build tests/docker and tests/packaging make: compiled once a run.
        .env(
            "CARGO_TARGET_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("static"),
        )
        .envs(podman.env())
        .stderr(Stdio::inherit())
        .output()
        .expect("running scripts/build-image");
    assert_succeeds(&out, "scripts/build-image --tool podman");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), DAEMON_IMAGE);
}

/// A pod named `name` running busybox for a while, limited to 256Mi and one CPU, with the
/// opt-in annotation when `annotated`.
fn pod(name: &str, image: &str, annotated: bool) -> serde_json::Value {
    let mut pod = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "app",
                "image": image,
                "command": ["/bin/sh", "-c", "sleep 600"],
                "resources": {"limits": {"memory": "256Mi", "cpu": "1"}}
            }]
        }
    });
    if annotated {
        pod["metadata"]["annotations"] = serde_json::json!({"lxcfs-rs.io/inject": "true"});
    }
    pod
}

/// `pod` as the API server would have it after the webhook: `lxcfs-rs kube patch` on an
/// AdmissionReview of it, its JSON patch applied. Also returns how many operations it held.
fn admitted(pod: &serde_json::Value, mnt: &Path) -> (serde_json::Value, usize) {
    let review = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0d1c4b52-5a0e-4a8e-9d55-2f0f3a6b7c11",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "default",
            "operation": "CREATE",
            "userInfo": {"username": "test"},
            "object": pod
        }
    });
    let input = review.to_string();
    let response = patch_response(input.as_bytes(), &["--mount-point", mnt.to_str().unwrap()]);
    assert_eq!(response["allowed"], true, "{response}");
    if response.get("patch").is_none() {
        return (pod.clone(), 0);
    }
    let ops = patch_ops(&response).0.len();
    (patched_pod(input.as_bytes(), &response), ops)
}

/// `podman kube play` of `pod`, then [`REPORT`] from its container.
fn play_and_report(podman: &Podman, dir: &Path, pod: &serde_json::Value) -> String {
    let name = pod["metadata"]["name"].as_str().unwrap();
    // JSON is YAML: kube play reads it as it is.
    let file = dir.join(format!("{name}.json"));
    fs::write(&file, pod.to_string()).unwrap();
    podman.kube_play(&file);
    let out = podman.run(&["exec", &format!("{name}-app"), "/bin/sh", "-c", REPORT]);
    podman.kube_down(&file);
    out
}

/// `key=value` lines as a map.
fn report(out: &str) -> std::collections::BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[test]
fn kube_play_of_a_patched_pod_reads_its_limits_through_the_daemon_image() {
    require!(containers);
    require!(cpus_0_and_1);
    let dir = TestDir::new();
    let mnt = dir.join("lxcfs");
    let _unmount = Unmount(mnt.clone());
    let rootfs = Rootfs::shared();
    let Some(podman) = Podman::new(&rootfs) else {
        return;
    };
    build_daemon_image(&podman);

    // The DaemonSet's container, as podman can run it (kube play ignores hostPID).
    podman.run(&[
        "run",
        "-d",
        "--name",
        "lxcfs-rs-daemon",
        "--cgroup-parent",
        &format!("/{}", podman.parent),
        "--privileged",
        "--pid=host",
        "--cgroupns=host",
        "--network",
        "none",
        DAEMON_IMAGE,
        "--host-mount-ns",
        "--takeover-if-running",
        "--wait-after-handoff",
        "--enable-cfs",
        mnt.to_str().unwrap(),
    ]);
    let probe = || {
        Command::new(BIN)
            .args(["probe", mnt.to_str().unwrap()])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !wait_until(Duration::from_secs(20), probe) {
        let logs = podman.command().args(["logs", "lxcfs-rs-daemon"]).output();
        panic!(
            "the daemon container never served {}: {:?}",
            mnt.display(),
            logs.map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        );
    }
    // The daemon mounted in the host's namespace itself: nothing of ours binds it.
    let served_by = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        served_by
            .lines()
            .any(|l| l.contains(&format!(" {} ", mnt.display())) && l.contains("fuse.lxcfs")),
        "no lxcfs mount at {} in the host's namespace",
        mnt.display()
    );

    let (injected, ops) = admitted(&pod("injected", &podman.image, true), &mnt);
    assert!(ops > 0, "kube patch injected nothing");
    let out = play_and_report(&podman, dir.path(), &injected);
    let r = report(&out);
    assert_eq!(r.get("total").map(String::as_str), Some("262144"), "{out}");
    assert_eq!(r.get("processors").map(String::as_str), Some("1"), "{out}");
    assert_eq!(r.get("online").map(String::as_str), Some("0"), "{out}");
    assert_eq!(r.get("cpudirs").map(String::as_str), Some("1"), "{out}");

    // The control: no annotation, no patch, the host's values.
    let (control, ops) = admitted(&pod("control", &podman.image, false), &mnt);
    assert_eq!(ops, 0, "an unannotated pod was patched: {control}");
    let out = play_and_report(&podman, dir.path(), &control);
    let r = report(&out);
    assert_eq!(
        r.get("total"),
        Some(&kb(&fs::read_to_string("/proc/meminfo").unwrap(), "MemTotal").to_string()),
        "the control pod: {out}"
    );
    let host_online = fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    assert_eq!(
        r.get("online").map(String::as_str),
        Some(host_online.trim()),
        "{out}"
    );

    // The daemon container stops as the kubelet stops it: SIGTERM, a clean unmount.
    podman.run(&["stop", "-t", "10", "lxcfs-rs-daemon"]);
    assert!(
        wait_until(Duration::from_secs(10), || !is_mounted(&mnt)),
        "the daemon container left its mount behind"
    );
    podman.run(&["rm", "lxcfs-rs-daemon"]);
}
