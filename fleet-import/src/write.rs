//! Writing an imported package: the model file, the vectors, manifest.toml and a
//! PROVENANCE.md stub for the data scientist to fill in.

use super::{Format, ImportArgs, Vector};
use anyhow::{Context, Result, bail};
use emotiond_models::manifest::{ClassifierDecode, CropSpec, InputSpec, SsdDecode, Task};
use emotiond_models::sha256_hex;
use std::fmt::Write as _;
use std::path::Path;

/// The engine that computed the vectors, as the manifest and PROVENANCE.md name it.
pub const REFERENCE: &str =
    "tract 0.22.5 (pure Rust, tract-tflite / tract-onnx, through emotiond-models), CPU, float32";

pub struct Plan<'a> {
    pub args: &'a ImportArgs,
    pub format: Format,
    pub bytes: &'a [u8],
    pub input: &'a InputSpec,
    pub labels: &'a [String],
    pub ssd: Option<&'a SsdDecode>,
    pub classifier: Option<&'a ClassifierDecode>,
    pub crop: &'a CropSpec,
    pub atol: f32,
    pub out_shapes: &'a [Vec<usize>],
    /// The engine that computed the expected outputs.
    pub reference: &'a str,
    /// How tract compares, when another engine computed them.
    pub tract_note: Option<&'a str>,
}

pub struct Written {
    pub model_file: String,
    pub sha256: String,
}

fn q(s: &str) -> String {
    toml::Value::from(s).to_string()
}

fn floats(v: &[f32]) -> String {
    let items: Vec<String> = v.iter().map(|x| format!("{x:?}")).collect();
    format!("[{}]", items.join(", "))
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn empty_or_new(dir: &Path) -> Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut rd) => {
            if rd.next().is_some() {
                bail!(
                    "{} already exists and is not empty (choose a new --out folder)",
                    dir.display()
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", dir.display())),
    }
}

fn put(dir: &Path, rel: &str, bytes: &[u8]) -> Result<()> {
    let p = dir.join(rel);
    std::fs::write(&p, bytes).with_context(|| format!("cannot write {}", p.display()))
}

fn ssd_table(s: &SsdDecode) -> Result<String> {
    let mut t = toml::Table::new();
    t.insert("ssd".into(), toml::Value::try_from(s)?);
    Ok(toml::to_string(&t)?)
}

pub fn package(plan: &Plan, vectors: &[Vector]) -> Result<Written> {
    let a = plan.args;
    let dir = &a.out;
    empty_or_new(dir)?;
    std::fs::create_dir_all(dir.join("vectors"))
        .with_context(|| format!("cannot create {}", dir.join("vectors").display()))?;
    let ext = match plan.format {
        Format::TfLite => "tflite",
        Format::Onnx => "onnx",
    };
    let model_file = format!("{}.{ext}", a.name);
    put(dir, &model_file, plan.bytes)?;
    let sha = sha256_hex(plan.bytes);
    let task = plan.args.task.task();

    let mut m = String::new();
    let source = a
        .model
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let _ = writeln!(
        m,
        "# Imported by `emotion-fleet model import` from {source}.\n\
         # Fill in PROVENANCE.md (where the model comes from, its licence, its accuracy) before publishing."
    );
    let task_name = match task {
        Task::FaceDetection => "face_detection",
        _ => "expression",
    };
    let _ = writeln!(m, "name = {}", q(&a.name));
    let _ = writeln!(m, "version = {}", q(&a.version));
    let _ = writeln!(
        m,
        "# Release number (anti-rollback): raise it with every package of this name you publish."
    );
    let _ = writeln!(m, "release = {}", a.release);
    let _ = writeln!(m, "task = \"{task_name}\"");
    let _ = writeln!(m, "file = {}", q(&model_file));
    let _ = writeln!(m, "sha256 = \"{sha}\"");
    let _ = writeln!(m, "license = {}", q(&a.license));
    let _ = writeln!(
        m,
        "description = {}",
        q(&format!(
            "imported from {source}: input {:?}, outputs {:?}",
            plan.input.shape, plan.out_shapes
        ))
    );
    if !plan.labels.is_empty() {
        let l: Vec<String> = plan.labels.iter().map(|x| q(x)).collect();
        let _ = writeln!(m, "labels = [{}]", l.join(", "));
    }
    if plan.format == Format::Onnx {
        let _ = writeln!(
            m,
            "\n# The same .onnx file for ONNX Runtime (`file` above serves tract).\n\
             [files.onnxruntime]\nfile = {}\nsha256 = \"{sha}\"",
            q(&model_file)
        );
    }
    let inp = plan.input;
    let _ = writeln!(
        m,
        "\n# --input-range {}: value = (pixel - mean) / std, pixels 0..255.\n[input]\n\
         shape = {:?}\nlayout = \"{}\"\ndtype = \"f32\"\ncolor = \"{}\"\nresize = \"{}\"\n\
         mean = {}\nstd = {}",
        plan_range(a),
        inp.shape,
        format!("{:?}", inp.layout).to_lowercase(),
        format!("{:?}", inp.color).to_lowercase(),
        format!("{:?}", inp.resize).to_lowercase(),
        floats(&inp.mean),
        floats(&inp.std),
    );
    if let Some(c) = plan.classifier {
        let _ = writeln!(
            m,
            "\n# softmax_applied: found from the outputs (each vector's scores were {}a distribution).\n\
             [classifier]\noutput = {}\nsoftmax_applied = {}",
            if c.softmax_applied { "" } else { "not " },
            c.output,
            c.softmax_applied
        );
        let _ = writeln!(
            m,
            "\n# How the daemon cuts a face for the model: match how your training faces were cropped.\n\
             # (The vectors below are tensors: editing this keeps them valid.)\n\
             [crop]\nsquare = {}\nmargin = {:?}",
            plan.crop.square, plan.crop.margin
        );
    }
    if let Some(s) = plan.ssd {
        let _ = writeln!(
            m,
            "\n# Anchors and decoding{}.",
            match &a.ssd {
                Some(p) => format!(" from {}", p.display()),
                None => " of MediaPipe BlazeFace for this input size".into(),
            }
        );
        m.push_str(&ssd_table(s)?);
    }
    let _ = writeln!(
        m,
        "\n# Expected outputs computed by {}.{}\n\
         # Every engine a device tries must reproduce them within atol before it runs the model.",
        plan.reference,
        plan.tract_note
            .map(|n| format!("\n# {n}."))
            .unwrap_or_default()
    );
    for v in vectors {
        let input = format!("vectors/{}.in.f32", v.stem);
        put(dir, &input, &f32_bytes(&v.input))?;
        let mut outs = Vec::new();
        for (k, o) in v.outputs.iter().enumerate() {
            let rel = format!("vectors/{}.out{k}.f32", v.stem);
            put(dir, &rel, &f32_bytes(&o.data))?;
            outs.push(q(&rel));
        }
        let _ = writeln!(
            m,
            "\n[[test_vector]]\ninput = {}\noutputs = [{}]\natol = {:?}\nnote = {}",
            q(&input),
            outs.join(", "),
            plan.atol,
            q(&v.note)
        );
    }
    put(dir, "manifest.toml", m.as_bytes())?;
    put(
        dir,
        "PROVENANCE.md",
        provenance(plan, &source, &sha, vectors).as_bytes(),
    )?;
    Ok(Written {
        model_file,
        sha256: sha,
    })
}

fn plan_range(a: &ImportArgs) -> &'static str {
    match a.input_range {
        super::InputRange::Unit => "0..1",
        super::InputRange::Signed => "-1..1",
        super::InputRange::Bytes => "0..255",
    }
}

fn provenance(plan: &Plan, source: &str, sha: &str, vectors: &[Vector]) -> String {
    let a = plan.args;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# {} {}\n\nImported with `emotion-fleet model import` from `{source}` \
         ({} bytes, sha256 `{sha}`). The sections marked TODO are yours to fill in: a device \
         operator reads this file to decide whether to deploy the model.\n",
        a.name,
        a.version,
        plan.bytes.len()
    );
    let _ = writeln!(
        s,
        "## Source (TODO)\n\nWhere the model comes from: the training code and its commit, the \
         data set(s) and their licences, who trained it and when.\n\n\
         ## Licence (TODO)\n\nThe manifest says `{}`. Name the licence of the weights and of the \
         training data, and include its text if it requires so.\n\n\
         ## Accuracy (TODO)\n\nMeasured on what data, with what result (e.g. `emotiond eval`). \
         Known limits: faces, ages, lighting, cameras it was not trained for.\n",
        a.license
    );
    let _ = writeln!(
        s,
        "## Preprocessing\n\nInput {:?} ({:?}, {:?}), pixels mapped to --input-range {} \
         (mean {:?}, std {:?}), {:?} resize.",
        plan.input.shape,
        plan.input.layout,
        plan.input.color,
        plan_range(a),
        plan.input.mean,
        plan.input.std,
        plan.input.resize
    );
    if let Some(c) = plan.classifier {
        let _ = writeln!(
            s,
            "Labels in output order: {}. Output {} {}. Face crops: square, margin {} of the side \
             on each side.",
            plan.labels.join(", "),
            c.output,
            if c.softmax_applied {
                "is already a probability distribution (softmax_applied = true)"
            } else {
                "is not a distribution: the daemon applies a softmax"
            },
            plan.crop.margin
        );
    }
    let who = match plan.tract_note {
        Some(n) => format!("{}, the model's own runtime. {n}", plan.reference),
        None => format!(
            "{}: the engine every device runs by default and falls back to, so the vectors are \
             what tract computes (no TFLite or ONNX Runtime library was found at import: \
             --tflite-library, --onnxruntime-library)",
            plan.reference
        ),
    };
    let _ = writeln!(
        s,
        "\n## Test vectors\n\nComputed at import by {who}. Tolerance {:?}. A device runs them \
         on each engine before using it (tract, the TFLite runtime, ONNX Runtime); an engine \
         that disagrees beyond the tolerance is skipped. Check once that your own framework \
         gives the same outputs on these inputs (raw little-endian float32 files).\n",
        plan.atol
    );
    for v in vectors {
        let _ = writeln!(s, "- `vectors/{}.in.f32`: {}", v.stem, v.note);
    }
    if plan.format == Format::TfLite && plan.tract_note.is_none() {
        let _ = writeln!(
            s,
            "\nA `.tflite` file: tract-tflite 0.22 computes a few operators differently from \
             TFLite (it rounds `MEAN`'s float result to whole numbers; see \
             `models/tools/rewrite_for_tract.py`). Import it again with --tflite-library, or run \
             the package once on the TFLite runtime (`models.engine = \"tflite\"`, `emotiond \
             analyze`): when it fails these vectors, its log names the vector and the element; \
             rewrite the file with that script and import it again."
        );
    }
    s
}
