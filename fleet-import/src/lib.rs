//! `emotion-fleet model import`: a data scientist's own model (`.tflite` or `.onnx`) plus its
//! labels and preprocessing → a complete package folder (manifest.toml, the model file, test
//! vectors, a PROVENANCE.md stub), ready for `model pack` and `model sign`.
//!
//! The model is run on the pure-Rust tract engine of `emotiond-models` (the engine every
//! device runs by default and falls back to): it tells the input and output shapes, which
//! are checked against the task before anything is written, and it computes the test
//! vectors from real images (or, with its library named, the model's own runtime does).
//!
//! A crate and a binary of its own (`emotion-fleet-import`) so that `emotion-fleet` links no
//! inference engine; `emotion-fleet model import ...` runs this binary.
//!
//! Length: ~560 lines: the import's steps in order (load, check, crop, vectors, manifest);
//! the shape checks are in `shapes.rs`, the files written in `write.rs`.
#![forbid(unsafe_code)]

mod shapes;
mod write;

use anyhow::{Context, Result, bail};
use emotiond_models::manifest::{
    ClassifierDecode, Color, CropSpec, InputSpec, Manifest, Resize, SsdDecode, Task,
};
use emotiond_models::preprocess::{Region, fill_tensor};
use emotiond_models::tflite_engine::Delegate;
use emotiond_models::{
    Attempt, CheckVectors, Engine, EngineKind, ExpressionClassifier, FaceDetector, ModelPackage,
    Runtimes, Tensor, builtin, load_engine, sha256_hex,
};
use image::RgbImage;
use std::path::{Path, PathBuf};

pub use shapes::{InputRange, TaskArg};

/// The image the test vectors come from when `--vectors-from` is not given: the
/// astronaut photo (public domain, tests/data/SOURCES.md) at 640×480, and its mirror image.
const DEFAULT_IMAGE: &[u8] = include_bytes!("../../tests/data/astronaut_640x480.jpg");
const DEFAULT_IMAGE_NAME: &str = "astronaut_640x480.jpg";

#[derive(clap::Args)]
pub struct ImportArgs {
    /// The model: a `.tflite` file or an `.onnx` file, one float32 input of fixed shape.
    pub model: PathBuf,
    /// `expression` (face crop → class scores) or `detector` (image → SSD boxes and scores).
    #[arg(long)]
    pub task: TaskArg,
    /// Package name (letters, digits, `_`, `-`, `.`).
    #[arg(long)]
    pub name: String,
    /// Package version, free text (e.g. `2.0`); devices report `name@version`.
    #[arg(long)]
    pub version: String,
    /// Release number (anti-rollback): raise it with every package of this name you publish.
    #[arg(long, default_value_t = 1)]
    pub release: u64,
    /// Expression models: the class names in the model's output order, comma-separated
    /// (angry, disgust, fear, happy, sad, surprise, neutral or their usual synonyms).
    #[arg(long, value_delimiter = ',')]
    pub labels: Vec<String>,
    /// The pixel values the model was trained on: `0..1`, `-1..1` or `0..255`.
    #[arg(long, allow_hyphen_values = true)]
    pub input_range: InputRange,
    /// Channel order of the input: `rgb`, `bgr` or `gray` (default: from the input's
    /// channels, 1 → gray, 3 → rgb).
    #[arg(long)]
    pub color: Option<ColorArg>,
    /// Detectors: a TOML file with the `[ssd]` anchor table (another package's manifest.toml
    /// will do). Default: MediaPipe BlazeFace's for a 128×128 or 192×192 input.
    #[arg(long)]
    pub ssd: Option<PathBuf>,
    /// SPDX licence of the model (written into the manifest).
    #[arg(long, default_value = "UNSPECIFIED")]
    pub license: String,
    /// The package folder to create (must not exist, or be empty).
    #[arg(long)]
    pub out: PathBuf,
    /// Images (JPEG or PNG) the test vectors are computed from, one vector each (default: a
    /// photo with one face, built in, and its mirror image).
    #[arg(long, num_args = 1..)]
    pub vectors_from: Vec<PathBuf>,
    /// The TFLite C library: its reference kernels compute a `.tflite` model's vectors
    /// (without it, or when it cannot load: tract, the pure-Rust engine).
    #[arg(long, env = "EMOTIOND_TFLITE_LIB", hide_env_values = true)]
    pub tflite_library: Option<PathBuf>,
    /// ONNX Runtime's library: it computes an `.onnx` model's vectors on CPU (without it:
    /// tract).
    #[arg(long, env = "EMOTIOND_ONNXRUNTIME_LIB", hide_env_values = true)]
    pub onnxruntime_library: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorArg {
    Rgb,
    Bgr,
    #[value(alias = "grey")]
    Gray,
}

/// What `import` found and wrote, printed as one JSON line; `tract_agrees` false: the
/// package is written, but tract (every device's fallback) computes other outputs.
pub struct Imported {
    pub report: serde_json::Value,
    pub tract_agrees: bool,
}

/// One test vector: where its input came from, the tensor, and the model's outputs.
struct Vector {
    stem: String,
    note: String,
    input: Vec<f32>,
    outputs: Vec<Tensor>,
}

/// The model's file format, from its name and checked against its bytes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Format {
    TfLite,
    Onnx,
}

fn format_of(path: &Path, bytes: &[u8]) -> Result<Format> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let tfl = emotiond_models::package::is_tflite(bytes);
    match ext.as_deref() {
        Some("tflite") if tfl => Ok(Format::TfLite),
        Some("tflite") => bail!(
            "{} is not a TFLite model (no TFL3 identifier at byte 4)",
            path.display()
        ),
        Some("onnx") if tfl => bail!(
            "{} is a TFLite model named .onnx (rename it .tflite)",
            path.display()
        ),
        Some("onnx") => Ok(Format::Onnx),
        _ => bail!(
            "{}: the model file must end in .tflite or .onnx",
            path.display()
        ),
    }
}

/// A package in memory holding just the model, for loading it on tract.
fn bare_package(name: &str, bytes: &[u8]) -> Result<ModelPackage> {
    let text = format!(
        "name = {}\nversion = \"import\"\ntask = \"expression\"\nfile = \"model\"\n\
         sha256 = \"{}\"\nlicense = \"\"\n[input]\nshape = [1]\n",
        toml::Value::from(name),
        sha256_hex(bytes)
    );
    let manifest: Manifest = toml::from_str(&text).context("internal manifest")?;
    Ok(ModelPackage {
        manifest,
        origin: "import".into(),
        model: bytes.to_vec().into(),
        // the same bytes for ONNX Runtime (for a .tflite, the TFLite runtime takes `model`)
        engine_files: if emotiond_models::package::is_tflite(bytes) {
            Vec::new()
        } else {
            vec![(EngineKind::OnnxRuntime, bytes.to_vec().into())]
        },
        vectors: Vec::new(),
    })
}

/// The model's own runtime, when its library loads: TFLite's reference kernels (no delegate)
/// for a `.tflite`, ONNX Runtime on CPU for an `.onnx`. Err: why not (tract computes the
/// vectors then).
fn native(
    pkg: &ModelPackage,
    format: Format,
    args: &ImportArgs,
) -> std::result::Result<(Box<dyn Engine>, Attempt, String), String> {
    let runtimes = Runtimes {
        tflite_library: args.tflite_library.clone(),
        onnxruntime_library: args.onnxruntime_library.clone(),
    };
    let (attempt, label) = match format {
        Format::TfLite => {
            let (version, path) =
                emotiond_models::tflite_engine::library_info(args.tflite_library.as_deref())?;
            (
                Attempt::TfLite(Delegate::None),
                format!(
                    "TFLite {version} reference kernels (no delegate; {}), float32",
                    file_name(&path)
                ),
            )
        }
        Format::Onnx => {
            let (path, version) =
                emotiond_models::onnxruntime_info(args.onnxruntime_library.as_deref())?;
            (
                Attempt::OnnxRuntime(vec!["cpu".into()]),
                format!(
                    "ONNX Runtime {version} on CPU ({}), float32",
                    file_name(&path)
                ),
            )
        }
    };
    let engine = load_engine(pkg, &attempt, &runtimes, 1).map_err(|e| e.reason)?;
    Ok((engine, attempt, label))
}

/// A library's file name (the folder it was in on this machine is no business of the package).
fn file_name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_string())
}

/// Largest |difference| between two engines' outputs (infinite when their shapes differ).
fn max_diff(a: &[Tensor], b: &[Tensor]) -> f32 {
    if a.len() != b.len() || a.iter().zip(b).any(|(x, y)| x.shape != y.shape) {
        return f32::INFINITY;
    }
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| x.data.iter().zip(&y.data))
        .map(|(u, w)| {
            if (u - w).is_nan() {
                f32::INFINITY
            } else {
                (u - w).abs()
            }
        })
        .fold(0.0, f32::max)
}

fn tract(pkg: &ModelPackage) -> Result<Box<dyn Engine>> {
    load_engine(pkg, &Attempt::Tract, &Runtimes::default(), 1).map_err(|e| {
        let hint = if e.reason.contains("not fixed") {
            " (export the model with a fixed input shape, batch 1)"
        } else if e.reason.contains("Unsupported") {
            " (an operator or type tract does not support; for a .tflite, \
             models/tools/rewrite_for_tract.py rewrites fp16 and int8 weights, PRELU, MEAN and others)"
        } else {
            ""
        };
        // tract's reasons can hold a whole operator dump: one line, bounded
        let mut reason = e.reason.split_whitespace().collect::<Vec<_>>().join(" ");
        if reason.chars().count() > 400 {
            reason = reason.chars().take(400).collect::<String>() + " ...";
        }
        anyhow::anyhow!("tract cannot load the model: {reason}{hint}")
    })
}

fn run(engine: &mut dyn Engine, input: &[f32]) -> Result<Vec<Tensor>> {
    let mut out = Vec::new();
    engine.run(input, &mut out).map_err(|e| {
        let s = e.to_string();
        if s.contains("inputs given, the model has") {
            anyhow::anyhow!("the model has more than one input: an image model takes one ({s})")
        } else {
            anyhow::anyhow!("the model does not run on tract: {s}")
        }
    })?;
    Ok(out)
}

fn load_image(p: &Path) -> Result<RgbImage> {
    let bytes = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
    Ok(image::load_from_memory(&bytes)
        .with_context(|| format!("{} is not a JPEG or PNG image", p.display()))?
        .to_rgb8())
}

/// The images the vectors come from: (file stem, what it is, pixels).
fn images(args: &ImportArgs) -> Result<Vec<(String, String, RgbImage)>> {
    if args.vectors_from.is_empty() {
        let img = image::load_from_memory(DEFAULT_IMAGE)
            .context("the built-in image")?
            .to_rgb8();
        let mirror = image::imageops::flip_horizontal(&img);
        return Ok(vec![
            ("astronaut".into(), DEFAULT_IMAGE_NAME.into(), img),
            (
                "astronaut_mirror".into(),
                format!("{DEFAULT_IMAGE_NAME} mirrored left-right"),
                mirror,
            ),
        ]);
    }
    let mut v: Vec<(String, String, RgbImage)> = Vec::new();
    for p in &args.vectors_from {
        let img = load_image(p)?;
        let name = p.file_name().unwrap_or_default().to_string_lossy();
        let mut stem: String = p
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        if stem.is_empty() || v.iter().any(|(s, _, _)| *s == stem) {
            stem = format!("image{}", v.len());
        }
        v.push((stem, name.into_owned(), img));
    }
    Ok(v)
}

/// The region an expression model sees: the best face BlazeFace finds, cropped as the
/// daemon crops it, or the whole image when it finds none.
fn face_region(
    det: &mut FaceDetector,
    img: &RgbImage,
    crop: &CropSpec,
) -> Result<(Region, String)> {
    let faces = det.detect(img).map_err(|e| anyhow::anyhow!("{e}"))?;
    let best = faces
        .iter()
        .max_by(|a, b| a.score.total_cmp(&b.score))
        .map(|d| d.bbox);
    Ok(match best {
        Some(b) => {
            let r = emotiond_models::classifier::crop_region(&b, crop, img.width(), img.height());
            let note = format!(
                "face found by blazeface_short_range at x {:.0}, y {:.0}, {:.0} px, made square + {} margin",
                b.x * img.width() as f32,
                b.y * img.height() as f32,
                b.w * img.width() as f32,
                crop.margin
            );
            (r, note)
        }
        None => (Region::whole(img), "no face found: the whole image".into()),
    })
}

/// Check the model against the task, compute the vectors, write the package folder.
pub fn import(args: &ImportArgs) -> Result<Imported> {
    shapes::check_name(&args.name)?;
    if args.version.trim().is_empty() || args.version.contains(['"', '\n']) {
        bail!("--version must be a non-empty version string");
    }
    let task = args.task.task();
    let labels = shapes::check_labels(task, &args.labels)?;
    let bytes = std::fs::read(&args.model)
        .with_context(|| format!("cannot read {}", args.model.display()))?;
    let format = format_of(&args.model, &bytes)?;
    let bare = bare_package(&args.name, &bytes)?;
    let mut engine =
        tract(&bare).with_context(|| format!("{} ({format:?})", args.model.display()))?;
    let shape = engine.input_shape().to_vec();
    let (layout, channels) = shapes::image_input(task, &shape)?;
    let color = shapes::color(args.color, channels, &shape)?;
    let (mean, std) = args.input_range.mean_std();
    let input = InputSpec {
        shape: shape.clone(),
        layout,
        dtype: Default::default(),
        color,
        resize: if task == Task::FaceDetection {
            Resize::Letterbox
        } else {
            Resize::Stretch
        },
        mean: vec![mean; channels],
        std: vec![std; channels],
    };
    let zeros = vec![0.0f32; input.len()];
    let probe = run(engine.as_mut(), &zeros)?;
    let out_shapes: Vec<Vec<usize>> = probe.iter().map(|t| t.shape.clone()).collect();
    let (h, w, _) = input.hwc();
    let (ssd, classes_output) = match task {
        Task::FaceDetection => {
            let mut ssd = load_ssd(args.ssd.as_deref(), h, w)?;
            let (b, s) = shapes::detector_outputs(&out_shapes, &ssd)?;
            ssd.boxes_output = b;
            ssd.scores_output = s;
            (Some(ssd), 0)
        }
        _ => (None, shapes::classes_output(&out_shapes, labels.len())?),
    };
    let crop = CropSpec {
        square: true,
        margin: 0.1,
    };

    let (mut reference, not_native) = match native(&bare, format, args) {
        Ok(r) => (Some(r), None),
        Err(why) => (None, Some(why)),
    };
    let reference_label = match &reference {
        Some((_, _, l)) => l.clone(),
        None => write::REFERENCE.to_string(),
    };
    let mut tract_diff = 0.0f32;
    let mut detector = None;
    let mut vectors = Vec::new();
    for (stem, name, img) in images(args)? {
        let (region, how) = if task == Task::Expression {
            let det = match &mut detector {
                Some(d) => d,
                None => detector.insert(builtin_detector()?),
            };
            face_region(det, &img, &crop)?
        } else {
            (Region::whole(&img), "the whole image, letterboxed".into())
        };
        let mut tensor = Vec::new();
        fill_tensor(&img, region, &input, &mut tensor);
        let mut outputs = run(engine.as_mut(), &tensor)?;
        if let Some((n, _, label)) = &mut reference {
            let theirs = run(n.as_mut(), &tensor).with_context(|| label.clone())?;
            tract_diff = tract_diff.max(max_diff(&outputs, &theirs));
            outputs = theirs;
        }
        vectors.push(Vector {
            note: format!(
                "{name} ({}x{}): {how}, {h}x{w} {color:?}",
                img.width(),
                img.height()
            ),
            stem,
            input: tensor,
            outputs,
        });
    }
    let softmax_applied = task == Task::Expression
        && vectors
            .iter()
            .all(|v| shapes::is_distribution(&v.outputs[classes_output].data));
    let atol = match task {
        Task::FaceDetection => 2e-3,
        _ if softmax_applied => 1e-4,
        _ => 1e-3,
    };
    let tract_agrees = tract_diff <= atol;
    let tract_note = reference.as_ref().map(|_| {
        if tract_agrees {
            format!("tract reproduces them (max diff {tract_diff:.1e})")
        } else {
            format!(
                "tract does NOT reproduce them (max diff {tract_diff:.1e}, tolerance {atol:.0e}): \
                 a device without this runtime, or whose runtime fails, refuses the model"
            )
        }
    });
    let classifier = (task == Task::Expression).then_some(ClassifierDecode {
        output: classes_output,
        softmax_applied,
    });
    let plan = write::Plan {
        args,
        format,
        bytes: &bytes,
        input: &input,
        labels: &labels,
        ssd: ssd.as_ref(),
        classifier: classifier.as_ref(),
        crop: &crop,
        atol,
        out_shapes: &out_shapes,
        reference: &reference_label,
        tract_note: tract_note.as_deref(),
    };
    let written = write::package(&plan, &vectors)?;

    // Load the folder as the daemon does (hashes, vectors) and run it once more.
    let pkg = ModelPackage::load_dir(&args.out)
        .with_context(|| format!("the written package {}", args.out.display()))?;
    let mut fresh = match &reference {
        Some((_, attempt, _)) => load_engine(
            &pkg,
            attempt,
            &Runtimes {
                tflite_library: args.tflite_library.clone(),
                onnxruntime_library: args.onnxruntime_library.clone(),
            },
            1,
        )
        .map_err(|e| anyhow::anyhow!("{reference_label}: {}", e.reason))?,
        None => tract(&pkg)?,
    };
    let worst = pkg
        .check_vectors(fresh.as_mut())
        .map_err(|e| anyhow::anyhow!("the written package fails its own vectors: {e}"))?;
    match task {
        Task::FaceDetection => FaceDetector::new(&pkg, fresh).map(|_| ()),
        _ => ExpressionClassifier::new(&pkg, fresh).map(|_| ()),
    }
    .map_err(|e| anyhow::anyhow!("the written package does not load: {e}"))?;

    let report = serde_json::json!({
        "package": args.out.display().to_string(),
        "name": args.name, "version": args.version, "release": args.release,
        "task": task, "file": written.model_file, "sha256": written.sha256,
        "input": {"shape": shape, "layout": layout, "color": color,
                  "mean": input.mean, "std": input.std},
        "outputs": out_shapes,
        "labels": labels,
        "classifier": classifier.as_ref().map(|c| serde_json::json!({
            "output": c.output, "softmax_applied": c.softmax_applied})),
        "ssd": ssd.as_ref().map(|s| serde_json::json!({
            "num_boxes": s.num_boxes, "boxes_output": s.boxes_output,
            "scores_output": s.scores_output})),
        "vectors": vectors.iter().map(|v| &v.note).collect::<Vec<_>>(),
        "atol": atol,
        "vectors_check_max_diff": worst,
        "reference_engine": reference_label,
        "reference_not_used": not_native,
        "tract": reference.as_ref().map(|_| serde_json::json!({
            "agrees": tract_agrees, "max_diff": tract_diff})),
    });
    Ok(Imported {
        report,
        tract_agrees,
    })
}

fn builtin_detector() -> Result<FaceDetector> {
    let pkg = builtin::load(builtin::DEFAULT_DETECTOR)
        .context("the built-in face detector is missing")?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let engine = tract(&pkg)?;
    FaceDetector::new(&pkg, engine).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The `[ssd]` table: from `--ssd FILE`, else BlazeFace's for its two input sizes.
fn load_ssd(file: Option<&Path>, h: usize, w: usize) -> Result<SsdDecode> {
    #[derive(serde::Deserialize)]
    struct OnlySsd {
        ssd: Option<SsdDecode>,
    }
    let text = match file {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?
        }
        None => {
            let name = match (h, w) {
                (128, 128) => "blazeface_short_range",
                (192, 192) => "blazeface_full_range",
                _ => bail!(
                    "no anchor settings are known for a {h}x{w} detector: pass --ssd FILE.toml with an [ssd] table (keys: docs/models.md)"
                ),
            };
            let pkg = builtin::load(name)
                .with_context(|| format!("built-in package {name} missing"))?
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            return pkg
                .manifest
                .ssd
                .context("the built-in detector has no [ssd] table");
        }
    };
    let path = file.unwrap_or(Path::new(""));
    // serde skips every other key, so a whole manifest.toml does too
    let parsed: OnlySsd =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    parsed
        .ssd
        .with_context(|| format!("{} has no [ssd] table", path.display()))
}

/// Colour as the manifest spells it.
fn to_color(c: ColorArg) -> Color {
    match c {
        ColorArg::Rgb => Color::Rgb,
        ColorArg::Bgr => Color::Bgr,
        ColorArg::Gray => Color::Grey,
    }
}
