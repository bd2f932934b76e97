//! The model packages shipped in `models/packages/`, embedded at build time.
#![forbid(unsafe_code)]

use crate::package::{ModelPackage, PackageError};

/// (path inside the package, contents) of every file of one package.
type Files = &'static [(&'static str, &'static [u8])];

include!(concat!(env!("OUT_DIR"), "/builtin_packages.rs"));

/// Default face detector package.
pub const DEFAULT_DETECTOR: &str = "blazeface_short_range";
/// Default expression package.
pub const DEFAULT_EXPRESSION: &str = "fer_mini_xception";

/// Names of the embedded packages.
pub fn names() -> impl Iterator<Item = &'static str> {
    PACKAGES.iter().map(|(n, _)| *n)
}

/// Load an embedded package by folder name (e.g. `fer_mini_xception`).
pub fn load(name: &str) -> Option<Result<ModelPackage, PackageError>> {
    let (_, files) = PACKAGES.iter().find(|(n, _)| *n == name)?;
    let get = |rel: &str| -> Result<Vec<u8>, std::io::Error> {
        files
            .iter()
            .find(|(r, _)| *r == rel)
            .map(|(_, b)| b.to_vec())
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "not embedded"))
    };
    let manifest = match get("manifest.toml") {
        Ok(m) => String::from_utf8_lossy(&m).into_owned(),
        Err(e) => {
            return Some(Err(PackageError::Io {
                path: format!("builtin:{name}/manifest.toml").into(),
                source: e,
            }));
        }
    };
    Some(ModelPackage::from_parts(
        &format!("builtin:{name}"),
        &manifest,
        get,
    ))
}
