#!/usr/bin/env node
// ort_run.js - runs a model with ONNX Runtime on one raw float32 tensor: the
// reference side of petcut's end-to-end tests and benchmarks.
//
//   node ort_run.js MODEL.onnx IN.f32 N,C,H,W OUT.f32 [OUTPUT_NAME]
//
// IN.f32 holds the model's first input as dense little-endian float32 in the
// given shape; the named output (default "output") is written to OUT.f32 the
// same way (through a temporary file, so a cache never holds half an output).
// Prints "ort_ms <ms>" (the run alone, not the load) on stdout.
//
// Session options: intraOpNumThreads from $PETCUT_ORT_THREADS (default 2),
// interOpNumThreads 1, graphOptimizationLevel 'all'. The onnxruntime-node
// package is taken from $PETCUT_ORT_DIR/node_modules when set (the folder
// scripts/test-setup.sh installs into), else from the usual module path.
//
// Exit status: 0 done, 2 bad usage or input, 3 ONNX Runtime not installed,
// 1 ONNX Runtime failed.
'use strict';

const fs = require('fs');
const path = require('path');

function die(code, msg) {
  process.stderr.write(`ort_run: ${msg}\n`);
  process.exit(code);
}

function loadOrt() {
  const dir = process.env.PETCUT_ORT_DIR;
  const where = dir ? path.join(path.resolve(dir), 'node_modules', 'onnxruntime-node') : 'onnxruntime-node';
  try {
    return require(where);
  } catch (e) {
    die(3, `cannot load onnxruntime-node from ${where}: ${e.message}`);
  }
}

async function main(argv) {
  if (argv.length < 4 || argv.length > 5)
    die(2, 'usage: node ort_run.js MODEL.onnx IN.f32 N,C,H,W OUT.f32 [OUTPUT_NAME]');
  const [modelPath, inPath, shapeArg, outPath] = argv;
  const outName = argv[4] || 'output';

  const dims = shapeArg.split(',').map(Number);
  if (!dims.length || dims.some((d) => !Number.isInteger(d) || d <= 0))
    die(2, `bad shape '${shapeArg}' (want positive integers separated by commas)`);
  const numel = dims.reduce((a, b) => a * b, 1);

  let buf;
  try {
    buf = fs.readFileSync(inPath);
  } catch (e) {
    die(2, `cannot read ${inPath}: ${e.message}`);
  }
  if (buf.length !== numel * 4)
    die(2, `${inPath} has ${buf.length} bytes, shape ${shapeArg} needs ${numel * 4}`);
  // A copy into an aligned Float32Array; the file is little-endian, as is x64.
  const data = new Float32Array(numel);
  Buffer.from(data.buffer).set(buf);

  const ort = loadOrt();
  const threads = parseInt(process.env.PETCUT_ORT_THREADS || '2', 10);
  let session;
  try {
    session = await ort.InferenceSession.create(modelPath, {
      intraOpNumThreads: threads > 0 ? threads : 2,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
    });
  } catch (e) {
    die(1, `cannot load ${modelPath}: ${e.message}`);
  }
  if (!session.outputNames.includes(outName))
    die(2, `model has no output '${outName}' (it has: ${session.outputNames.join(', ')})`);

  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', data, dims) };
  let result;
  const t0 = process.hrtime.bigint();
  try {
    result = await session.run(feeds, [outName]);
  } catch (e) {
    die(1, `run failed: ${e.message}`);
  }
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const out = result[outName];
  if (out.type !== 'float32')
    die(1, `output '${outName}' is ${out.type}, not float32`);

  const tmp = `${outPath}.tmp${process.pid}`;
  fs.writeFileSync(tmp, Buffer.from(out.data.buffer, out.data.byteOffset, out.data.byteLength));
  fs.renameSync(tmp, outPath);
  process.stdout.write(`ort_ms ${ms.toFixed(1)}\n`);
  process.stdout.write(`output ${outName} [${out.dims.join(',')}]\n`);
}

main(process.argv.slice(2)).catch((e) => die(1, e.stack || String(e)));
