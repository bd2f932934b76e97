//! Replacing a file so that a reader (or a start after a crash) sees the old content or
//! the new, never a part: write a hidden temporary file beside it, then rename it over.
//! One helper for the outbox, the update store's slot records and the simulated pins.
//!
//! What the daemon creates in its state directory is for its own user and group only:
//! files [`FILE_MODE`], folders [`DIR_MODE`] (the process umask can only narrow them), and
//! `emotiond run` sets the umask [`UMASK`] for whatever else it creates.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Files the daemon creates: read-write for its user, readable by its group, not others.
pub const FILE_MODE: u32 = 0o640;
/// Folders the daemon creates: its user and group only.
pub const DIR_MODE: u32 = 0o750;
/// The umask of `emotiond run` (as systemd's `UMask=0027`): nothing for others.
pub const UMASK: u32 = 0o027;

/// Set the process umask to [`UMASK`] (what a start outside systemd would otherwise
/// inherit, often 0022, leaves files readable by every user).
pub fn restrict_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(UMASK));
}

/// `create_dir_all` with [`DIR_MODE`] for every folder it creates (existing ones are left).
pub fn create_dir_all(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
}

/// How far to go for durability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sync {
    /// Rename only: atomic for readers, not across a power loss (simulated pins).
    Atomic,
    /// fsync the file before the rename and the folder after it: the new content survives
    /// a power loss once this returns (outbox entries, slot records).
    Durable,
}

/// The temporary name used for `path`: `.<name>.tmp` in the same folder. Leftovers of an
/// interrupted write start with `.` and end with `.tmp`.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

pub fn fsync_dir(p: &Path) -> std::io::Result<()> {
    std::fs::File::open(p)?.sync_all()
}

/// Replace `path` with `bytes` (see the module docs). A failed write leaves no temporary file behind (on a full disk it would hold the space).
pub fn write_atomic(path: &Path, bytes: &[u8], sync: Sync) -> std::io::Result<()> {
    let tmp = temp_path(path);
    let written = write_temp(&tmp, bytes, sync).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if sync == Sync::Durable {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fsync_dir(dir)?;
        }
    }
    Ok(())
}

fn write_temp(tmp: &Path, bytes: &[u8], sync: Sync) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(tmp)?;
    f.write_all(bytes)?;
    if sync == Sync::Durable {
        f.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("slot.json");
        for (i, sync) in [Sync::Atomic, Sync::Durable].into_iter().enumerate() {
            write_atomic(&p, format!("v{i}").as_bytes(), sync).unwrap();
            assert_eq!(std::fs::read_to_string(&p).unwrap(), format!("v{i}"));
        }
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["slot.json"]);
        assert_eq!(temp_path(&p), d.path().join(".slot.json.tmp"));
    }

    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn what_the_daemon_creates_is_for_its_user_and_group_only() {
        // The test process's umask may be 0022 (or narrower): the modes asked for must not
        // need it. Nothing for others, no group write, no execute on files.
        let d = tempfile::tempdir().unwrap();
        let deep = d.path().join("state/outbox");
        create_dir_all(&deep).unwrap();
        for dir in [d.path().join("state"), deep.clone()] {
            let m = mode(&dir);
            assert_eq!(m & 0o027, 0, "{} is {m:o}", dir.display());
            assert_eq!(m & 0o700, 0o700, "{} is {m:o}", dir.display());
        }
        let f = deep.join("entry.sum");
        for sync in [Sync::Atomic, Sync::Durable] {
            write_atomic(&f, b"x", sync).unwrap();
            let m = mode(&f);
            assert_eq!(m & 0o137, 0, "{m:o}");
            assert_eq!(m & 0o600, 0o600, "{m:o}");
        }
        // an existing file keeps being replaced with the restrictive mode
        std::fs::remove_file(&f).unwrap();
        std::fs::write(&f, b"old").unwrap();
        write_atomic(&f, b"new", Sync::Atomic).unwrap();
        assert_eq!(mode(&f) & 0o137, 0);
        // a folder that exists is left as it is (the technician's choice)
        let open = d.path().join("open");
        std::fs::create_dir(&open).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        create_dir_all(&open).unwrap();
        assert_eq!(mode(&open), 0o755);
    }

    #[test]
    fn a_failed_write_leaves_no_temporary_file() {
        let d = tempfile::tempdir().unwrap();
        // the rename fails: a folder is in the way
        let p = d.path().join("busy");
        std::fs::create_dir(&p).unwrap();
        std::fs::write(p.join("inside"), b"x").unwrap();
        assert!(write_atomic(&p, b"new", Sync::Durable).is_err());
        assert!(!temp_path(&p).exists(), "the temporary file is left behind");
        assert!(p.join("inside").exists());
    }
}
