"""Rewrite a .tflite so tract-tflite can load it:
 - DEQUANTIZE(const fp16) -> const fp32 tensor (op removed)
 - int8 per-channel-quantized constant weights feeding float ops (hybrid) -> fp32
 - PRELU(x, alpha) -> ADD(MAXIMUM(x,0), MUL(MINIMUM(x,0), alpha))
 - FULLY_CONNECTED whose input has rank != 2 (e.g. [1,1,1,C] after a global pool; TFLite flattens it
   to [-1, in_features], tract-tflite requires rank 2) -> RESHAPE(x, const int32 [batch, in_features],
   ReshapeOptions.newShape the same) feeding the FULLY_CONNECTED (keepNumDims=false only)
 - MEAN(x, const axes) -> MUL(SUM(x, axes), 1/N): tract-tflite 0.22 translates MEAN with a
   quantisation `scale` op that rounds float results to integers (fer mini-Xception's global
   average pool came out as whole-number logits, probabilities off by up to 0.05)"""
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
m = fu.read_model(sys.argv[1]); stats = {}
for sg in m.subgraphs:
    new_ops = []
    for op in sg.operators:
        c = code(m, op)
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
