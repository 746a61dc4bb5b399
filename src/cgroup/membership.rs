//! Which cgroups a reader is in: `/proc/<pid>/cgroup` resolved against the mounted hierarchies.

use std::path::{Path, PathBuf};

use super::controller::Controller;
use super::error::CgroupError;
use super::mountinfo::{Hierarchies, Mount};
use crate::fallback;
use crate::host::HostPaths;
use crate::kfile::{FileError, read_with};

/// Where the task list for loadavg comes from on v1, in order of preference.
pub(crate) const TASK_CONTROLLERS: [Controller; 4] = [
    Controller::Cpu,
    Controller::Cpuacct,
    Controller::Pids,
    Controller::Memory,
];

/// Which interface files a cgroup directory has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    V1,
    V2,
}

/// One resolved cgroup directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CgDir {
    pub(crate) version: Version,
    /// The directory, under the hierarchy's mount point.
    pub(crate) dir: PathBuf,
    /// How many levels `dir` is below the mount point, so that walking the ancestors stops at
    /// the mount point without comparing paths.
    pub(crate) depth: usize,
    /// Whether this is the hierarchy's real root (cgroup path `/`), which holds the whole host.
    pub(crate) is_root: bool,
    /// Whether the mount point shows the real root cgroup (mountinfo root `/`), so that the
    /// top of the walk up is the root, which can hold no limit.
    pub(crate) mount_shows_root: bool,
}

impl CgDir {
    /// Resolves the cgroup path `cgroup` (from `file`, a `/proc/<pid>/cgroup`) in `mount`.
    fn resolve(
        file: &Path,
        mount: &Mount,
        cgroup: &str,
        version: Version,
    ) -> Result<CgDir, CgroupError> {
        let Some(below_slash) = cgroup.strip_prefix('/') else {
            return Err(FileError::malformed(
                file,
                format!("cgroup path {cgroup:?} is not absolute"),
            )
            .into());
        };
        for (i, c) in below_slash.split('/').enumerate() {
            if c == ".." {
                return Err(if i == 0 {
                    CgroupError::OutsideNamespace {
                        path: file.to_path_buf(),
                        cgroup: cgroup.to_owned(),
                    }
                } else {
                    // Never produced by the kernel; refusing it keeps us inside the mount.
                    FileError::malformed(file, format!("cgroup path {cgroup:?} contains ..")).into()
                });
            }
        }
        let rel = if mount.root == "/" {
            Some(below_slash)
        } else {
            let root = mount.root.trim_end_matches('/');
            cgroup.strip_prefix(root).and_then(|rest| {
                if rest.is_empty() {
                    Some(rest)
                } else {
                    rest.strip_prefix('/')
                }
            })
        };
        let Some(rel) = rel else {
            return Err(CgroupError::OutsideMount {
                path: file.to_path_buf(),
                cgroup: cgroup.to_owned(),
                mount_root: mount.root.clone(),
                mount_dir: mount.dir.clone(),
            });
        };
        let depth = rel.split('/').filter(|c| !c.is_empty()).count();
        Ok(CgDir {
            version,
            dir: if depth == 0 {
                mount.dir.clone()
            } else {
                mount.dir.join(rel)
            },
            depth,
            is_root: cgroup.trim_end_matches('/').is_empty(),
            mount_shows_root: mount.root == "/",
        })
    }

    /// The directory and each ancestor up to the hierarchy's mount point, innermost first.
    pub(crate) fn ancestors(&self) -> impl Iterator<Item = &Path> {
        self.dir.ancestors().take(self.depth + 1)
    }

    /// The directories whose limits can cap this cgroup: it and its ancestors, without the
    /// real root cgroup, where the kernel refuses memory limits and CFS quotas (and cgroup
    /// v2 has no such files). One file fewer to read per limit on every request.
    pub(crate) fn limit_dirs(&self) -> impl Iterator<Item = &Path> {
        let levels = if self.mount_shows_root {
            self.depth
        } else {
            self.depth + 1
        };
        self.dir.ancestors().take(levels)
    }

    /// A file of this cgroup.
    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Resolved cgroup directories of one reader, per controller, each either v1 or v2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderCgroups {
    /// By `Controller::index`; `None` when the controller is not mounted or the reader has no
    /// line for it.
    pub(crate) dirs: [Option<CgDir>; Controller::COUNT],
    /// The reader's cgroup2 directory, whether or not any controller is enabled there (on a
    /// hybrid host the task list may have to come from it).
    pub(crate) unified: Option<CgDir>,
}

impl ReaderCgroups {
    /// The directory serving `c`, if any.
    pub(crate) fn dir(&self, c: Controller) -> Option<&CgDir> {
        self.dirs[c.index()].as_ref()
    }

    /// The directory that tells this reader's container from others: its memory cgroup's
    /// (what bounds a container's memory), else its cgroup2 directory, else its first
    /// controller's. A reader cannot leave it without write access to the hierarchy.
    pub fn identity(&self) -> Option<&Path> {
        self.dir(Controller::Memory)
            .or(self.unified.as_ref())
            .or_else(|| self.dirs.iter().flatten().next())
            .map(|cg| cg.dir.as_path())
    }
}

impl Hierarchies {
    /// The reader's cgroups, from `<proc>/<pid>/cgroup` (v1 lines `N:ctrl1,ctrl2:/path`, v2
    /// `0::/path`). On a hybrid host the v1 lines win for their controllers; a controller with
    /// no v1 hierarchy uses the `0::` path if the cgroup2 root lists it in `cgroup.controllers`.
    pub fn of_pid(&self, host: &HostPaths, pid: u32) -> Result<ReaderCgroups, CgroupError> {
        let file = host.pid_file(pid, "cgroup");
        read_with(&file, |text| self.resolve(&file, text)).map_err(|e| FileError::io(&file, e))?
    }

    /// Resolves the text of a `/proc/<pid>/cgroup` file named `file` (named in errors only):
    /// what `of_pid` does after reading it, public for the benchmarks (no I/O).
    pub fn resolve(&self, file: &Path, text: &str) -> Result<ReaderCgroups, CgroupError> {
        let mut v1_paths: [Option<&str>; Controller::COUNT] = [None; Controller::COUNT];
        let mut v2_path = None;
        for line in text.lines() {
            let mut fields = line.trim_end().splitn(3, ':');
            let (Some(id), Some(controllers), Some(path)) =
                (fields.next(), fields.next(), fields.next())
            else {
                fallback::note(format_args!("{}: skipping line {line:?}", file.display()));
                continue;
            };
            if id == "0" && controllers.is_empty() {
                v2_path = Some(path);
                continue;
            }
            for name in controllers.split(',') {
                if let Some(c) = Controller::from_v1_name(name) {
                    v1_paths[c.index()] = Some(path);
                }
            }
        }

        // Resolved eagerly, but an error in it only matters if something is read from it.
        let unified = match (&self.v2, v2_path) {
            (Some(mount), Some(path)) => Some(CgDir::resolve(file, mount, path, Version::V2)),
            _ => None,
        };
        let mut dirs: [Option<CgDir>; Controller::COUNT] = Default::default();
        for c in Controller::ALL {
            let i = c.index();
            dirs[i] = match (&self.v1[i], v1_paths[i]) {
                (Some(mount), Some(path)) => Some(CgDir::resolve(file, mount, path, Version::V1)?),
                (Some(_), None) => {
                    fallback::note(format_args!(
                        "{}: no line for the mounted v1 {} hierarchy",
                        file.display(),
                        c.v1_name()
                    ));
                    None
                }
                (None, _) if self.v2_enabled[i] => match unified {
                    Some(Ok(ref cg)) => Some(cg.clone()),
                    Some(Err(e)) => return Err(e),
                    None => None,
                },
                (None, _) => None,
            };
        }
        let unified = match unified {
            Some(Ok(cg)) => Some(cg),
            // The task list falls back to the unified dir only without v1 cpu, cpuacct, pids
            // and memory; then it is needed.
            Some(Err(e))
                if TASK_CONTROLLERS
                    .iter()
                    .all(|c| self.v1[c.index()].is_none()) =>
            {
                return Err(e);
            }
            Some(Err(e)) => {
                log::debug!("unused cgroup2 path: {e}");
                None
            }
            None => None,
        };
        Ok(ReaderCgroups { dirs, unified })
    }
}
