#!/usr/bin/env node
// ort_bench.js - ONNX Runtime's side of petcut's benchmark.
//
//   node ort_bench.js MODEL.onnx N,C,H,W RUNS [IN.f32]
//
// Loads MODEL (timed: load_ms), runs it once to warm up, then RUNS times on
// the input (IN.f32, raw little-endian float32, or deterministic noise), and
// prints the same lines as `petcut infer --runs`: load_ms, first_ms, infer_ms
// (median), min_ms, max_ms, peak_rss_kb. Only the output 'output' is fetched.
// Threads: $PETCUT_ORT_THREADS (default 2), interOpNumThreads 1,
// graphOptimizationLevel 'all'. onnxruntime-node comes from
// $PETCUT_ORT_DIR/node_modules.
'use strict';

const fs = require('fs');
const path = require('path');

function die(msg) {
  process.stderr.write(`ort_bench: ${msg}\n`);
  process.exit(2);
}

async function main(argv) {
  if (argv.length < 3) die('usage: node ort_bench.js MODEL.onnx N,C,H,W RUNS [IN.f32]');
  const [model, shapeArg, runsArg, inPath] = argv;
  const dims = shapeArg.split(',').map(Number);
  const runs = parseInt(runsArg, 10);
  const numel = dims.reduce((a, b) => a * b, 1);
  const data = new Float32Array(numel);
  if (inPath) {
    const buf = fs.readFileSync(inPath);
    if (buf.length !== numel * 4) die(`${inPath}: size does not match ${shapeArg}`);
    Buffer.from(data.buffer).set(buf);
  } else {
    // the same noise as petcut infer without --input
    let x = 12345;
    for (let i = 0; i < numel; i++) {
      x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
      data[i] = (x >>> 8) / (1 << 24) - 0.5;
    }
  }
  const dir = process.env.PETCUT_ORT_DIR;
  const ort = require(dir ? path.join(path.resolve(dir), 'node_modules', 'onnxruntime-node') : 'onnxruntime-node');
  const threads = parseInt(process.env.PETCUT_ORT_THREADS || '2', 10);
  let t0 = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  });
  const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', data, dims) };
  const times = [];
  for (let r = 0; r <= runs; r++) {
    t0 = process.hrtime.bigint();
    await session.run(feeds, ['output']);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const first = times.shift();
  times.sort((a, b) => a - b);
  const med = runs % 2 ? times[(runs - 1) / 2] : (times[runs / 2 - 1] + times[runs / 2]) / 2;
  const out = [
    `load_ms ${loadMs.toFixed(1)}`,
    `first_ms ${first.toFixed(1)}`,
    `infer_ms ${med.toFixed(1)}`,
    `min_ms ${times[0].toFixed(1)}`,
    `max_ms ${times[times.length - 1].toFixed(1)}`,
    `peak_rss_kb ${process.resourceUsage().maxRSS}`,
  ];
  process.stdout.write(out.join('\n') + '\n');
}

main(process.argv.slice(2)).catch((e) => die(e.stack || String(e)));
