// Runs the ORIGINAL face-api FaceExpressionNet (npm @vladmandic/face-api 1.7.15, TF.js weights
// model/face_expression_model-weights_manifest.json + face_expression_model.bin) on a fixed set
// of inputs with the pure-JS TF.js CPU backend, through face-api's own API, and writes for each
// case the exact 112x112 tensor face-api feeds the network, the normalised model input, the
// logits and the softmax probabilities as raw little-endian float32 files.
//
// Usage: node run_tfjs.js WORKDIR
//   WORKDIR must hold astronaut_512x512.rgb (raw uint8 RGB, written by compare.py).
// Normally run through `python3 compare.py`, which prepares WORKDIR and compares with the .tflite.

'use strict';

const fs = require('fs');
const path = require('path');
// face-api.node-wasm.js is the Node build that uses the npm `@tensorflow/tfjs` package (pure JS)
// instead of tfjs-node; it also registers the wasm backend, which we do not use: the CPU backend is
// selected below.
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');

const { tf } = faceapi;

const MEAN_RGB = [122.782, 117.001, 104.298]; // FaceFeatureExtractor.forwardInput
const LABELS = ['neutral', 'happy', 'sad', 'angry', 'fearful', 'disgusted', 'surprised']; // FACE_EXPRESSION_LABELS

function writeF32(file, typed) {
  const f = Float32Array.from(typed);
  fs.writeFileSync(file, Buffer.from(f.buffer, f.byteOffset, f.byteLength)); // x86/arm: little-endian
}

// Deterministic uint8 noise (32-bit LCG, Numerical Recipes constants).
function lcgBytes(n, seed) {
  const out = new Int32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i += 1) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}

async function main() {
  const work = process.argv[2];
  if (!work) throw new Error('usage: node run_tfjs.js WORKDIR');
  await tf.setBackend('cpu');
  await tf.ready();
  if (tf.getBackend() !== 'cpu') throw new Error(`backend is ${tf.getBackend()}, wanted cpu`);

  const modelDir = path.join(path.dirname(require.resolve('@vladmandic/face-api/package.json')), 'model');
  const net = faceapi.nets.faceExpressionNet;
  await net.loadFromDisk(modelDir);

  const rgb = fs.readFileSync(path.join(work, 'astronaut_512x512.rgb'));
  if (rgb.length !== 512 * 512 * 3) throw new Error('astronaut_512x512.rgb: wrong size');
  // An int32 image tensor, as tf.browser.fromPixels would give.
  const astro = tf.tensor3d(Int32Array.from(rgb), [512, 512, 3], 'int32');

  // Face crops are cut as face-api's extractFaceTensors does it: tf.slice3d of the box, as is.
  const crop = (x, y, w, h) => tf.slice3d(astro, [y, x, 0], [h, w, 3]);
  const S = 112;
  const idx = (n) => Array.from({ length: n }, (_, i) => i);
  const gradient = [];
  for (const y of idx(S)) {
    for (const x of idx(S)) {
      gradient.push(Math.round((x * 255) / (S - 1)), Math.round((y * 255) / (S - 1)), Math.round(((x + y) * 255) / (2 * (S - 1))));
    }
  }

  const cases = [
    { name: 'astronaut_face_tight', note: 'astronaut.png face box x168 y62 w120 h120, bilinear to 112 by face-api', t: crop(168, 62, 120, 120) },
    { name: 'astronaut_face_loose', note: 'astronaut.png box x150 y40 w160 h160, bilinear to 112 by face-api', t: crop(150, 40, 160, 160) },
    { name: 'astronaut_face_nonsquare', note: 'astronaut.png box x172 y55 w112 h130: face-api pads to square with black (centred), then bilinear to 112', t: crop(172, 55, 112, 130) },
    { name: 'astronaut_face_112', note: 'astronaut.png box x172 y66 w112 h112, no resize', t: crop(172, 66, 112, 112) },
    { name: 'astronaut_face_flipped', note: 'astronaut_face_tight mirrored left-right', t: tf.reverse(crop(168, 62, 120, 120), 1) },
    { name: 'grey128', note: 'uniform 128', t: tf.fill([S, S, 3], 128, 'int32') },
    { name: 'black', note: 'uniform 0', t: tf.zeros([S, S, 3], 'int32') },
    { name: 'gradient', note: 'R = x ramp, G = y ramp, B = diagonal ramp, 0..255', t: tf.tensor3d(gradient, [S, S, 3], 'int32') },
    { name: 'noise', note: 'uniform uint8 noise, LCG seed 12345', t: tf.tensor3d(lcgBytes(S * S * 3, 12345), [S, S, 3], 'int32') },
  ];

  const summary = [];
  for (const c of cases) {
    // The exact 112x112 pixel tensor face-api builds (padToSquare centred + resizeBilinear,
    // alignCorners=false, halfPixelCenters=false).
    const netInput = await faceapi.toNetInput(c.t);
    const pix = netInput.toBatchTensor(112, true); // [1,112,112,3] float32, 0..255
    // The network input, computed as FaceFeatureExtractor does: normalize(x, meanRgb).div(255).
    const norm = tf.div(tf.sub(pix, tf.tensor1d(MEAN_RGB, 'float32')), 255);
    // Outputs through face-api's public API on the original crop (its own preprocessing) ...
    const probs = await net.forward(c.t); // softmax(runNet)
    const logitsT = net.runNet(await faceapi.toNetInput(c.t));
    // ... and on the 112x112 pixel tensor (no padding/resize left to do): must be the same.
    const probsFromPix = await net.forward(tf.squeeze(pix, [0]));
    const expr = await net.predictExpressions(c.t);

    const p = probs.dataSync();
    const p2 = probsFromPix.dataSync();
    let selfDiff = 0;
    for (let i = 0; i < p.length; i += 1) selfDiff = Math.max(selfDiff, Math.abs(p[i] - p2[i]));
    writeF32(path.join(work, `${c.name}.pix.f32`), pix.dataSync());
    writeF32(path.join(work, `${c.name}.in.f32`), norm.dataSync());
    writeF32(path.join(work, `${c.name}.tfjs_logits.f32`), logitsT.dataSync());
    writeF32(path.join(work, `${c.name}.tfjs_probs.f32`), p);
    const top = expr.asSortedArray()[0];
    summary.push({ name: c.name, note: c.note, crop_shape: c.t.shape, probs: Array.from(p), top: top.expression, top_p: top.probability, self_diff: selfDiff });
    console.log(`${c.name.padEnd(26)} top=${top.expression.padEnd(9)} p=${top.probability.toFixed(6)} `
      + `probs=[${Array.from(p).map((v) => v.toFixed(5)).join(', ')}] crop-vs-112 diff=${selfDiff.toExponential(2)}`);
    tf.dispose([pix, norm, probs, logitsT, probsFromPix]);
  }
  const meta = {
    face_api: faceapi.version,
    tfjs: tf.version_core,
    backend: tf.getBackend(),
    labels: LABELS,
    mean_rgb: MEAN_RGB,
    cases: summary,
  };
  fs.writeFileSync(path.join(work, 'tfjs_cases.json'), `${JSON.stringify(meta, null, 2)}\n`);
  console.log(`face-api ${meta.face_api}, tfjs-core ${meta.tfjs}, backend ${meta.backend}: ${cases.length} cases written to ${work}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
