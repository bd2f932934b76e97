//! Embeds every package under `packages/` into the binary (see `src/builtin.rs`), so the
//! daemon runs with nothing installed besides itself.
use std::fmt::Write;
use std::path::Path;

fn files(dir: &Path, rel: &str, out: &mut Vec<(String, String)>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let r = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let p = e.path();
        if p.is_dir() {
            files(&p, &r, out);
        } else if !name.ends_with(".md") {
            out.push((r, p.canonicalize().unwrap_or(p).display().to_string()));
        }
    }
}

fn main() {
    // Read at run time, not compiled in (`env!`): a build-script binary reused from another
    // checkout of the workspace must still embed this checkout's packages.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest_dir).join("packages");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut code = String::from("pub(crate) static PACKAGES: &[(&str, Files)] = &[\n");
    let mut pkgs: Vec<_> = std::fs::read_dir(&root)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.path().join("manifest.toml").is_file())
                .collect()
        })
        .unwrap_or_default();
    pkgs.sort_by_key(|e| e.file_name());
    for p in pkgs {
        println!("cargo:rerun-if-changed={}", p.path().display());
        let mut fs = Vec::new();
        files(&p.path(), "", &mut fs);
        let _ = writeln!(code, "  ({:?}, &[", p.file_name().to_string_lossy());
        for (rel, abs) in fs {
            println!("cargo:rerun-if-changed={abs}");
            let _ = writeln!(code, "    ({rel:?}, include_bytes!({abs:?})),");
        }
        code.push_str("  ]),\n");
    }
    code.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("builtin_packages.rs");
    std::fs::write(out, code).expect("write builtin_packages.rs");
}
