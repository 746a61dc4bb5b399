//! `-p FILE`: our pid, written and held locked so a second daemon with the same pidfile
//! refuses to start.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::error::DaemonError;

/// A pidfile held under an exclusive lock for the daemon's life and removed at exit.
pub(super) struct PidFile {
    path: PathBuf,
    _lock: Flock<File>,
}

impl PidFile {
    pub(super) fn acquire(path: &Path) -> Result<PidFile, DaemonError> {
        let err = |source| DaemonError::Pidfile {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let mut lock = loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(err)?;
            let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => lock,
                Err((mut file, Errno::EWOULDBLOCK)) => {
                    let mut pid = String::new();
                    let _ = file.read_to_string(&mut pid);
                    return Err(DaemonError::PidfileLocked {
                        path: path.to_path_buf(),
                        pid: pid.trim().to_string(),
                    });
                }
                Err((_, e)) => return Err(err(e.into())),
            };
            // A daemon exiting removes its pidfile before it lets go of the lock: a file we
            // locked after that is no longer at `path`, so open the new one.
            let locked = lock.metadata().map_err(err)?.ino();
            if std::fs::metadata(path).is_ok_and(|m| m.ino() == locked) {
                break lock;
            }
        };
        lock.set_len(0).map_err(err)?;
        lock.rewind().map_err(err)?;
        writeln!(lock, "{}", std::process::id()).map_err(err)?;
        Ok(PidFile {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pidfile_is_exclusive_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/lxcfs-rs.pid");
        let held = PidFile::acquire(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap().trim(),
            std::process::id().to_string()
        );
        match PidFile::acquire(&path) {
            Err(DaemonError::PidfileLocked { pid, .. }) => {
                assert_eq!(pid, std::process::id().to_string())
            }
            other => panic!("second pidfile lock: {other:?}", other = other.map(|_| ())),
        }
        drop(held);
        assert!(!path.exists());
    }
}
