//! The update store under `state_dir/models/`: `staging/` (work in progress, cleared at
//! start), `store/<sha256>/` (verified packages, renamed into place complete) and
//! `<slot>.json` (which package a slot runs, replaced atomically).

use crate::fsutil::fsync_dir;
use emotiond_models::ModelPackage;
use emotiond_models::signed::{self, Slot};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRef {
    pub sha256: String,
    pub id: String,
}

/// `<slot>.json`: `None` = the configured package.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SlotFile {
    pub active: Option<StoredRef>,
    pub previous: Option<StoredRef>,
    /// Archives rolled back from this slot (newest last, at most 16): a retained order for
    /// one of them is not installed again.
    #[serde(default)]
    pub rolled_back: Vec<String>,
    /// `seq` of the last order this slot followed (a lower one is a replay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_seq: Option<u64>,
    /// The newest `issued_at_ms` of the orders followed (a floor for a clock that is behind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_issued_ms: Option<u64>,
    /// Highest release accepted per model name (anti-rollback); it never goes down.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub releases: BTreeMap<String, u64>,
}

impl SlotFile {
    /// The slot after rolling back from `active`.
    pub(super) fn after_rollback(&self) -> SlotFile {
        let mut rb = self.rolled_back.clone();
        if let Some(a) = &self.active {
            rb.retain(|s| *s != a.sha256);
            rb.push(a.sha256.clone());
        }
        if rb.len() > 16 {
            rb.drain(..rb.len() - 16);
        }
        SlotFile {
            active: self.previous.clone(),
            previous: None,
            rolled_back: rb,
            ..self.clone()
        }
    }
}

/// `keys.json`: keys trusted through rotation.
#[derive(Debug, Default, Serialize, Deserialize)]
struct KeysFile {
    trusted: Vec<String>,
}

pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn open(state_dir: &Path) -> std::io::Result<Store> {
        let root = state_dir.join("models");
        std::fs::create_dir_all(root.join("staging"))?;
        std::fs::create_dir_all(root.join("store"))?;
        Ok(Store { root })
    }

    pub fn staging(&self) -> PathBuf {
        self.root.join("staging")
    }

    fn slot_path(&self, slot: Slot) -> PathBuf {
        self.root.join(format!("{}.json", slot.as_str()))
    }

    pub fn package_dir(&self, sha: &str) -> PathBuf {
        self.root.join("store").join(sha)
    }

    pub fn slot(&self, slot: Slot) -> SlotFile {
        std::fs::read(self.slot_path(slot))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Replace `<slot>.json` atomically: write, fsync, rename, fsync the folder.
    pub fn set_slot(&self, slot: Slot, f: &SlotFile) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(f).map_err(std::io::Error::other)?;
        crate::fsutil::write_atomic(&self.slot_path(slot), &bytes, crate::fsutil::Sync::Durable)
    }

    fn keys_path(&self) -> PathBuf {
        self.root.join("keys.json")
    }

    /// Keys trusted through rotation (endorsed by a trusted key), hex, beside the configured
    /// `updates.trusted_keys`.
    pub fn added_keys(&self) -> Vec<String> {
        std::fs::read(self.keys_path())
            .ok()
            .and_then(|b| serde_json::from_slice::<KeysFile>(&b).ok())
            .map(|k| k.trusted)
            .unwrap_or_default()
    }

    /// Trust `key` (hex) from now on: `keys.json` replaced atomically and durably.
    pub fn add_key(&self, key: &str) -> std::io::Result<()> {
        let mut trusted = self.added_keys();
        if trusted.iter().any(|k| k.eq_ignore_ascii_case(key)) {
            return Ok(());
        }
        trusted.push(key.to_ascii_lowercase());
        let bytes =
            serde_json::to_vec_pretty(&KeysFile { trusted }).map_err(std::io::Error::other)?;
        crate::fsutil::write_atomic(&self.keys_path(), &bytes, crate::fsutil::Sync::Durable)
    }

    /// Move a verified package into the store: unpacked in staging, fsynced, renamed.
    pub fn put(&self, sha: &str, files: &[(String, Vec<u8>)]) -> Result<PathBuf, String> {
        let dest = self.package_dir(sha);
        if dest.join("manifest.toml").is_file() {
            return Ok(dest);
        }
        let tmp = self.root.join("staging").join(format!("{sha}.unpack"));
        let _ = std::fs::remove_dir_all(&tmp);
        signed::unpack_to(files, &tmp).map_err(|e| e.to_string())?;
        fsync_dir(&tmp).map_err(|e| e.to_string())?;
        let _ = std::fs::remove_dir_all(&dest);
        std::fs::rename(&tmp, &dest).map_err(|e| e.to_string())?;
        fsync_dir(&self.root.join("store")).map_err(|e| e.to_string())?;
        Ok(dest)
    }

    /// What an earlier run left in staging (an update cut short). Partial downloads
    /// (`<sha256>.part`) are kept for the order's next delivery to resume; the rest is
    /// removed.
    /// Returns (file name, what it was for, from an `.order` marker).
    pub fn clear_staging(&self) -> Vec<(String, String)> {
        let dir = self.root.join("staging");
        let mut left = Vec::new();
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let what = if name.ends_with(".order") {
                    std::fs::read_to_string(e.path()).unwrap_or_default()
                } else {
                    String::new()
                };
                left.push((name.clone(), what));
                let resumable = name.len() == 69
                    && name.ends_with(".part")
                    && name[..64].bytes().all(|b| b.is_ascii_hexdigit());
                if resumable {
                    continue;
                }
                let p = e.path();
                let _ = if p.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
            }
        }
        left.sort();
        left
    }

    /// The package folder a slot should start with: the stored active one if it loads, else
    /// the previous stored one, else None (the configured package), with a note to report
    /// when it is not the active one.
    pub fn startup_package(&self, slot: Slot) -> (Option<PathBuf>, Option<String>) {
        let f = self.slot(slot);
        let Some(active) = &f.active else {
            return (None, None);
        };
        let loads = |r: &StoredRef| match ModelPackage::load_dir(&self.package_dir(&r.sha256)) {
            Ok(_) => true,
            Err(e) => {
                log::error!("stored {} model {} does not load: {e}", slot.as_str(), r.id);
                false
            }
        };
        if loads(active) {
            return (Some(self.package_dir(&active.sha256)), None);
        }
        let note = format!("stored package {} does not load", active.id);
        match &f.previous {
            Some(p) if loads(p) => (
                Some(self.package_dir(&p.sha256)),
                Some(format!("{note}; running the previous one, {}", p.id)),
            ),
            _ => (None, Some(format!("{note}; running the configured one"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(sha: &str) -> StoredRef {
        StoredRef {
            sha256: sha.into(),
            id: format!("m@{sha}"),
        }
    }

    #[test]
    fn a_rollback_goes_to_the_previous_model_and_remembers_the_active_one() {
        let f = SlotFile {
            active: Some(r("new")),
            previous: Some(r("old")),
            rolled_back: vec!["x".into(), "new".into()],
            order_seq: Some(4),
            releases: BTreeMap::from([("m".to_string(), 3)]),
            ..Default::default()
        };
        let b = f.after_rollback();
        assert_eq!(b.active, Some(r("old")));
        assert_eq!(b.previous, None);
        assert_eq!(b.rolled_back, ["x", "new"], "listed once, newest last");
        assert_eq!(b.order_seq, Some(4), "the order record is kept");
        assert_eq!(b.releases["m"], 3, "releases accepted are kept");
        // no previous model: the slot goes back to its configured one
        let b = SlotFile {
            active: Some(r("a")),
            ..Default::default()
        }
        .after_rollback();
        assert_eq!((b.active, b.rolled_back), (None, vec!["a".to_string()]));
        // at most 16 remembered
        let f = SlotFile {
            active: Some(r("z")),
            previous: None,
            rolled_back: (0..16).map(|i| i.to_string()).collect(),
            ..Default::default()
        };
        let b = f.after_rollback();
        assert_eq!(b.rolled_back.len(), 16);
        assert_eq!(b.rolled_back.first().unwrap(), "1");
        assert_eq!(b.rolled_back.last().unwrap(), "z");
    }

    #[test]
    fn slot_records_survive_a_reopen_and_staging_is_cleared() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        assert_eq!(s.slot(Slot::Detector), SlotFile::default());
        let f = SlotFile {
            active: Some(r("a")),
            previous: None,
            rolled_back: vec![],
            order_seq: Some(9),
            order_issued_ms: Some(1_800_000_000_000),
            releases: BTreeMap::from([("m".to_string(), 2)]),
        };
        s.set_slot(Slot::Detector, &f).unwrap();
        assert!(s.added_keys().is_empty());
        s.add_key(&"AB".repeat(32)).unwrap();
        s.add_key(&"ab".repeat(32)).unwrap();
        let part = format!("{}.part", "ab".repeat(32));
        std::fs::write(s.staging().join(&part), b"half").unwrap();
        std::fs::write(s.staging().join("x.order"), b"expression fer@2").unwrap();
        let s = Store::open(d.path()).unwrap();
        assert_eq!(s.slot(Slot::Detector), f);
        assert_eq!(s.added_keys(), ["ab".repeat(32)], "once, after a reopen");
        let left = s.clear_staging();
        assert_eq!(
            left,
            [
                (part.clone(), String::new()),
                ("x.order".to_string(), "expression fer@2".to_string())
            ]
        );
        assert!(
            s.staging().join(&part).exists(),
            "a partial download is kept"
        );
        assert!(!s.staging().join("x.order").exists());
    }
}
