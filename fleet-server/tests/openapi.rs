//! The OpenAPI documents against the routers (issue 20 item 3): every `(method, path)` that a
//! `.route("PATH", get(..).post(..))` call in the router source registers must be an operation
//! of the document, and every operation of the document a route. Also a structural check of
//! each document (OpenAPI 3.1, `info`, `paths`, path parameters declared, every `$ref`
//! resolves).
//!
//! Two documents: `fleet-server/openapi.yaml` (routers in fleet-server/src/api.rs and
//! fleet-server/src/api/*.rs) and `daemon/openapi.yaml` (daemon/src/api/*.rs). The daemon's
//! routers are read as text, so this test does not link (or build) the daemon crate.
//!
//! Length: ~570 lines: a small YAML walker, the route extraction for both routers and the
//! checks in both directions; one test file so the two documents are held to one rule.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use yaml_rust::{Yaml, YamlLoader};

const METHODS: [&str; 8] = [
    "get", "post", "put", "delete", "patch", "head", "options", "trace",
];

type Route = (String, String);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("fleet-server has a parent")
        .to_path_buf()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The source text before `#[cfg(test)]` of `file` and of every `.rs` file in `dir`.
fn sources(files: &[PathBuf], dir: Option<&Path>) -> Vec<(String, String)> {
    let mut all = files.to_vec();
    if let Some(dir) = dir {
        let mut more: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("directory entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "rs"))
            .collect();
        more.sort();
        all.extend(more);
    }
    all.iter()
        .map(|p| {
            let text = read(p);
            let code = match text.find("#[cfg(test)]") {
                Some(i) => text[..i].to_string(),
                None => text,
            };
            (p.display().to_string(), code)
        })
        .collect()
}

/// `src` with comments blanked (strings and chars kept), so the parser sees code only.
fn strip_comments(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = src[i + 2..].find("*/").map_or(b.len(), |j| i + 2 + j + 2);
                out.push(' ');
                i = end;
            }
            b'"' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(b.len());
                out.push_str(&src[start..i]);
            }
            // a raw string r"..", r#".."#: its text as an ordinary string without quotes in it
            b'r' if matches!(b.get(i + 1), Some(b'"' | b'#'))
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) =>
            {
                let hashes = b[i + 1..].iter().take_while(|&&c| c == b'#').count();
                if b.get(i + 1 + hashes) != Some(&b'"') {
                    out.push('r');
                    i += 1;
                    continue;
                }
                let end = format!("\"{}", "#".repeat(hashes));
                let body = i + 2 + hashes;
                let stop = src[body..].find(&end).map_or(b.len(), |j| body + j);
                out.push('"');
                out.push_str(&src[body..stop].replace(['"', '\\'], "_"));
                out.push('"');
                i = (stop + end.len()).min(b.len());
            }
            // a char literal ('"', '\''): a placeholder; a lifetime ('a) is kept
            b'\'' if b.get(i + 1) == Some(&b'\\') || b.get(i + 2) == Some(&b'\'') => {
                let from = if b[i + 1] == b'\\' { i + 3 } else { i + 2 };
                let close = src
                    .get(from..)
                    .and_then(|t| t.find('\''))
                    .map_or(b.len(), |j| from + j + 1);
                out.push_str("'_'");
                i = close;
            }
            _ => {
                let c = src[i..].chars().next().expect("a char");
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    out
}

/// The index of the `)` closing the `(` at `open`, skipping strings.
fn close_paren(s: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0;
    let mut i = open;
    while i < s.len() {
        match s[i] {
            b'"' => {
                i += 1;
                while i < s.len() && s[i] != b'"' {
                    i += if s[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// `{*rest}` → `{rest}`, `:id` → `{id}`: the OpenAPI spelling of an axum path.
fn openapi_path(axum: &str) -> String {
    axum.split('/')
        .map(|seg| {
            if let Some(name) = seg.strip_prefix(':') {
                format!("{{{name}}}")
            } else if let Some(name) = seg.strip_prefix("{*") {
                format!("{{{name}")
            } else {
                seg.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The HTTP methods of a method router expression such as `get(a).post(b).layer(..)`:
/// `get(` at its start and `.post(` etc. at depth 0.
fn methods_of(expr: &str, file: &str, path: &str) -> Result<Vec<String>, String> {
    let b = expr.as_bytes();
    let mut found = Vec::new();
    let mut depth = 0i32;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            c if depth == 0 && (c.is_ascii_alphabetic() || c == b'_') => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':')
                {
                    i += 1;
                }
                let word = &expr[start..i];
                let name = word.rsplit("::").next().unwrap_or(word);
                let prev = expr[..start].trim_end();
                let chained = start == 0 || expr[..start].trim().is_empty() || prev.ends_with('.');
                let called = expr[i..].trim_start().starts_with('(');
                if chained && called {
                    if METHODS.contains(&name) {
                        found.push(name.to_uppercase());
                    } else if name == "any" || name == "on" {
                        return Err(format!(
                            "{file}: route {path:?} uses `{name}(..)`: list its methods in the test"
                        ));
                    }
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    if found.is_empty() {
        return Err(format!(
            "{file}: route {path:?}: no method found in {expr:?}"
        ));
    }
    Ok(found)
}

/// Every `(METHOD, path)` registered by `.route(..)` calls in the sources.
fn routes_in(sources: &[(String, String)]) -> Result<BTreeSet<Route>, String> {
    let mut routes = BTreeSet::new();
    for (file, text) in sources {
        let code = strip_comments(text);
        for bad in [".nest(", ".nest_service(", ".route_service("] {
            if code.contains(bad) {
                return Err(format!(
                    "{file}: `{bad}..)` is not understood by this test: teach it the prefix"
                ));
            }
        }
        let b = code.as_bytes();
        let mut from = 0;
        while let Some(j) = code[from..].find(".route(") {
            let open = from + j + ".route".len();
            let close = close_paren(b, open)
                .ok_or_else(|| format!("{file}: unbalanced `.route(` at byte {open}"))?;
            let args = code[open + 1..close].trim();
            let rest = args
                .strip_prefix('"')
                .ok_or_else(|| format!("{file}: `.route(` without a literal path: {args:.60}"))?;
            let end = rest
                .find('"')
                .ok_or_else(|| format!("{file}: unterminated path in {args:.60}"))?;
            let path = &rest[..end];
            let expr = rest[end + 1..]
                .trim_start()
                .strip_prefix(',')
                .ok_or_else(|| format!("{file}: route {path:?} without a method router"))?
                .trim()
                .trim_end_matches(',')
                .trim();
            for m in methods_of(expr, file, path)? {
                if !routes.insert((m.clone(), openapi_path(path))) {
                    return Err(format!("{file}: {m} {path} registered twice"));
                }
            }
            from = close;
        }
    }
    Ok(routes)
}

fn load(p: &Path) -> Yaml {
    let text = read(p);
    let mut docs = YamlLoader::load_from_str(&text)
        .unwrap_or_else(|e| panic!("{}: not YAML: {e}", p.display()));
    assert_eq!(docs.len(), 1, "{}: one YAML document", p.display());
    docs.remove(0)
}

fn key(y: &Yaml) -> String {
    match y {
        Yaml::String(s) | Yaml::Real(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        other => format!("{other:?}"),
    }
}

/// Every `(METHOD, path)` of the document's `paths`.
fn operations(doc: &Yaml) -> BTreeSet<Route> {
    let mut ops = BTreeSet::new();
    if let Some(paths) = doc["paths"].as_hash() {
        for (p, item) in paths {
            for (m, _) in item.as_hash().into_iter().flatten() {
                let m = key(m);
                if METHODS.contains(&m.as_str()) {
                    ops.insert((m.to_uppercase(), key(p)));
                }
            }
        }
    }
    ops
}

/// Both ways: what the code has and the document lacks, and the reverse.
fn compare(code: &BTreeSet<Route>, doc: &BTreeSet<Route>, doc_name: &str) -> Result<(), String> {
    let mut msgs = Vec::new();
    for (m, p) in code.difference(doc) {
        msgs.push(format!(
            "route {m} {p} is in the code but not in {doc_name}"
        ));
    }
    for (m, p) in doc.difference(code) {
        msgs.push(format!(
            "{doc_name} has {m} {p}, which no route in the code serves"
        ));
    }
    if msgs.is_empty() {
        Ok(())
    } else {
        Err(msgs.join("\n"))
    }
}

/// The node a local `$ref` (`#/a/b`) points to.
fn resolve<'a>(doc: &'a Yaml, reference: &str) -> Option<&'a Yaml> {
    let pointer = reference.strip_prefix("#/")?;
    let mut node = doc;
    for part in pointer.split('/') {
        let part = part.replace("~1", "/").replace("~0", "~");
        node = node.as_hash()?.get(&Yaml::String(part))?;
    }
    Some(node)
}

fn collect_refs(node: &Yaml, at: &str, out: &mut Vec<(String, String)>) {
    match node {
        Yaml::Hash(h) => {
            for (k, v) in h {
                let k = key(k);
                if k == "$ref" {
                    out.push((
                        at.to_string(),
                        v.as_str().unwrap_or("<not a string>").into(),
                    ));
                } else {
                    collect_refs(v, &format!("{at}/{k}"), out);
                }
            }
        }
        Yaml::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                collect_refs(v, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// A structural check of an OpenAPI 3.1 document: the errors found.
fn structure(doc: &Yaml) -> Vec<String> {
    let mut errs = Vec::new();
    match doc["openapi"].as_str() {
        Some(v) if v.starts_with("3.1.") => {}
        other => errs.push(format!("`openapi` must be 3.1.x, is {other:?}")),
    }
    for k in ["title", "version"] {
        if doc["info"][k].as_str().is_none() {
            errs.push(format!("`info.{k}` must be a string"));
        }
    }
    let mut refs = Vec::new();
    collect_refs(doc, "#", &mut refs);
    for (at, r) in &refs {
        if resolve(doc, r).is_none() {
            errs.push(format!("{at}: $ref {r:?} does not resolve"));
        }
    }
    let deref = |y: &'_ Yaml| -> Yaml {
        match y["$ref"].as_str().and_then(|r| resolve(doc, r)) {
            Some(t) => t.clone(),
            None => y.clone(),
        }
    };
    let schemes = &doc["components"]["securitySchemes"];
    let check_security = |sec: &Yaml, at: &str, errs: &mut Vec<String>| {
        for req in sec.as_vec().into_iter().flatten() {
            for (name, _) in req.as_hash().into_iter().flatten() {
                if schemes[key(name).as_str()].is_badvalue() {
                    errs.push(format!(
                        "{at}: security scheme {} is not defined",
                        key(name)
                    ));
                }
            }
        }
    };
    check_security(&doc["security"], "security", &mut errs);
    let Some(paths) = doc["paths"].as_hash() else {
        errs.push("`paths` must be a mapping".into());
        return errs;
    };
    for (p, item) in paths {
        let p = key(p);
        if !p.starts_with('/') {
            errs.push(format!("path {p:?} must start with /"));
        }
        let wanted: BTreeSet<String> = p
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .map(String::from)
            .collect();
        let Some(ops) = item.as_hash() else {
            errs.push(format!("{p}: not a mapping"));
            continue;
        };
        for (m, op) in ops {
            let m = key(m);
            if !METHODS.contains(&m.as_str()) {
                errs.push(format!("{p}: unexpected key {m:?}"));
                continue;
            }
            let at = format!("{} {p}", m.to_uppercase());
            if op["summary"].as_str().is_none() {
                errs.push(format!("{at}: no summary"));
            }
            if op["responses"].as_hash().is_none_or(|r| r.is_empty()) {
                errs.push(format!("{at}: no responses"));
            }
            check_security(&op["security"], &at, &mut errs);
            let mut declared = BTreeSet::new();
            for param in op["parameters"].as_vec().into_iter().flatten() {
                let param = deref(param);
                if param["in"].as_str() == Some("path") {
                    let name = param["name"].as_str().unwrap_or("").to_string();
                    if param["required"].as_bool() != Some(true) {
                        errs.push(format!("{at}: path parameter {name:?} must be required"));
                    }
                    declared.insert(name);
                }
            }
            if declared != wanted {
                errs.push(format!(
                    "{at}: path parameters declared {declared:?}, the path has {wanted:?}"
                ));
            }
        }
    }
    errs
}

/// The whole check of one API: the document's structure and its routes against the code's.
fn check(doc_path: &Path, sources: &[(String, String)]) -> Result<(), String> {
    let doc = load(doc_path);
    let name = doc_path
        .strip_prefix(repo())
        .unwrap_or(doc_path)
        .display()
        .to_string();
    let errs = structure(&doc);
    if !errs.is_empty() {
        return Err(format!("{name} is not valid OpenAPI:\n{}", errs.join("\n")));
    }
    let code = routes_in(sources)?;
    assert!(
        code.len() >= 5,
        "too few routes found ({code:?}): is the parser broken?"
    );
    compare(&code, &operations(&doc), &name)
}

fn fleet_sources() -> Vec<(String, String)> {
    let r = repo();
    sources(
        &[r.join("fleet-server/src/api.rs")],
        Some(&r.join("fleet-server/src/api")),
    )
}

fn daemon_sources() -> Vec<(String, String)> {
    sources(&[], Some(&repo().join("daemon/src/api")))
}

#[test]
fn fleet_server_routes_match_openapi_yaml() {
    if let Err(e) = check(&repo().join("fleet-server/openapi.yaml"), &fleet_sources()) {
        panic!("{e}");
    }
}

#[test]
fn daemon_routes_match_openapi_yaml() {
    if let Err(e) = check(&repo().join("daemon/openapi.yaml"), &daemon_sources()) {
        panic!("{e}");
    }
}

#[test]
fn the_parser_reads_multi_line_chained_and_wildcard_routes() {
    let src = r#"
        Router::new()
            // .route("/commented", get(x))
            .route("/a/{id}", get(a))
            .route(
                "/b",
                get(list)
                    .post(create)
                    .layer(DefaultBodyLimit::max(4)),
            )
            .route("/c", axum::routing::put(|Path(p): Path<String>| async move { f(&p).get(1) }))
            .route("/static/{*path}", get(|| async { "x" }))
            .merge(other::routes())
    "#;
    let got = routes_in(&[("t.rs".into(), src.into())]).expect("parses");
    let want: BTreeSet<Route> = [
        ("GET", "/a/{id}"),
        ("GET", "/b"),
        ("POST", "/b"),
        ("PUT", "/c"),
        ("GET", "/static/{path}"),
    ]
    .iter()
    .map(|(m, p)| (m.to_string(), p.to_string()))
    .collect();
    assert_eq!(got, want);
    let nested = routes_in(&[("t.rs".into(), ".nest(\"/x\", r)".into())]);
    assert!(nested.unwrap_err().contains("nest"));
}

/// The check can fail: a route removed from (a copy of) the code, or an operation added to
/// (a copy of) the document, is named.
#[test]
fn a_route_missing_on_either_side_is_named() {
    let doc = operations(&load(&repo().join("fleet-server/openapi.yaml")));
    let mut srcs = fleet_sources();
    let (_, api) = srcs
        .iter_mut()
        .find(|(f, _)| f.ends_with("api.rs"))
        .expect("api.rs");
    let line = ".route(\"/api/v1/stats\", get(stats))";
    assert!(
        api.contains(line),
        "api.rs no longer has {line}: pick another route"
    );
    *api = api.replace(line, "");
    let err = compare(&routes_in(&srcs).expect("parses"), &doc, "openapi.yaml").unwrap_err();
    assert_eq!(
        err,
        "openapi.yaml has GET /api/v1/stats, which no route in the code serves"
    );

    let code = routes_in(&fleet_sources()).expect("parses");
    let mut doc = doc;
    assert!(doc.remove(&("DELETE".to_string(), "/api/v1/tokens/{name}".to_string())));
    let err = compare(&code, &doc, "openapi.yaml").unwrap_err();
    assert_eq!(
        err,
        "route DELETE /api/v1/tokens/{name} is in the code but not in openapi.yaml"
    );
}

/// A dangling `$ref`, a wrong version and an undeclared path parameter are refused.
#[test]
fn structural_errors_are_found() {
    let doc = &YamlLoader::load_from_str(
        r##"
openapi: 3.0.3
info: { title: t, version: "1" }
paths:
  /x/{id}:
    get:
      summary: s
      responses:
        "200": { $ref: "#/components/responses/Nope" }
"##,
    )
    .expect("yaml")[0];
    let errs = structure(doc).join("\n");
    assert!(errs.contains("3.1.x"), "{errs}");
    assert!(
        errs.contains("\"#/components/responses/Nope\" does not resolve"),
        "{errs}"
    );
    assert!(
        errs.contains("GET /x/{id}: path parameters declared"),
        "{errs}"
    );
}
