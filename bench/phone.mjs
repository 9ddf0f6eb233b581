// phone.mjs - pick to preview on an emulated phone: a real headless Chromium
// (driven by playwright-core) with a phone's screen and Chrome DevTools'
// network profiles, against real `petcut serve` instances on loopback.
//
//   node bench/phone.mjs [BUILD]      (bench/run.sh runs it: part `phone`)
//
// For each network profile, each flow and each photo (12 MP JPEGs made once
// with vips in BUILD/bench/phone-photos/), it measures, inside the page, the
// time from the pick (the file input's change event) until the cut-out is
// loaded and painted, and, through a byte-counting TCP proxy between the
// browser and the server, the bytes sent each way meanwhile. Flows:
//  - petcut: the demo page (`/?auto=1`), as a person uses it;
//  - a: the seed's flow: the photo shrunk in the page and sent as base64 with
//    the removal request, the PNG as the answer;
//  - b: server-first as first built: upload, then preview by id, then the
//    full-size result fetched from its URL.
// Every (profile, flow) has its own server with a fresh --data folder, so no
// photo is ever seen twice by a server; each run has its own browser context.
//
// The report (markdown) goes to stdout, progress to stderr, every raw
// measurement to BUILD/bench/phone.json. Exits 1 when a (profile, flow) had no
// successful run or a server did not exit 0 on SIGTERM; 2 when it could not
// set up. Environment: PETCUT_BENCH_PHONE_PHOTOS (default 10),
// PETCUT_BENCH_PHONE_PROFILES (default "none,Fast 3G,Slow 3G"), PETCUT_CHROMIUM
// (default /usr/bin/chromium), PETCUT_BENCH_PHONE_TRACE (a folder: each run's
// Chrome trace from the pick on, as PROFILE-FLOW-PHOTO.json, for
// chrome://tracing or Perfetto).
import { createRequire } from 'node:module';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const BUILD = path.resolve(ROOT, process.argv[2] || 'build');
const PETCUT = path.join(BUILD, 'petcut');
const OUT = path.join(BUILD, 'bench');
const PHOTO_DIR = path.join(OUT, 'phone-photos');
const LOG_DIR = path.join(OUT, 'phone-logs');
const N_PHOTOS = Number(process.env.PETCUT_BENCH_PHONE_PHOTOS || 10);
const TIMEOUT_MS = 120000;
// for a closer look: only some flows, or only some of the photos (1-based)
const ONLY_FLOWS = (process.env.PETCUT_BENCH_PHONE_FLOWS || '').split(',').map((s) => s.trim()).filter(Boolean);
const ONLY_PHOTOS = (process.env.PETCUT_BENCH_PHONE_ONLY || '').split(',').map(Number).filter((n) => n >= 1);
const TRACE_DIR = process.env.PETCUT_BENCH_PHONE_TRACE || '';
const COMMAND = [
	N_PHOTOS === 10 ? '' : `PETCUT_BENCH_PHONE_PHOTOS=${N_PHOTOS} `,
	ONLY_FLOWS.length ? `PETCUT_BENCH_PHONE_FLOWS=${ONLY_FLOWS.join(',')} ` : '',
	ONLY_PHOTOS.length ? `PETCUT_BENCH_PHONE_ONLY=${ONLY_PHOTOS.join(',')} ` : '',
	process.env.PETCUT_BENCH_PHONE_PROFILES ? `PETCUT_BENCH_PHONE_PROFILES='${process.env.PETCUT_BENCH_PHONE_PROFILES}' ` : '',
	'PETCUT_BENCH_PARTS=phone make bench',
].join('');

// Chrome DevTools' own presets (bytes/s, ms); `none` is not throttled.
const ALL_PROFILES = [
	{ name: 'none' },
	{ name: 'Fast 3G', latency: 562.5, down: 180000, up: 84375 },
	{ name: 'Slow 3G', latency: 2000, down: 50000, up: 50000 },
];
const wanted = (process.env.PETCUT_BENCH_PHONE_PROFILES || '').split(',').map((s) => s.trim()).filter(Boolean);
const PROFILES = wanted.length ? ALL_PROFILES.filter((p) => wanted.includes(p.name)) : ALL_PROFILES;
if (PROFILES.length !== (wanted.length || ALL_PROFILES.length)) {
	process.stderr.write(`phone: PETCUT_BENCH_PHONE_PROFILES: known profiles are ${ALL_PROFILES.map((p) => p.name).join(', ')}\n`);
	process.exit(2);
}
const FLOWS = ['petcut', 'a', 'b'].filter((f) => !ONLY_FLOWS.length || ONLY_FLOWS.includes(f));
if (!FLOWS.length) {
	process.stderr.write('phone: PETCUT_BENCH_PHONE_FLOWS: the flows are petcut, a and b\n');
	process.exit(2);
}
const SOURCES = ['chelsea.png', 'coffee.png', 'astronaut.png', 'squirrel.jpg', 'baboon.jpg'];

const now = () => performance.timeOrigin + performance.now(); // ms since the epoch, as in the page
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const say = (msg) => process.stderr.write(`phone: ${msg}\n`);
const slug = (s) => s.toLowerCase().replace(/[^a-z0-9]+/g, '-');

// ===== Photos =====

// The i-th photo's recipe: which test photo, which window of it (a share of
// its width and height, and where it sits), mirrored or not, landscape or
// portrait. Ten photos give five sources x two windows, half of them portrait.
function recipe(i) {
	const k = Math.floor(i / SOURCES.length);
	return {
		source: SOURCES[i % SOURCES.length],
		zoom: [1, 0.8, 0.65, 0.9, 0.72][k % 5],
		shift: [0.5, 0.3, 0.7, 0.4, 0.6][k % 5],
		flip: k % 2 === 1,
		portrait: (i + k) % 2 === 1,
	};
}

function vips(...args) {
	return execFileSync('vips', args, { encoding: 'utf8' }).trim();
}

function header(file, field) {
	return Number(execFileSync('vipsheader', ['-f', field, file], { encoding: 'utf8' }));
}

// Makes the i-th photo as FILE: the recipe's window, scaled up to fill
// 4032x3024 (or 3024x4032), with a little sensor-like grain (Gaussian noise,
// sigma 4) so that it weighs what a phone's JPEG does, saved at Q 90.
function makePhoto(i, file) {
	const r = recipe(i);
	const src = path.join(BUILD, 'testdata', 'photos', r.source);
	if (!fs.existsSync(src)) throw new Error(`${src} is missing (scripts/test-setup.sh makes it)`);
	const sw = header(src, 'width'), sh = header(src, 'height');
	const w = Math.round(sw * r.zoom), h = Math.round(sh * r.zoom);
	const [W, H] = r.portrait ? [3024, 4032] : [4032, 3024];
	const tmp = fs.mkdtempSync(path.join(PHOTO_DIR, 'tmp-'));
	const t = (name) => path.join(tmp, name);
	try {
		vips('extract_area', src, t('a.v'), String(Math.round((sw - w) * r.shift)), String(Math.round((sh - h) * r.shift)), String(w), String(h));
		vips(r.flip ? 'flip' : 'copy', t('a.v'), t('b.v'), ...(r.flip ? ['horizontal'] : []));
		vips('thumbnail', t('b.v'), t('c.v'), String(W), '--height', String(H), '--crop', 'centre', '--size', 'both');
		vips('gaussnoise', t('n.v'), String(W), String(H), '--mean', '0', '--sigma', '4');
		vips('add', t('c.v'), t('n.v'), t('d.v'));
		vips('cast', t('d.v'), t('e.v'), 'uchar');
		vips('jpegsave', t('e.v'), t('out.jpg'), '--Q', '90');
		fs.renameSync(t('out.jpg'), file);
	} finally {
		fs.rmSync(tmp, { recursive: true, force: true });
	}
}

// The N photos (made once, then read from the cache): [{name, file, sha256,
// width, height, bytes}]. Throws if two are the same.
function photos(n) {
	fs.mkdirSync(PHOTO_DIR, { recursive: true });
	const list = [];
	for (let i = 0; i < n; i++) {
		const name = `photo-${String(i + 1).padStart(2, '0')}.jpg`;
		const file = path.join(PHOTO_DIR, name);
		if (!fs.existsSync(file)) {
			say(`making ${name} (${recipe(i).source})`);
			makePhoto(i, file);
		}
		const bytes = fs.readFileSync(file);
		list.push({ name, file, recipe: recipe(i), sha256: crypto.createHash('sha256').update(bytes).digest('hex'),
			width: header(file, 'width'), height: header(file, 'height'), bytes: bytes.length });
	}
	if (new Set(list.map((p) => p.sha256)).size !== list.length) throw new Error(`two photos in ${PHOTO_DIR} are the same; remove the folder`);
	return list;
}

// ===== Servers and proxies =====

const children = new Set();	// servers still running
const tempDirs = new Set();	// their --data folders

// Starts `petcut serve` on a free port of loopback with a fresh --data
// folder; resolves {proc, url, data, logFile, exited} once it prints its address.
function startServer(tag) {
	const data = fs.mkdtempSync(path.join(os.tmpdir(), 'petcut-phone-'));
	tempDirs.add(data);
	fs.mkdirSync(LOG_DIR, { recursive: true });
	const logFile = path.join(LOG_DIR, `${tag}.log`);
	const log = fs.openSync(logFile, 'w');
	const proc = spawn(PETCUT, ['serve', '--listen', '127.0.0.1:0', '--data', data], { stdio: ['ignore', 'pipe', log] });
	fs.closeSync(log);
	children.add(proc);
	const exited = new Promise((resolve) => proc.on('exit', (code, signal) => { children.delete(proc); resolve({ code, signal }); }));
	proc.on('error', () => {});
	return new Promise((resolve, reject) => {
		let out = '';
		const timer = setTimeout(() => {
			proc.kill('SIGKILL');
			reject(new Error(`petcut serve did not start within 30 s (${logFile})`));
		}, 30000);
		proc.stdout.on('data', (d) => {
			out += d;
			const m = /^listening on (\S+)/m.exec(out);
			if (m) { clearTimeout(timer); resolve({ proc, url: m[1], data, logFile, exited }); }
		});
		exited.then(({ code, signal }) => { clearTimeout(timer); reject(new Error(`petcut serve exited (${code ?? signal}) before listening (${logFile})`)); });
	});
}

// Stops a server with SIGTERM; resolves its exit code ('killed' when it was
// still running 40 s later, past its 20 s drain, and had to be killed).
async function stopServer(server) {
	server.proc.kill('SIGTERM');
	const done = await Promise.race([server.exited, sleep(40000).then(() => null)]);
	fs.rmSync(server.data, { recursive: true, force: true });
	tempDirs.delete(server.data);
	if (done) return done.code ?? done.signal;
	server.proc.kill('SIGKILL');
	await server.exited;
	return 'killed';
}

// Warms a server up with a photo the bench never measures (samples/chelsea.jpg)
// at both sizes, so that the first measured photo does not pay for loading
// the model and planning its shapes. Retries while it answers 503 (starting).
async function warmUp(url) {
	const image = fs.readFileSync(path.join(ROOT, 'samples', 'chelsea.jpg')).toString('base64');
	for (const size of ['preview', 'full']) {
		for (let tries = 0; ; tries++) {
			const r = await fetch(`${url}/v1/remove-background`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ image, size }) });
			const body = await r.text();
			if (r.ok) break;
			if (r.status !== 503 || tries >= 60) throw new Error(`warm-up (${size}): HTTP ${r.status} ${body.slice(0, 200)}`);
			await sleep(500);
		}
	}
}

// Copies FROM to TO, recording [time, bytes] of every chunk in LOG.
function pipeCounted(from, to, log) {
	from.on('data', (chunk) => {
		log.push([now(), chunk.length]);
		if (!to.write(chunk)) from.pause();
	});
	to.on('drain', () => from.resume());
	from.on('end', () => to.end());
}

// A TCP proxy on loopback in front of the server at URL: resolves {url, up,
// down, close}, where up (browser to server) and down (server to browser)
// list [ms since the epoch, bytes] for each chunk that passed.
function startProxy(url) {
	const target = new URL(url);
	const p = { up: [], down: [], sockets: new Set() };
	p.server = net.createServer({ allowHalfOpen: true }, (client) => {
		const upstream = net.connect({ host: target.hostname, port: Number(target.port), allowHalfOpen: true });
		pipeCounted(client, upstream, p.up);
		pipeCounted(upstream, client, p.down);
		for (const s of [client, upstream]) {
			p.sockets.add(s);
			s.on('error', () => { client.destroy(); upstream.destroy(); });
			s.on('close', () => { p.sockets.delete(s); client.destroy(); upstream.destroy(); });
		}
	});
	p.close = () => new Promise((resolve) => {
		for (const s of p.sockets) s.destroy();
		p.server.close(() => resolve());
	});
	return new Promise((resolve) => p.server.listen(0, '127.0.0.1', () => {
		p.url = `http://127.0.0.1:${p.server.address().port}`;
		resolve(p);
	}));
}

// The bytes in LOG that passed between times FROM and TO (ms since the epoch).
function bytesBetween(log, from, to) {
	return log.reduce((sum, [t, n]) => (t >= from && t <= to ? sum + n : sum), 0);
}

// A server (warmed up) behind its proxy for one (profile, flow); on failure
// {ok: false, error}, and the runs that would use it fail with that error.
async function startStack(profile, flow) {
	const stack = { profile: profile.name, flow, ok: false };
	try {
		stack.server = await startServer(`${slug(profile.name)}-${flow}`);
		await warmUp(stack.server.url);
		stack.proxy = await startProxy(stack.server.url);
		stack.ok = true;
	} catch (err) {
		stack.error = err.message;
		say(`${profile.name} ${flow}: ${err.message}`);
	}
	return stack;
}

// One unmeasured run before the measured ones, on a stack of its own, with a
// photo the bench never measures (samples/chelsea-orient6.jpg): the
// browser's one-time start-up (its network service, decoders, compiled
// code) belongs to a phone's already-open browser, not to a customer's
// pick. Each measured run still has a fresh context and page. Resolves the
// stack's stopStack record.
async function warmUpBrowser(browser, phone) {
	const none = ALL_PROFILES.find((p) => p.name === 'none');
	const stack = await startStack(none, 'petcut');
	const r = await measure(browser, phone, stack, none, 'petcut', { name: 'warm-up', file: path.join(ROOT, 'samples', 'chelsea-orient6.jpg') });
	say(`browser warm-up: ${r.ok ? 'ok' : `FAILED (${r.error})`}`);
	return stopStack(stack);
}

// Stops what startStack started; resolves {profile, flow, exit}.
async function stopStack(stack) {
	if (stack.proxy) await stack.proxy.close();
	if (stack.server) { // what the server counted, beside its log
		const metrics = await fetch(`${stack.server.url}/metrics`).then((r) => r.text()).catch((err) => `# ${err.message}\n`);
		fs.writeFileSync(stack.server.logFile.replace(/\.log$/, '.metrics'), metrics);
	}
	const exit = stack.server ? await stopServer(stack.server) : 'not started';
	return { profile: stack.profile, flow: stack.flow, exit, log: stack.server?.logFile };
}

// What the CPU's vector units mean for the server: the network's precision
// (bf16 where the CPU has AVX512_BF16, else fp32) and the widest extension.
function vectorUnits() {
	const flags = new Set((fs.readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:\s*(.*)$/m) || ['', ''])[1].split(/\s+/));
	const widest = flags.has('amx_bf16') ? 'AMX' : flags.has('avx512f') ? 'AVX-512' : flags.has('avx2') ? 'AVX2, no AVX-512' : 'no AVX2';
	return `${widest}: the network in ${flags.has('avx512_bf16') ? 'bf16' : 'fp32'}`;
}

// ===== In the page =====

// Runs in every page before its own scripts. Stamps (ms since the epoch) the
// pick, the first change event of a file input, and the moment each size of
// img#result is on screen: in the document, loaded (complete, naturalWidth >
// 0), then one frame later (requestAnimationFrame, then a task: painted).
// Counts requests to /v1/remove-background (the demo page, on `?auto=1`,
// starts its preview by itself at the pick: nothing is clicked).
function pageProbe() {
	const stamp = () => performance.timeOrigin + performance.now();
	const b = window.__bench = { pick: null, shown: {}, inViewport: {}, ready: null, removeCalls: 0, error: null };
	const isRemove = (u) => String(u).includes('/v1/remove-background');
	const fetch0 = window.fetch;
	window.fetch = function (input, init) {
		if (isRemove(input?.url ?? input)) b.removeCalls++;
		return fetch0.call(this, input, init);
	};
	const open0 = XMLHttpRequest.prototype.open;
	XMLHttpRequest.prototype.open = function (method, url, ...rest) {
		if (isRemove(url)) b.removeCalls++;
		return open0.call(this, method, url, ...rest);
	};
	document.addEventListener('change', (e) => { if (b.pick === null && e.target?.type === 'file') b.pick = stamp(); }, true);
	// the first removal request's resource timing (ms since the epoch): where
	// the time to the preview goes (the page, the server, the answer)
	b.firstRemove = null;
	new PerformanceObserver((list) => {
		for (const e of list.getEntries()) {
			if (b.firstRemove || !isRemove(e.name)) continue;
			const at = (t) => (t > 0 ? performance.timeOrigin + t : null);
			b.firstRemove = { start: at(e.startTime), requestStart: at(e.requestStart),
				responseStart: at(e.responseStart), responseEnd: at(e.responseEnd) };
		}
	}).observe({ type: 'resource', buffered: true });
	const seen = {};
	const waiting = new WeakSet();
	function look() {
		// the demo page's Download link, enabled: the full-resolution file is ready
		if (b.ready === null && document.getElementById('download')?.getAttribute('aria-disabled') === 'false') b.ready = stamp();
		for (const size of ['preview', 'full']) {
			const img = seen[size] ? null : document.querySelector(`img#result[data-size="${size}"]`);
			if (!img) continue;
			if (!(img.complete && img.naturalWidth > 0)) {
				if (!waiting.has(img)) { waiting.add(img); img.addEventListener('load', look, { once: true }); }
				continue;
			}
			seen[size] = true;
			const r = img.getBoundingClientRect();
			b.inViewport[size] = r.width > 0 && r.bottom > 0 && r.top < innerHeight;
			requestAnimationFrame(() => setTimeout(() => { b.shown[size] = stamp(); }, 0));
		}
	}
	new MutationObserver(look).observe(document, { childList: true, subtree: true, attributes: true });
}

// Runs in the demo page's origin for flows a and b: adds a hidden file input
// (#bench-file) whose change runs the flow and shows the result as
// img#result[data-size=preview] in the page's stage, where pageProbe sees it.
async function installFlow(flow) {
	const { prepareImage } = await import('/petcut-upload.js');
	const fail = async (what, r) => { throw new Error(`${what}: HTTP ${r.status} ${(await r.text()).slice(0, 200)}`); };
	const base64 = (blob) => new Promise((resolve, reject) => {
		const fr = new FileReader();
		fr.onload = () => resolve(String(fr.result).split(',')[1]);
		fr.onerror = () => reject(fr.error);
		fr.readAsDataURL(blob);
	});
	const show = (src) => new Promise((resolve, reject) => {
		const img = new Image();
		img.id = 'result';
		img.alt = 'The cut-out';
		img.dataset.size = 'preview';
		img.onload = () => { (document.getElementById('stage') || document.body).replaceChildren(img); resolve(); };
		img.onerror = () => reject(new Error('the result could not be shown'));
		img.src = src;
	});
	async function run(file) {
		const { blob } = await prepareImage(file);	// within 2000 px, JPEG 0.92, upright
		if (flow === 'a') {
			const r = await fetch('/v1/remove-background', {
				method: 'POST', headers: { 'Content-Type': 'application/json', Accept: 'image/png' },
				body: JSON.stringify({ image: await base64(blob), size: 'preview' }),
			});
			if (!r.ok) await fail('remove-background', r);
			return show(URL.createObjectURL(await r.blob()));
		}
		const up = await fetch('/v1/images', { method: 'POST', headers: { 'Content-Type': 'image/jpeg' }, body: blob });
		if (!up.ok) await fail('upload', up);
		const { id } = await up.json();
		const r = await fetch('/v1/remove-background', {
			method: 'POST', headers: { 'Content-Type': 'application/json' },
			body: JSON.stringify({ image_id: id, size: 'preview' }),
		});
		if (!r.ok) await fail('remove-background', r);
		return show((await r.json()).url);
	}
	const input = document.createElement('input');
	input.type = 'file';
	input.id = 'bench-file';
	input.hidden = true;
	input.addEventListener('change', () => run(input.files[0]).catch((e) => { window.__bench.error = e.message || String(e); }));
	document.body.append(input);
}

// ===== One run =====

// Applies PROFILE to PAGE's network through the DevTools protocol.
async function throttle(page, profile) {
	const cdp = await page.context().newCDPSession(page);
	await cdp.send('Network.enable');
	if (profile.latency !== undefined) {
		await cdp.send('Network.emulateNetworkConditions', {
			offline: false, latency: profile.latency, downloadThroughput: profile.down, uploadThroughput: profile.up,
		});
	}
}

// One photo through one flow on one profile, in a fresh browser context:
// resolves the run's record (ok, error, times in ms, bytes each way).
async function measure(browser, phone, stack, profile, flow, photo) {
	const run = { profile: profile.name, flow, photo: photo.name, ok: false, error: null, pickToPreviewMs: null,
		pickToFullMs: null, pickToFileMs: null, breakdownMs: null, upBytes: null, downBytes: null, upBytesToFull: null, downBytesToFull: null,
		previewShown: null, previewInViewport: null, removeCalls: null, pageErrors: [] };
	if (!stack.ok) { run.error = `no server: ${stack.error}`; return run; }
	const last = flow === 'petcut' ? 'full' : 'preview';
	let context, tracing = false;
	try {
		context = await browser.newContext(phone);
		await context.addInitScript(pageProbe);
		const page = await context.newPage();
		page.on('pageerror', (e) => run.pageErrors.push(e.message));
		page.on('console', (m) => { if (m.type() === 'error') run.pageErrors.push(m.text()); });
		await page.goto(`${stack.proxy.url}/${flow === 'petcut' ? '?auto=1' : ''}`, { waitUntil: 'load' });
		if (flow !== 'petcut') await page.evaluate(installFlow, flow);
		await throttle(page, profile);		// the page has loaded: from here on, a phone's network
		stack.proxy.up.length = 0;
		stack.proxy.down.length = 0;
		if (TRACE_DIR) {
			fs.mkdirSync(TRACE_DIR, { recursive: true });
			await browser.startTracing(page, { path: path.join(TRACE_DIR, `${profile.name.replace(/\W/g, '')}-${flow}-${photo.name}.json`),
				categories: ['toplevel', 'devtools.timeline', 'disabled-by-default-devtools.timeline', 'blink', 'v8', 'loading', 'netlog', 'cc', 'gpu', 'viz', 'media', 'benchmark'] });
			tracing = true;
		}
		await page.setInputFiles(flow === 'petcut' ? '#file' : '#bench-file', photo.file);
		let timedOut = false;
		// for petcut, until the full-resolution file is ready too: the run's
		// work is all done before the next run starts
		await page.waitForFunction((size) => {
			const b = window.__bench;
			const bad = document.querySelector('#message.bad');	// the demo page's error line
			if (bad && !b.error) b.error = bad.textContent;
			return (b.shown[size] && (size !== 'full' || b.ready)) || b.error;
		}, last, { timeout: TIMEOUT_MS, polling: 100 }).catch((err) => {
			if (!/timeout/i.test(err.message)) throw err;
			timedOut = true;
		});
		const b = await page.evaluate(() => window.__bench);
		if (b.pick === null) throw new Error('the pick was not seen (no change event)');
		const preview = b.shown.preview ?? b.shown.full;	// the first cut-out on screen
		if (preview) {
			run.pickToPreviewMs = preview - b.pick;
			run.upBytes = bytesBetween(stack.proxy.up, b.pick, preview);
			run.downBytes = bytesBetween(stack.proxy.down, b.pick, preview);
		}
		const fr = b.firstRemove;
		if (fr && preview && fr.start && fr.requestStart && fr.responseStart && fr.responseEnd) {
			// pick → the request sent (the page's decode and encode, and
			// for b the upload), sent → first byte of the answer (the
			// server, with the body's upload), answer → on screen
			run.breakdownMs = { page: fr.start - b.pick, server: fr.responseStart - fr.requestStart,
				answer: fr.responseEnd - fr.responseStart, show: preview - fr.responseEnd };
		}
		if (flow === 'petcut' && b.shown.full) {
			run.pickToFullMs = b.shown.full - b.pick;
			run.upBytesToFull = bytesBetween(stack.proxy.up, b.pick, b.shown.full);
			run.downBytesToFull = bytesBetween(stack.proxy.down, b.pick, b.shown.full);
			if (b.ready) run.pickToFileMs = b.ready - b.pick;
		}
		run.previewShown = !!b.shown.preview;
		run.previewInViewport = b.inViewport.preview ?? b.inViewport.full ?? null;
		run.removeCalls = b.removeCalls;
		run.ok = !!b.shown[last] && (flow !== 'petcut' || !!b.ready) && !b.error;
		run.error = b.error || (timedOut ? `${b.shown[last] ? 'the file not ready' : `${last} not on screen`} within ${TIMEOUT_MS / 1000} s` +
			`${b.removeCalls ? '' : ' (the page never asked for a removal: does it preview by itself on ?auto=1?)'}` : null);
	} catch (err) {
		run.error = err.message.split('\n')[0];
	} finally {
		if (tracing) await browser.stopTracing().catch(() => {});	// the trace ends with the run, failed or not
		await context?.close().catch(() => {});
	}
	return run;
}

// ===== The report =====

// The p-th percentile by nearest rank: the smallest value with at least p %
// of the values at or below it; null for no values.
function percentile(values, p) {
	if (!values.length) return null;
	const s = [...values].sort((x, y) => x - y);
	return s[Math.max(1, Math.ceil((p / 100) * s.length)) - 1];
}

const seconds = (ms) => (ms === null ? '–' : ms === Infinity ? 'fail' : (ms / 1000).toFixed(2));
const kb = (b) => (b === null ? '–' : (b / 1000).toFixed(0));

// The figures of one (profile, flow): times with failed runs counted as
// slowest (Infinity), bytes over the runs whose preview showed.
function summarise(runs) {
	const times = (key) => runs.map((r) => r[key] ?? Infinity);
	const bytes = (key) => runs.filter((r) => r[key] !== null).map((r) => r[key]);
	return {
		n: runs.length,
		failures: runs.filter((r) => !r.ok).length,
		successes: runs.filter((r) => r.ok).length,
		preview50: percentile(times('pickToPreviewMs'), 50),
		preview95: percentile(times('pickToPreviewMs'), 95),
		full50: percentile(times('pickToFullMs'), 50),
		full95: percentile(times('pickToFullMs'), 95),
		file50: percentile(times('pickToFileMs'), 50),
		file95: percentile(times('pickToFileMs'), 95),
		up50: percentile(bytes('upBytes'), 50),
		down50: percentile(bytes('downBytes'), 50),
		upMax: percentile(bytes('upBytes'), 100),
		downMax: percentile(bytes('downBytes'), 100),
		// P50 of each part of the wait for the first removal's answer
		parts: Object.fromEntries(['page', 'server', 'answer', 'show'].map((k) =>
			[k, percentile(runs.filter((r) => r.breakdownMs).map((r) => r.breakdownMs[k]), 50)])),
	};
}

// A text bar chart of P95 pick to preview, one bar per (profile, flow).
function chart(rows) {
	const finite = rows.map((r) => r.s.preview95).filter((v) => v !== null && v !== Infinity);
	const max = Math.max(1, ...finite);
	const lines = rows.map(({ profile, flow, s }) => {
		const v = s.preview95;
		const bar = v === null || v === Infinity ? '' : '█'.repeat(Math.max(1, Math.round((v / max) * 50)));
		return `${profile.padEnd(8)} ${flow.padEnd(7)} ${bar} ${v === Infinity ? 'fail' : `${seconds(v)} s`}`;
	});
	return ['```', 'P95 pick → preview on screen (seconds, nearest rank; "fail": a failed run at that rank)', ...lines, '```'];
}

function git(...args) {
	return spawnSync('git', args, { cwd: ROOT, encoding: 'utf8' });
}

// The report's markdown lines.
function report(meta, photoList, rows, servers) {
	const sizes = photoList.map((p) => p.bytes / 1e6);
	const lines = [
		`Measured ${meta.date} on ${meta.cpu} (${meta.vector}), ${meta.nproc} cores (browser and server on the same machine); commit ${meta.commit};`,
		`Chromium ${meta.chromium} headless (playwright-core ${meta.playwright}; the desktop address bar's WebUI pop-up pages switched off), viewport 390x844 at 3x, touch, Android Chrome user agent, no CPU throttling; one unmeasured warm-up run of the browser first (its own server, samples/chelsea-orient6.jpg), then a fresh context and page for each run;`,
		`${photoList.length} photos: 12 MP JPEGs, Q 90, ${Math.min(...sizes).toFixed(1)}-${Math.max(...sizes).toFixed(1)} MB (${photoList.filter((p) => p.height > p.width).length} portrait), each seen once by each server;`,
		`command: \`${meta.command}\`.`,
		'',
		'| network | flow | n | failures | pick → preview P50 s | P95 s | pick → full P50 s | P95 s | pick → file P50 s | P95 s | KB up P50 / max | KB down P50 / max |',
		'|---|---|---|---|---|---|---|---|---|---|---|---|',
	];
	for (const { profile, flow, s } of rows) {
		const full = flow === 'petcut' ? [seconds(s.full50), seconds(s.full95), seconds(s.file50), seconds(s.file95)] : ['', '', '', ''];
		lines.push(`| ${profile} | ${flow} | ${s.n} | ${s.failures} | ${seconds(s.preview50)} | ${seconds(s.preview95)} | ${full.join(' | ')} | ${kb(s.up50)} / ${kb(s.upMax)} | ${kb(s.down50)} / ${kb(s.downMax)} |`);
	}
	// the new flow against server-first as first built, profile by profile
	for (const profile of [...new Set(rows.map((r) => r.profile))]) {
		const mine = rows.find((r) => r.profile === profile && r.flow === 'petcut')?.s;
		const old = rows.find((r) => r.profile === profile && r.flow === 'b')?.s;
		if (mine?.preview95 > 0 && old?.preview95 === Infinity)
			lines.push('', `${profile}: flow b's P95 is a failure (a run at that rank did not show the preview within ${TIMEOUT_MS / 1000} s), so there is no ratio; P50 ${seconds(old.preview50)} against petcut's ${seconds(mine.preview50)} s.`);
		else if (mine?.preview95 > 0 && old?.preview95 > 0)
			lines.push('', `${profile}: petcut's P95 pick → preview is ${(mine.preview95 / old.preview95).toFixed(2)} × flow b's (${seconds(mine.preview95)} against ${seconds(old.preview95)} s).`);
	}
	lines.push('', ...chart(rows), '');
	// where the time to the preview goes (P50s of the first removal request)
	const ms = (v) => (v === null ? '–' : Math.round(v));
	lines.push('Where the wait for the preview goes, P50 ms of each part: from the pick to the first removal request (the page\'s',
		'work: for `petcut` the proxy, for `a` and `b` the 2000 px JPEG, and for `b` its upload), from sending that request to',
		'the first byte of its answer (its body\'s upload and the server), the rest of the answer, and from its end until',
		'the cut-out is on screen (for `b`, loading the result from its URL too).', '',
		'| network | flow | pick → request | request → first byte | answer | → on screen |', '|---|---|---|---|---|---|');
	for (const { profile, flow, s } of rows)
		lines.push(`| ${profile} | ${flow} | ${ms(s.parts.page)} | ${ms(s.parts.server)} | ${ms(s.parts.answer)} | ${ms(s.parts.show)} |`);
	lines.push('');
	lines.push('- Flows: `petcut` is the demo page (`/?auto=1`) as a person uses it; `a` shrinks the photo in the page',
		'  (`prepareImage`: within 2000 px, JPEG 0.92) and sends it as base64 in `POST /v1/remove-background`',
		'  (`size: preview`, `Accept: image/png`), the PNG being the answer; `b` shrinks it the same way, uploads it',
		'  (`POST /v1/images`), asks for the preview by id, then loads the result from its URL (a PNG at the photo\'s size).');
	lines.push('- Networks: Chrome DevTools\' presets through the DevTools protocol (`Network.emulateNetworkConditions`), applied',
		'  once the page has loaded: Fast 3G 562.5 ms latency, 180 000 B/s down, 84 375 B/s up; Slow 3G 2 000 ms, 50 000 B/s',
		'  both ways; `none` is loopback unthrottled. Chrome throttles each request, not the packets.');
	lines.push('- Times: from the pick (the file input\'s change event, stamped in the page) until the cut-out is in the page,',
		'  loaded and a frame later (`requestAnimationFrame`, then a task); pick → full is the same for the full quality',
		'  on screen; pick → file until the page\'s Download link is enabled (the full-resolution file is made and stored).',
		'  A `petcut` run ends only then, so that no run\'s work is left for the next. Percentiles by nearest rank, over',
		'  every run, a failed run counting as the slowest. A failure is a run that did not show its last image (the',
		'  preview; for `petcut` the full quality, and its file ready) within 120 s, or ended in an error.');
	lines.push('- Bytes: what passed a counting TCP proxy between the browser and the server from the pick until the preview',
		'  was on screen (headers included; KB = 1000 bytes), P50 over the runs whose preview showed.');
	lines.push(`- Servers: a fresh \`petcut serve\` (default options, its own --data folder) per network and flow, warmed up`,
		'  once (preview and full) on samples/chelsea.jpg, which is not measured; each run in a fresh browser context.');
	if (meta.previewSkipped) lines.push(`- \`petcut\` flow: in ${meta.previewSkipped} run(s) the preview was never shown (the full size replaced it before it had loaded); there pick → preview is the first cut-out on screen, the full size.`);
	const started = servers.filter((s) => s.exit !== 'not started');
	const bad = started.filter((s) => s.exit !== 0);
	const name = (s) => `${s.profile} ${s.flow}`;
	if (started.length < servers.length) lines.push(`- Servers that did not start: ${servers.filter((s) => !started.includes(s)).map(name).join(', ')}.`);
	if (bad.length) lines.push(`- Servers that did not exit 0 on SIGTERM: ${bad.map((s) => `${name(s)} (${s.exit})`).join(', ')}.`);
	else if (started.length) lines.push(`- All ${started.length} servers exited 0 on SIGTERM.`);
	const errors = [...new Set(meta.errors)];
	if (errors.length) lines.push(`- Failures seen: ${errors.slice(0, 6).map((e) => `"${e}"`).join('; ')}.`);
	lines.push(`- Raw measurements: ${path.relative(ROOT, path.join(OUT, 'phone.json'))}.`);
	return lines;
}

// ===== Main =====

function cleanUp() {
	for (const c of children) c.kill('SIGKILL');
	for (const d of tempDirs) fs.rmSync(d, { recursive: true, force: true });
}
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { cleanUp(); process.exit(130); });

async function main() {
	if (process.env.PETCUT_BENCH_PHONE_PHOTOS_ONLY === '1') { // the photos alone, for other parts
		photos(N_PHOTOS);
		return;
	}
	const require = createRequire(path.join(BUILD, 'web-tests', 'package.json'));
	const { chromium } = require('playwright-core');
	if (!fs.existsSync(PETCUT)) throw new Error(`${PETCUT} is missing (make builds it)`);
	const photoList = photos(N_PHOTOS).filter((p, i) => !ONLY_PHOTOS.length || ONLY_PHOTOS.includes(i + 1));
	const browser = await chromium.launch({
		executablePath: process.env.PETCUT_CHROMIUM || '/usr/bin/chromium',
		args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
			'--disable-component-update', '--disable-sync', '--disable-default-apps', '--disable-domain-reliability',
			'--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1',
			// desktop Chromium loads its address bar's pop-up (two WebUI
			// pages) in a renderer of its own for each new window: about
			// half a second of a core at each run's start, beside the
			// server's pass; a phone's browser has no such pages
			'--disable-features=WebUIOmniboxPopup,WebUIOmniboxAimPopup'],
	});
	const chromiumVersion = browser.version();
	const phone = {
		viewport: { width: 390, height: 844 }, deviceScaleFactor: 3, isMobile: true, hasTouch: true,
		userAgent: `Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/${chromiumVersion.split('.')[0]}.0.0.0 Mobile Safari/537.36`,
	};
	const runs = [];
	const servers = [];
	try {
		servers.push(await warmUpBrowser(browser, phone));
		for (const profile of PROFILES) {
			const stacks = {};
			try {
				for (const flow of FLOWS) stacks[flow] = await startStack(profile, flow);
				for (const photo of photoList) {
					for (const flow of FLOWS) {
						const r = await measure(browser, phone, stacks[flow], profile, flow, photo);
						runs.push(r);
						say(`${profile.name} ${flow} ${photo.name}: ${r.ok ? 'ok' : 'FAILED'}, preview ${seconds(r.pickToPreviewMs)} s` +
							`${flow === 'petcut' ? `, full ${seconds(r.pickToFullMs)} s, file ${seconds(r.pickToFileMs)} s` : ''}, up ${kb(r.upBytes)} KB, down ${kb(r.downBytes)} KB` +
							`${r.error ? ` (${r.error})` : ''}`);
					}
				}
			} finally {
				for (const flow of FLOWS) if (stacks[flow]) servers.push(await stopStack(stacks[flow]));
			}
		}
	} finally {
		await browser.close().catch(() => {});
		cleanUp();
	}

	const rows = [];
	for (const profile of PROFILES) {
		for (const flow of FLOWS) rows.push({ profile: profile.name, flow, s: summarise(runs.filter((r) => r.profile === profile.name && r.flow === flow)) });
	}
	const head = git('rev-parse', '--short', 'HEAD').stdout.trim() || 'unknown';
	const dirty = git('status', '--porcelain', '--untracked-files=no').stdout.trim() !== '';
	const meta = {
		date: new Date().toISOString().slice(0, 10),
		commit: `${head}${dirty ? '+dirty' : ''}`,
		chromium: chromiumVersion,
		playwright: require('playwright-core/package.json').version,
		nproc: os.availableParallelism(),
		cpu: (fs.readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.*)$/m) || [])[1] || os.cpus()[0]?.model || 'unknown CPU',
		vector: vectorUnits(),
		command: COMMAND,
		profiles: PROFILES,
		timeoutMs: TIMEOUT_MS,
		previewSkipped: runs.filter((r) => r.flow === 'petcut' && r.pickToPreviewMs !== null && !r.previewShown).length,
		errors: runs.filter((r) => r.error).map((r) => r.error.slice(0, 160)),
	};
	fs.writeFileSync(path.join(OUT, 'phone.json'), `${JSON.stringify({ meta, photos: photoList, servers, runs }, null, 1)}\n`);
	console.log(report(meta, photoList, rows, servers).join('\n'));

	const dead = rows.filter((r) => r.s.successes === 0);
	for (const r of dead) say(`${r.profile} ${r.flow}: every run failed`);
	for (const s of servers) if (s.exit !== 0 && s.exit !== 'not started') say(`${s.profile} ${s.flow}: petcut serve exited ${s.exit} on SIGTERM (${s.log})`);
	return dead.length || servers.some((s) => s.exit !== 0 && s.exit !== 'not started') ? 1 : 0;
}

main().then((code) => { process.exitCode = code; }, (err) => {
	say(`could not run: ${err.stack || err.message}`);
	cleanUp();
	process.exitCode = 2;
});
