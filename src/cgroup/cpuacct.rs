//! CPU time used by a reader's cgroup.

use std::collections::BTreeMap;

use super::controller::Controller;
use super::membership::{CgDir, ReaderCgroups, Version};
use super::value::for_each_key_value;
use crate::fallback;
use crate::kfile::read_parsed;
use crate::model::{CpuTime, CpuUsage};

impl ReaderCgroups {
    /// v1 `cpuacct.usage_all` (per-CPU user/system ns), else `cpuacct.usage_percpu` (all
    /// counted as user); v2 `cpu.stat` `user_usec` / `system_usec` (×1000). `Unknown` when the
    /// cgroup is the root of its hierarchy (the root is the whole host: callers then serve host
    /// numbers) or nothing is readable.
    pub fn cpu_usage(&self) -> CpuUsage {
        match self.dir(Controller::Cpuacct) {
            Some(cg) if cg.is_root => CpuUsage::Unknown,
            Some(cg) if cg.version == Version::V2 => v2(cg),
            Some(cg) => v1(cg),
            None => CpuUsage::Unknown,
        }
    }
}

fn v1(cg: &CgDir) -> CpuUsage {
    fallback::ok(read_parsed(&cg.file("cpuacct.usage_all"), parse_usage_all))
        .or_else(|| {
            fallback::ok(read_parsed(
                &cg.file("cpuacct.usage_percpu"),
                parse_usage_percpu,
            ))
        })
        .map_or(CpuUsage::Unknown, CpuUsage::PerCpu)
}

fn v2(cg: &CgDir) -> CpuUsage {
    fallback::ok(read_parsed(&cg.file("cpu.stat"), parse_cpu_stat)).unwrap_or_default()
}

/// `cpuacct.usage_all`: a `cpu user system` header, then `<cpu> <user ns> <system ns>` lines.
fn parse_usage_all(text: &str) -> Result<BTreeMap<u32, CpuTime>, String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    match lines.next().map(|l| l.split_ascii_whitespace().next()) {
        Some(Some("cpu")) => {}
        _ => return Err("no \"cpu user system\" header".into()),
    }
    let mut per_cpu = BTreeMap::new();
    for line in lines {
        let mut t = line.split_ascii_whitespace().map(str::parse::<u64>);
        let (Some(Ok(cpu)), Some(Ok(user_ns)), Some(Ok(system_ns))) =
            (t.next(), t.next(), t.next())
        else {
            return Err(format!("bad line {line:?}"));
        };
        let cpu = u32::try_from(cpu).map_err(|_| format!("bad CPU number in {line:?}"))?;
        per_cpu.insert(cpu, CpuTime { user_ns, system_ns });
    }
    if per_cpu.is_empty() {
        return Err("no CPU lines".into());
    }
    Ok(per_cpu)
}

/// `cpuacct.usage_percpu`: one number per possible CPU, in CPU order, with no user/system
/// split (counted as user).
fn parse_usage_percpu(text: &str) -> Result<BTreeMap<u32, CpuTime>, String> {
    let mut per_cpu = BTreeMap::new();
    for (cpu, token) in (0u32..).zip(text.split_ascii_whitespace()) {
        let user_ns = token
            .parse()
            .map_err(|_| format!("{token:?} is not a number"))?;
        per_cpu.insert(
            cpu,
            CpuTime {
                user_ns,
                system_ns: 0,
            },
        );
    }
    if per_cpu.is_empty() {
        return Err("empty".into());
    }
    Ok(per_cpu)
}

/// v2 `cpu.stat`: `user_usec` and `system_usec`, or at least `usage_usec` (counted as user).
fn parse_cpu_stat(text: &str) -> Result<CpuUsage, String> {
    let (mut usage, mut user, mut system) = (None, None, None);
    for_each_key_value(text, |key, value| match key {
        "usage_usec" => usage = Some(value),
        "user_usec" => user = Some(value),
        "system_usec" => system = Some(value),
        _ => {}
    });
    let us = |v: u64| v.saturating_mul(1000);
    match (user, system, usage) {
        (Some(u), Some(s), _) => Ok(CpuUsage::Total(CpuTime {
            user_ns: us(u),
            system_ns: us(s),
        })),
        (_, _, Some(total)) => Ok(CpuUsage::Total(CpuTime {
            user_ns: us(total),
            system_ns: 0,
        })),
        _ => Err("no user_usec/system_usec or usage_usec".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_all() {
        let m = parse_usage_all("cpu user system\n0 100 20\n1 300 40\r\n").unwrap();
        assert_eq!(
            m[&0],
            CpuTime {
                user_ns: 100,
                system_ns: 20
            }
        );
        assert_eq!(
            m[&1],
            CpuTime {
                user_ns: 300,
                system_ns: 40
            }
        );
        assert!(parse_usage_all("0 100 20\n").is_err());
        assert!(parse_usage_all("cpu user system\n").is_err());
        assert!(parse_usage_all("cpu user system\n0 x 20\n").is_err());
    }

    #[test]
    fn usage_percpu() {
        let m = parse_usage_percpu("100 200 \n").unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(
            m[&1],
            CpuTime {
                user_ns: 200,
                system_ns: 0
            }
        );
        assert!(parse_usage_percpu("\n").is_err());
        assert!(parse_usage_percpu("1 x\n").is_err());
    }

    #[test]
    fn cpu_stat() {
        let t = "usage_usec 30\nuser_usec 20\nsystem_usec 10\nnr_periods 0\n";
        assert_eq!(
            parse_cpu_stat(t),
            Ok(CpuUsage::Total(CpuTime {
                user_ns: 20_000,
                system_ns: 10_000
            }))
        );
        assert_eq!(
            parse_cpu_stat("usage_usec 7\n"),
            Ok(CpuUsage::Total(CpuTime {
                user_ns: 7_000,
                system_ns: 0
            }))
        );
        assert!(parse_cpu_stat("nr_periods 1\n").is_err());
    }
}
