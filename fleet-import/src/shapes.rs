//! The checks of `model import` that need no engine: names, labels, the input tensor's shape
//! for a task, which output holds what, whether outputs are already probabilities.

use super::{ColorArg, to_color};
use anyhow::{Result, bail};
use emotiond_models::manifest::{Color, EMOTIONS, Layout, SsdDecode, Task, canonical_emotion};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TaskArg {
    Expression,
    Detector,
}

impl TaskArg {
    pub fn task(self) -> Task {
        match self {
            TaskArg::Expression => Task::Expression,
            TaskArg::Detector => Task::FaceDetection,
        }
    }
}

/// The pixel range a model was trained on; pixels are 0..=255.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InputRange {
    #[value(name = "0..1")]
    Unit,
    #[value(name = "-1..1")]
    Signed,
    #[value(name = "0..255")]
    Bytes,
}

impl InputRange {
    /// (mean, std) with value = (pixel - mean) / std.
    pub fn mean_std(self) -> (f32, f32) {
        match self {
            InputRange::Unit => (0.0, 255.0),
            InputRange::Signed => (127.5, 127.5),
            InputRange::Bytes => (0.0, 1.0),
        }
    }
}

pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        || name.starts_with('.')
    {
        bail!("--name {name:?}: use letters, digits, '_', '-' and '.' only");
    }
    Ok(())
}

/// The labels of an expression model, each a known emotion, none twice.
pub fn check_labels(task: Task, labels: &[String]) -> Result<Vec<String>> {
    let labels: Vec<String> = labels.iter().map(|l| l.trim().to_string()).collect();
    if task != Task::Expression {
        if !labels.is_empty() {
            bail!("--labels is for expression models; a detector has none");
        }
        return Ok(labels);
    }
    if labels.is_empty() || labels.iter().any(String::is_empty) {
        bail!("an expression model needs --labels, its class names in output order");
    }
    let mut seen = [false; EMOTIONS.len()];
    for l in &labels {
        let Some(i) = canonical_emotion(l) else {
            bail!(
                "unknown label {l:?}: emotiond reports {} (synonyms such as happiness, surprised, fearful are accepted)",
                EMOTIONS.join(", ")
            );
        };
        if seen[i] {
            bail!("label {l:?} names {} a second time", EMOTIONS[i]);
        }
        seen[i] = true;
    }
    Ok(labels)
}

fn wanted(task: Task) -> &'static str {
    match task {
        Task::FaceDetection => "a face detector takes [1,H,W,3] or [1,3,H,W]",
        _ => "an expression model takes [1,H,W,1|3] or [1,1|3,H,W]",
    }
}

/// Layout and channel count of an image input, or why the shape does not fit the task.
pub fn image_input(task: Task, shape: &[usize]) -> Result<(Layout, usize)> {
    let ok_c = |c: usize| match task {
        Task::FaceDetection => c == 3,
        _ => c == 1 || c == 3,
    };
    let fits = shape.len() == 4 && shape[0] == 1 && !shape.contains(&0);
    let found = if !fits {
        None
    } else if ok_c(shape[3]) {
        Some((Layout::Nhwc, shape[3]))
    } else if ok_c(shape[1]) {
        Some((Layout::Nchw, shape[1]))
    } else {
        None
    };
    match found {
        Some(f) => Ok(f),
        None => bail!("input 0 has shape {shape:?}: {}", wanted(task)),
    }
}

pub fn color(arg: Option<ColorArg>, channels: usize, shape: &[usize]) -> Result<Color> {
    let c = match arg {
        Some(a) => to_color(a),
        None if channels == 1 => Color::Grey,
        None => Color::Rgb,
    };
    let need = if c == Color::Grey { 1 } else { 3 };
    if need != channels {
        bail!(
            "input 0 has shape {shape:?} ({channels} channel(s)); --color {} needs {need}",
            format!("{c:?}").to_lowercase()
        );
    }
    Ok(c)
}

/// Elements of a shape whose dimensions are all 1 but one (`[1, N]`, `[N]`, `[1,1,1,N]`).
fn class_count(shape: &[usize]) -> Option<usize> {
    (shape.iter().filter(|&&d| d != 1).count() <= 1).then(|| shape.iter().product())
}

/// Which output holds the `n` class scores of an expression model.
pub fn classes_output(outputs: &[Vec<usize>], n: usize) -> Result<usize> {
    if let Some(i) = outputs.iter().position(|s| class_count(s) == Some(n)) {
        return Ok(i);
    }
    match outputs {
        [] => bail!("the model has no output"),
        [one] => match class_count(one) {
            Some(k) => bail!("output 0 has {k} classes but --labels names {n}"),
            None => bail!(
                "output 0 has shape {one:?}: an expression model's output is [1, N], one score per label ({n} labels)"
            ),
        },
        many => {
            let list: Vec<String> = many
                .iter()
                .enumerate()
                .map(|(i, s)| format!("output {i} has shape {s:?}"))
                .collect();
            bail!(
                "no output holds {n} class scores ({}): an expression model has an output [1, N], one score per label",
                list.join(", ")
            )
        }
    }
}

/// (boxes output, scores output) of a detector with these anchor settings.
pub fn detector_outputs(outputs: &[Vec<usize>], ssd: &SsdDecode) -> Result<(usize, usize)> {
    let len = |s: &Vec<usize>| s.iter().product::<usize>();
    let boxes = outputs
        .iter()
        .position(|s| len(s) == ssd.num_boxes * ssd.num_coords);
    let scores = outputs.iter().position(|s| len(s) == ssd.num_boxes);
    match (boxes, scores) {
        (Some(b), Some(s)) if b != s => Ok((b, s)),
        _ => {
            let list: Vec<String> = outputs
                .iter()
                .enumerate()
                .map(|(i, s)| format!("output {i} has shape {s:?}"))
                .collect();
            bail!(
                "{}: a detector with these anchor settings needs box regressors [1, {}, {}] and scores [1, {}, 1]",
                list.join(", "),
                ssd.num_boxes,
                ssd.num_coords,
                ssd.num_boxes
            )
        }
    }
}

/// Values in 0..=1 summing to 1: the model ends in a softmax already.
pub fn is_distribution(v: &[f32]) -> bool {
    !v.is_empty()
        && v.iter().all(|x| (0.0..=1.0).contains(x))
        && (v.iter().sum::<f32>() - 1.0).abs() < 1e-3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_inputs_by_task() {
        let e = Task::Expression;
        assert_eq!(image_input(e, &[1, 64, 64, 1]).unwrap(), (Layout::Nhwc, 1));
        assert_eq!(image_input(e, &[1, 3, 48, 48]).unwrap(), (Layout::Nchw, 3));
        let err = image_input(e, &[1, 3, 64, 64, 1]).unwrap_err().to_string();
        assert_eq!(
            err,
            "input 0 has shape [1, 3, 64, 64, 1]: an expression model takes [1,H,W,1|3] or [1,1|3,H,W]"
        );
        assert!(image_input(e, &[2, 64, 64, 1]).is_err());
        let d = Task::FaceDetection;
        assert_eq!(
            image_input(d, &[1, 128, 128, 3]).unwrap(),
            (Layout::Nhwc, 3)
        );
        assert!(
            image_input(d, &[1, 64, 64, 1])
                .unwrap_err()
                .to_string()
                .contains("a face detector takes [1,H,W,3]")
        );
    }

    #[test]
    fn colour_follows_channels_unless_named() {
        assert_eq!(color(None, 1, &[1, 8, 8, 1]).unwrap(), Color::Grey);
        assert_eq!(color(None, 3, &[1, 8, 8, 3]).unwrap(), Color::Rgb);
        assert_eq!(
            color(Some(ColorArg::Bgr), 3, &[1, 8, 8, 3]).unwrap(),
            Color::Bgr
        );
        let e = color(Some(ColorArg::Rgb), 1, &[1, 8, 8, 1]).unwrap_err();
        assert!(e.to_string().contains("--color rgb needs 3"), "{e}");
    }

    #[test]
    fn class_output_and_its_errors() {
        assert_eq!(classes_output(&[vec![1, 7]], 7).unwrap(), 0);
        assert_eq!(classes_output(&[vec![1, 2], vec![1, 1, 7]], 7).unwrap(), 1);
        assert_eq!(
            classes_output(&[vec![1, 5]], 7).unwrap_err().to_string(),
            "output 0 has 5 classes but --labels names 7"
        );
        let e = classes_output(&[vec![1, 896, 16], vec![1, 896, 1]], 7).unwrap_err();
        assert!(
            e.to_string()
                .contains("output 0 has shape [1, 896, 16], output 1 has shape [1, 896, 1]"),
            "{e}"
        );
    }

    #[test]
    fn labels_must_be_known_and_distinct() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let e = Task::Expression;
        assert!(check_labels(e, &s(&["happiness", "neutral", "surprised"])).is_ok());
        let err = check_labels(e, &s(&["happy", "bored"])).unwrap_err();
        assert!(
            err.to_string().starts_with("unknown label \"bored\""),
            "{err}"
        );
        let err = check_labels(e, &s(&["happy", "joy"])).unwrap_err();
        assert!(
            err.to_string().contains("names happy a second time"),
            "{err}"
        );
        assert!(check_labels(e, &[]).is_err());
        assert!(check_labels(Task::FaceDetection, &s(&["happy"])).is_err());
    }

    #[test]
    fn distributions_and_names() {
        assert!(is_distribution(&[0.25, 0.75]));
        assert!(!is_distribution(&[2.0, -1.0]));
        assert!(!is_distribution(&[0.2, 0.2]));
        assert!(check_name("my_model-2.1").is_ok());
        assert!(check_name("../x").is_err());
        assert!(check_name("").is_err());
    }
}
