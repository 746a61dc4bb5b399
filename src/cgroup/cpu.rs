//! Which CPUs a reader may use (cpuset) and how much of them (CFS quota).

use super::controller::Controller;
use super::membership::{CgDir, ReaderCgroups, Version};
use super::value::{parse_cpu_max, parse_i64, parse_u64, quota_cpus};
use crate::cpulist;
use crate::fallback;
use crate::kfile::read_parsed;
use crate::model::CpuLimits;

impl ReaderCgroups {
    /// `visible` = effective cpuset (v2 `cpuset.cpus.effective`; v1 `cpuset.effective_cpus`,
    /// else `cpuset.cpus`) ∩ `host_online` (fastest when ascending, as `cpulist::parse` returns
    /// it); an empty or unreadable cpuset gives `host_online`. `quota_cpus` = min over the
    /// cgroup and its ancestors of quota / period (v2 `cpu.max`, `max` = none; v1
    /// `cpu.cfs_quota_us`, -1 = none, over `cpu.cfs_period_us`).
    ///
    /// `with_quota` false skips the quota (`quota_cpus` is then `None`): only the CPU-quota
    /// view (`--enable-cfs`) uses it, and it is a walk up the cgroup's ancestors.
    pub fn cpu(&self, host_online: &[u32], with_quota: bool) -> CpuLimits {
        CpuLimits {
            visible: self.visible_cpus(host_online),
            quota_cpus: with_quota
                .then(|| self.dir(Controller::Cpu).and_then(min_quota))
                .flatten(),
        }
    }

    fn visible_cpus(&self, host_online: &[u32]) -> Vec<u32> {
        let Some(mut cpus) = self.dir(Controller::Cpuset).and_then(cpuset) else {
            return host_online.to_vec();
        };
        if host_online.is_sorted() {
            cpus.retain(|c| host_online.binary_search(c).is_ok());
        } else {
            cpus.retain(|c| host_online.contains(c));
        }
        if cpus.is_empty() {
            host_online.to_vec()
        } else {
            cpus
        }
    }
}

/// The effective cpuset. The effective file already folds in the ancestors, so one file
/// suffices; only when a level has none (v2 without the cpuset controller enabled there, which
/// then runs on its parent's set) do we look one level up.
fn cpuset(cg: &CgDir) -> Option<Vec<u32>> {
    let names: &[&str] = match cg.version {
        Version::V2 => &["cpuset.cpus.effective"],
        Version::V1 => &["cpuset.effective_cpus", "cpuset.cpus"],
    };
    for dir in cg.ancestors() {
        for name in names {
            match read_parsed(&dir.join(name), |t| {
                cpulist::parse(t).map_err(|e| e.to_string())
            }) {
                Ok(cpus) => return Some(cpus),
                Err(e) if e.is_not_found() => continue,
                Err(e) => {
                    fallback::error(&e);
                    return None;
                }
            }
        }
    }
    None
}

/// The smallest quota, in CPUs, over the cgroup and its ancestors.
fn min_quota(cg: &CgDir) -> Option<f64> {
    cg.limit_dirs()
        .filter_map(|dir| match cg.version {
            Version::V2 => fallback::ok(read_parsed(&dir.join("cpu.max"), parse_cpu_max)).flatten(),
            Version::V1 => {
                let quota = fallback::ok(read_parsed(&dir.join("cpu.cfs_quota_us"), parse_i64))?;
                // Negative (-1) is "no quota"; only then is the period not worth reading.
                let quota = u64::try_from(quota).ok()?;
                let period = dir.join("cpu.cfs_period_us");
                fallback::ok(read_parsed(&period, |t| quota_cpus(quota, parse_u64(t)?))).flatten()
            }
        })
        .min_by(f64::total_cmp)
}
