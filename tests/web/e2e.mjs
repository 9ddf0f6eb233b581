// e2e.mjs - petcut's browser side in a real headless Chromium (driven by
// playwright-core) against a real `petcut serve` on loopback.
//
//   node tests/web/e2e.mjs SERVER_URL BUILD
//
// The page is loaded through a small proxy of this script's own (also on
// loopback) that forwards to the server and can fail requests (503), hold
// them (to see uploads overlap) or cut a connection mid-body, and that logs
// what passed. Prints "ok - ..." / "not ok - ..." per check and
// "# skip ..." with a reason; exits 1 when a check failed.
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

const [SERVER, BUILD] = process.argv.slice(2);
const require = createRequire(path.resolve(BUILD, 'web-tests', 'package.json'));
const { chromium } = require('playwright-core');

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
const SHOTS = path.resolve(BUILD, 'web-screens');
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'petcut-e2e-'));
fs.mkdirSync(SHOTS, { recursive: true });

// ===== Checks =====

let failed = 0;
let passed = 0;
function check(what, cond, detail = '') {
	if (cond) passed++; else failed++;
	console.log(`${cond ? 'ok' : 'not ok'} - ${what}${detail ? ` (${detail})` : ''}`);
	return cond;
}

async function step(name, fn) {
	let timer;
	try {
		await Promise.race([fn(), new Promise((_, reject) => { timer = setTimeout(() => reject(new Error('timed out after 120 s')), 120000); })]);
	} catch (err) {
		check(`${name}: ran to the end`, false, err.stack || String(err));
	} finally {
		clearTimeout(timer);
	}
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest('hex');

// ===== Fixtures =====

const phone = path.join(BUILD, 'testdata', 'phone');
const photos = path.join(BUILD, 'testdata', 'photos');
const fixtures = {
	'o6.jpg': path.join(phone, 'o6.jpg'),			// 4032x3024 stored, EXIF orientation 6
	'upright.jpg': path.join(phone, 'upright.jpg'),		// the same photo, 3024x4032 as seen
	'upright.heic': path.join(phone, 'upright.heic'),
	'chelsea.png': path.join(photos, 'chelsea.png'),
	'coffee.png': path.join(photos, 'coffee.png'),
	'astronaut.png': path.join(photos, 'astronaut.png'),
	'chelsea.jpg': path.join(ROOT, 'samples', 'chelsea.jpg'),
};
// ~5 MB: a JPEG with random bytes after it (still an image to the server)
fixtures['big.jpg'] = path.join(TMP, 'big.jpg');
fs.writeFileSync(fixtures['big.jpg'], Buffer.concat([fs.readFileSync(fixtures['upright.jpg']), crypto.randomBytes(3600000)]));
fixtures['note.txt'] = path.join(TMP, 'note.txt');
fs.writeFileSync(fixtures['note.txt'], 'a shopping list, not a photo\n');
const have = (name) => fs.existsSync(fixtures[name]);

// ===== The proxy =====

const target = new URL(SERVER);
const proxy = {
	log: [],		// {method, path, t, end, bytes, status, headers, body (of JSON, the first 10 kB)}
	fail: [],		// {method, path, status, left}: answer instead of forwarding
	holdMs: 0,		// wait this long before forwarding an upload
	holdRemoveMs: 0,	// wait this long before forwarding the next POST /v1/remove-background
	inflight: 0,
	maxInflight: 0,
	drop: null,		// {atBytes, onDrop, dropped, sent}: cut a PATCH stream
};

const server = http.createServer(async (req, res) => {
	const u = new URL(req.url, 'http://proxy');
	if (u.pathname.startsWith('/__fixtures/')) {
		const f = fixtures[decodeURIComponent(u.pathname.slice(12))];
		if (!f || !fs.existsSync(f)) { res.writeHead(404); return res.end(); }
		res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
		return res.end(fs.readFileSync(f));
	}
	const entry = { method: req.method, path: u.pathname, query: u.search, t: Date.now(), bytes: 0, headers: req.headers };
	proxy.log.push(entry);
	const rule = proxy.fail.find((f) => f.method === req.method && f.path === u.pathname && f.left > 0);
	if (rule) {
		rule.left--;
		req.resume();
		req.on('end', () => {
			entry.status = rule.status;
			entry.end = Date.now();
			res.writeHead(rule.status, { 'Content-Type': 'application/json' });
			res.end(JSON.stringify({ error: { code: 'injected', message: `injected ${rule.status}` } }));
		});
		return;
	}
	if (proxy.holdRemoveMs && req.method === 'POST' && u.pathname === '/v1/remove-background') {
		const ms = proxy.holdRemoveMs;
		proxy.holdRemoveMs = 0;
		req.pause();
		await sleep(ms);
	}
	const upload = req.method === 'PATCH' || (req.method === 'POST' && (u.pathname === '/v1/images' || u.pathname === '/v1/uploads'));
	if (upload) {
		proxy.inflight++;
		proxy.maxInflight = Math.max(proxy.maxInflight, proxy.inflight);
		res.on('close', () => proxy.inflight--);
		if (proxy.holdMs) { req.pause(); await sleep(proxy.holdMs); }
	}
	const up = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (ur) => {
		entry.status = ur.statusCode;
		res.writeHead(ur.statusCode, ur.headers);
		ur.pipe(res);
		ur.on('end', () => { entry.end = Date.now(); });
	});
	up.on('error', () => res.destroy());
	req.on('data', async (chunk) => {
		const d = proxy.drop;
		if (d && !d.dropped && req.method === 'PATCH' && d.sent + chunk.length >= d.atBytes) {
			d.dropped = true;
			d.at = proxy.log.length;
			req.pause();
			await d.onDrop();
			entry.cut = true;
			req.socket.destroy();
			up.destroy();
			return;
		}
		if (d && req.method === 'PATCH') d.sent += chunk.length;
		if (/json/.test(req.headers['content-type'] || '') && entry.bytes < 10000) entry.body = (entry.body || '') + chunk.toString();
		entry.bytes += chunk.length;
		up.write(chunk);
	});
	req.on('end', () => up.end());
	req.on('close', () => { if (!req.complete) up.destroy(); }); // the browser gave up: so does the proxy
	req.resume();
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const P = `http://127.0.0.1:${server.address().port}`;

// A shop's page on another origin (another port): the README's embedding
// example, pointed at petcut through the proxy.
const shop = http.createServer((req, res) => {
	const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
	const example = readme.split('```html\n')[1].split('```')[0].replaceAll('https://cut.example.com', P);
	res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
	res.end(`<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,">${example}`);
});
await new Promise((r) => shop.listen(0, '127.0.0.1', r));
const SHOP = `http://127.0.0.1:${shop.address().port}`;

// ===== The browser =====

// Flags that keep Chromium off the network: no background services, no
// component updates, no QUIC, and every host name except loopback unresolvable.
const browser = await chromium.launch({
	executablePath: process.env.PETCUT_CHROMIUM || '/usr/bin/chromium',
	args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
		'--disable-component-update', '--disable-sync', '--disable-default-apps', '--disable-domain-reliability',
		'--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1'],
});
const pageErrors = [];
async function newPage(options = {}) {
	const context = await browser.newContext(options);
	const page = await context.newPage();
	page.on('pageerror', (e) => pageErrors.push(e.message));
	page.on('console', (m) => { if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) pageErrors.push(m.text()); });
	await page.goto(`${P}/`);
	return { context, page };
}

// In the page: a File made from a fixture, and the module.
const pageHelpers = `
	window.fixture = async (name, type) => {
		const b = await (await fetch('/__fixtures/' + name)).blob();
		return new File([b], name, { type, lastModified: 1700000000000 });
	};
`;

async function serverBytes(id) {
	const r = await fetch(`${SERVER}/v1/images/${id}`);
	return r.ok ? Buffer.from(await r.arrayBuffer()) : null;
}

function vips(...args) {
	return execFileSync('vips', args, { encoding: 'utf8' }).trim();
}

// mean absolute difference of two images, both squeezed to 64x64 grey
function imageDistance(a, b, rotate) {
	const sa = path.join(TMP, `a${Math.random()}.v`), sb = path.join(TMP, `b${Math.random()}.v`);
	const ga = path.join(TMP, `ga${Math.random()}.v`), gb = path.join(TMP, `gb${Math.random()}.v`);
	vips('thumbnail', a, sa, '64', '--height', '64', '--size', 'force');
	vips('thumbnail', b, sb, '64', '--height', '64', '--size', 'force');
	vips('colourspace', sa, ga, 'b-w');
	vips('colourspace', sb, gb, 'b-w');
	let g = gb;
	if (rotate) { g = path.join(TMP, `r${Math.random()}.v`); vips('rot', gb, g, rotate); }
	const d = path.join(TMP, `d${Math.random()}.v`), e = path.join(TMP, `e${Math.random()}.v`);
	vips('subtract', ga, g, d);
	vips('abs', d, e);
	return Number(vips('avg', e));
}

// How far apart two cut-outs of about the same size are, on 0-255: the
// mean |difference| of their alpha, and of their colours premultiplied by
// it (b is scaled to a's size first).
function cutoutDistance(a, b) {
	const t = (name) => path.join(TMP, `${name}${Math.random()}.v`);
	const size = (f) => ['width', 'height'].map((k) => Number(execFileSync('vipsheader', ['-f', k, f], { encoding: 'utf8' })));
	const [w, h] = size(a), [bw, bh] = size(b);
	const bs = t('bs');
	vips('resize', b, bs, String(w / bw), '--vscale', String(h / bh));
	const mean = (x, y) => { const d = t('d'), e = t('e'); vips('subtract', x, y, d); vips('abs', d, e); return Number(vips('avg', e)); };
	const band = (img, first, n) => { const o = t('band'); vips('extract_band', img, o, String(first), '--n', String(n)); return o; };
	const pre = (img) => { const o = t('pre'); vips('premultiply', img, o); return o; };
	return { alpha: mean(band(a, 3, 1), band(bs, 3, 1)), colour: mean(band(pre(a), 0, 3), band(pre(bs), 0, 3)) };
}

function monotonic(xs) {
	return xs.every((x, i) => i === 0 || x >= xs[i - 1]);
}

// ===== 1. The demo page, a phone photo =====

await step('demo page', async () => {
	const { page, context } = await newPage({ viewport: { width: 1280, height: 860 } });
	check('the demo page loads with the module', await page.evaluate(() => typeof window.petcut?.uploader === 'object'));
	if (!have('o6.jpg')) { console.log('# skip the 4032x3024 photo: build/testdata/phone/o6.jpg is missing (scripts/test-setup.sh makes it)'); return; }
	await page.setInputFiles('#file', fixtures['o6.jpg']);
	await page.waitForFunction(() => ['done', 'error'].includes(petcut.uploader.slots[0]?.status), null, { timeout: 60000 });
	const s = await page.evaluate(() => { const s = petcut.uploader.slots[0]; return { status: s.status, id: s.imageId, sent: s.sent, text: s.statusText }; });
	check('a 4032x3024 JPEG with EXIF orientation 6 uploads', s.status === 'done', s.text);
	const bytes = await serverBytes(s.id);
	const stored = path.join(TMP, 'stored-o6.jpg');
	fs.writeFileSync(stored, bytes || '');
	const w = Number(execFileSync('vipsheader', ['-f', 'width', stored], { encoding: 'utf8' }));
	const h = Number(execFileSync('vipsheader', ['-f', 'height', stored], { encoding: 'utf8' }));
	check('the stored object is a JPEG', bytes && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff);
	check(`the stored object fits in 2000 px and is upright (portrait ${w}x${h})`, Math.max(w, h) <= 2000 && Math.max(w, h) >= 1990 && h > w);
	let orient = '';
	try { orient = execFileSync('exiftool', ['-s3', '-n', '-Orientation', stored], { encoding: 'utf8' }).trim(); } catch { /* none */ }
	check(`... with no orientation tag left to apply (${orient || 'none'})`, orient === '' || orient === '1');
	const right = imageDistance(stored, fixtures['upright.jpg']);
	const turned = imageDistance(stored, fixtures['upright.jpg'], 'd180');
	check('... and its pixels are the upright photo, not turned the other way', right < 8 && right * 3 < turned,
		`mean difference ${right.toFixed(2)} upright, ${turned.toFixed(2)} turned 180°`);
	check(`... sent shrunk: ${s.sent.size} bytes instead of ${fs.statSync(fixtures['o6.jpg']).size}`, s.sent.shrunk && s.sent.type === 'image/jpeg');
	const fr = await page.evaluate(() => petcut.events.filter((e) => e.type === 'progress').map((e) => e.fraction));
	check(`progress rises monotonically to 100 % (${fr.length} events)`, fr.length >= 1 && monotonic(fr) && fr[fr.length - 1] === 1);
	const card = await page.evaluate(() => ({ text: document.querySelector('.slot .status').textContent, img: document.querySelector('.slot img')?.naturalWidth || 0, bar: document.querySelector('.slot progress').value }));
	check('the card shows the photo, a full bar and "Uploaded"', card.img > 0 && card.bar === 1 && card.text === 'Uploaded', JSON.stringify(card));
	await context.close();
});

// ===== 2. The module: small files as they are, retries, refusals =====

await step('module', async () => {
	const { page, context } = await newPage();
	await page.evaluate(pageHelpers);
	if (!have('chelsea.png')) { console.log('# skip the small PNG: build/testdata/photos/chelsea.png is missing'); return; }
	const small = fs.readFileSync(fixtures['chelsea.png']);
	const r = await page.evaluate(async () => {
		const { PetcutUploader } = await import('/petcut-upload.js');
		const up = new PetcutUploader();
		const s = up.add(await fixture('chelsea.png', 'image/png'));
		await up.uploaded(s);
		return { id: s.imageId, shrunk: s.sent.shrunk, type: s.sent.type, tries: s.tries };
	});
	const back = await serverBytes(r.id);
	check('a small PNG is uploaded byte-identical (id = its SHA-256, same bytes back)',
		r.id === sha256(small) && back && Buffer.compare(back, small) === 0 && !r.shrunk && r.type === 'image/png');

	// 503 twice, then the real server
	const before = proxy.log.length;
	proxy.fail.push({ method: 'POST', path: '/v1/images', status: 503, left: 2 });
	const t = await page.evaluate(async () => {
		const { PetcutUploader } = await import('/petcut-upload.js');
		const up = new PetcutUploader();
		const delays = [];
		up.addEventListener('retry', (e) => delays.push(e.detail.delayMs));
		const s = up.add(await fixture('coffee.png', 'image/png'));
		try { await up.uploaded(s); } catch (e) { return { error: e.message, delays }; }
		return { id: s.imageId, tries: s.tries, delays };
	});
	const posts = proxy.log.slice(before).filter((e) => e.method === 'POST' && e.path === '/v1/images');
	const gaps = posts.slice(1).map((p, i) => p.t - (posts[i].end || posts[i].t));
	check('with 503 twice, the upload succeeds on the third try', !t.error && t.tries === 3 && posts.length === 3 &&
		posts.map((p) => p.status).join() === '503,503,201', `${posts.map((p) => p.status)}; tries ${t.tries}`);
	check('... after growing delays, waited for real', t.delays.length === 2 && t.delays[1] > t.delays[0] &&
		gaps.length === 2 && gaps[0] >= t.delays[0] - 20 && gaps[1] >= t.delays[1] - 20 && gaps[1] > gaps[0],
		`delays ${t.delays.map(Math.round).join(', ')} ms; seen by the proxy ${gaps.join(', ')} ms`);

	// 4xx: not retried
	const before2 = proxy.log.length;
	const e = await page.evaluate(async () => {
		const { PetcutUploader, describe } = await import('/petcut-upload.js');
		const up = new PetcutUploader();
		let retries = 0;
		up.addEventListener('retry', () => retries++);
		const s = up.add(await fixture('note.txt', 'text/plain'));
		try { await up.uploaded(s); return { ok: true }; } catch (err) { await new Promise((r) => setTimeout(r, 1500)); return { status: err.status, retries, tries: s.tries, text: describe(err), slot: s.status }; }
	});
	const posts2 = proxy.log.slice(before2).filter((x) => x.method === 'POST' && x.path === '/v1/images');
	check('a 4xx (415) is not retried: one request, no retry, an error in words', !e.ok && e.status === 415 && e.retries === 0 &&
		posts2.length === 1 && e.slot === 'error' && /not a photo/.test(e.text), JSON.stringify(e));
	await context.close();
});

// ===== 3. Three at once, through the demo page =====

await step('parallel', async () => {
	if (!['chelsea.png', 'coffee.png', 'astronaut.png'].every(have)) { console.log('# skip parallel uploads: photos missing'); return; }
	const { page, context } = await newPage();
	proxy.holdMs = 600;
	proxy.maxInflight = 0;
	await page.setInputFiles('#file', [fixtures['chelsea.png'], fixtures['coffee.png'], fixtures['astronaut.png']]);
	await page.waitForFunction(() => petcut.uploader.slots.length === 3 && petcut.uploader.slots.every((s) => ['done', 'error'].includes(s.status)), null, { timeout: 60000 });
	proxy.holdMs = 0;
	const st = await page.evaluate(() => [...document.querySelectorAll('.slot .status')].map((x) => x.textContent));
	check(`three files upload in parallel (${proxy.maxInflight} at once), all three done`, proxy.maxInflight === 3 && st.length === 3 && st.every((x) => x === 'Uploaded'), st.join('; '));
	await context.close();
});

// ===== 4. Cut off at 60 %, offline, back online: resumed =====

await step('resume', async () => {
	const { page, context } = await newPage();
	await page.evaluate(pageHelpers);
	const file = fs.readFileSync(fixtures['big.jpg']);
	const size = file.length;
	const drop = { atBytes: Math.floor(size * 0.6), sent: 0, dropped: false, onDrop: () => context.setOffline(true) };
	proxy.drop = drop;
	const before = proxy.log.length;
	await page.evaluate(async () => {
		const { PetcutUploader } = await import('/petcut-upload.js');
		window.up = new PetcutUploader({ preprocess: false });
		window.statuses = [];
		window.fractions = [];
		up.addEventListener('slot', (e) => statuses.push(e.detail.slot.statusText));
		up.addEventListener('progress', (e) => fractions.push(e.detail.fraction));
		window.slot = up.add(await fixture('big.jpg', 'image/jpeg'));
		window.result = up.uploaded(slot).then(() => 'done', (e) => 'failed: ' + e.message);
	});
	try {
		await page.waitForFunction(() => slot.status === 'offline', null, { timeout: 30000 });
	} catch (err) {
		const seen = await page.evaluate(() => ({ statuses, online: navigator.onLine }));
		const log = proxy.log.slice(before).map((e) => `${e.method} ${e.path} ${e.status ?? '-'} ${e.bytes}${e.cut ? ' cut' : ''}`);
		throw new Error(`${err.message}; dropped ${drop.dropped}; statuses ${seen.statuses.join(' > ')}; online ${seen.online}; requests ${log.join(', ')}`);
	}
	check('with the connection cut at 60 % and the browser offline, the slot says "Waiting for network"',
		drop.dropped && (await page.evaluate(() => slot.statusText)) === 'Waiting for network…');
	await sleep(500);
	await context.setOffline(false);
	const outcome = await page.evaluate(() => result);
	const r = await page.evaluate(() => ({ id: slot.imageId, fractions }));
	const after = proxy.log.slice(before + 0).filter((e, i) => before + i >= drop.at);
	// (Chromium itself may resend a request whose connection was reset before
	// it went offline; the server refuses that one with 423 while it still
	// holds the cut-off PATCH, and the module then asks where it is)
	const patches = after.filter((e) => e.method === 'PATCH');
	const resumed = patches.find((e) => e.status === 204);
	const resumeAt = Number(resumed?.headers['upload-offset'] ?? -1);
	const sentAfter = patches.filter((e) => e.status === 204).reduce((n, e) => n + e.bytes, 0);
	console.log(`# after the cut: ${after.map((e) => `${e.method} ${e.status} ${e.bytes}`).join(', ')}`);
	check('back online, it resumes from the server\'s offset (HEAD, then PATCH from there)',
		outcome === 'done' && after.some((e) => e.method === 'HEAD') && resumeAt >= size * 0.6 - (1 << 20) && resumeAt <= size * 0.6,
		`${outcome}; resumed at ${resumeAt} of ${size}`);
	check(`... sending only the rest: ${sentAfter} bytes = ${size} - ${resumeAt}`, sentAfter === size - resumeAt &&
		patches.every((e) => e.status === 204 || e.status === 423));
	const back = await serverBytes(r.id);
	check('the stored object has the right SHA-256', r.id === sha256(file) && back && sha256(back) === sha256(file));
	check('progress never went back', monotonic(r.fractions) && r.fractions[r.fractions.length - 1] === 1, `${r.fractions.length} events`);
	proxy.drop = null;
	await context.close();
});

// ===== 4b. Errors in words; cancelling =====

await step('errors and cancel', async () => {
	const { page, context } = await newPage();
	await page.setInputFiles('#file', fixtures['note.txt']);
	await page.waitForFunction(() => petcut.uploader.slots[0]?.status === 'error', null, { timeout: 30000 });
	const shown = await page.evaluate(() => ({ card: document.querySelector('.slot .status').textContent,
		message: document.getElementById('message').textContent, spinner: !!document.querySelector('.spinner'),
		preview: document.getElementById('preview').disabled }));
	check('a file that is not a photo: the card and the page say so in words, no spinner, Preview stays off',
		shown.card === 'This file is not a photo we can read.' && /note\.txt: This file is not a photo/.test(shown.message) &&
		!shown.spinner && shown.preview, JSON.stringify(shown));

	// a resumable upload cancelled mid-way is dropped on the server too
	await page.evaluate(pageHelpers);
	proxy.holdMs = 1500;
	const before = proxy.log.length;
	await page.evaluate(async () => {
		const { PetcutUploader } = await import('/petcut-upload.js');
		window.up2 = new PetcutUploader({ preprocess: false });
		window.s2 = up2.add(await fixture('big.jpg', 'image/jpeg'));
		window.r2 = up2.uploaded(s2).then(() => 'done', (e) => e.name);
	});
	await page.waitForFunction(() => !!s2.uploadUrl, null, { timeout: 20000 });
	const uploadUrl = await page.evaluate(() => { up2.cancel(s2); return s2.uploadUrl; });
	const outcome = await page.evaluate(() => r2);
	proxy.holdMs = 0;
	let gone = 0;
	for (let i = 0; i < 50; i++) {
		gone = (await fetch(new URL(new URL(uploadUrl).pathname, SERVER), { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0' } })).status;
		if (gone === 404) break;
		await sleep(100);
	}
	const deletes = proxy.log.slice(before).filter((e) => e.method === 'DELETE').length;
	check('cancel stops an upload: the slot says Cancelled, the module sends DELETE and the server drops it',
		outcome === 'AbortError' && (await page.evaluate(() => s2.statusText)) === 'Cancelled' && deletes === 1 && gone === 404,
		`${outcome}, ${deletes} DELETE, HEAD ${gone}`);
	await context.close();
});

// ===== 5. HEIC: a placeholder, then the server's thumbnail =====

await step('heic', async () => {
	if (!have('upright.heic')) { console.log('# skip HEIC: build/testdata/phone/upright.heic is missing'); return; }
	const { page, context } = await newPage();
	await page.setInputFiles('#file', fixtures['upright.heic']);
	const first = await page.evaluate(() => document.querySelector('.slot .thumb').textContent);
	await page.waitForFunction(() => petcut.uploader.slots[0]?.status === 'done', null, { timeout: 60000 });
	await page.waitForFunction(() => document.querySelector('.slot img')?.complete && document.querySelector('.slot img').naturalWidth > 0, null, { timeout: 20000 });
	const s = await page.evaluate(() => ({ id: petcut.uploader.slots[0].imageId, src: document.querySelector('.slot img').src }));
	check('a HEIC shows a placeholder, then the server\'s JPEG thumbnail', first === 'No preview yet' && /\/v1\/images\/[0-9a-f]{64}\?max=512&format=jpeg$/.test(s.src), s.src);
	check('... and is sent unchanged (resumable: over 1 MB)', s.id === sha256(fs.readFileSync(fixtures['upright.heic'])));
	await context.close();
});

// ===== 6. Preview, and the screenshots =====

const ready = (await fetch(`${SERVER}/readyz`)).status === 200;
async function previewFlow(page) {
	await page.setInputFiles('#file', [fixtures['chelsea.jpg']]);
	await page.waitForFunction(() => petcut.uploader.slots.find((s) => s.file.name === 'chelsea.jpg')?.status === 'done', null, { timeout: 60000 });
	const id = await page.evaluate(() => petcut.uploader.slots.find((s) => s.file.name === 'chelsea.jpg').id);
	await page.click(`.slot[data-slot="${id}"]`);
	await page.click('#preview');
	await page.waitForSelector('#result[data-size="full"]', { timeout: 90000 });
	await page.waitForFunction(() => !document.querySelector('.spinner'), null, { timeout: 10000 });
}
await step('preview', async () => {
	if (!ready) { console.log('# skip Preview: the server has no model (readyz is not 200; petcut model fetch)'); return; }
	const { page, context } = await newPage({ viewport: { width: 1280, height: 860 } });
	if (have('chelsea.png')) await page.setInputFiles('#file', [fixtures['chelsea.png']]);
	await previewFlow(page);
	const order = await page.evaluate(() => petcut.events.filter((e) => e.type === 'result').map((e) => e.size));
	check('Preview shows the preview size first, then the full size', order.join() === 'preview,full', order.join());
	const px = await page.evaluate(async () => {
		const img = document.getElementById('result');
		const c = document.createElement('canvas');
		c.width = img.naturalWidth;
		c.height = img.naturalHeight;
		const ctx = c.getContext('2d');
		ctx.drawImage(img, 0, 0);
		const a = (x, y) => ctx.getImageData(x, y, 1, 1).data[3];
		const full = await (await fetch(petcut.uploader.url('/v1/remove-background'), { method: 'POST', headers: { 'Content-Type': 'application/json' },
			body: JSON.stringify({ image_id: petcut.uploader.slots.find((s) => s.file.name === 'chelsea.jpg').imageId, size: 'full' }) })).json();
		const k = c.width / full.width; // the screen's copy may be smaller
		const [bx, by, bw, bh] = full.bbox;
		return { w: c.width, h: c.height, corners: [a(0, 0), a(c.width - 1, 0), a(0, c.height - 1), a(c.width - 1, c.height - 1)],
			centre: a(Math.floor((bx + bw / 2) * k), Math.floor((by + bh / 2) * k)), bbox: full.bbox, url: full.url };
	});
	check('the result is transparent in a corner and opaque at the subject\'s centre',
		Math.min(...px.corners) <= 5 && px.centre >= 250, `corners ${px.corners}, centre ${px.centre} (bbox ${px.bbox}), ${px.w}x${px.h}`);
	const dl = await page.evaluate(() => ({ href: document.getElementById('download').href, off: document.getElementById('download').getAttribute('aria-disabled') }));
	check('the download link points at the full-resolution result', dl.off === 'false' && new URL(dl.href).pathname === px.url, JSON.stringify(dl));
	await page.screenshot({ path: path.join(SHOTS, 'desktop.png') });
	check('desktop screenshot saved', fs.statSync(path.join(SHOTS, 'desktop.png')).size > 10000);

	// another background and an effect: the mask is reused
	await page.selectOption('#bg', 'color');
	await page.fill('#color', '#ffcc00');
	await page.selectOption('#effect', 'sticker');
	await page.click('#preview');
	await page.waitForFunction(() => /Done/.test(document.getElementById('message').textContent), null, { timeout: 90000 });
	const y = await page.evaluate(() => {
		const img = document.getElementById('result');
		const c = document.createElement('canvas');
		c.width = img.naturalWidth; c.height = img.naturalHeight;
		const ctx = c.getContext('2d');
		ctx.drawImage(img, 0, 0);
		const d = ctx.getImageData(0, 0, c.width, c.height).data;
		let colour = 0, opaque = 0;
		for (let i = 0; i < d.length; i += 4) {
			if (d[i + 3] === 255) opaque++;
			if (Math.abs(d[i] - 255) < 16 && Math.abs(d[i + 1] - 204) < 16 && d[i + 2] < 40) colour++;
		}
		const n = d.length / 4;
		return { colour: colour / n, opaque: opaque / n, size: img.dataset.size };
	});
	check('a colour background with the sticker effect: opaque, and the colour where the background was',
		y.size === 'full' && y.opaque === 1 && y.colour > 0.05, `${(100 * y.colour).toFixed(1)} % #ffcc00, ${(100 * y.opaque).toFixed(1)} % opaque`);
	await page.screenshot({ path: path.join(SHOTS, 'desktop-sticker.png') });

	// a print with a hard shadow: the canvas's shape, and the shadow's grey
	// on the white beside the pet, which the same print without it lacks
	const greys = () => page.evaluate(() => {
		const img = document.getElementById('result');
		const c = document.createElement('canvas');
		c.width = img.naturalWidth; c.height = img.naturalHeight;
		const ctx = c.getContext('2d');
		ctx.drawImage(img, 0, 0);
		const d = ctx.getImageData(0, 0, c.width, c.height).data;
		let grey = 0;
		for (let i = 0; i < d.length; i += 4) {
			const v = (d[i] + d[i + 1] + d[i + 2]) / 3;
			if (v > 110 && v < 235 && Math.abs(d[i] - v) < 5 && Math.abs(d[i + 1] - v) < 5 && Math.abs(d[i + 2] - v) < 5) grey++;
		}
		return { grey: grey / (d.length / 4), w: c.width, h: c.height, size: img.dataset.size };
	});
	await page.selectOption('#bg', 'white');
	await page.selectOption('#print', '8x10in');
	const printed = {};
	for (const effect of ['', 'shadow:hard']) {
		await page.selectOption('#effect', effect);
		await page.click('#preview');
		await page.waitForFunction(() => /Done/.test(document.getElementById('message').textContent), null, { timeout: 90000 });
		printed[effect || 'none'] = await greys();
	}
	const hs = printed['shadow:hard'], ns = printed.none;
	check('a print with the hard shadow chosen: 8 x 10 in, and grey shade on the white that the plain print lacks',
		hs.size === 'full' && Math.abs(hs.w / hs.h - 0.8) < 0.01 && hs.grey > ns.grey + 0.01, JSON.stringify(printed));
	await page.selectOption('#print', '');

	// Fine edges: every removal asks for refine=matting, in the query of an
	// image body or in the JSON of a stored image's
	const fineFrom = proxy.log.length;
	await page.selectOption('#refine', 'matting');
	await page.click('#preview');
	await page.waitForFunction(() => /Done/.test(document.getElementById('message').textContent), null, { timeout: 90000 });
	const fine = proxy.log.slice(fineFrom).filter((e) => e.method === 'POST' && e.path === '/v1/remove-background');
	const shownFine = await page.evaluate(() => document.getElementById('result')?.dataset.size);
	check('Fine edges: each removal asks for refine=matting, and the full size is shown',
		fine.length > 0 && fine.every((e) => /[?&]refine=matting(&|$)/.test(e.query) || /"refine":"matting"/.test(e.body || '')) &&
		shownFine === 'full', fine.map((e) => `${e.query || ''} ${e.body || ''}`).join('; '));
	await page.selectOption('#refine', '');

	// the preview's answer is slow: the full size still ends up on the stage
	await page.selectOption('#effect', 'popart');
	proxy.holdRemoveMs = 1500;
	await page.click('#preview');
	await page.waitForFunction(() => /Done/.test(document.getElementById('message').textContent), null, { timeout: 90000 });
	await sleep(2000);
	const late = await page.evaluate(() => ({ size: document.getElementById('result')?.dataset.size, spinner: !!document.querySelector('.spinner'),
		message: document.getElementById('message').textContent }));
	check('when the preview\'s answer is slow, the full size ends up on the stage and no spinner is left',
		late.size === 'full' && !late.spinner && /^Done/.test(late.message), JSON.stringify(late));
	await context.close();

	// a phone
	const m = await newPage({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true,
		userAgent: 'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Mobile Safari/537.36' });
	if (have('coffee.png')) await m.page.setInputFiles('#file', [fixtures['coffee.png']]);
	await previewFlow(m.page);
	const fit = await m.page.evaluate(() => ({ sw: document.documentElement.scrollWidth, w: innerWidth }));
	check(`on a phone-sized viewport nothing overflows sideways (${fit.sw} <= ${fit.w})`, fit.sw <= fit.w);
	await m.page.screenshot({ path: path.join(SHOTS, 'phone.png'), fullPage: true });
	check('phone screenshot saved', fs.statSync(path.join(SHOTS, 'phone.png')).size > 10000);
	await m.context.close();
});

// ===== 6b. The preview does not wait for the upload =====

// A mild phone link, emulated by Chromium (DevTools' throttling): 100 ms
// latency, 1.5 MB/s down, 300 KB/s up, so the 2000 px upload takes seconds.
await step('instant preview', async () => {
	if (!ready) { console.log('# skip the instant preview: the server has no model'); return; }
	if (!have('o6.jpg')) { console.log('# skip the instant preview: build/testdata/phone/o6.jpg is missing'); return; }
	const { page, context } = await newPage({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
	await page.goto(`${P}/?auto=1`);
	const cdp = await context.newCDPSession(page);
	await cdp.send('Network.enable');
	await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 100, downloadThroughput: 1500000, uploadThroughput: 300000 });
	const start = proxy.log.length;
	await page.setInputFiles('#file', fixtures['o6.jpg']);
	await page.waitForSelector('#result[data-size="preview"]', { timeout: 60000 });
	const atPreview = await page.evaluate(() => ({ status: petcut.uploader.slots[0].status,
		at: performance.timeOrigin + petcut.events.find((e) => e.type === 'result').t }));
	await page.waitForSelector('#result[data-size="full"]', { timeout: 90000 });
	await page.waitForFunction(() => /Done/.test(document.getElementById('message').textContent), null, { timeout: 30000 });
	const r = await page.evaluate(() => {
		const slot = petcut.uploader.slots[0];
		const done = petcut.events.find((e) => e.type === 'done');
		const shown = petcut.events.filter((e) => e.type === 'result').map((e) => ({ size: e.size, t: e.t, result: e.result }));
		const img = document.getElementById('result');
		return { id: slot.imageId, proxyId: slot.proxyId, waits: slot.waits, doneT: done?.t, shown, w: img.naturalWidth, h: img.naturalHeight,
			href: document.getElementById('download').href, sent: slot.sent.size,
			downloadT: petcut.events.find((e) => e.type === 'download')?.t };
	});
	const log = proxy.log.slice(start);
	const sentBefore = log.filter((e) => e.t <= atPreview.at).reduce((n, e) => n + e.bytes, 0);
	const proxyPost = log.find((e) => e.path === '/v1/remove-background' && /^image\//.test(e.headers['content-type'] || ''));
	// the photo goes up as an upload, or (below the resumable size) as the
	// body of the full-size removal, whose answer is the full result
	const fullPosts = log.filter((e) => e.method === 'POST' && e.path === '/v1/remove-background' &&
		/^image\//.test(e.headers['content-type'] || '') && /^\?(.*&)?size=full/.test(e.query));
	const upload = log.find((e) => e.method === 'POST' && (e.path === '/v1/images' || e.path === '/v1/uploads' || fullPosts.includes(e)));
	check('the preview is on screen before the full upload has finished',
		atPreview.status !== 'done' && r.shown[0]?.size === 'preview' && r.doneT > r.shown[0].t && upload && proxyPost && proxyPost.end <= upload.t,
		`slot ${atPreview.status} at the preview; preview at ${Math.round(r.shown[0]?.t)} ms, upload done at ${Math.round(r.doneT)} ms`);
	check(`... from a small proxy (${proxyPost?.bytes} bytes, ${sentBefore} bytes sent in all before it showed)`,
		proxyPost && proxyPost.bytes <= 60000 && sentBefore <= 62000 && /^\?(.*&)?size=preview/.test(proxyPost.query) && r.proxyId && r.proxyId !== r.id);
	// its format is the one that reaches the server first: JPEG on a fast
	// network (NetInfo's 4g), else WebP
	const net = await page.evaluate(() => navigator.connection?.effectiveType);
	const proxyType = proxyPost?.headers['content-type'];
	check(`... as ${proxyType} on a network NetInfo calls ${net}`, proxyType === (net === '4g' ? 'image/jpeg' : 'image/webp'));
	// the proxy (decoded at a reduced scale where the browser can) is the
	// upright photo at the network's preview size
	const proxyFile = path.join(TMP, 'proxy-o6');
	fs.writeFileSync(proxyFile, (await serverBytes(r.proxyId)) || '');
	const pw = Number(execFileSync('vipsheader', ['-f', 'width', proxyFile], { encoding: 'utf8' }));
	const ph = Number(execFileSync('vipsheader', ['-f', 'height', proxyFile], { encoding: 'utf8' }));
	const right = imageDistance(proxyFile, fixtures['upright.jpg']);
	const turned = imageDistance(proxyFile, fixtures['upright.jpg'], 'd180');
	check(`the proxy is the upright photo, ${pw}x${ph}: its shorter side 512 px`,
		pw === 512 && ph === 683 && right < 8 && right * 3 < turned, `mean difference ${right.toFixed(2)} upright, ${turned.toFixed(2)} turned 180°`);
	check(`the page measured its waits (preview ${Math.round(r.waits.preview)} ms, full ${Math.round(r.waits.full)} ms)`,
		r.waits.preview > 0 && r.waits.full > r.waits.preview);
	// the download is the full-resolution file, byte for byte what the API gives
	const api = await fetch(`${SERVER}/v1/remove-background`, { method: 'POST', headers: { 'Content-Type': 'application/json', Accept: 'image/png' },
		body: JSON.stringify({ image_id: r.id, size: 'full', format: 'png' }) });
	const apiBytes = Buffer.from(await api.arrayBuffer());
	const dlBytes = Buffer.from(await (await fetch(new URL(new URL(r.href).pathname, SERVER))).arrayBuffer());
	const dlFile = path.join(TMP, 'download.png');
	fs.writeFileSync(dlFile, dlBytes);
	const dw = Number(execFileSync('vipsheader', ['-f', 'width', dlFile], { encoding: 'utf8' }));
	check(`the downloaded full-resolution file (${dw} px wide, ${dlBytes.length} bytes) equals the API's answer byte for byte`,
		api.status === 200 && dlBytes.length > 0 && sha256(dlBytes) === sha256(apiBytes) && dw >= 1400);
	check(`the screen shows a copy sized for its box (${r.w}x${r.h}), not the ${dw} px file`, r.w > 0 && Math.max(r.w, r.h) <= 390 * 2 * 1.5 && r.w < dw);
	// the full quality on screen came from a copy of the photo sized for the
	// screen, before the photo itself was up, and looks as the view of the
	// full-resolution file at that size does
	const full = r.shown.find((e) => e.size === 'full');
	const screenPost = fullPosts[0];
	check(`the full quality was on screen at ${Math.round(full?.t)} ms from a copy sized for the screen (${screenPost?.bytes} bytes against the photo's ${r.sent}), before the photo was up (${Math.round(r.doneT)} ms) and its file ready (${Math.round(r.downloadT)} ms)`,
		full && screenPost && screenPost.bytes * 2 < r.sent && full.t < r.doneT && full.t < r.downloadT && full.result);
	const viewOf = async (id, file) => {
		const res = await fetch(`${SERVER}/v1/results/${id}?max=${Math.max(r.w, r.h)}&format=png`);
		fs.writeFileSync(file, Buffer.from(await res.arrayBuffer()));
		return res.status;
	};
	const printId = new URL(r.href).pathname.split('/').pop();
	const onScreen = path.join(TMP, 'view-screen.png'), ofPrint = path.join(TMP, 'view-print.png');
	const statuses = [await viewOf(full?.result, onScreen), await viewOf(printId, ofPrint)];
	const near = statuses.every((st) => st === 200) ? cutoutDistance(onScreen, ofPrint) : null;
	check(`... which looks as the full-resolution file does at that size: mean |difference| ${near?.alpha.toFixed(2)} in alpha, ${near?.colour.toFixed(2)} in colour (0-255)`,
		near && printId !== full?.result && near.alpha < 2 && near.colour < 3, JSON.stringify(statuses));
	await context.close();
});

// ===== 7. The README's example =====

await step('readme example', async () => {
	if (!ready) { console.log('# skip the README example: the server has no model'); return; }
	const context = await browser.newContext();
	const page = await context.newPage();
	page.on('pageerror', (e) => pageErrors.push(e.message));
	page.on('dialog', (d) => { pageErrors.push(`alert: ${d.message()}`); d.dismiss(); });
	const start = proxy.log.length;
	await page.goto(`${SHOP}/`);
	await page.setInputFiles('#photo', fixtures['chelsea.jpg']);
	await page.waitForFunction(() => document.getElementById('cutout').dataset.size === 'full' &&
		document.getElementById('cutout').complete && document.getElementById('cutout').naturalWidth > 0, null, { timeout: 90000 });
	const r = await page.evaluate(async () => {
		const img = document.getElementById('cutout');
		for (let i = 0; i < 100 && !(img.complete && img.naturalWidth); i++) await new Promise((ok) => setTimeout(ok, 50));
		return { bar: document.getElementById('bar').value, w: img.naturalWidth };
	});
	const removals = () => proxy.log.slice(start).filter((e) => e.method === 'POST' && e.path === '/v1/remove-background' && e.end).length;
	for (let i = 0; i < 600 && removals() < 2; i++) await sleep(100);
	await sleep(500); // and no third
	const asked = removals();
	check(`... asking for the preview size, then the full size (${asked} removals)`, asked === 2);
	const preflights = proxy.log.slice(start).filter((e) => e.method === 'OPTIONS').length;
	check(`the README's embedding example, on a page of another origin (${preflights} CORS preflights), uploads, fills the bar and shows the cut-out`,
		r.bar === 1 && r.w === 451 && preflights >= 1, JSON.stringify(r));
	await context.close();
});

// ===== 8. What the browsers reported =====

await step('client metrics', async () => {
	await sleep(300);
	const text = await (await fetch(`${SERVER}/metrics`)).text();
	const count = (re) => text.split('\n').filter((l) => re.test(l)).reduce((n, l) => n + Number(l.split(' ').pop()), 0);
	const ok = count(/^petcut_client_uploads_total\{network="[a-z0-9-]+",device="desktop",outcome="success"\}/);
	const bad = count(/^petcut_client_uploads_total\{network="[a-z0-9-]+",device="desktop",outcome="failure"\}/);
	const hist = count(/^petcut_client_upload_duration_seconds_count\{network="[a-z0-9-]+",device="desktop"\}/);
	check(`the module reported its uploads to /v1/client-metrics (${ok} successes, ${bad} failure, ${hist} timed)`, ok >= 8 && bad >= 1 && hist === ok);
	if (ready) check('... with the phone\'s labelled as such', count(/^petcut_client_uploads_total\{network="[a-z0-9-]+",device="phone",outcome="success"\}/) >= 1);
	check('retries reported', count(/^petcut_client_upload_retries_total\{/) >= 2);
	if (ready) {
		const pv = count(/^petcut_client_pick_to_preview_seconds_count\{network="[a-z0-9-]+",device="(phone|desktop)"\}/);
		const fl = count(/^petcut_client_pick_to_full_seconds_count\{network="[a-z0-9-]+",device="(phone|desktop)"\}/);
		check(`the waits for the preview and the full result are in /metrics (${pv} and ${fl})`, pv >= 3 && fl >= 3);
	}
});

check('no errors in the pages', pageErrors.length === 0, pageErrors.join(' | '));
await browser.close();
server.close();
shop.close();
fs.rmSync(TMP, { recursive: true, force: true });
console.log(`${passed} checks passed, ${failed} failed; screenshots in ${SHOTS}`);
process.exit(failed ? 1 : 0);
