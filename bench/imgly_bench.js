#!/usr/bin/env node
// imgly_bench.js - the end-to-end peer's side of petcut's benchmark:
// @imgly/background-removal-node cutting out one photo.
//
//   node imgly_bench.js DIR IN OUT.png RUNS
//   node imgly_bench.js DIR IN OUT.png -
//
// DIR holds node_modules/@imgly/background-removal-node (bench/run.sh installs
// it from bench/package.json). Runs removeBackground(IN) once cold (its model
// is loaded and its session made on the first call, then kept), then RUNS
// times warm, writes the last result to OUT.png, and prints one "key value"
// line each: first_ms, median_ms, min_ms, max_ms (warm runs), out_bytes and
// peak_rss_kb (the whole process, from process.resourceUsage()).
//
// With "-" for RUNS the warm runs are driven from stdin, so that a caller can
// interleave them with other work: after the cold call it prints
// "first_ms N"; for each line read it runs once and prints "run_ms N"; at the
// end of stdin it writes OUT.png and prints the lines above (first_ms again).
'use strict';

const fs = require('fs');
const path = require('path');

function die(msg) {
  process.stderr.write(`imgly_bench: ${msg}\n`);
  process.exit(2);
}

async function main(argv) {
  if (argv.length < 4) die('usage: node imgly_bench.js DIR IN OUT.png RUNS|-');
  const dir = path.resolve(argv[0]);
  const [, input, output, runsArg] = argv;
  const driven = runsArg === '-';
  const runs = driven ? 0 : parseInt(runsArg, 10);
  const pkg = path.join(dir, 'node_modules', '@imgly', 'background-removal-node');
  const { removeBackground } = require(pkg);
  const config = { publicPath: `file://${pkg}/dist/`, model: 'medium' };
  const src = path.resolve(input);

  const once = async () => {
    const t0 = process.hrtime.bigint();
    const blob = await removeBackground(src, config);
    const buf = Buffer.from(await blob.arrayBuffer());
    return [Number(process.hrtime.bigint() - t0) / 1e6, buf];
  };
  const [first] = await once();
  const times = [];
  let last = null;
  const warm = async () => {
    const [ms, buf] = await once();
    times.push(ms);
    last = buf;
    process.stderr.write(`imgly_bench: run ${times.length}: ${ms.toFixed(0)} ms\n`);
    return ms;
  };
  if (driven) {
    console.log(`first_ms ${first.toFixed(0)}`);
    const lines = require('readline').createInterface({ input: process.stdin });
    for await (const line of lines) { // eslint-disable-line no-unused-vars
      console.log(`run_ms ${(await warm()).toFixed(0)}`);
    }
  }
  for (let i = 0; i < runs; i++) await warm();
  if (!last) [, last] = await once();
  fs.writeFileSync(output, last);
  times.sort((a, b) => a - b);
  const median = times.length % 2 ? times[(times.length - 1) / 2]
    : (times[times.length / 2 - 1] + times[times.length / 2]) / 2;
  console.log(`first_ms ${first.toFixed(0)}`);
  console.log(`median_ms ${(median || first).toFixed(0)}`);
  console.log(`min_ms ${(times[0] || first).toFixed(0)}`);
  console.log(`max_ms ${(times[times.length - 1] || first).toFixed(0)}`);
  console.log(`out_bytes ${last.length}`);
  console.log(`peak_rss_kb ${process.resourceUsage().maxRSS}`);
}

main(process.argv.slice(2)).catch((e) => die(e && e.stack ? e.stack : String(e)));
