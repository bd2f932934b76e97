//! `eval --report DIR`: `index.html` with each model's figures and, per model, two SVG files
//! written by hand (no plotting crate): `model-N-confusion.svg`, the confusion matrix as a
//! heat map (each row normalised to its support, the count written in each cell), and
//! `model-N-classes.svg`, per-class precision, recall and F1 bars (a missing bar: the value
//! is undefined, see [`super::metrics`]).

use super::ModelResult;
use super::metrics::{ClassMetrics, Confusion};
use emotiond_models::EMOTIONS;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Text for XML and HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const CELL: usize = 56;
const LEFT: usize = 100;
const TOP: usize = 125;

/// White → dark blue with `v` in 0..=1.
fn shade(v: f64) -> String {
    let mix = |a: f64, b: f64| (a + (b - a) * v.clamp(0.0, 1.0)).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        mix(255.0, 8.0),
        mix(255.0, 48.0),
        mix(255.0, 107.0)
    )
}

pub fn confusion_svg(title: &str, labels: &[&str], c: &Confusion) -> String {
    let n = labels.len();
    let (w, h) = ((LEFT + n * CELL + 20).max(480), TOP + n * CELL + 20);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n"
    );
    let _ = writeln!(
        s,
        "<text x=\"10\" y=\"20\" font-size=\"14\" font-weight=\"bold\">{}</text>\n<text x=\"10\" y=\"38\" font-size=\"11\">confusion matrix: colour = share of the row (true label), number = faces</text>",
        esc(title)
    );
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"58\" text-anchor=\"middle\">predicted</text>",
        LEFT + n * CELL / 2
    );
    let _ = writeln!(
        s,
        "<text x=\"14\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {})\">true label</text>",
        TOP + n * CELL / 2,
        TOP + n * CELL / 2
    );
    for (j, l) in labels.iter().enumerate() {
        let x = LEFT + j * CELL + CELL / 2;
        let _ = writeln!(
            s,
            "<text x=\"{x}\" y=\"{}\" text-anchor=\"start\" transform=\"rotate(-45 {x} {})\">{}</text>",
            TOP - 8,
            TOP - 8,
            esc(l)
        );
    }
    for (i, row) in c.0.iter().enumerate() {
        let support: u64 = row.iter().sum();
        let y = TOP + i * CELL;
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{} ({support})</text>",
            LEFT - 6,
            y + CELL / 2 + 4,
            esc(labels[i])
        );
        for (j, &count) in row.iter().enumerate() {
            let v = if support > 0 {
                count as f64 / support as f64
            } else {
                0.0
            };
            let fill = if support > 0 {
                shade(v)
            } else {
                "#eeeeee".into()
            };
            let x = LEFT + j * CELL;
            let _ = writeln!(
                s,
                "<rect x=\"{x}\" y=\"{y}\" width=\"{CELL}\" height=\"{CELL}\" fill=\"{fill}\" stroke=\"#999999\" stroke-width=\"0.5\"/>"
            );
            let ink = if v > 0.5 { "#ffffff" } else { "#000000" };
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"{ink}\">{count}</text>",
                x + CELL / 2,
                y + CELL / 2 + 4
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

pub fn classes_svg(title: &str, labels: &[&str], per_class: &[ClassMetrics]) -> String {
    const BAR: usize = 16;
    const GROUP: usize = 3 * BAR + 22;
    const PLOT_H: usize = 220;
    let (left, top) = (50, 60);
    let n = labels.len();
    let (w, h) = (left + n * GROUP + 130, top + PLOT_H + 60);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n"
    );
    let _ = writeln!(
        s,
        "<text x=\"10\" y=\"20\" font-size=\"14\" font-weight=\"bold\">{}</text>\n<text x=\"10\" y=\"38\" font-size=\"11\">per class: precision, recall, F1 (no bar: undefined); (support)</text>",
        esc(title)
    );
    let base = top + PLOT_H;
    for k in 0..=4 {
        let y = base - k * PLOT_H / 4;
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#dddddd\"/>",
            left + n * GROUP
        );
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{:.2}</text>",
            left - 6,
            y + 4,
            k as f64 / 4.0
        );
    }
    let series = [
        ("precision", "#4e79a7"),
        ("recall", "#f28e2b"),
        ("F1", "#59a14f"),
    ];
    for (i, m) in per_class.iter().enumerate() {
        let x0 = left + i * GROUP + 10;
        for (k, v) in [m.precision, m.recall, m.f1].into_iter().enumerate() {
            let x = x0 + k * BAR;
            match v {
                Some(v) => {
                    let bh = (v.clamp(0.0, 1.0) * PLOT_H as f64).round() as usize;
                    let _ = writeln!(
                        s,
                        "<rect x=\"{x}\" y=\"{}\" width=\"{}\" height=\"{bh}\" fill=\"{}\"><title>{} {}: {v:.3}</title></rect>",
                        base - bh,
                        BAR - 2,
                        series[k].1,
                        esc(labels[i]),
                        series[k].0
                    );
                }
                None => {
                    let _ = writeln!(
                        s,
                        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#999999\" font-size=\"9\">–</text>",
                        x + BAR / 2,
                        base - 3
                    );
                }
            }
        }
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{} ({})</text>",
            x0 + 3 * BAR / 2,
            base + 18,
            esc(labels[i]),
            m.support
        );
    }
    for (k, (name, colour)) in series.iter().enumerate() {
        let y = top + k * 20;
        let x = left + n * GROUP + 15;
        let _ = writeln!(
            s,
            "<rect x=\"{x}\" y=\"{y}\" width=\"12\" height=\"12\" fill=\"{colour}\"/><text x=\"{}\" y=\"{}\">{name}</text>",
            x + 18,
            y + 11
        );
    }
    s.push_str("</svg>\n");
    s
}

fn fmt(v: &Value) -> String {
    match v {
        Value::Null => "–".into(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.3}"),
            _ => n.to_string(),
        },
        Value::String(s) => esc(s),
        other => esc(&other.to_string()),
    }
}

fn table(rows: &[(&str, String)]) -> String {
    let mut t = String::from("<table>\n");
    for (k, v) in rows {
        let _ = writeln!(t, "<tr><th>{}</th><td>{v}</td></tr>", esc(k));
    }
    t.push_str("</table>\n");
    t
}

/// Writes the page and the figures into `dir` (created); returns the files written.
pub fn write(
    dir: &Path,
    models: &[ModelResult],
    comparisons: &[Value],
    detection: Option<&Value>,
) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut files = Vec::new();
    let mut html = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>emotiond eval</title>\n<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}img{margin:0.5em 1em 0.5em 0;vertical-align:top}</style></head><body>\n<h1>emotiond eval</h1>\n",
    );
    for (n, m) in models.iter().enumerate() {
        let n = n + 1;
        let conf = format!("model-{n}-confusion.svg");
        let bars = format!("model-{n}-classes.svg");
        std::fs::write(
            dir.join(&conf),
            confusion_svg(&m.id, &EMOTIONS, &m.confusion),
        )?;
        std::fs::write(
            dir.join(&bars),
            classes_svg(&m.id, &EMOTIONS, &m.summary.per_class),
        )?;
        files.push(dir.join(&conf));
        files.push(dir.join(&bars));
        let j = &m.json;
        let _ = writeln!(html, "<h2>{}</h2>", esc(&m.id));
        let keys = [
            "engine",
            "images",
            "faces",
            "accuracy",
            "balanced_accuracy",
            "missed_faces",
            "extra_faces",
            "unreadable",
            "ms_per_face",
            "faces_per_s",
        ];
        let rows: Vec<(&str, String)> = keys.iter().map(|k| (*k, fmt(&j[*k]))).collect();
        html.push_str(&table(&rows));
        let _ = writeln!(
            html,
            "<img src=\"{conf}\" alt=\"confusion matrix of {0}\"><img src=\"{bars}\" alt=\"per-class bars of {0}\">",
            esc(&m.id)
        );
    }
    if !comparisons.is_empty() {
        html.push_str("<h2>Paired comparisons (McNemar's exact test)</h2>\n<table>\n<tr><th>model A</th><th>model B</th><th>faces</th><th>accuracy A</th><th>accuracy B</th><th>b (only A right)</th><th>c (only B right)</th><th>p</th></tr>\n");
        for c in comparisons {
            let cells: Vec<String> = [
                "model_a",
                "model_b",
                "faces",
                "accuracy_a",
                "accuracy_b",
                "b",
                "c",
                "p_value",
            ]
            .iter()
            .map(|k| format!("<td>{}</td>", fmt(&c[*k])))
            .collect();
            let _ = writeln!(html, "<tr>{}</tr>", cells.concat());
        }
        html.push_str("</table>\n");
    }
    if let Some(d) = detection {
        let _ = writeln!(html, "<h2>Detection: {}</h2>", fmt(&d["detector"]));
        let keys = [
            "images",
            "boxes",
            "detections",
            "true_positives",
            "false_positives",
            "precision",
            "recall",
            "average_precision",
            "iou_threshold",
            "unreadable",
        ];
        let rows: Vec<(&str, String)> = keys.iter().map(|k| (*k, fmt(&d[*k]))).collect();
        html.push_str(&table(&rows));
        if let Some(missed) = d["missed"].as_array().filter(|m| !m.is_empty()) {
            html.push_str("<p>Missed faces:</p>\n<ul>\n");
            for m in missed {
                let _ = writeln!(
                    html,
                    "<li>{} {}</li>",
                    fmt(&m["image"]),
                    esc(&m["box"].to_string())
                );
            }
            html.push_str("</ul>\n");
        }
    }
    html.push_str("</body></html>\n");
    std::fs::write(dir.join("index.html"), html)?;
    files.push(dir.join("index.html"));
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::eval::metrics::summarize;

    /// A small structural XML check (no XML crate in the lock file): every tag closes in
    /// order, attributes are quoted, text holds no bare `<` or `&`.
    fn well_formed(s: &str) -> Result<(), String> {
        let mut stack: Vec<String> = Vec::new();
        let mut rest = s.trim();
        let mut root_seen = false;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('<') {
                let end = after.find('>').ok_or("unclosed tag")?;
                let tag = &after[..end];
                rest = &after[end + 1..];
                if let Some(name) = tag.strip_prefix('/') {
                    let open = stack.pop().ok_or(format!("</{name}> closes nothing"))?;
                    if open != name.trim() {
                        return Err(format!("<{open}> closed by </{name}>"));
                    }
                    continue;
                }
                let selfclosing = tag.ends_with('/');
                let body = tag.trim_end_matches('/');
                let name = body.split_whitespace().next().ok_or("empty tag")?;
                if body.matches('"').count() % 2 != 0 {
                    return Err(format!("unbalanced quotes in <{tag}>"));
                }
                if stack.is_empty() {
                    if root_seen {
                        return Err("two root elements".into());
                    }
                    root_seen = true;
                }
                if !selfclosing {
                    stack.push(name.to_string());
                }
            } else {
                let end = rest.find('<').unwrap_or(rest.len());
                let text = &rest[..end];
                for (i, _) in text.match_indices('&') {
                    let t = &text[i..];
                    if !["&amp;", "&lt;", "&gt;", "&quot;"]
                        .iter()
                        .any(|e| t.starts_with(e))
                    {
                        return Err(format!("bare & in {text:?}"));
                    }
                }
                if stack.is_empty() && !text.trim().is_empty() {
                    return Err(format!("text outside the root: {text:?}"));
                }
                rest = &rest[end..];
            }
        }
        match stack.is_empty() && root_seen {
            true => Ok(()),
            false => Err(format!("unclosed: {stack:?}")),
        }
    }

    #[test]
    fn the_checker_catches_broken_xml() {
        assert!(well_formed("<svg><rect/><text>a &amp; b</text></svg>").is_ok());
        assert!(well_formed("<svg><text>a</svg>").is_err());
        assert!(well_formed("<svg><text>a & b</text></svg>").is_err());
        assert!(well_formed("<svg></svg><svg></svg>").is_err());
        assert!(well_formed("<svg><rect x=\"1/></svg>").is_err());
    }

    #[test]
    fn figures_are_well_formed_and_show_the_counts() {
        let c = Confusion(vec![vec![3, 1, 0], vec![0, 2, 0], vec![0, 0, 0]]);
        let title = "model<&>@1";
        let labels = ["a", "b", "c"];
        let svg = confusion_svg(title, &labels, &c);
        well_formed(&svg).unwrap();
        assert!(svg.contains("model&lt;&amp;&gt;@1"));
        // 9 cells, each with its count; row a: 3 of 4 is dark (white ink), 1 of 4 light
        assert_eq!(svg.matches("<rect ").count(), 9);
        assert!(svg.contains("fill=\"#ffffff\">3</text>"));
        assert!(svg.contains("fill=\"#000000\">1</text>"));
        assert!(
            svg.contains("fill=\"#eeeeee\""),
            "the row without support is grey"
        );
        let s = summarize(&c);
        let bars = classes_svg(title, &labels, &s.per_class);
        well_formed(&bars).unwrap();
        // a and b have all three bars; c has none (undefined): 6 bars + 3 legend squares
        assert_eq!(bars.matches("<rect ").count(), 9);
    }

    #[test]
    fn shade_runs_from_white_to_dark_blue() {
        assert_eq!(shade(0.0), "#ffffff");
        assert_eq!(shade(1.0), "#08306b");
    }
}
