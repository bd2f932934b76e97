#!/usr/bin/env python3
"""Static check of the Yocto layer yocto/meta-emotiond against the repository.

    python3 yocto/check.py            # from any directory; exit 1 with one line per problem

The layer cannot be built here (no BitBake, no cross toolchain), so CI checks what can be
checked without one:

  (a) every crates.io package in Cargo.lock is in the recipe's SRC_URI with the checksum from
      Cargo.lock, and no crate or checksum is there that Cargo.lock no longer has;
  (b) the recipe's PV is the workspace version (Cargo.toml);
  (c) every file do_install takes from ${S} exists; the unit installed is the repository's
      systemd/emotiond.service, its ExecStart runs the binary where the recipe installs it with
      the config the recipe installs (and lists in CONFFILES), its User=/Group=/
      SupplementaryGroups= are the useradd parameters, its StateDirectory= is the config's
      state_dir; every model package has the provenance file the recipe ships;
  (d) every LIC_FILES_CHKSUM md5 matches the file (or its beginline/endline range);
  (e) layer.conf names one collection and uses it in every per-layer variable, and its BBFILES
      patterns cover the layer's recipes and appends;
  (f) the image each .bbappend extends is named in yocto/README.md;
  (g) every line of the .bb/.inc/.conf/.bbappend files is a comment, a blank, an assignment,
      inherit, include/require, export, addtask, or inside a shell/python function whose
      braces balance and whose closing brace is at the start of a line.

Python 3.11 standard library only. check(root) is what the self-tests (yocto/tests) call.
"""
import fnmatch
import glob
import hashlib
import importlib.util
import re
import shlex
import sys
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
GEN = "yocto/meta-emotiond/tools/gen-crates.py"
REGEN = f"run python3 {GEN}"

# bitbake.conf values for the paths the recipe uses (a non-usrmerge layout; only their
# relations matter here). ${D}, ${S}, ${B} stay symbolic.
BITBAKE_DIRS = {
    "prefix": "/usr",
    "exec_prefix": "/usr",
    "base_prefix": "",
    "bindir": "/usr/bin",
    "sbindir": "/usr/sbin",
    "base_bindir": "/bin",
    "base_sbindir": "/sbin",
    "libdir": "/usr/lib",
    "nonarch_base_libdir": "/lib",
    "systemd_system_unitdir": "/lib/systemd/system",
    "sysconfdir": "/etc",
    "localstatedir": "/var",
    "datadir": "/usr/share",
    "docdir": "/usr/share/doc",
    "D": "<D>",
    "S": "<S>",
    "B": "<B>",
    "CARGO_TARGET_SUBDIR": "<rust-target>/release",
}

ASSIGN_RE = re.compile(
    r"^(?P<export>export\s+)?(?P<var>[A-Za-z0-9_${}.+\-/:~@]+?)(?:\[(?P<flag>[^\]]+)\])?"
    r"\s*(?P<op>\?\?=|\?=|:=|\+=|=\+|\.=|=\.|=)\s*(?P<val>.*)$",
    re.S,
)
FUNC_RE = re.compile(r"^(?P<python>python\s+|fakeroot\s+)*(?P<name>[A-Za-z0-9_${}.\-:+]*)\s*\(\s*\)\s*\{\s*$")
DIRECTIVE_RE = re.compile(
    r"^(?:inherit|inherit_defer|require|include|include_all|addtask|deltask|addhandler|EXPORT_FUNCTIONS)\s+\S.*$"
    r"|^export\s+[A-Za-z0-9_]+\s*$"
)


class Recipe:
    """A BitBake file parsed just far enough for these checks."""

    def __init__(self, path, rel):
        self.path, self.rel = path, rel
        self.assigns = []  # (var, flag, op, value, lineno)
        self.inherits = []
        self.includes = []  # (directive, argument, lineno)
        self.functions = {}  # name -> (body lines, python?)
        self.problems = []
        self._parse(path.read_text().splitlines())

    def _parse(self, lines):
        i, n = 0, len(lines)
        while i < n:
            line, start = lines[i], i + 1
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                i += 1
                continue
            m = FUNC_RE.match(line)
            if m:
                body, i = [], i + 1
                while i < n and lines[i].rstrip() != "}":
                    body.append(lines[i])
                    i += 1
                if i >= n:
                    self.problems.append(f"{self.rel}:{start}: function {m['name'] or '(anonymous)'} has no closing '}}' at the start of a line")
                    return
                text = "\n".join(body)
                if text.count("{") != text.count("}"):
                    self.problems.append(f"{self.rel}:{start}: braces in function {m['name'] or '(anonymous)'} do not balance")
                self.functions[m["name"]] = (body, bool(m["python"] and "python" in m["python"]))
                i += 1
                continue
            logical = line
            while logical.rstrip().endswith("\\") and i + 1 < n:
                i += 1
                logical = logical.rstrip()[:-1] + "\n" + lines[i]
            i += 1
            if logical.rstrip().endswith("\\"):
                self.problems.append(f"{self.rel}:{start}: line continuation runs off the end of the file")
                continue
            m = ASSIGN_RE.match(logical.strip())
            if m:
                val = m["val"].strip()
                if len(val) < 2 or val[0] not in "\"'" or val[-1] != val[0]:
                    self.problems.append(f"{self.rel}:{start}: the value of {m['var']} is not one quoted string")
                    continue
                self.assigns.append((m["var"], m["flag"], m["op"], val[1:-1], start))
                continue
            if DIRECTIVE_RE.match(stripped):
                word, _, arg = stripped.partition(" ")
                if word in ("inherit", "inherit_defer"):
                    self.inherits += arg.split()
                elif word in ("require", "include", "include_all"):
                    self.includes.append((word, arg.strip(), start))
                continue
            self.problems.append(
                f"{self.rel}:{start}: not a comment, assignment, inherit, include/require or function: {stripped[:60]!r}"
            )

    def value(self, var, flag=None):
        """The value of var (as written, overrides included) after =, ?=, ??=, +=, .= ... in file order."""
        val, weak = None, None
        for v, f, op, text, _ in self.assigns:
            if v != var or f != flag:
                continue
            text = " ".join(text.split())
            if op in ("=", ":="):
                val = text
            elif op == "?=":
                val = text if val is None else val
            elif op == "??=":
                weak = text
            elif op == "+=":
                val = ((val or weak or "") + " " + text).strip()
            elif op == "=+":
                val = (text + " " + (val or weak or "")).strip()
            elif op == ".=":
                val = (val or weak or "") + text
            elif op == "=.":
                val = text + (val or weak or "")
        return val if val is not None else weak

    def flags(self, var):
        return {f: " ".join(t.split()) for v, f, _, t, _ in self.assigns if v == var and f is not None}

    def lineno(self, var):
        for v, f, op, _, ln in self.assigns:
            if v == var and f is None and op in ("=", ":="):
                return ln
        return None


def expand(text, env, depth=8):
    for _ in range(depth):
        new = re.sub(r"\$\{([A-Za-z0-9_]+)\}", lambda m: env.get(m[1], m[0]), text)
        if new == text:
            break
        text = new
    return text


def load_gen():
    spec = importlib.util.spec_from_file_location("gen_crates", HERE / "meta-emotiond" / "tools" / "gen-crates.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def md5_of(path, begin, end):
    """What OE's license QA computes: md5 of the whole file, or of lines begin..end (1-based, with line ends)."""
    data = path.read_bytes()
    if not begin and not end:
        return hashlib.md5(data).hexdigest()
    lines = data.splitlines(keepends=True)
    b = int(begin) if begin else 1
    e = int(end) if end else len(lines)
    return hashlib.md5(b"".join(lines[b - 1 : e])).hexdigest()


def parse_unit(path):
    """[Service]/[Unit] keys of a systemd unit: key -> list of values (in order)."""
    keys = {}
    for line in path.read_text().splitlines():
        s = line.strip()
        if not s or s[0] in "#;[" or "=" not in s:
            continue
        k, _, v = s.partition("=")
        keys.setdefault(k.strip(), []).append(v.strip())
    return keys


def parse_install(line):
    """(dirs, sources, dest) of one `install ...` command line, or None."""
    try:
        words = shlex.split(line)
    except ValueError:
        return None
    if not words or words[0] != "install":
        return None
    args, make_dirs, i = [], False, 1
    while i < len(words):
        w = words[i]
        if w in ("-m", "-o", "-g", "-t", "--mode", "--owner", "--group"):
            i += 2
            continue
        if w.startswith("-"):
            make_dirs |= w == "-d" or (not w.startswith("--") and "d" in w[1:])
            i += 1
            continue
        args.append(w)
        i += 1
    if make_dirs:
        return args, [], None
    if len(args) < 2:
        return None
    return [], args[:-1], args[-1]


def useradd_params(text):
    """(user, primary group, supplementary groups) from a USERADD_PARAM value."""
    words = shlex.split(text)
    user, primary, groups, i = None, None, set(), 0
    while i < len(words):
        w = words[i]
        if w in ("-G", "--groups"):
            groups = {g for g in words[i + 1].split(",") if g}
            i += 2
        elif w in ("-g", "--gid"):
            primary = words[i + 1]
            i += 2
        elif w in ("-U", "--user-group"):
            primary = primary or "<user>"
            i += 1
        elif w in ("-d", "--home-dir", "-s", "--shell", "-u", "--uid", "-c", "--comment", "-k", "--skel", "-K", "-p", "--password"):
            i += 2
        elif w.startswith("-"):
            i += 1
        else:
            user = w
            i += 1
    if primary == "<user>":
        primary = user
    return user, primary, groups


def check(root):
    root = Path(root)
    layer = root / "yocto" / "meta-emotiond"
    problems = []
    p = problems.append

    def rel(path):
        return str(Path(path).relative_to(root))

    # (g) syntax of every metadata file, and the parsed files for the rest.
    parsed = {}
    for f in sorted(layer.rglob("*")):
        if f.suffix in (".bb", ".inc", ".conf", ".bbappend") and f.is_file():
            r = Recipe(f, rel(f))
            problems.extend(r.problems)
            parsed[f] = r

    bbs = sorted(layer.glob("recipes-*/*/emotiond_*.bb"))
    if len(bbs) != 1:
        p(f"expected one recipe yocto/meta-emotiond/recipes-*/*/emotiond_<version>.bb, found {len(bbs)}")
        return problems
    bb_path = bbs[0]
    bb = parsed[bb_path]

    # (b) PV = the workspace version.
    cargo = tomllib.loads((root / "Cargo.toml").read_text())
    ws = cargo.get("workspace", {}).get("package", {})
    ws_version = ws.get("version")
    pv = bb.value("PV") or bb_path.stem.split("_", 1)[1]
    if pv != ws_version:
        p(f"{rel(bb_path)}: PV is {pv!r}, the workspace version in Cargo.toml is {ws_version!r} (rename the recipe to emotiond_{ws_version}.bb)")
    daemon_pkg = tomllib.loads((root / "daemon" / "Cargo.toml").read_text()).get("package", {})
    dv = daemon_pkg.get("version")
    if isinstance(dv, str) and dv != pv:
        p(f"daemon/Cargo.toml: version {dv!r} differs from the recipe's PV {pv!r}")

    env = dict(BITBAKE_DIRS, PN="emotiond", BPN="emotiond", PV=pv, BP=f"emotiond-{pv}")
    for v, f, op, text, _ in bb.assigns:
        if f is None and ":" not in v and v not in env and op in ("=", ":=", "?=", "??="):
            env[v] = " ".join(text.split())

    # (a) crates: Cargo.lock vs SRC_URI, via the .inc the recipe requires.
    gen = load_gen()
    inc_files = []
    for word, arg, _ in bb.includes:
        inc = bb_path.parent / expand(arg, env)
        if not inc.is_file():
            p(f"{rel(bb_path)}: {word} {arg}: {rel(inc)} does not exist")
        else:
            inc_files.append(inc)
    sources = [bb] + [parsed[i] for i in inc_files if i in parsed]
    uris, sums = {}, {}
    for r in sources:
        for word in (r.value("SRC_URI") or "").split():
            if word.startswith("crate://"):
                m = re.match(r"crate://crates\.io/([^/;]+)/([^/;]+)(?:;name=(\S+))?$", word)
                if not m:
                    p(f"{r.rel}: crate URI {word!r} is not crate://crates.io/<name>/<version>;name=<name>-<version> ({REGEN})")
                    continue
                key = f"{m[1]}-{m[2]}"
                if m[3] != key:
                    p(f"{r.rel}: crate {m[1]} {m[2]} has name={m[3]!r}, expected {key!r} ({REGEN})")
                uris[key] = (m[1], m[2])
        for flag, val in r.flags("SRC_URI").items():
            if flag.endswith(".sha256sum"):
                sums[flag[: -len(".sha256sum")]] = val
    try:
        lock_crates = gen.registry_crates(root / "Cargo.lock")
    except gen.LockError as e:
        p(f"Cargo.lock: {e}")
        lock_crates = []
    lock = {f"{n}-{v}": (n, v, c) for n, v, c in lock_crates}
    before = len(problems)
    for key, (n, v, c) in lock.items():
        if key not in uris:
            p(f"crate {n} {v} is in Cargo.lock but not in the recipe's SRC_URI ({REGEN})")
        elif key not in sums:
            p(f"crate {n} {v} has no SRC_URI[{key}.sha256sum] in the recipe ({REGEN})")
        elif sums[key] != c:
            p(f"crate {n} {v}: the recipe's sha256sum {sums[key]} is not Cargo.lock's {c} ({REGEN})")
    for key, (n, v) in uris.items():
        if key not in lock:
            p(f"crate {n} {v} is in the recipe's SRC_URI but no longer in Cargo.lock ({REGEN})")
    for key in sums:
        if key not in lock and key not in uris:
            p(f"SRC_URI[{key}.sha256sum] is in the recipe but {key} is not a crate of Cargo.lock ({REGEN})")
    crate_inc = bb_path.parent / "emotiond-crates.inc"
    if crate_inc not in inc_files:
        p(f"{rel(bb_path)}: does not require ${{BPN}}-crates.inc")
    elif lock_crates and len(problems) == before and crate_inc.read_text() != gen.render(lock_crates):
        p(f"{rel(crate_inc)}: not the text gen-crates.py writes for Cargo.lock ({REGEN})")

    # The project's git repository first, then the crates (a later `SRC_URI =` would drop them).
    git = [w for w in (bb.value("SRC_URI") or "").split() if w.startswith("git://")]
    if len(git) != 1 or "protocol=https" not in git[0] or "branch=" not in git[0]:
        p(f"{rel(bb_path)}: SRC_URI should hold one git:// URL of the project with protocol=https and branch=")
    set_line = bb.lineno("SRC_URI")
    req_line = next((ln for w, a, ln in bb.includes if "crates.inc" in a), None)
    if set_line and req_line and set_line > req_line:
        p(f"{rel(bb_path)}:{set_line}: SRC_URI = comes after the require of the crate list and drops it")
    srcrev = bb.value("SRCREV") or ""
    if not re.fullmatch(r"\$\{[A-Za-z0-9_]+\}", srcrev):
        p(f"{rel(bb_path)}: SRCREV should be a variable a release pins (e.g. ${{EMOTIOND_SRCREV}}), not {srcrev!r}")

    # (d) LIC_FILES_CHKSUM.
    lic = bb.value("LIC_FILES_CHKSUM") or ""
    if not lic.split():
        p(f"{rel(bb_path)}: no LIC_FILES_CHKSUM")
    for entry in lic.split():
        path, *params = entry.split(";")
        if not path.startswith("file://"):
            p(f"{rel(bb_path)}: LIC_FILES_CHKSUM entry {entry!r} is not file://")
            continue
        kv = dict(x.split("=", 1) for x in params if "=" in x)
        f = root / expand(path[len("file://") :], env)
        if not f.is_file():
            p(f"LIC_FILES_CHKSUM: {rel(f)} does not exist")
            continue
        got = md5_of(f, kv.get("beginline"), kv.get("endline"))
        where = f"lines {kv.get('beginline', 1)}-{kv.get('endline', 'end')} of " if kv.get("beginline") or kv.get("endline") else ""
        if got != kv.get("md5"):
            p(f"LIC_FILES_CHKSUM: md5 of {where}{rel(f)} is {got}, the recipe says {kv.get('md5')} (the licence text moved or changed: fix beginline/endline or md5)")
    licenses = set(re.split(r"[\s&|()]+", bb.value("LICENSE") or "")) - {""}
    if ws.get("license") and ws["license"] not in licenses:
        p(f"{rel(bb_path)}: LICENSE {bb.value('LICENSE')!r} does not include the workspace licence {ws['license']!r}")

    # (c) what do_install installs.
    body = bb.functions.get("do_install", ([], False))[0] + bb.functions.get("do_install:append", ([], False))[0]
    if not body:
        p(f"{rel(bb_path)}: no do_install")
    installed, dirs = {}, set()
    shipped_patterns = []
    for line in body:
        x = expand(line.strip(), env)
        for tok in re.findall(r"<S>/[^\s;\"')]+", x):
            pat = tok[len("<S>/") :]
            shipped_patterns.append(pat)
            if not glob.glob(str(root / pat)):
                p(f"{rel(bb_path)}: do_install installs ${{S}}/{pat}, which does not exist in the repository")
        inst = parse_install(x)
        if inst:
            ds, srcs, dest = inst
            dirs.update(d.replace("<D>", "", 1) for d in ds)
            if dest:
                installed[dest.replace("<D>", "", 1)] = srcs
    for manifest in sorted(root.glob("models/packages/*/manifest.toml")):
        if "models/packages/*/PROVENANCE.md" in shipped_patterns and not (manifest.parent / "PROVENANCE.md").is_file():
            p(f"model package {manifest.parent.name} has no PROVENANCE.md (the recipe ships one per package)")

    binary = [d for d, s in installed.items() if any(x.startswith("<B>/target/") and x.endswith("/emotiond") for x in s)]
    if len(binary) != 1:
        p(f"{rel(bb_path)}: do_install should install the emotiond binary from ${{B}}/target/${{CARGO_TARGET_SUBDIR}} once")
    conffiles = expand(bb.value("CONFFILES:${PN}") or "", env).split()
    for c in conffiles:
        if c not in installed:
            p(f"{rel(bb_path)}: CONFFILES lists {c}, which do_install does not install")

    services = (bb.value("SYSTEMD_SERVICE:${PN}") or "").split()
    if not services:
        p(f"{rel(bb_path)}: no SYSTEMD_SERVICE:${{PN}}")
    if bb.value("SYSTEMD_AUTO_ENABLE") != "enable":
        p(f"{rel(bb_path)}: SYSTEMD_AUTO_ENABLE should be \"enable\"")
    for needed in ("cargo", "systemd", "useradd"):
        if needed not in bb.inherits:
            p(f"{rel(bb_path)}: does not inherit {needed}")
    user, primary, groups = useradd_params(expand(bb.value("USERADD_PARAM:${PN}") or "", env))
    if not user:
        p(f"{rel(bb_path)}: no user in USERADD_PARAM:${{PN}}")
    for svc in services:
        dest = f"{BITBAKE_DIRS['systemd_system_unitdir']}/{svc}"
        srcs = installed.get(dest)
        if not srcs:
            p(f"{rel(bb_path)}: SYSTEMD_SERVICE names {svc}, but do_install does not install ${{systemd_system_unitdir}}/{svc}")
            continue
        if srcs != [f"<S>/systemd/{svc}"]:
            p(f"{rel(bb_path)}: {svc} is installed from {' '.join(srcs)}, not from the repository's systemd/{svc}")
            continue
        unit_path = root / "systemd" / svc
        if not unit_path.is_file():
            continue  # reported above
        unit = parse_unit(unit_path)
        execs = unit.get("ExecStart", [])
        if len(execs) != 1:
            p(f"systemd/{svc}: expected one ExecStart=, found {len(execs)}")
            continue
        argv = shlex.split(execs[0].lstrip("-@+!:"))
        if binary and argv and argv[0] != binary[0]:
            p(f"systemd/{svc}: ExecStart runs {argv[0]}, but the recipe installs the binary as {binary[0]}")
        cfg = None
        for i, a in enumerate(argv):
            if a == "--config" and i + 1 < len(argv):
                cfg = argv[i + 1]
            elif a.startswith("--config="):
                cfg = a.split("=", 1)[1]
        if cfg is None:
            p(f"systemd/{svc}: ExecStart has no --config")
        else:
            if cfg not in installed:
                p(f"systemd/{svc}: ExecStart reads {cfg}, which the recipe does not install")
            if cfg not in conffiles:
                p(f"systemd/{svc}: ExecStart reads {cfg}, which is not in the recipe's CONFFILES")
        u = (unit.get("User") or [None])[-1]
        if u != user:
            p(f"systemd/{svc}: User={u}, but the recipe's useradd creates {user!r}")
        g = (unit.get("Group") or [None])[-1]
        if g is not None and g != primary:
            p(f"systemd/{svc}: Group={g}, but the useradd user {user!r} has primary group {primary!r}")
        sup = set(" ".join(unit.get("SupplementaryGroups", [])).split())
        if sup != groups:
            p(f"systemd/{svc}: SupplementaryGroups={' '.join(sorted(sup))}, but useradd gives --groups {','.join(sorted(groups))}")
        state = (unit.get("StateDirectory") or [None])[-1]
        if state and cfg and cfg in installed and installed[cfg][0].startswith("<S>/"):
            cfg_src = root / installed[cfg][0][len("<S>/") :]
            if cfg_src.is_file():
                sd = tomllib.loads(cfg_src.read_text()).get("state_dir")
                if sd != f"/var/lib/{state}":
                    p(f"{rel(cfg_src)}: state_dir is {sd!r}, but systemd/{svc} has StateDirectory={state} (/var/lib/{state})")
            statedir = f"{BITBAKE_DIRS['localstatedir']}/lib/{state}"
            if statedir not in dirs:
                p(f"{rel(bb_path)}: do_install does not create {statedir} (StateDirectory={state})")

    # (e) layer.conf.
    conf_path = layer / "conf" / "layer.conf"
    conf = parsed.get(conf_path)
    readme = root / "yocto" / "README.md"
    readme_text = readme.read_text() if readme.is_file() else ""
    if not readme_text:
        p("yocto/README.md is missing")
    if conf is None:
        p("yocto/meta-emotiond/conf/layer.conf is missing")
    else:
        cols = (conf.value("BBFILE_COLLECTIONS") or "").split()
        if len(cols) != 1:
            p(f"{conf.rel}: BBFILE_COLLECTIONS should add one collection, found {cols}")
        col = cols[0] if cols else None
        per_layer = ("BBFILE_PATTERN_", "BBFILE_PRIORITY_", "LAYERDEPENDS_", "LAYERRECOMMENDS_", "LAYERSERIES_COMPAT_", "LAYERVERSION_")
        for v, _, _, _, ln in conf.assigns:
            for pre in per_layer:
                if v.startswith(pre) and v[len(pre) :] != col:
                    p(f"{conf.rel}:{ln}: {v} is not for the collection {col!r} of BBFILE_COLLECTIONS")
        for pre in ("BBFILE_PATTERN_", "BBFILE_PRIORITY_", "LAYERDEPENDS_", "LAYERSERIES_COMPAT_"):
            if col and conf.value(pre + col) is None:
                p(f"{conf.rel}: no {pre}{col}")
        if col and col in (conf.value(f"LAYERDEPENDS_{col}") or "").split():
            p(f"{conf.rel}: LAYERDEPENDS_{col} names the layer itself")
        compat = (conf.value(f"LAYERSERIES_COMPAT_{col}") or "").split() if col else []
        for series in compat:
            if series not in readme_text:
                p(f"{conf.rel}: LAYERSERIES_COMPAT names {series}, which yocto/README.md does not mention")
        patterns = [expand(x, {"LAYERDIR": str(layer)}) for x in (conf.value("BBFILES") or "").split()]
        for f in sorted(list(layer.rglob("*.bb")) + list(layer.rglob("*.bbappend"))):
            if not any(fnmatch.fnmatch(str(f), pat) for pat in patterns):
                p(f"{rel(f)}: not matched by layer.conf's BBFILES")

    # (f) each append's target is documented.
    for f in sorted(layer.rglob("*.bbappend")):
        target = f.name[: -len(".bbappend")].split("_")[0]
        if not re.search(rf"(?<![\w-]){re.escape(target)}(?![\w-])", readme_text):
            p(f"{rel(f)}: extends {target}, which yocto/README.md does not name")

    return problems


def main():
    root = HERE.parent
    problems = check(root)
    for line in problems:
        print(f"yocto/check: {line}")
    if problems:
        print(f"yocto/check: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    n = len(load_gen().registry_crates(root / "Cargo.lock"))
    print(f"yocto/check: OK (meta-emotiond: {n} crates pinned, installs, unit, user, licence checksums, layer.conf)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
