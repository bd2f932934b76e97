//! The JSON objects `eval` prints: per-face lines, one per model (with what the report
//! draws), one per pair of models.

use super::dataset::Item;
use super::metrics;
use super::{Model, Outcome, Unreadable, round};
use crate::cli::json_line;
use emotiond_models::EMOTIONS;
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub(super) fn face_lines(m: &Model, items: &[Item]) -> Vec<String> {
    let mut v = Vec::new();
    for (item, out) in items.iter().zip(&m.outcomes) {
        if let Some(Outcome::Scored {
            predicted,
            rect,
            probability,
            extra,
        }) = out
        {
            v.push(json_line(&json!({
                "kind": "face",
                "model": m.id,
                "path": item.name,
                "label": EMOTIONS[item.label],
                "predicted": EMOTIONS[*predicted],
                "probability": round(*probability as f64, 4),
                "box": rect.map(|x| round(x, 1)),
                "extra_faces": extra,
            })));
        }
    }
    v
}

/// One model's figures: the JSON object and what the report draws.
pub struct ModelResult {
    pub id: String,
    pub json: Value,
    pub confusion: metrics::Confusion,
    pub summary: metrics::Summary,
}

pub(super) fn model_result(
    m: &Model,
    items: &[Item],
    unreadable: &[Unreadable],
    crops: bool,
) -> ModelResult {
    let mut confusion = metrics::Confusion::new(EMOTIONS.len());
    let (mut missed, mut extra) = (Vec::new(), Vec::new());
    let mut extra_faces = 0;
    for (item, out) in items.iter().zip(&m.outcomes) {
        match out {
            Some(Outcome::Scored {
                predicted,
                extra: e,
                ..
            }) => {
                confusion.add(item.label, *predicted);
                if *e > 0 {
                    extra.push(json!({"path": item.name, "extra": e}));
                }
                extra_faces += e;
            }
            Some(Outcome::Missed { faces }) => {
                missed.push(item.name.clone());
                if *faces > 0 {
                    extra.push(json!({"path": item.name, "extra": faces}));
                }
                extra_faces += faces;
            }
            None => {}
        }
    }
    let s = metrics::summarize(&confusion);
    let faces = confusion.total();
    let per_class: BTreeMap<&str, &metrics::ClassMetrics> =
        EMOTIONS.iter().copied().zip(&s.per_class).collect();
    let model_ms = m.detect_ms + m.classify_ms;
    let json = json!({
        "kind": "model",
        "model": m.id,
        "spec": m.spec,
        "engine": m.engine,
        "crops": crops,
        "images": items.len(),
        "faces": faces,
        "labels": EMOTIONS,
        "accuracy": s.accuracy,
        "balanced_accuracy": s.balanced_accuracy,
        "per_class": per_class,
        "confusion": confusion.0,
        "missed_faces": missed.len(),
        "missed_images": missed,
        "extra_faces": extra_faces,
        "extra_images": extra,
        "unreadable": unreadable.len(),
        "unreadable_images": unreadable,
        "ms_per_face": (m.classified > 0).then(|| round(m.classify_ms / m.classified as f64, 3)),
        "detect_ms_per_image": (!crops && faces + missed.len() as u64 > 0)
            .then(|| round(m.detect_ms / (items.len() - unreadable.len()) as f64, 3)),
        "faces_per_s": (model_ms > 0.0).then(|| round(faces as f64 * 1e3 / model_ms, 1)),
    });
    ModelResult {
        id: m.id.clone(),
        json,
        confusion,
        summary: s,
    }
}

/// Each model's verdict (right or wrong) on the images both scored, in item order.
fn paired(a: &Model, b: &Model, items: &[Item]) -> (Vec<bool>, Vec<bool>) {
    let mut va = Vec::new();
    let mut vb = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if let (
            Some(Outcome::Scored { predicted: pa, .. }),
            Some(Outcome::Scored { predicted: pb, .. }),
        ) = (&a.outcomes[i], &b.outcomes[i])
        {
            va.push(*pa == item.label);
            vb.push(*pb == item.label);
        }
    }
    (va, vb)
}

pub(super) fn comparison(a: &Model, b: &Model, items: &[Item]) -> Value {
    let (va, vb) = paired(a, b, items);
    let (dis_b, dis_c) = metrics::discordant(&va, &vb);
    let acc = |v: &[bool]| {
        (!v.is_empty()).then(|| v.iter().filter(|x| **x).count() as f64 / v.len() as f64)
    };
    json!({
        "kind": "comparison",
        "model_a": a.id,
        "model_b": b.id,
        "faces": va.len(),
        "accuracy_a": acc(&va),
        "accuracy_b": acc(&vb),
        "b": dis_b,
        "c": dis_c,
        "test": "mcnemar_exact",
        "p_value": metrics::mcnemar_exact(dis_b, dis_c),
    })
}
