//! Replacing a file so that a reader (or a start after a crash) sees the old content or
//! the new, never a part: write a hidden temporary file beside it, then rename it over.
//! One helper for the outbox, the update store's slot records and the simulated pins.

use std::io::Write;
use std::path::{Path, PathBuf};

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

/// Replace `path` with `bytes` (see the module docs).
pub fn write_atomic(path: &Path, bytes: &[u8], sync: Sync) -> std::io::Result<()> {
    let tmp = temp_path(path);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        if sync == Sync::Durable {
            f.sync_all()?;
        }
    }
    std::fs::rename(&tmp, path)?;
    if sync == Sync::Durable {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fsync_dir(dir)?;
        }
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
}
