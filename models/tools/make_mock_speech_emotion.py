#!/usr/bin/env python3
"""A MOCK speech-emotion package for the slot's tests only: models/tests/fixtures/mock_speech_emotion/.

    python3 -m pip install onnx==1.23.2 onnxruntime==1.32.0 numpy
    models/tools/make_mock_speech_emotion.py

It is not a model of anything: no training, no data. Input [1, 1, 40, 50] log-mel (40 bands,
50 frames, layout mels_frames); it averages each band over time and applies a fixed linear map
to 4 logits (labels neutral, happy, sad, angry; no softmax), so the test knows what it must
answer: logit i = mean log-mel of band group i (bands 0-9, 10-19, 20-29, 30-39). It exists
to test that a `speech_emotion` package with a `[features]` spec loads, passes its test vectors
(computed here with onnxruntime) and is run on speech segments; it is never shipped.
"""
import hashlib, os
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                   "models", "tests", "fixtures", "mock_speech_emotion")
os.makedirs(os.path.join(OUT, "vectors"), exist_ok=True)
W = np.zeros((40, 4), np.float32)
for i in range(4):
    W[i * 10:(i + 1) * 10, i] = 0.1
nodes = [
    helper.make_node("ReduceMean", ["x"], ["m"], axes=[3], keepdims=0),
    helper.make_node("Reshape", ["m", "shape"], ["r"]),
    helper.make_node("MatMul", ["r", "W"], ["logits"]),
]
g = helper.make_graph(
    nodes, "mock_speech_emotion",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 40, 50])],
    [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4])],
    [numpy_helper.from_array(W, "W"), numpy_helper.from_array(np.array([1, 40], np.int64), "shape")])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="emotiond-mock")
m.ir_version = 8
onnx.checker.check_model(m)
b = m.SerializeToString()
open(os.path.join(OUT, "mock_speech_emotion.onnx"), "wb").write(b)
import onnxruntime as ort
s = ort.InferenceSession(b, providers=["CPUExecutionProvider"])
rng = np.random.default_rng(11)
for i in range(2):
    x = (rng.standard_normal((1, 1, 40, 50)) * 3 - 8).astype(np.float32)
    y = s.run(None, {"x": x})[0]
    x.astype("<f4").tofile(os.path.join(OUT, "vectors", f"v{i}.in.f32"))
    y.astype("<f4").tofile(os.path.join(OUT, "vectors", f"v{i}.out0.f32"))
print(hashlib.sha256(b).hexdigest())
