//! Entry points of the fuzz targets on the daemon crate (`config`, `outbox`), shared by
//! `#[path]` between fuzz/fuzz_targets/*.rs and the replay test daemon/tests/fuzz_corpus.rs.
//! Each function must not panic, whatever the bytes.

use emotiond::config::Config;
use emotiond::outbox::Outbox;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The configuration file: TOML parse, then the validation (every problem with its key);
/// for a valid file, the values the daemon derives from it at start.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, Path::new("fuzz.toml")) {
        Ok(c) => {
            assert!(c.problems().is_empty());
            let _ = c.models.runtimes();
            let _ = c.audio.voice();
            let _ = c.api.addr();
        }
        Err(e) => {
            // a refusal names what is wrong
            assert!(!e.to_string().is_empty());
        }
    }
}

/// The folder the `outbox` target writes its files in (one per process).
fn scratch() -> PathBuf {
    let base = Path::new("/dev/shm");
    let base = if base.is_dir() {
        base.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    base.join(format!("emotiond-fuzz-outbox-{}", std::process::id()))
}

/// The files of an `outbox` input: after the first byte, `[name length: u8][name][contents
/// length: u16 LE][contents]`, repeated (the last contents may be cut short by the end).
/// A name loses `/` and NUL and is cut at 100 bytes; an empty one, `.` and `..` are skipped;
/// a later file of the same name replaces an earlier one.
pub fn outbox_files(mut rest: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let take = |rest: &mut &[u8], n: usize| {
        let (a, b) = rest.split_at(n.min(rest.len()));
        *rest = b;
        a.to_vec()
    };
    while !rest.is_empty() {
        let n = usize::from(take(&mut rest, 1)[0]);
        let name = take(&mut rest, n);
        let len = take(&mut rest, 2);
        let len = usize::from(u16::from_le_bytes([
            len.first().copied().unwrap_or(0),
            len.get(1).copied().unwrap_or(0),
        ]));
        let contents = take(&mut rest, len);
        let mut name = String::from_utf8_lossy(&name).replace(['/', '\0'], "_");
        while name.len() > 100 {
            name.pop();
        }
        if !name.is_empty() && name != "." && name != ".." {
            files.insert(name, contents);
        }
    }
    files
}

/// The outbox folder as a restart finds it: the input is `max` (first byte, 1..=16) then the
/// files ([`outbox_files`]). Open it, then deliver everything as the MQTT task does
/// (take, acknowledge): the entries come in name order, at most `max` (the newest), each
/// with its file's contents, and once acknowledged no summary file is left, nor a
/// temporary file of an interrupted write.
pub fn outbox(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let max = usize::from(first % 16) + 1;
    let files = outbox_files(rest);
    let dir = scratch();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, contents) in &files {
        std::fs::write(dir.join(name), contents).unwrap();
    }
    let mut ob = Outbox::open(&dir, max).unwrap();
    let sums: Vec<(&String, &Vec<u8>)> =
        files.iter().filter(|(n, _)| n.ends_with(".sum")).collect();
    let expected = &sums[sums.len().saturating_sub(max)..];
    assert_eq!(ob.len(), expected.len());
    for (name, contents) in expected {
        let e = ob.take().unwrap();
        assert_eq!(&e.name, *name);
        assert_eq!(&e.payload, *contents);
        ob.acked(&e);
    }
    assert!(ob.take().is_none());
    for e in std::fs::read_dir(&dir).unwrap() {
        let n = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            !n.ends_with(".sum"),
            "{n} left after every summary was acknowledged"
        );
        assert!(
            !(n.starts_with('.') && n.ends_with(".tmp")),
            "{n}: a temporary file left"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
