#!/usr/bin/env python3
"""Multiply-accumulates (MACs) per inference of each shipped .tflite model, read from the file
itself: CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV and FULLY_CONNECTED, counted from their
weight and output tensor shapes (the layers that hold nearly all of a CNN's arithmetic;
element-wise ops, pooling and resizing are not counted). Parameters: the elements of every
constant weight tensor of those ops.

    python3 benches/model_macs.py                  # every package's [files.tflite] (or its file)
    python3 benches/model_macs.py a.tflite b.tflite

One JSON object per line. No dependency beyond the standard library: the TFLite flatbuffer is
read directly (schema field numbers from tensorflow/lite/schema/schema.fbs).
"""
import json, pathlib, struct, sys, tomllib

# builtin operator codes (schema.fbs BuiltinOperator)
CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, TRANSPOSE_CONV = 3, 4, 9, 67


class Table:
    """One flatbuffer table: fields by their schema index."""

    def __init__(self, buf, pos):
        self.buf, self.pos = buf, pos
        self.vt = pos - struct.unpack_from("<i", buf, pos)[0]
        self.vt_len = struct.unpack_from("<H", buf, self.vt)[0]

    def _off(self, field):
        o = 4 + 2 * field
        return struct.unpack_from("<H", self.buf, self.vt + o)[0] if o < self.vt_len else 0

    def scalar(self, field, fmt, default=0):
        o = self._off(field)
        return struct.unpack_from("<" + fmt, self.buf, self.pos + o)[0] if o else default

    def _vector(self, field):
        o = self._off(field)
        if not o:
            return None, 0
        p = self.pos + o
        p += struct.unpack_from("<I", self.buf, p)[0]
        return p + 4, struct.unpack_from("<I", self.buf, p)[0]

    def ints(self, field):
        p, n = self._vector(field)
        return list(struct.unpack_from(f"<{n}i", self.buf, p)) if p else []

    def tables(self, field):
        p, n = self._vector(field)
        if not p:
            return []
        return [Table(self.buf, p + 4 * i + struct.unpack_from("<I", self.buf, p + 4 * i)[0])
                for i in range(n)]


def prod(v):
    r = 1
    for x in v:
        r *= x
    return r


def macs(path):
    buf = pathlib.Path(path).read_bytes()
    if buf[4:8] != b"TFL3":
        raise SystemExit(f"{path}: not a TFLite flatbuffer (no TFL3 identifier)")
    model = Table(buf, struct.unpack_from("<I", buf, 0)[0])
    codes = []
    for oc in model.tables(1):
        # builtin_code (field 3, int32) supersedes deprecated_builtin_code (field 0, int8)
        codes.append(max(oc.scalar(3, "i"), oc.scalar(0, "b")))
    sg = model.tables(2)[0]
    shapes = [t.ints(0) for t in sg.tables(0)]
    total, params, per_op = 0, 0, {}
    for op in sg.tables(3):
        code = codes[op.scalar(0, "I")]
        ins, outs = op.ints(1), op.ints(2)
        if code == CONV_2D:  # filter [Cout, KH, KW, Cin]
            f = shapes[ins[1]]
            n = prod(shapes[outs[0]]) * f[1] * f[2] * f[3]
        elif code == DEPTHWISE_CONV_2D:  # filter [1, KH, KW, Cout]
            f = shapes[ins[1]]
            n = prod(shapes[outs[0]]) * f[1] * f[2]
        elif code == FULLY_CONNECTED:  # weights [out, in]
            f = shapes[ins[1]]
            n = prod(shapes[outs[0]]) * f[1]
        elif code == TRANSPOSE_CONV:  # inputs: output_shape, filter [Cout, KH, KW, Cin], input
            f = shapes[ins[1]]
            n = prod(shapes[ins[2]]) * f[0] * f[1] * f[2]
        else:
            continue
        total += n
        params += prod(f)
        per_op[code] = per_op.get(code, 0) + n
    names = {CONV_2D: "conv2d", DEPTHWISE_CONV_2D: "depthwise", FULLY_CONNECTED: "fc",
             TRANSPOSE_CONV: "transpose_conv"}
    return {
        "macs": total,
        "mmacs": round(total / 1e6, 2),
        "weights": params,
        "input_shape": shapes[sg.ints(1)[0]],
        "mmacs_by_op": {names[k]: round(v / 1e6, 2) for k, v in sorted(per_op.items())},
    }


def package_models(root):
    for pkg in sorted((root / "models" / "packages").iterdir()):
        mf = pkg / "manifest.toml"
        if not mf.is_file():
            continue
        m = tomllib.loads(mf.read_text())
        f = m.get("files", {}).get("tflite", {}).get("file", m["file"])
        if f.endswith(".tflite"):
            yield m["name"], pkg / f


if __name__ == "__main__":
    root = pathlib.Path(__file__).resolve().parent.parent
    items = [(pathlib.Path(a).stem, pathlib.Path(a)) for a in sys.argv[1:]] or list(package_models(root))
    if not items:
        raise SystemExit("model_macs: no .tflite model found")
    for name, path in items:
        if not path.is_file():
            raise SystemExit(f"model_macs: {path}: no such file")
        shown = path.relative_to(root) if path.resolve().is_relative_to(root) and path.is_absolute() else path
        print(json.dumps({"model": name, "file": str(shown), **macs(path)}), flush=True)
