"""Rewrite a .tflite so tract-tflite can load it:
 - DEQUANTIZE(const fp16) -> const fp32 tensor (op removed)
 - int8 per-channel-quantized constant weights feeding float ops (hybrid) -> fp32
 - PRELU(x, alpha) -> ADD(MAXIMUM(x,0), MUL(MINIMUM(x,0), alpha))
 - FULLY_CONNECTED whose input has rank != 2 (e.g. [1,1,1,C] after a global pool; TFLite flattens it
   to [-1, in_features], tract-tflite requires rank 2) -> RESHAPE(x, const int32 [batch, in_features],
   ReshapeOptions.newShape the same) feeding the FULLY_CONNECTED (keepNumDims=false only)
 - MEAN(x, const axes) -> MUL(SUM(x, axes), 1/N): tract-tflite 0.22 translates MEAN with a
   quantisation `scale` op that rounds float results to integers (fer mini-Xception's global
   average pool came out as whole-number logits, probabilities off by up to 0.05)
 - DENSIFY(const sparse fp16) -> const dense fp16 (then DEQUANTIZE as above): the dense values are
   what TFLite's own DENSIFY kernel produces (read back from the interpreter, all tensors kept);
   used by mediapipe's face_detection_full_range_sparse.tflite; the sparse constants, then unused,
   lose their data and sparsity (the entries stay)
 - RESIZE_BILINEAR (align_corners false; half_pixel_centers either) -> two constant interpolation
   matrices applied with rank-2 BATCH_MATMULs along H and W (RESHAPE/TRANSPOSE between), the
   weights exactly TFLite's (floor/ceil clamped to the edge); tract-tflite 0.22.5 has no resize
 - DEPTH_TO_SPACE(block b) -> RESHAPE [H, W, b, b, C] -> TRANSPOSE [0, 2, 1, 3, 4] -> RESHAPE
   [1, H*b, W*b, C] (TFLite's DCR order); tract-tflite 0.22.5 has no DEPTH_TO_SPACE"""
import sys, numpy as np
from ai_edge_litert.tools import flatbuffer_utils as fu
from ai_edge_litert import schema_py_generated as S
B = S.BuiltinOperator
def code(m, op):
    oc = m.operatorCodes[op.opcodeIndex]; return max(oc.builtinCode, oc.deprecatedBuiltinCode)
def opcode_index(m, c):
    for i, oc in enumerate(m.operatorCodes):
        if max(oc.builtinCode, oc.deprecatedBuiltinCode) == c: return i
    oc = S.OperatorCodeT(); oc.builtinCode = c; oc.deprecatedBuiltinCode = min(c, 127); oc.version = 1
    m.operatorCodes.append(oc); return len(m.operatorCodes) - 1
def add_buffer(m, arr):
    b = S.BufferT(); b.data = np.frombuffer(arr.astype(np.float32).tobytes(), dtype=np.uint8); m.buffers.append(b); return len(m.buffers) - 1
def add_buffer_raw(m, arr):
    b = S.BufferT(); b.data = np.frombuffer(arr.tobytes(), dtype=np.uint8); m.buffers.append(b); return len(m.buffers) - 1
def add_tensor(sg, name, shape, buf=0, ttype=S.TensorType.FLOAT32):
    t = S.TensorT(); t.name = name.encode(); t.shape = np.array(shape, dtype=np.int32); t.type = ttype; t.buffer = buf
    sg.tensors.append(t); return len(sg.tensors) - 1
def new_op(m, c, ins, outs, opt_type=None, opt=None):
    n = S.OperatorT(); n.opcodeIndex = opcode_index(m, c); n.inputs = np.array(ins, dtype=np.int32); n.outputs = np.array(outs, dtype=np.int32)
    if opt_type is not None: n.builtinOptionsType = opt_type; n.builtinOptions = opt
    return n
def reshape_op(m, sg, x, shape, out=None):
    """RESHAPE x to shape (const int32 shape tensor + ReshapeOptions.newShape); returns (op, out)."""
    shape = np.array(shape, dtype=np.int32)
    st = add_tensor(sg, "reshape_shape%d" % len(sg.tensors), [len(shape)], add_buffer_raw(m, shape), S.TensorType.INT32)
    if out is None: out = add_tensor(sg, "reshaped%d" % len(sg.tensors), list(shape))
    o = S.ReshapeOptionsT(); o.newShape = shape.copy()
    return new_op(m, B.RESHAPE, [x, st], [out], S.BuiltinOptions.ReshapeOptions, o), out
def transpose_op(m, sg, x, perm, shape):
    pt = add_tensor(sg, "perm%d" % len(sg.tensors), [len(perm)], add_buffer_raw(m, np.array(perm, dtype=np.int32)), S.TensorType.INT32)
    out = add_tensor(sg, "transposed%d" % len(sg.tensors), shape)
    return new_op(m, B.TRANSPOSE, [x, pt], [out], S.BuiltinOptions.TransposeOptions, S.TransposeOptionsT()), out
def matmul_op(m, sg, a, b, shape):
    out = add_tensor(sg, "matmul%d" % len(sg.tensors), shape)
    return new_op(m, B.BATCH_MATMUL, [a, b], [out], S.BuiltinOptions.BatchMatMulOptions, S.BatchMatMulOptionsT()), out
def resize_matrix(n_in, n_out, half_pixel):
    """[n_out, n_in] weights of TFLite's reference ResizeBilinear along one axis (align_corners false)."""
    r = np.zeros((n_out, n_in), dtype=np.float32); scale = np.float32(n_in) / np.float32(n_out)
    for o in range(n_out):
        v = (np.float32(o) + np.float32(0.5)) * scale - np.float32(0.5) if half_pixel else np.float32(o) * scale
        lo = max(int(np.floor(v)), 0); hi = min(int(np.ceil(v)), n_in - 1); f = np.float32(v) - np.float32(lo)
        r[o, lo] += np.float32(1) - f; r[o, hi] += f
    return r
def dense_constants(path, m):
    """Outputs of every DENSIFY op, as TFLite's kernel computes them: {tensor index: array}."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    sg = m.subgraphs[0]; outs = [int(op.outputs[0]) for op in sg.operators if code(m, op) == B.DENSIFY]
    if not outs: return {}
    it = Interpreter(model_path=path, num_threads=1, experimental_op_resolver_type=OpResolverType.BUILTIN_REF, experimental_preserve_all_tensors=True)
    it.allocate_tensors(); d = it.get_input_details()[0]
    it.set_tensor(d["index"], np.zeros(d["shape"], dtype=d["dtype"])); it.invoke()
    return {i: it.get_tensor(i).copy() for i in outs}
m = fu.read_model(sys.argv[1]); stats = {}
dense = dense_constants(sys.argv[1], m)
for sg in m.subgraphs:
    new_ops = []
    for op in sg.operators:
        c = code(m, op)
        if c == B.DENSIFY and int(op.outputs[0]) in dense:
            arr = dense[int(op.outputs[0])]; tin = sg.tensors[op.inputs[0]]
            nnz = len(bytes(m.buffers[tin.buffer].data)) // arr.itemsize
            if int(np.count_nonzero(arr)) > nnz: sys.exit("DENSIFY %d: more non-zeros than stored values" % op.outputs[0])
            sg.tensors[op.outputs[0]].buffer = add_buffer_raw(m, arr); stats['densify'] = stats.get('densify', 0) + 1; continue
        if c == B.RESIZE_BILINEAR:
            x, out = op.inputs[0], op.outputs[0]; o = op.builtinOptions
            if o is not None and o.alignCorners: sys.exit("RESIZE_BILINEAR %d: align_corners not handled" % out)
            n, h, w, ch = (int(v) for v in sg.tensors[x].shape); _, h2, w2, _ = (int(v) for v in sg.tensors[out].shape)
            if n != 1: sys.exit("RESIZE_BILINEAR %d: batch %d not handled" % (out, n))
            hp = bool(o is not None and o.halfPixelCenters)
            ry = add_tensor(sg, "resize_rows%d" % out, [h2, h], add_buffer(m, resize_matrix(h, h2, hp)))
            rx = add_tensor(sg, "resize_cols%d" % out, [w2, w], add_buffer(m, resize_matrix(w, w2, hp)))
            op1, t = reshape_op(m, sg, x, [h, w * ch]); op2, t = matmul_op(m, sg, ry, t, [h2, w * ch])
            op3, t = reshape_op(m, sg, t, [h2, w, ch]); op4, t = transpose_op(m, sg, t, [1, 0, 2], [w, h2, ch])
            op5, t = reshape_op(m, sg, t, [w, h2 * ch]); op6, t = matmul_op(m, sg, rx, t, [w2, h2 * ch])
            op7, t = reshape_op(m, sg, t, [w2, h2, ch]); op8, t = transpose_op(m, sg, t, [1, 0, 2], [h2, w2, ch])
            op9, _ = reshape_op(m, sg, t, [1, h2, w2, ch], out)
            new_ops.extend([op1, op2, op3, op4, op5, op6, op7, op8, op9]); stats['resize_bilinear'] = stats.get('resize_bilinear', 0) + 1; continue
        if c == B.DEPTH_TO_SPACE:
            x, out = op.inputs[0], op.outputs[0]; b = int(op.builtinOptions.blockSize)
            n, h, w, ch = (int(v) for v in sg.tensors[x].shape); c2 = ch // (b * b)
            if n != 1: sys.exit("DEPTH_TO_SPACE %d: batch %d not handled" % (out, n))
            op1, t = reshape_op(m, sg, x, [h, w, b, b, c2]); op2, t = transpose_op(m, sg, t, [0, 2, 1, 3, 4], [h, b, w, b, c2])
            op3, _ = reshape_op(m, sg, t, [1, h * b, w * b, c2], out)
            new_ops.extend([op1, op2, op3]); stats['depth_to_space'] = stats.get('depth_to_space', 0) + 1; continue
        if c == B.DEQUANTIZE:
            tin, tout = sg.tensors[op.inputs[0]], sg.tensors[op.outputs[0]]
            data = m.buffers[tin.buffer].data
            if tin.type == S.TensorType.FLOAT16 and data is not None and len(data):
                arr = np.frombuffer(bytes(data), dtype=np.float16)
                tout.buffer = add_buffer(m, arr); stats['fp16_dequant'] = stats.get('fp16_dequant', 0) + 1; continue
        if c == B.PRELU:
            x, alpha = op.inputs; out = op.outputs[0]; shp = list(sg.tensors[out].shape)
            zero = add_tensor(sg, "zero%d" % len(sg.tensors), [1], add_buffer(m, np.zeros(1)))
            t1 = add_tensor(sg, "prelu_pos%d" % out, shp); t2 = add_tensor(sg, "prelu_neg%d" % out, shp); t3 = add_tensor(sg, "prelu_scaled%d" % out, shp)
            for cc, ins, o in [(B.MAXIMUM, [x, zero], t1), (B.MINIMUM, [x, zero], t2), (B.MUL, [t2, alpha], t3), (B.ADD, [t1, t3], out)]:
                n = S.OperatorT(); n.opcodeIndex = opcode_index(m, cc); n.inputs = np.array(ins, dtype=np.int32); n.outputs = np.array([o], dtype=np.int32)
                if cc == B.MUL: n.builtinOptionsType = S.BuiltinOptions.MulOptions; n.builtinOptions = S.MulOptionsT()
                if cc == B.ADD: n.builtinOptionsType = S.BuiltinOptions.AddOptions; n.builtinOptions = S.AddOptionsT()
                new_ops.append(n)
            stats['prelu'] = stats.get('prelu', 0) + 1; continue
        if c == B.FULLY_CONNECTED and len(sg.tensors[op.inputs[0]].shape) != 2:
            x = op.inputs[0]; tx = sg.tensors[x]; feat = int(sg.tensors[op.inputs[1]].shape[1]); n_el = int(np.prod(tx.shape))
            if (op.builtinOptions is not None and op.builtinOptions.keepNumDims) or n_el % feat:
                sys.exit("FULLY_CONNECTED %d: input %s, keepNumDims or non-divisible shape not handled" % (len(new_ops), list(tx.shape)))
            new_shape = np.array([n_el // feat, feat], dtype=np.int32)
            shp_t = add_tensor(sg, "fc_in_shape%d" % x, [2], add_buffer_raw(m, new_shape), S.TensorType.INT32)
            flat = add_tensor(sg, "fc_in_flat%d" % x, list(new_shape), 0, tx.type); sg.tensors[flat].quantization = tx.quantization
            n = S.OperatorT(); n.opcodeIndex = opcode_index(m, B.RESHAPE); n.inputs = np.array([x, shp_t], dtype=np.int32); n.outputs = np.array([flat], dtype=np.int32)
            n.builtinOptionsType = S.BuiltinOptions.ReshapeOptions; n.builtinOptions = S.ReshapeOptionsT(); n.builtinOptions.newShape = new_shape.copy()
            new_ops.append(n); op.inputs = np.array([flat] + list(op.inputs[1:]), dtype=np.int32)
            stats['fc_reshape'] = stats.get('fc_reshape', 0) + 1
        if c == B.MEAN:
            x, axes_t = op.inputs[0], op.inputs[1]; out = op.outputs[0]
            axes = np.frombuffer(bytes(m.buffers[sg.tensors[axes_t].buffer].data), dtype=np.int32)
            in_shape = list(sg.tensors[x].shape); n = int(np.prod([in_shape[a] for a in axes]))
            summed = add_tensor(sg, "mean_sum%d" % out, list(sg.tensors[out].shape))
            recip = add_tensor(sg, "mean_recip%d" % out, [1], add_buffer(m, np.array([1.0 / n], dtype=np.float32)))
            op.opcodeIndex = opcode_index(m, B.SUM); op.outputs = np.array([summed], dtype=np.int32)
            mul = S.OperatorT(); mul.opcodeIndex = opcode_index(m, B.MUL)
            mul.inputs = np.array([summed, recip], dtype=np.int32); mul.outputs = np.array([out], dtype=np.int32)
            mul.builtinOptionsType = S.BuiltinOptions.MulOptions; mul.builtinOptions = S.MulOptionsT()
            new_ops.extend([op, mul]); stats['mean'] = stats.get('mean', 0) + 1; continue
        new_ops.append(op)
    sg.operators = new_ops
    # sparse constants that only fed a removed DENSIFY: dropped (data, sparsity), so that tools
    # reading every constant (tf2onnx) do not trip over them; the tensor entries stay, unused
    used = {int(i) for op in sg.operators for i in list(op.inputs) + list(op.outputs)} | {int(i) for i in list(sg.inputs) + list(sg.outputs)}
    for i, t in enumerate(sg.tensors):
        if t.sparsity is not None and i not in used and t.buffer:
            if sum(1 for u in sg.tensors if u.buffer == t.buffer) == 1: m.buffers[t.buffer].data = None
            t.buffer = 0; t.sparsity = None; stats['sparse_dropped'] = stats.get('sparse_dropped', 0) + 1
    # hybrid int8 weights -> fp32
    for t in sg.tensors:
        if t.type == S.TensorType.INT8 and t.buffer and m.buffers[t.buffer].data is not None and len(m.buffers[t.buffer].data) and t.quantization is not None and t.quantization.scale is not None:
            q = t.quantization; arr = np.frombuffer(bytes(m.buffers[t.buffer].data), dtype=np.int8).astype(np.float32).reshape(t.shape)
            scale = np.array(q.scale, dtype=np.float32); zp = np.array(q.zeroPoint if q.zeroPoint is not None else [0], dtype=np.float32)
            if scale.size > 1:
                shp = [1] * arr.ndim; shp[q.quantizedDimension] = -1; scale = scale.reshape(shp); zp = zp.reshape(shp)
            t.buffer = add_buffer(m, (arr - zp) * scale); t.type = S.TensorType.FLOAT32; t.quantization = None
            stats['int8_weights'] = stats.get('int8_weights', 0) + 1
fu.write_model(m, sys.argv[2]); print(sys.argv[1], '->', sys.argv[2], stats)
