//! The patched pod's mounts run for real: each lxcfs-rs volumeMount of a patched pod turned
//! into the OCI bind mount a CRI runtime makes of a hostPath mount (containerd and CRI-O:
//! source = hostPath.path, `rbind`, `ro` for `readOnly: true`, `rprivate`), then run by runc
//! against our daemon. This is where `readOnly: true` had to be shown to work: runc refuses
//! some mounts inside `/proc`, and a read-only bind is a remount on top of the bind (which
//! runc only does for `ro`: a `rw` bind keeps the source's flags). The daemon's own mount is
//! read-only already, so inside the container the files are read-only either way; what this
//! shows is that runc takes the `ro` binds and the container reads its own values.

use std::path::Path;
use std::time::Duration;

use lxcfs_rs::kube::targets::{self, VOLUME_PREFIX};
use serde_json::Value;

use super::{fixture_bytes, patch_response, patched_pod};
use crate::common::container::{Rootfs, Runc, Spec};
use crate::common::{Daemon, kb};

const SCRIPT: &str = "\
sec meminfo; cat /proc/meminfo
sec cpus; ls /sys/devices/system/cpu
sec online; cat /sys/devices/system/cpu/online
sec mounts; grep ' - fuse.lxcfs ' /proc/self/mountinfo | cut -d' ' -f5,6
";

#[test]
fn a_patched_pods_read_only_mounts_run_under_runc() {
    require!(containers);
    require!(cpus_0_and_1);
    let daemon = Daemon::start(&[]);
    let mnt = daemon.mnt.to_str().expect("utf-8 mount point");
    let input = fixture_bytes("pod-no-volumes.json");
    let pod = patched_pod(&input, &patch_response(&input, &["--mount-point", mnt]));
    let volumes: Vec<&Value> = pod["spec"]["volumes"].as_array().unwrap().iter().collect();
    let app = &pod["spec"]["containers"][0];

    let rootfs = Rootfs::shared();
    let mut spec = Spec::new("kube-ro", &rootfs, SCRIPT)
        .memory(256 << 20)
        .cpus("0");
    let mut bound = Vec::new();
    for mount in app["volumeMounts"].as_array().unwrap() {
        let name = mount["name"].as_str().unwrap();
        if !name.starts_with(VOLUME_PREFIX) {
            continue;
        }
        let volume = volumes.iter().find(|v| v["name"] == name).expect("volume");
        let source = volume["hostPath"]["path"].as_str().unwrap();
        assert_eq!(mount["readOnly"], true, "{mount}");
        let destination = mount["mountPath"].as_str().unwrap();
        spec = spec.bind_with(Path::new(source), destination, &["rbind", "ro", "rprivate"]);
        bound.push(destination.to_string());
    }
    assert_eq!(bound.len(), targets::injected(Path::new(mnt)).len());

    let runc = Runc::new();
    let report = runc.start(spec).wait(Duration::from_secs(60));
    assert_eq!(
        kb(report.get("meminfo"), "MemTotal"),
        262144,
        "{}",
        report.raw
    );
    let cpus = report.get("cpus");
    assert!(
        cpus.lines().any(|l| l == "cpu0") && !cpus.lines().any(|l| l == "cpu1"),
        "{cpus}"
    );
    assert_eq!(report.get("online").trim(), "0");
    // Every target is the daemon's filesystem inside the container, read-only.
    let mounts = report.get("mounts");
    for destination in &bound {
        let line = mounts
            .lines()
            .find(|l| l.split(' ').next() == Some(destination.as_str()))
            .unwrap_or_else(|| panic!("{destination} not mounted: {mounts}"));
        let options = line.split(' ').nth(1).unwrap_or("");
        assert!(
            options.split(',').any(|o| o == "ro"),
            "{destination} is not read-only: {line}"
        );
    }
}
