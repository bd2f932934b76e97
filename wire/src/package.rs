//! Model packages on disk, built into the binary or inside an archive: the manifest, the
//! model bytes (checked against the manifest's SHA-256) and the test vectors, loaded. No
//! engine here: running the vectors is `emotiond-models` (`CheckVectors`).

use crate::kind::EngineKind;
use crate::manifest::{Manifest, ManifestError};
use crate::sha256_hex;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("model package {path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("model package {path}: {source}")]
    Manifest {
        path: PathBuf,
        #[source]
        source: ManifestError,
    },
    #[error(
        "model file {path}: SHA-256 is {got}, the manifest says {want} (corrupt or replaced file)"
    )]
    Hash {
        path: PathBuf,
        want: String,
        got: String,
    },
    #[error("test vector file {path}: {problem}")]
    VectorFile { path: PathBuf, problem: String },
}

/// One test vector with its tensors loaded.
#[derive(Debug, Clone)]
pub struct LoadedVector {
    pub input: Vec<f32>,
    /// Further inputs after the first (a recurrent state).
    pub extra_inputs: Vec<Vec<f32>>,
    pub outputs: Vec<Vec<f32>>,
    pub atol: f32,
    pub note: String,
}

/// A model package ready to hand to an engine.
#[derive(Debug, Clone)]
pub struct ModelPackage {
    pub manifest: Manifest,
    /// Where it came from: a folder path, or `builtin:<name>`.
    pub origin: String,
    /// The model file for tract (the manifest's `file`).
    pub model: Arc<[u8]>,
    /// Model files for other engines (the manifest's `[files.*]`), hash-checked.
    pub engine_files: Vec<(EngineKind, Arc<[u8]>)>,
    pub vectors: Vec<LoadedVector>,
}

fn f32s(bytes: &[u8], path: &Path) -> Result<Vec<f32>, PackageError> {
    if bytes.len() % 4 != 0 || bytes.is_empty() {
        return Err(PackageError::VectorFile {
            path: path.to_path_buf(),
            problem: format!("{} bytes is not a whole number of f32 values", bytes.len()),
        });
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Is this a TFLite flatbuffer (else: ONNX)? A TFLite file carries `TFL3` at byte 4.
pub fn is_tflite(bytes: &[u8]) -> bool {
    bytes.get(4..8) == Some(b"TFL3")
}

impl ModelPackage {
    /// Build a package from manifest text and a way to read the files it names.
    pub fn from_parts(
        origin: &str,
        manifest_text: &str,
        mut read: impl FnMut(&str) -> Result<Vec<u8>, std::io::Error>,
    ) -> Result<ModelPackage, PackageError> {
        let base = PathBuf::from(origin);
        let manifest = Manifest::parse(manifest_text).map_err(|source| PackageError::Manifest {
            path: base.join("manifest.toml"),
            source,
        })?;
        let mut read_checked = |rel: &str, want: &str| -> Result<Vec<u8>, PackageError> {
            let path = base.join(rel);
            let bytes = read(rel).map_err(|source| PackageError::Io {
                path: path.clone(),
                source,
            })?;
            let got = sha256_hex(&bytes);
            if !got.eq_ignore_ascii_case(want) {
                return Err(PackageError::Hash {
                    path,
                    want: want.to_string(),
                    got,
                });
            }
            Ok(bytes)
        };
        let model = read_checked(&manifest.file, &manifest.sha256)?;
        let mut engine_files = Vec::new();
        for (engine, f) in &manifest.files {
            // Keys were validated by Manifest::parse.
            if let Ok(kind) = engine.parse::<EngineKind>() {
                engine_files.push((kind, read_checked(&f.file, &f.sha256)?.into()));
            }
        }
        let mut vectors = Vec::new();
        for tv in &manifest.test_vectors {
            let load = |read: &mut dyn FnMut(&str) -> Result<Vec<u8>, std::io::Error>,
                        rel: &str|
             -> Result<Vec<f32>, PackageError> {
                let p = base.join(rel);
                let bytes = read(rel).map_err(|source| PackageError::Io {
                    path: p.clone(),
                    source,
                })?;
                f32s(&bytes, &p)
            };
            let input = load(&mut read, &tv.input)?;
            if input.len() != manifest.input.len() {
                return Err(PackageError::VectorFile {
                    path: base.join(&tv.input),
                    problem: format!(
                        "{} values, input shape {:?} needs {}",
                        input.len(),
                        manifest.input.shape,
                        manifest.input.len()
                    ),
                });
            }
            let mut extra_inputs = Vec::new();
            for rel in &tv.inputs {
                let x = load(&mut read, rel)?;
                if let Some(v) = &manifest.vad {
                    let want: usize = v.state_shape.iter().product();
                    if x.len() != want {
                        return Err(PackageError::VectorFile {
                            path: base.join(rel),
                            problem: format!(
                                "{} values, vad.state_shape {:?} needs {want}",
                                x.len(),
                                v.state_shape
                            ),
                        });
                    }
                }
                extra_inputs.push(x);
            }
            let outputs = tv
                .outputs
                .iter()
                .map(|o| load(&mut read, o))
                .collect::<Result<Vec<_>, _>>()?;
            vectors.push(LoadedVector {
                input,
                extra_inputs,
                outputs,
                atol: tv.atol,
                note: tv.note.clone(),
            });
        }
        Ok(ModelPackage {
            manifest,
            origin: origin.to_string(),
            model: model.into(),
            engine_files,
            vectors,
        })
    }

    /// Load a package folder holding `manifest.toml`.
    pub fn load_dir(dir: &Path) -> Result<ModelPackage, PackageError> {
        let mpath = dir.join("manifest.toml");
        let text = std::fs::read_to_string(&mpath).map_err(|source| PackageError::Io {
            path: mpath.clone(),
            source,
        })?;
        Self::from_parts(&dir.display().to_string(), &text, |rel| {
            std::fs::read(dir.join(rel))
        })
    }

    /// The model bytes `kind` runs: its `[files.*]` entry, else (tract, TFLite) the main
    /// file. ONNX Runtime needs its own `.onnx` file.
    pub fn file_for(&self, kind: EngineKind) -> Option<&Arc<[u8]>> {
        match self.engine_files.iter().find(|(k, _)| *k == kind) {
            Some((_, b)) => Some(b),
            None if kind == EngineKind::OnnxRuntime => None,
            // the main file is an ONNX model (tract-onnx): nothing for the TFLite runtime
            None if kind == EngineKind::TfLite && !is_tflite(&self.model) => None,
            None => Some(&self.model),
        }
    }

    /// `name@version`, as summaries report it.
    pub fn id(&self) -> String {
        format!("{}@{}", self.manifest.name, self.manifest.version)
    }
}
