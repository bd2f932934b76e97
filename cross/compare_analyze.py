#!/usr/bin/env python3
"""Compare two `emotiond analyze` outputs (one JSON object per line), e.g. the x86_64 build's
and the aarch64 build's under qemu-user: the same inputs, the same faces (count, boxes,
scores, emotions, dominant) within a float tolerance. Timing fields (`*_ms`) are ignored.

    cross/compare_analyze.py x86_64.jsonl aarch64.jsonl [--tol 1e-3]

Exit 0 when they match, 1 with one line per difference otherwise."""
import json
import math
import sys


def load(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except ValueError as e:
                sys.exit(f"{path}:{n}: not JSON: {e}")
    if not rows:
        sys.exit(f"{path}: no output lines")
    return rows


def diff(a, b, tol, where, out):
    if isinstance(a, dict) and isinstance(b, dict):
        keys = {k for k in a.keys() | b.keys() if not k.endswith("_ms")}
        for k in sorted(keys):
            if k not in a or k not in b:
                out.append(f"{where}.{k}: only in {'first' if k in a else 'second'}")
            else:
                diff(a[k], b[k], tol, f"{where}.{k}", out)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{where}: {len(a)} items vs {len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            diff(x, y, tol, f"{where}[{i}]", out)
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        if not math.isclose(a, b, rel_tol=tol, abs_tol=tol):
            out.append(f"{where}: {a} vs {b}")
    elif a != b:
        out.append(f"{where}: {a!r} vs {b!r}")


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--tol")]
    tol = 1e-3
    for a in sys.argv[1:]:
        if a.startswith("--tol="):
            tol = float(a.split("=", 1)[1])
    if len(args) != 2:
        sys.exit(__doc__)
    first, second = load(args[0]), load(args[1])
    out = []
    if len(first) != len(second):
        out.append(f"{len(first)} lines vs {len(second)}")
    for i, (a, b) in enumerate(zip(first, second)):
        diff(a, b, tol, f"line {i + 1}", out)
    faces = sum(len(r.get("faces", [])) for r in first)
    if out:
        print("\n".join(out))
        sys.exit(1)
    print(f"same results: {len(first)} lines, {faces} faces (tolerance {tol})")


if __name__ == "__main__":
    main()
