#!/usr/bin/env python3
"""Rebuild faceapi_expression_f32.tflite from the npm weights of @vladmandic/face-api 1.7.15.

Reads model/face_expression_model-weights_manifest.json + face_expression_model.bin from the npm
package (node_modules/ next to this script after `npm ci`), dequantises the uint8 weights exactly as
TF.js does (q * scale + min, float32), builds FaceExpressionNet in Keras following face-api's source
(src/faceFeatureExtractor/FaceFeatureExtractor.ts, denseBlock.ts, src/common/depthwiseSeparableConv.ts,
src/faceProcessor/FaceProcessor.ts, src/faceExpressionNet/FaceExpressionNet.ts) and converts it with
tf.lite.TFLiteConverter.from_keras_model, no optimisations (float32 throughout).

The model takes the NORMALISED input: (pixel - [122.782, 117.001, 104.298]) / 255, RGB, [1,112,112,3];
it ends in softmax (7 classes: neutral, happy, sad, angry, fearful, disgusted, surprised).

Usage (tensorflow-cpu 2.21 + keras 3, e.g. in a venv):
    python convert.py --out /tmp/faceapi_expression_f32.tflite
The result is numerically equivalent to the shipped file, not byte-identical (tensor names and the
order of the additions inside each dense block may differ); check it with
`python3 compare.py --tflite /tmp/faceapi_expression_f32.tflite`.
"""

import argparse
import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_MODEL_DIR = os.path.join(HERE, "node_modules", "@vladmandic", "face-api", "model")


def load_weights(model_dir):
    """Weight map name -> float32 array, decoded like tf.io.decodeWeights."""
    with open(os.path.join(model_dir, "face_expression_model-weights_manifest.json")) as f:
        manifest = json.load(f)
    out = {}
    for group in manifest:
        buf = b"".join(open(os.path.join(model_dir, p), "rb").read() for p in group["paths"])
        off = 0
        for w in group["weights"]:
            n = int(np.prod(w["shape"])) if w["shape"] else 1
            q = w.get("quantization")
            if q is None:
                assert w["dtype"] == "float32", w
                a = np.frombuffer(buf, dtype="<f4", count=n, offset=off)
                off += 4 * n
            else:
                assert q["dtype"] == "uint8" and w["dtype"] == "float32", w
                raw = np.frombuffer(buf, dtype=np.uint8, count=n, offset=off)
                off += n
                # TF.js: Float32Array.from(v => v * scale + min), computed in double, stored as f32.
                a = (raw.astype(np.float64) * q["scale"] + q["min"]).astype(np.float32)
            out[w["name"]] = a.reshape(w["shape"]).copy()
        assert off == len(buf), f"{len(buf) - off} bytes left over in {group['paths']}"
    return out


def build_model(w):
    import keras
    from keras import layers

    def sep(x, prefix, stride, name):
        # tf.separableConv2d(x, depthwise, pointwise, stride, 'same') + bias
        dw = w[f"{prefix}/depthwise_filter"]
        pw = w[f"{prefix}/pointwise_filter"]
        layer = layers.SeparableConv2D(pw.shape[-1], 3, strides=stride, padding="same", use_bias=True, name=name)
        y = layer(x)
        layer.set_weights([dw, pw, w[f"{prefix}/bias"]])
        return y

    def dense_block4(x, prefix, first):
        if first:
            conv = layers.Conv2D(w[f"{prefix}/conv0/filters"].shape[-1], 3, strides=2, padding="same",
                                 use_bias=True, name=f"{prefix}_conv0")
            y = conv(x)
            conv.set_weights([w[f"{prefix}/conv0/filters"], w[f"{prefix}/conv0/bias"]])
        else:
            y = sep(x, f"{prefix}/conv0", 2, f"{prefix}_conv0")
        out1 = layers.ReLU(name=f"{prefix}_relu1")(y)
        out2 = sep(out1, f"{prefix}/conv1", 1, f"{prefix}_conv1")
        in3 = layers.ReLU(name=f"{prefix}_relu3")(layers.Add(name=f"{prefix}_add3")([out1, out2]))
        out3 = sep(in3, f"{prefix}/conv2", 1, f"{prefix}_conv2")
        # face-api: relu(out1 + (out2 + out3))
        s23 = layers.Add(name=f"{prefix}_add23")([out2, out3])
        in4 = layers.ReLU(name=f"{prefix}_relu4")(layers.Add(name=f"{prefix}_add4")([out1, s23]))
        out4 = sep(in4, f"{prefix}/conv3", 1, f"{prefix}_conv3")
        # face-api: relu(out1 + (out2 + (out3 + out4)))
        s34 = layers.Add(name=f"{prefix}_add34")([out3, out4])
        s234 = layers.Add(name=f"{prefix}_add234")([out2, s34])
        return layers.ReLU(name=f"{prefix}_out")(layers.Add(name=f"{prefix}_add5")([out1, s234]))

    inp = keras.Input(shape=(112, 112, 3), batch_size=1, dtype="float32")
    x = dense_block4(inp, "dense0", True)
    x = dense_block4(x, "dense1", False)
    x = dense_block4(x, "dense2", False)
    x = dense_block4(x, "dense3", False)
    x = layers.AveragePooling2D(pool_size=7, strides=2, padding="valid", name="avgpool")(x)  # -> 1x1x256
    x = layers.Reshape((256,), name="flatten")(x)
    fc = layers.Dense(7, name="fc")
    x = fc(x)
    fc.set_weights([w["fc/weights"], w["fc/bias"]])
    out = layers.Softmax(name="softmax")(x)
    return keras.Model(inp, out, name="face_expression_net")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", default=DEFAULT_MODEL_DIR)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    import tensorflow as tf

    w = load_weights(args.model_dir)
    model = build_model(w)
    print(f"{len(w)} weight tensors from npm, {len(model.weights)} Keras variables")
    assert len(w) == len(model.weights), "not every npm weight was used"

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    tfl = conv.convert()
    with open(args.out, "wb") as f:
        f.write(tfl)
    print(f"wrote {args.out} ({len(tfl)} bytes)")

    # Self-check: Keras vs the .tflite on deterministic input.
    from ai_edge_litert.interpreter import Interpreter

    x = np.random.default_rng(0).uniform(-0.5, 0.5, size=(1, 112, 112, 3)).astype(np.float32)
    yk = model(x, training=False).numpy()
    it = Interpreter(model_path=args.out)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    yt = it.get_tensor(it.get_output_details()[0]["index"])
    print(f"max |keras - tflite| on random input: {np.abs(yk - yt).max():.3e}")


if __name__ == "__main__":
    main()
