//! `lxcfs-rs seccomp-profile`: a seccomp profile with `sysinfo` routed to the agent
//! (`SCMP_ACT_NOTIFY`, `listenerPath`), made from the runtime's default profile or a given one.
//!
//! `sysinfo` is taken out of every other rule and the notify rule put first: with a second
//! rule for the same call, runc and libseccomp silently keep the first one (observed with
//! Podman's default profile, whose big allow list names `sysinfo`: the notify rule appended
//! after it did nothing, yet runc still connected to the agent).

use std::path::{Path, PathBuf};

use clap::ValueEnum;
use serde_json::{Map, Value, json};
use thiserror::Error;

use crate::host::runtime_files;

/// The profile format to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProfileFormat {
    /// Docker's format (`--security-opt seccomp=FILE`, daemon.json `seccomp-profile`):
    /// `archMap`, `includes`/`excludes` kept.
    Docker,
    /// Podman's format (the same as Docker's; containers.conf `seccomp_profile`); the base is
    /// Podman's default profile when it is installed.
    Podman,
    /// The OCI runtime spec's `linux.seccomp` (runc, crun, containerd and CRI-O Localhost
    /// profiles): `archMap` flattened, rules that need capabilities or other architectures left
    /// out, since that format has no conditions.
    Oci,
}

/// Why no profile can be made.
#[derive(Debug, Error)]
pub enum ProfileError {
    /// The base profile is not a JSON object.
    #[error("the base profile is not a JSON object")]
    NotAnObject,
    /// Its `syscalls` is not a list.
    #[error("the base profile's syscalls is not a list")]
    BadSyscalls,
    /// The base profile could not be read.
    #[error("cannot read {0}")]
    Read(PathBuf, #[source] std::io::Error),
    /// The base profile is no JSON.
    #[error("{0} is not JSON")]
    Json(PathBuf, #[source] serde_json::Error),
}

/// The base profile: `from`, or for Podman its installed default (`None` when there is none,
/// and for Docker, whose default is compiled into dockerd).
pub fn load_base(
    format: ProfileFormat,
    from: Option<&Path>,
) -> Result<Option<Value>, ProfileError> {
    let podman_default = Path::new(runtime_files::PODMAN_SECCOMP);
    let path = match (from, format) {
        (Some(p), _) => p,
        (None, ProfileFormat::Podman) if podman_default.exists() => podman_default,
        (None, _) => return Ok(None),
    };
    let text = std::fs::read_to_string(path).map_err(|e| ProfileError::Read(path.into(), e))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| ProfileError::Json(path.into(), e))
}

/// The profile: `base` (`None`: allow everything else) with `sysinfo` notified to the agent
/// at `socket`, in `format`; and warnings to show the user.
pub fn make(
    base: Option<Value>,
    format: ProfileFormat,
    socket: &str,
) -> Result<(Value, Vec<String>), ProfileError> {
    let mut warnings = Vec::new();
    let mut profile = match base {
        Some(b) => b,
        None => {
            warnings.push(
                "no base profile: every other system call is allowed, which is weaker than the \
                 runtime's default profile (give one with --from)"
                    .to_owned(),
            );
            json!({ "defaultAction": "SCMP_ACT_ALLOW", "architectures": native_arches() })
        }
    };
    let obj = profile.as_object_mut().ok_or(ProfileError::NotAnObject)?;
    let rules = match obj.remove("syscalls") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(rules)) => rules,
        Some(_) => return Err(ProfileError::BadSyscalls),
    };
    let mut kept = vec![json!({ "names": ["sysinfo"], "action": "SCMP_ACT_NOTIFY" })];
    kept.extend(rules.into_iter().filter_map(without_sysinfo));
    if format == ProfileFormat::Oci {
        flatten_arch_map(obj);
        let before = kept.len();
        kept.retain_mut(oci_rule);
        if kept.len() < before {
            warnings.push(format!(
                "{} conditional rules (for capabilities or other architectures) left out: the \
                 OCI format has no conditions",
                before - kept.len()
            ));
        }
    }
    obj.insert("syscalls".into(), Value::Array(kept));
    obj.insert("listenerPath".into(), json!(socket));
    Ok((profile, warnings))
}

/// `rule` without `sysinfo` among its names; `None` if nothing is left of it.
fn without_sysinfo(mut rule: Value) -> Option<Value> {
    let Some(r) = rule.as_object_mut() else {
        return Some(rule);
    };
    // Old Docker profiles name one call per rule.
    if r.get("name").and_then(Value::as_str) == Some("sysinfo") {
        return None;
    }
    if let Some(Value::Array(names)) = r.get_mut("names") {
        let had = names.len();
        names.retain(|n| n.as_str() != Some("sysinfo"));
        if names.is_empty() && had > 0 {
            return None;
        }
    }
    Some(rule)
}

/// Docker's `archMap` as the OCI `architectures` list (every architecture and sub-architecture).
fn flatten_arch_map(obj: &mut Map<String, Value>) {
    let Some(Value::Array(map)) = obj.remove("archMap") else {
        return;
    };
    let mut arches: Vec<Value> = Vec::new();
    for entry in map {
        let subs = entry["subArchitectures"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for a in std::iter::once(entry["architecture"].clone()).chain(subs) {
            if a.is_string() && !arches.contains(&a) {
                arches.push(a);
            }
        }
    }
    obj.entry("architectures").or_insert(Value::Array(arches));
}

/// Makes `rule` an OCI rule; false if it must be left out: it applies only with capabilities
/// we cannot know, or only on other architectures.
fn oci_rule(rule: &mut Value) -> bool {
    let Some(r) = rule.as_object_mut() else {
        return true;
    };
    let includes = r.remove("includes").unwrap_or(Value::Null);
    let excludes = r.remove("excludes").unwrap_or(Value::Null);
    r.remove("comment");
    let listed = |v: &Value, key: &str| {
        v[key]
            .as_array()
            .filter(|a| !a.is_empty())
            .map(|a| a.iter().any(|x| x.as_str() == Some(go_arch())))
    };
    let needs_caps = includes["caps"].as_array().is_some_and(|a| !a.is_empty());
    let other_arch = listed(&includes, "arches") == Some(false);
    let excluded_here = listed(&excludes, "arches") == Some(true);
    !(needs_caps || other_arch || excluded_here)
}

/// Our architecture as Docker's profiles name it (Go's `GOARCH`).
fn go_arch() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    }
}

/// The seccomp architectures of our machine: native and the compat ABIs its kernel runs.
fn native_arches() -> Value {
    if cfg!(target_arch = "aarch64") {
        json!(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"])
    } else {
        json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every rule naming `sysinfo`, with its action.
    fn sysinfo_rules(p: &Value) -> Vec<String> {
        p["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| {
                r["names"]
                    .as_array()
                    .is_some_and(|n| n.iter().any(|x| x == "sysinfo"))
                    || r["name"] == "sysinfo"
            })
            .map(|r| r["action"].as_str().unwrap().to_owned())
            .collect()
    }

    fn base() -> Value {
        json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "archMap": [{"architecture": "SCMP_ARCH_X86_64",
                         "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
            "syscalls": [
                {"names": ["read", "sysinfo", "write"], "action": "SCMP_ACT_ALLOW"},
                {"name": "sysinfo", "action": "SCMP_ACT_ALLOW"},
                {"names": ["sysinfo"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["bpf"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64", "arm64"]}},
                {"names": ["s390_only"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["s390x"]}},
                {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_PTRACE"]}}
            ]
        })
    }

    #[test]
    fn sysinfo_is_only_in_the_first_rule_and_notified() {
        for format in [
            ProfileFormat::Docker,
            ProfileFormat::Podman,
            ProfileFormat::Oci,
        ] {
            let (p, _) = make(Some(base()), format, "/run/x.sock").unwrap();
            assert_eq!(sysinfo_rules(&p), ["SCMP_ACT_NOTIFY"], "{format:?}");
            assert_eq!(p["syscalls"][0]["names"], json!(["sysinfo"]));
            assert_eq!(p["listenerPath"], "/run/x.sock");
            assert_eq!(p["defaultAction"], "SCMP_ACT_ERRNO");
            assert_eq!(p["syscalls"][1]["names"], json!(["read", "write"]));
        }
    }

    #[test]
    fn docker_format_keeps_conditions_and_oci_resolves_them() {
        let (docker, warnings) = make(Some(base()), ProfileFormat::Docker, "/s").unwrap();
        assert!(warnings.is_empty());
        assert!(docker.get("archMap").is_some());
        assert_eq!(docker["syscalls"].as_array().unwrap().len(), 6);
        let (oci, warnings) = make(Some(base()), ProfileFormat::Oci, "/s").unwrap();
        assert!(oci.get("archMap").is_none());
        assert_eq!(
            oci["architectures"],
            json!([
                "SCMP_ARCH_X86_64",
                "SCMP_ARCH_X86",
                "SCMP_ARCH_X32",
                "SCMP_ARCH_AARCH64",
                "SCMP_ARCH_ARM"
            ])
        );
        let names: Vec<&Value> = oci["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["names"][0])
            .collect();
        // bpf needs a capability, s390_only another architecture; ptrace unless a capability.
        assert_eq!(
            names,
            [
                &json!("sysinfo"),
                &json!("read"),
                &json!("arch_prctl"),
                &json!("ptrace")
            ]
        );
        assert!(oci["syscalls"][2].get("includes").is_none());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }

    #[test]
    fn no_base_allows_the_rest_and_says_so() {
        let (p, warnings) = make(None, ProfileFormat::Oci, "/s").unwrap();
        assert_eq!(p["defaultAction"], "SCMP_ACT_ALLOW");
        assert_eq!(sysinfo_rules(&p), ["SCMP_ACT_NOTIFY"]);
        assert!(p["architectures"].as_array().unwrap().len() >= 2);
        assert_eq!(warnings.len(), 1);
        assert!(make(Some(json!([1])), ProfileFormat::Oci, "/s").is_err());
        assert!(make(Some(json!({"syscalls": 3})), ProfileFormat::Oci, "/s").is_err());
    }

    #[test]
    fn podmans_installed_default_keeps_sysinfo_only_notified() {
        let path = crate::host::runtime_files::PODMAN_SECCOMP;
        let Ok(text) = std::fs::read_to_string(path) else {
            eprintln!("skipped: no {path}");
            return;
        };
        let base: Value = serde_json::from_str(&text).unwrap();
        let (p, _) = make(Some(base.clone()), ProfileFormat::Podman, "/s").unwrap();
        assert_eq!(sysinfo_rules(&p), ["SCMP_ACT_NOTIFY"]);
        assert_eq!(
            p["syscalls"].as_array().unwrap().len(),
            base["syscalls"].as_array().unwrap().len() + 1
        );
    }
}
