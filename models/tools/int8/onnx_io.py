"""ONNX conversion of a full-integer .tflite with float32 input and output, so that engines
that take f32 tensors (ONNX Runtime, tract-onnx) run it unchanged.

tf2onnx 1.17.0 turns the int8 .tflite into QDQ ONNX (QuantizeLinear/DequantizeLinear around
float Conv/Add/...; ONNX Runtime fuses them into integer kernels) with an int8 graph input
and int8 outputs. This module then

- replaces the int8 input by a float32 one followed by the quantisation the TFLite engine
  does at its boundary (models/src/ffi/tflite/engine.rs: q = clamp(round(x / scale + zp),
  -128, 127), rounding half away from zero, in f32), written with exact ONNX ops
  (Div, Add, Abs, Floor, Sub, GreaterOrEqual, Cast, Sign, Mul, Clip, Cast to int8) rather
  than QuantizeLinear, which rounds half to even: with an input scale of 2/255 and zero
  point -1, pixel-grid inputs (p - 127.5) / 127.5 fall on rounding ties, and half-to-even
  would give other int8 inputs than the TFLite engine does;
- appends DequantizeLinear(scale, zero point) to every int8 output, (q - zp) * scale in
  f32 as the TFLite engine's dequantisation.
"""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

I8 = TensorProto.INT8


def _const(g, name, value, dtype):
    g.initializer.append(numpy_helper.from_array(np.array(value, dtype=dtype), name))
    return name


def float_io(model, in_quant, out_quants):
    """in_quant: (scale, zero_point) of the int8 input; out_quants: one per output (in graph
    output order), or None for an output that is already float."""
    g = model.graph
    if len(g.input) != 1:
        raise SystemExit(f"{len(g.input)} graph inputs, expected 1")
    inp = g.input[0]
    if inp.type.tensor_type.elem_type != I8:
        raise SystemExit(f"graph input {inp.name} is not int8")
    name = inp.name
    q_name = name + "__int8"
    for n in g.node:
        n.input[:] = [q_name if x == name else x for x in n.input]
    scale, zp = in_quant
    s = _const(g, "in_scale", np.float32(scale), np.float32)
    z = _const(g, "in_zero_point", np.float32(zp), np.float32)
    half = _const(g, "half", np.float32(0.5), np.float32)
    lo = _const(g, "int8_min", np.float32(-128), np.float32)
    hi = _const(g, "int8_max", np.float32(127), np.float32)
    F = TensorProto.FLOAT
    nodes = [
        helper.make_node("Div", [name, s], ["q_div"]),
        helper.make_node("Add", ["q_div", z], ["q_y"]),
        helper.make_node("Abs", ["q_y"], ["q_abs"]),
        helper.make_node("Floor", ["q_abs"], ["q_floor"]),
        helper.make_node("Sub", ["q_abs", "q_floor"], ["q_frac"]),  # exact
        helper.make_node("GreaterOrEqual", ["q_frac", half], ["q_up_b"]),
        helper.make_node("Cast", ["q_up_b"], ["q_up"], to=F),
        helper.make_node("Add", ["q_floor", "q_up"], ["q_mag"]),
        helper.make_node("Sign", ["q_y"], ["q_sign"]),
        helper.make_node("Mul", ["q_sign", "q_mag"], ["q_round"]),
        helper.make_node("Clip", ["q_round", lo, hi], ["q_clip"]),
        helper.make_node("Cast", ["q_clip"], [q_name], to=I8),
    ]
    inp.type.tensor_type.elem_type = F
    old = list(g.node)
    del g.node[:]
    g.node.extend(nodes + old)
    if len(out_quants) != len(g.output):
        raise SystemExit(f"{len(g.output)} outputs, {len(out_quants)} quantisations given")
    for k, (o, q) in enumerate(zip(g.output, out_quants)):
        if o.type.tensor_type.elem_type != I8:
            if q is not None:
                raise SystemExit(f"output {o.name} is not int8")
            continue
        raw = o.name + "__int8"
        for n in g.node:
            n.output[:] = [raw if x == o.name else x for x in n.output]
            n.input[:] = [raw if x == o.name else x for x in n.input]
        os_ = _const(g, f"out{k}_scale", np.float32(q[0]), np.float32)
        oz = _const(g, f"out{k}_zero_point", np.int8(q[1]), np.int8)
        g.node.append(helper.make_node("DequantizeLinear", [raw, os_, oz], [o.name]))
        o.type.tensor_type.elem_type = F
    return model


def drop_output_qdq(model):
    """Replace QuantizeLinear -> DequantizeLinear (same scale and zero point) at a graph output
    by Identity: the output is the float value before the int8 rounding. tract-onnx 0.22.5
    gives 255/256 for every class of a Softmax -> QuantizeLinear -> DequantizeLinear output."""
    g = model.graph
    producer = {out: n for n in g.node for out in n.output}
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    for o in g.output:
        dq = producer.get(o.name)
        if dq is None or dq.op_type != "DequantizeLinear":
            continue
        q = producer.get(dq.input[0])
        if q is None or q.op_type != "QuantizeLinear":
            continue
        same = all(np.array_equal(inits.get(a), inits.get(b)) for a, b in zip(q.input[1:], dq.input[1:]))
        if not same:
            continue
        users = [n for n in g.node if dq.input[0] in n.input]
        if len(users) != 1:
            continue
        idx = list(g.node).index(dq)
        g.node.remove(dq)
        g.node.insert(idx, helper.make_node("Identity", [q.input[0]], [o.name]))
        g.node.remove(q)
    used = {x for n in g.node for x in n.input}
    keep = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    return model
