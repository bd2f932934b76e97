//! What `emotiond eval` reads: a labelled data set (a folder of label folders, or a CSV of
//! `path,label[,x,y,w,h]`) and a face-box file (JSON or CSV). Labels are the product's
//! emotions or their usual synonyms (`emotiond_wire::manifest::canonical_emotion`: anger,
//! disgusted, fearful, afraid, happiness, joy, sadness, surprised, calm). A label that names
//! no emotion is an error that names it.

use super::detection::Rect;
use emotiond_models::EMOTIONS;
use emotiond_wire::manifest::canonical_emotion;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One labelled image.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub path: PathBuf,
    /// As printed: relative to the data set's folder (or the CSV's folder).
    pub name: String,
    /// Index in [`EMOTIONS`].
    pub label: usize,
    /// The labelled face's box in pixels, when the CSV gives one.
    pub rect: Option<Rect>,
}

fn unknown(what: &str, label: &str) -> String {
    format!(
        "{what} {label:?} names no known emotion (known: {}; synonyms: anger, disgusted, fearful, afraid, happiness, joy, sadness, surprised, calm)",
        EMOTIONS.join(", ")
    )
}

/// A folder of label folders, or a `.csv` file.
pub fn load(path: &Path) -> Result<Vec<Item>, String> {
    if path.is_dir() {
        load_folders(path)
    } else if path.is_file() {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        parse_csv(&text, path.parent().unwrap_or(Path::new("")))
            .map_err(|e| format!("{}: {e}", path.display()))
    } else {
        Err(format!("{}: no such folder or CSV file", path.display()))
    }
}

fn hidden(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("reading {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| !hidden(p))
        .collect();
    v.sort();
    Ok(v)
}

/// Every sub-folder is a label; every file in it (hidden ones aside) an image. Files at the
/// top level (a README, a boxes file) are not part of the set.
fn load_folders(root: &Path) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    let mut folders = 0;
    for dir in sorted_entries(root)?.into_iter().filter(|p| p.is_dir()) {
        folders += 1;
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        let label = canonical_emotion(&name)
            .ok_or_else(|| format!("{}: {}", root.display(), unknown("folder", &name)))?;
        for f in sorted_entries(&dir)?.into_iter().filter(|p| !p.is_dir()) {
            let file = f.file_name().unwrap_or_default().to_string_lossy();
            items.push(Item {
                name: format!("{name}/{file}"),
                path: f,
                label,
                rect: None,
            });
        }
    }
    if folders == 0 {
        return Err(format!(
            "{}: no label folders (expected one folder per emotion, e.g. happy/, neutral/)",
            root.display()
        ));
    }
    Ok(items)
}

fn fields(line: &str) -> Vec<&str> {
    line.split(',').map(str::trim).collect()
}

fn numbers(f: &[&str], line: usize) -> Result<Rect, String> {
    let mut r = [0.0; 4];
    for (i, s) in f.iter().enumerate() {
        r[i] = s
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("line {line}: {s:?} is not a number"))?;
    }
    if r[2] <= 0.0 || r[3] <= 0.0 {
        return Err(format!(
            "line {line}: box width and height must be positive"
        ));
    }
    Ok(r)
}

/// Lines of the CSV with their numbers: blank lines, `#` comments and a header starting with
/// `path` left out. No quoting: paths must not hold commas.
fn csv_lines(text: &str) -> impl Iterator<Item = (usize, Vec<&str>)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .map(|(n, l)| (n, fields(l)))
        .filter(|(n, f)| !(*n == 1 && f[0].eq_ignore_ascii_case("path")))
}

/// `path,label` or `path,label,x,y,w,h` (pixels), paths relative to `base`.
pub fn parse_csv(text: &str, base: &Path) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    for (n, f) in csv_lines(text) {
        if f.len() != 2 && f.len() != 6 {
            return Err(format!(
                "line {n}: {} fields; expected path,label or path,label,x,y,w,h",
                f.len()
            ));
        }
        let label = canonical_emotion(f[1])
            .ok_or_else(|| format!("line {n}: {}", unknown("label", f[1])))?;
        let rect = if f.len() == 6 {
            Some(numbers(&f[2..], n)?)
        } else {
            None
        };
        items.push(Item {
            path: base.join(f[0]),
            name: f[0].to_string(),
            label,
            rect,
        });
    }
    if items.is_empty() {
        return Err("no labelled images".into());
    }
    Ok(items)
}

/// Face boxes per image (pixels), keyed by the path as written, relative to the file's
/// folder: JSON `{"a.jpg": [[x, y, w, h], ...]}` (an empty list: a photo without faces) or
/// CSV rows `path,x,y,w,h` (a row `path` alone: a photo without faces).
pub fn parse_boxes(text: &str, json: bool) -> Result<BTreeMap<String, Vec<Rect>>, String> {
    let mut out: BTreeMap<String, Vec<Rect>> = BTreeMap::new();
    if json {
        let v: BTreeMap<String, Vec<Vec<f64>>> = serde_json::from_str(text)
            .map_err(|e| format!("{e} (expected {{\"image.jpg\": [[x, y, w, h], ...], ...}})"))?;
        for (k, boxes) in v {
            let mut rects = Vec::new();
            for b in boxes {
                if b.len() != 4 || b[2] <= 0.0 || b[3] <= 0.0 {
                    return Err(format!(
                        "{k}: a box is [x, y, w, h] with w, h > 0, not {b:?}"
                    ));
                }
                rects.push([b[0], b[1], b[2], b[3]]);
            }
            out.insert(k, rects);
        }
    } else {
        for (n, f) in csv_lines(text) {
            let entry = out.entry(f[0].to_string()).or_default();
            match f.len() {
                1 => {}
                5 => entry.push(numbers(&f[1..], n)?),
                k => return Err(format!("line {n}: {k} fields; expected path,x,y,w,h")),
            }
        }
    }
    if out.is_empty() {
        return Err("no images".into());
    }
    Ok(out)
}

pub fn load_boxes(path: &Path) -> Result<BTreeMap<String, Vec<Rect>>, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let json = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    parse_boxes(&text, json).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_with_and_without_boxes_and_synonyms() {
        let text =
            "path,label,x,y,w,h\n\n# a comment\na.jpg,happiness\nsub/b.png, Neutral ,1,2,30,40\n";
        let items = parse_csv(text, Path::new("/data")).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].label, 3);
        assert_eq!(items[0].path, Path::new("/data/a.jpg"));
        assert_eq!(items[1].label, 6);
        assert_eq!(items[1].rect, Some([1.0, 2.0, 30.0, 40.0]));
        assert_eq!(items[1].name, "sub/b.png");
    }

    #[test]
    fn csv_errors_name_the_line_and_the_label() {
        let e = parse_csv("a.jpg,angryy\n", Path::new("")).unwrap_err();
        assert!(e.contains("line 1") && e.contains("\"angryy\""), "{e}");
        let e = parse_csv("a.jpg,happy,1,2,3\n", Path::new("")).unwrap_err();
        assert!(e.contains("5 fields"), "{e}");
        let e = parse_csv("a.jpg,happy,1,2,x,4\n", Path::new("")).unwrap_err();
        assert!(e.contains("\"x\" is not a number"), "{e}");
        assert!(parse_csv("\n", Path::new("")).is_err());
    }

    #[test]
    fn folders_name_labels_and_a_wrong_one_is_named() {
        let d = tempfile::tempdir().unwrap();
        for (dir, file) in [
            ("happy", "1.jpg"),
            ("sadness", "2.jpg"),
            ("happy", ".hidden"),
        ] {
            std::fs::create_dir_all(d.path().join(dir)).unwrap();
            std::fs::write(d.path().join(dir).join(file), b"x").unwrap();
        }
        std::fs::write(
            d.path().join("README.md"),
            b"top-level files are not images",
        )
        .unwrap();
        let items = load(d.path()).unwrap();
        let got: Vec<(&str, usize)> = items.iter().map(|i| (i.name.as_str(), i.label)).collect();
        assert_eq!(got, vec![("happy/1.jpg", 3), ("sadness/2.jpg", 4)]);
        std::fs::create_dir(d.path().join("angryy")).unwrap();
        let e = load(d.path()).unwrap_err();
        assert!(
            e.contains("folder \"angryy\" names no known emotion"),
            "{e}"
        );
        let empty = tempfile::tempdir().unwrap();
        assert!(load(empty.path()).unwrap_err().contains("no label folders"));
    }

    #[test]
    fn boxes_in_json_and_csv() {
        let j = parse_boxes(r#"{"a.jpg": [[1, 2, 3, 4]], "none.jpg": []}"#, true).unwrap();
        assert_eq!(j["a.jpg"], vec![[1.0, 2.0, 3.0, 4.0]]);
        assert!(j["none.jpg"].is_empty());
        let c = parse_boxes(
            "path,x,y,w,h\na.jpg,1,2,3,4\na.jpg,5,6,7,8\nnone.jpg\n",
            false,
        )
        .unwrap();
        assert_eq!(c["a.jpg"].len(), 2);
        assert!(c["none.jpg"].is_empty());
        assert!(parse_boxes(r#"{"a.jpg": [[1, 2, 3]]}"#, true).is_err());
        assert!(parse_boxes("a.jpg,1,2,0,4\n", false).is_err());
    }
}
