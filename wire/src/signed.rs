//! Signed model packages: one archive (uncompressed tar) holding an index with the SHA-256 of
//! every file, then the package's files (manifest, model files, test vectors). The archive's
//! SHA-256 is signed with Ed25519; the signature travels beside the archive (a `.sig` file, or
//! the desired-state message), so a device checks the bytes it downloaded before it opens them.
//!
//! Signed message: `SIGNING_CONTEXT || sha256(archive)`.
//!
//! Length: ~560 lines of code and ~100 of tests: keys, signatures, the archive and the
//! desired-state message are the one protocol a package travels by.

use crate::state::RejectCode;
use ed25519_dalek::{Signature, Signer, Verifier};
pub use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// Domain separation: a signature over a package can never be mistaken for anything else.
pub const SIGNING_CONTEXT: &[u8] = b"emotiond model package v1\n";
/// The index, first entry of every archive.
pub const INDEX_NAME: &str = "emotiond-package.json";
/// Limits for what a device unpacks.
pub const MAX_FILES: usize = 256;
pub const MAX_ARCHIVE_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexEntry {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Index {
    pub format: u32,
    pub name: String,
    pub version: String,
    pub task: crate::Task,
    pub files: Vec<IndexEntry>,
}

/// `<archive>.sig`, and the signature fields of a desired-state message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureFile {
    /// Hex SHA-256 of the archive.
    pub sha256: String,
    /// Hex of the first 8 bytes of SHA-256(public key).
    pub key_id: String,
    /// Hex Ed25519 signature of `SIGNING_CONTEXT || sha256(archive)`.
    pub signature: String,
}

/// Why a package is refused. `code()` is stable: operators and tests match on it.
#[derive(Debug, thiserror::Error)]
pub enum SignedError {
    #[error("archive SHA-256 is {got}, expected {want} (corrupt or truncated download)")]
    HashMismatch { want: String, got: String },
    #[error("the package is not signed")]
    Unsigned,
    #[error("signed by key {0}, which is not among the trusted keys")]
    UntrustedKey(String),
    #[error("signature does not verify with key {0}")]
    BadSignature(String),
    #[error("archive is corrupt: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Io(String),
    #[error("key: {0}")]
    Key(String),
}

impl SignedError {
    /// The reason a device reports for this error (`models/state`).
    pub fn reject_code(&self) -> RejectCode {
        match self {
            SignedError::HashMismatch { .. } => RejectCode::HashMismatch,
            SignedError::Unsigned => RejectCode::Unsigned,
            SignedError::UntrustedKey(_) => RejectCode::UntrustedKey,
            SignedError::BadSignature(_) => RejectCode::BadSignature,
            SignedError::Corrupt(_) => RejectCode::CorruptArchive,
            SignedError::Io(_) | SignedError::Key(_) => RejectCode::Io,
        }
    }

    /// The reason as `emotion-fleet model verify` prints it: the device's reason code, and
    /// `key` for a key file that does not parse (a fleet-side problem only).
    pub fn code(&self) -> &'static str {
        match self {
            SignedError::Key(_) => "key",
            e => e.reject_code().as_str(),
        }
    }
}

pub use crate::sha256_hex;

pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

/// A new signing key from the OS's random source.
pub fn generate_key() -> Result<SigningKey, SignedError> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| SignedError::Key(e.to_string()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Keys are stored as 64 hex digits (secret: the seed; public: the point), one line.
pub fn parse_secret(text: &str) -> Result<SigningKey, SignedError> {
    let b = hex32(text)?;
    Ok(SigningKey::from_bytes(&b))
}

pub fn parse_public(text: &str) -> Result<VerifyingKey, SignedError> {
    let b = hex32(text)?;
    VerifyingKey::from_bytes(&b)
        .map_err(|e| SignedError::Key(format!("not an Ed25519 public key: {e}")))
}

fn hex32(text: &str) -> Result<[u8; 32], SignedError> {
    let v = hex::decode(text.trim()).map_err(|e| SignedError::Key(format!("not hex: {e}")))?;
    v.try_into()
        .map_err(|v: Vec<u8>| SignedError::Key(format!("{} bytes, expected 32", v.len())))
}

fn message(archive_sha256: &[u8]) -> Vec<u8> {
    let mut m = SIGNING_CONTEXT.to_vec();
    m.extend_from_slice(archive_sha256);
    m
}

pub fn sign(archive: &[u8], key: &SigningKey) -> SignatureFile {
    let digest = Sha256::digest(archive);
    let sig = key.sign(&message(&digest));
    SignatureFile {
        sha256: hex::encode(digest),
        key_id: key_id(&key.verifying_key()),
        signature: hex::encode(sig.to_bytes()),
    }
}

/// Check `archive` against the expected SHA-256 and the signature, with any of `trusted`.
pub fn verify(
    archive: &[u8],
    sig: Option<&SignatureFile>,
    trusted: &[VerifyingKey],
) -> Result<(), SignedError> {
    let digest = Sha256::digest(archive);
    let got = hex::encode(digest);
    let sig = sig.ok_or(SignedError::Unsigned)?;
    if !got.eq_ignore_ascii_case(&sig.sha256) {
        return Err(SignedError::HashMismatch {
            want: sig.sha256.clone(),
            got,
        });
    }
    if sig.signature.trim().is_empty() {
        return Err(SignedError::Unsigned);
    }
    let key = trusted
        .iter()
        .find(|k| key_id(k).eq_ignore_ascii_case(&sig.key_id))
        .ok_or_else(|| SignedError::UntrustedKey(sig.key_id.clone()))?;
    let bytes: [u8; 64] = hex::decode(sig.signature.trim())
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| SignedError::BadSignature(sig.key_id.clone()))?;
    key.verify(&message(&digest), &Signature::from_bytes(&bytes))
        .map_err(|_| SignedError::BadSignature(sig.key_id.clone()))
}

/// Every regular file under `dir`, relative, sorted (README-like `.md` files included).
fn walk(dir: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir.join(rel))?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let r = rel.join(e.file_name());
        let ft = e.file_type()?;
        if ft.is_dir() {
            walk(dir, &r, out)?;
        } else if ft.is_file() {
            out.push(r);
        }
    }
    Ok(())
}

/// Pack a package folder (checked by loading it first) into one archive.
pub fn pack(dir: &Path) -> Result<(Vec<u8>, Index), SignedError> {
    let pkg = crate::ModelPackage::load_dir(dir).map_err(|e| SignedError::Io(e.to_string()))?;
    let mut files = Vec::new();
    walk(dir, Path::new(""), &mut files)
        .map_err(|e| SignedError::Io(format!("{}: {e}", dir.display())))?;
    let mut entries = Vec::new();
    let mut contents = Vec::new();
    for f in &files {
        let rel = f
            .to_str()
            .ok_or_else(|| SignedError::Io(format!("{}: not UTF-8", f.display())))?
            .replace('\\', "/");
        let bytes =
            std::fs::read(dir.join(f)).map_err(|e| SignedError::Io(format!("{rel}: {e}")))?;
        entries.push(IndexEntry {
            path: rel.clone(),
            size: bytes.len() as u64,
            sha256: sha256_hex(&bytes),
        });
        contents.push((rel, bytes));
    }
    let index = Index {
        format: 1,
        name: pkg.manifest.name.clone(),
        version: pkg.manifest.version.clone(),
        task: pkg.manifest.task,
        files: entries,
    };
    let index_json =
        serde_json::to_vec_pretty(&index).map_err(|e| SignedError::Io(e.to_string()))?;
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8]| -> std::io::Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, data)
    };
    add(INDEX_NAME, &index_json).map_err(|e| SignedError::Io(e.to_string()))?;
    for (rel, bytes) in &contents {
        add(rel, bytes).map_err(|e| SignedError::Io(format!("{rel}: {e}")))?;
    }
    let archive = b.into_inner().map_err(|e| SignedError::Io(e.to_string()))?;
    Ok((archive, index))
}

fn safe_rel(p: &str) -> Option<PathBuf> {
    let path = Path::new(p);
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// The files of an archive: (path inside the package, contents).
pub type Files = Vec<(String, Vec<u8>)>;

/// Read the index and every file of an archive, checking each against the index. Nothing is
/// written: the result is (index, [(path, bytes)]).
pub fn open(archive: &[u8]) -> Result<(Index, Files), SignedError> {
    let corrupt = |m: String| SignedError::Corrupt(m);
    let mut ar = tar::Archive::new(archive);
    let mut entries = ar.entries().map_err(|e| corrupt(e.to_string()))?;
    let mut read_entry = |what: &str| -> Result<Option<(String, Vec<u8>)>, SignedError> {
        let Some(e) = entries.next() else {
            return Ok(None);
        };
        let mut e = e.map_err(|e| corrupt(format!("{what}: {e}")))?;
        if e.header().entry_type() != tar::EntryType::Regular {
            return Err(corrupt(format!("{what}: not a regular file")));
        }
        let path = e
            .path()
            .map_err(|e| corrupt(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        let size = e.header().size().map_err(|e| corrupt(e.to_string()))?;
        if size > MAX_ARCHIVE_BYTES {
            return Err(corrupt(format!("{path}: {size} bytes is too large")));
        }
        let mut data = Vec::with_capacity(size as usize);
        e.read_to_end(&mut data)
            .map_err(|e| corrupt(format!("{path}: {e}")))?;
        if data.len() as u64 != size {
            return Err(corrupt(format!("{path}: truncated")));
        }
        Ok(Some((path, data)))
    };
    let (first, index_bytes) =
        read_entry("index")?.ok_or_else(|| corrupt("empty archive".into()))?;
    if first != INDEX_NAME {
        return Err(corrupt(format!(
            "first entry is {first}, expected {INDEX_NAME}"
        )));
    }
    let index: Index =
        serde_json::from_slice(&index_bytes).map_err(|e| corrupt(format!("{INDEX_NAME}: {e}")))?;
    if index.format != 1 {
        return Err(corrupt(format!(
            "package format {} is not supported",
            index.format
        )));
    }
    if index.files.len() > MAX_FILES {
        return Err(corrupt(format!("{} files is too many", index.files.len())));
    }
    let mut files = Vec::new();
    for want in &index.files {
        let (path, data) = read_entry(&want.path)?.ok_or_else(|| {
            corrupt(format!(
                "{} is listed but missing (truncated archive)",
                want.path
            ))
        })?;
        if path != want.path || safe_rel(&path).is_none() {
            return Err(corrupt(format!(
                "entry {path} where the index lists {}",
                want.path
            )));
        }
        if data.len() as u64 != want.size || !sha256_hex(&data).eq_ignore_ascii_case(&want.sha256) {
            return Err(corrupt(format!(
                "{path} does not match its SHA-256 in the index"
            )));
        }
        files.push((path, data));
    }
    if let Some((extra, _)) = read_entry("trailer")? {
        return Err(corrupt(format!("{extra} is not in the index")));
    }
    if !files.iter().any(|(p, _)| p == "manifest.toml") {
        return Err(corrupt("no manifest.toml".into()));
    }
    Ok((index, files))
}

/// Write the files of an opened archive under `dir` (which must not exist), fsyncing each.
pub fn unpack_to(files: &[(String, Vec<u8>)], dir: &Path) -> Result<(), SignedError> {
    let io = |p: &Path, e: std::io::Error| SignedError::Io(format!("{}: {e}", p.display()));
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    for (rel, data) in files {
        let rel =
            safe_rel(rel).ok_or_else(|| SignedError::Corrupt(format!("unsafe path {rel}")))?;
        let p = dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        }
        let mut f = std::fs::File::create(&p).map_err(|e| io(&p, e))?;
        std::io::Write::write_all(&mut f, data).map_err(|e| io(&p, e))?;
        f.sync_all().map_err(|e| io(&p, e))?;
    }
    Ok(())
}

/// A package from an opened archive, without touching the disk.
pub fn package_from_files(
    origin: &str,
    files: &[(String, Vec<u8>)],
) -> Result<crate::ModelPackage, crate::PackageError> {
    let get = |rel: &str| -> Result<Vec<u8>, std::io::Error> {
        files
            .iter()
            .find(|(p, _)| p == rel)
            .map(|(_, b)| b.clone())
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "not in the archive"))
    };
    let manifest = get("manifest.toml").map_err(|source| crate::PackageError::Io {
        path: format!("{origin}/manifest.toml").into(),
        source,
    })?;
    crate::ModelPackage::from_parts(origin, &String::from_utf8_lossy(&manifest), get)
}

// The desired-state message lives in `order.rs`; its types keep their old paths here.
pub use crate::order::{
    Action, Chunks, Install, Malformed, Order, SetMessage, Slot, Source, parse_set, signed_order,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/packages/fer_mini_xception")
    }

    #[test]
    fn pack_sign_verify_open_round_trip() {
        let (archive, index) = pack(&shipped()).unwrap();
        assert_eq!(index.name, "fer_mini_xception");
        assert!(index.files.iter().any(|f| f.path == "manifest.toml"));
        // Packing is deterministic.
        assert_eq!(pack(&shipped()).unwrap().0, archive);
        let key = generate_key().unwrap();
        let sig = sign(&archive, &key);
        verify(&archive, Some(&sig), &[key.verifying_key()]).unwrap();
        let (idx, files) = open(&archive).unwrap();
        assert_eq!(idx, index);
        let pkg = package_from_files("test", &files).unwrap();
        assert_eq!(pkg.manifest.name, "fer_mini_xception");
    }

    #[test]
    fn each_kind_of_bad_package_has_its_own_reason() {
        let (archive, _) = pack(&shipped()).unwrap();
        let key = generate_key().unwrap();
        let other = generate_key().unwrap();
        let trusted = [key.verifying_key()];
        let sig = sign(&archive, &key);
        let code = |r: Result<(), SignedError>| r.unwrap_err().code();
        assert_eq!(code(verify(&archive, None, &trusted)), "unsigned");
        let mut blank = sig.clone();
        blank.signature.clear();
        assert_eq!(code(verify(&archive, Some(&blank), &trusted)), "unsigned");
        assert_eq!(
            code(verify(&archive, Some(&sign(&archive, &other)), &trusted)),
            "untrusted_key"
        );
        let mut forged = sign(&archive, &other);
        forged.key_id = sig.key_id.clone();
        assert_eq!(
            code(verify(&archive, Some(&forged), &trusted)),
            "bad_signature"
        );
        let truncated = &archive[..archive.len() / 2];
        assert_eq!(
            code(verify(truncated, Some(&sig), &trusted)),
            "hash_mismatch"
        );
        // A truncated archive signed as such still fails to open.
        assert_eq!(open(truncated).unwrap_err().code(), "corrupt_archive");
        // One flipped byte inside a file: the index catches it.
        let mut flipped = archive.clone();
        let at = archive.len() / 2;
        flipped[at] ^= 0x55;
        assert_eq!(open(&flipped).unwrap_err().code(), "corrupt_archive");
        assert_eq!(
            open(b"not a tar at all").unwrap_err().code(),
            "corrupt_archive"
        );
    }

    #[test]
    fn keys_round_trip_through_hex() {
        let k = generate_key().unwrap();
        let s = parse_secret(&hex::encode(k.to_bytes())).unwrap();
        assert_eq!(s.verifying_key(), k.verifying_key());
        let p = parse_public(&hex::encode(k.verifying_key().as_bytes())).unwrap();
        assert_eq!(key_id(&p), key_id(&k.verifying_key()));
        assert!(parse_public("abcd").is_err());
    }
}
