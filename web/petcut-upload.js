// petcut-upload.js - the browser side of petcut: shows a chosen photo at
// once, sends a small proxy of it for an instant preview cut-out, shrinks
// it and uploads it in the background (with progress, retries and resumable
// uploads), then asks for the full-quality cut-out by the photo's id.
//
// A plain ES module with no dependencies and no build step:
//
//   import { PetcutUploader } from '/petcut-upload.js';
//   const up = new PetcutUploader({ endpoint: 'https://cut.example' });
//   up.addEventListener('progress', (e) => bar.value = e.detail.fraction);
//   up.addEventListener('result', (e) => img.src = e.detail.url);
//   const slot = up.add(input.files[0]);
//   const result = await up.preview(slot);   // preview, then full quality
//
// Why a proxy: on a phone network the wait is bytes, not compute. The
// network's preview input is 512 x 512, so a proxy whose shorter side is 512
// pixels (a WebP of some 20 to 45 KB) gives the same preview as the whole photo,
// and comes back as a cut-out sized for the screen in one round trip. Then a
// copy of the photo sized for the screen (a quarter to a half of the photo's
// bytes) brings back the full quality for the screen the same way, and the
// photo itself (hundreds of KB) goes up last, for the full-resolution file.
//
// Events (CustomEvent, details in `detail`): 'slot' (a slot changed: status,
// thumbnail), 'progress' {slot, loaded, total, fraction}, 'retry' {slot,
// attempt, delayMs, reason}, 'done' {slot, id, url}, 'error' {slot, error},
// 'result' {slot, size, result, url, image, download} (url: the cut-out
// sized for the screen, image: an <img> of it already decoded, to insert as
// it is; download: the full-resolution file, '' while it is to come),
// 'download' {slot, result, download} (the full-resolution file is ready).

const MB = 1 << 20;

/** The options a PetcutUploader takes, with their defaults. */
export const DEFAULTS = Object.freeze({
	endpoint: '',			// the petcut server ('' = this page's origin)
	maxDimension: 2000,		// photos are fitted within this many pixels
	quality: 0.92,			// JPEG quality of shrunk photos
	skipBelowBytes: MB,		// smaller photos within maxDimension are sent as they are
	preprocess: true,		// false: always send the file unchanged
	retries: 5,			// tries after the first, on network errors, 429 and 5xx
	retryBaseMs: 500,		// the first retry waits 250-500 ms, then twice as long each time
	retryMaxMs: 30000,
	parallel: 3,			// uploads at once
	resumableAbove: MB,		// larger uploads use tus (resumable) on /v1/uploads
	chunkBytes: MB,			// bytes per tus PATCH, each with its SHA-256
	reportMetrics: true,		// POST each upload's outcome and each wait to /v1/client-metrics
	instantPreview: true,		// preview from a small proxy sent at once, not from the upload
	proxySide: 512,			// the proxy's shorter side (the network's preview input)
	proxyType: 'auto',		// 'image/webp', 'image/jpeg', or 'auto': JPEG on a fast network, else WebP
	proxyQuality: 0.6,		// its quality...
	proxyBytes: 45000,		// ... and, for a photo of fine detail (fur), 0.4 if it is larger than this
	prepareAfterMs: 1000,		// while a preview is asked for, the photo is prepared once it is back or after this
	autoPreview: false,		// start preview(slot, previewParams) as soon as a photo is added
	previewParams: {},		// what autoPreview asks for (remove-background's options)
	displaySize: 1024,		// the longest side results are asked for, for the screen
	screenCopy: true,		// with a preview asked for, a photo with over twice the screen's pixels goes
					// up first as a copy of the screen's size, for the full quality on screen
	precompute: 'full',		// the server starts the full-size mask when the upload lands ('' = no)
});

// ===== Small helpers =====

const sleep = (ms, signal) => new Promise((resolve, reject) => {
	if (signal?.aborted) return reject(abortError());
	const t = setTimeout(resolve, ms);
	signal?.addEventListener('abort', () => { clearTimeout(t); reject(abortError()); }, { once: true });
});

// Resolves once the page has painted what was just put in it: the next
// frame, then a task after it (at most 100 ms: a hidden page paints nothing).
const painted = () => new Promise((resolve) => {
	setTimeout(resolve, 100);
	if (typeof requestAnimationFrame === 'function') requestAnimationFrame(() => setTimeout(resolve, 0));
});

function abortError() {
	const e = new Error('cancelled');
	e.name = 'AbortError';
	return e;
}

function httpError(status, body, retryAfterMs) {
	let message = `HTTP ${status}`;
	let code = '';
	try {
		const j = JSON.parse(body);
		if (j.error) { message = j.error.message || message; code = j.error.code || ''; }
	} catch { /* not JSON */ }
	const e = new Error(message);
	e.status = status;
	e.code = code;
	e.retryAfterMs = retryAfterMs;
	return e;
}

// Retry-After in seconds or as a date, in ms; undefined when absent.
function retryAfter(xhr) {
	const v = xhr.getResponseHeader('Retry-After');
	if (!v) return undefined;
	if (/^\d+$/.test(v)) return Number(v) * 1000;
	const t = Date.parse(v);
	return Number.isNaN(t) ? undefined : Math.max(0, t - Date.now());
}

// Network errors, 429 and 5xx are worth another try; other 4xx are not,
// except those a resumable upload recovers from (err.retry).
function retriable(err) {
	return err.retry || !err.status || err.status === 429 || err.status >= 500;
}

// base64 of a byte array
function base64(bytes) {
	let s = '';
	for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
	return btoa(s);
}

// remove-background's options as a query string (the image being the body)
function query(fields) {
	return new URLSearchParams(Object.entries(fields).map(([k, v]) => [k, String(v)])).toString();
}

function utf8base64(text) {
	return base64(new TextEncoder().encode(text));
}

/** The connection type the browser tells ('4g', '3g', '2g', 'slow-2g'), else 'unknown'. */
export function networkType() {
	const t = globalThis.navigator?.connection?.effectiveType;
	return ['slow-2g', '2g', '3g', '4g'].includes(t) ? t : 'unknown';
}

/** A coarse device class: 'phone', 'tablet' or 'desktop'. */
export function deviceClass() {
	const nav = globalThis.navigator;
	if (!nav) return 'unknown';
	if (nav.userAgentData && typeof nav.userAgentData.mobile === 'boolean' && nav.userAgentData.mobile) return 'phone';
	const ua = nav.userAgent || '';
	if (/iPad|Tablet/i.test(ua) || (/Android/i.test(ua) && !/Mobile/i.test(ua))) return 'tablet';
	if (/Mobi|iPhone|iPod|Android/i.test(ua)) return 'phone';
	const touch = (nav.maxTouchPoints || 0) > 0;
	const side = Math.min(globalThis.screen?.width || 0, globalThis.screen?.height || 0);
	if (touch && side && side < 600) return 'phone';
	if (touch && side && side < 1100) return 'tablet';
	return 'desktop';
}

// Formats most browsers cannot show.
function likelyUndisplayable(file) {
	return /image\/hei[cf]/i.test(file.type) || /\.(heic|heif)$/i.test(file.name || '');
}

// ===== Preprocessing =====

/**
 * What to upload for a file: the file itself when it is small and within
 * maxDimension (or cannot be decoded here, like HEIC in most browsers, which
 * the server reads); otherwise the photo upright (EXIF orientation applied),
 * fitted within maxDimension with high-quality smoothing, as a JPEG. The
 * photo is decoded straight to that size, off the page's main thread.
 * size: the photo's upright size when already known (uprightSize).
 * screenSide: where what is uploaded has more than twice the pixels of the
 * photo fitted within this many pixels, that copy too (from the same
 * decode, as a JPEG of the same quality).
 * Returns {blob, decoded, width, height, shrunk, screen} (screen:
 * {blob, width, height} or null).
 */
export async function prepareImage(file, opts = {}, size = undefined, screenSide = 0) {
	const o = { ...DEFAULTS, ...opts };
	if (!o.preprocess) return { blob: file, decoded: false, shrunk: false, screen: null };
	if (size === undefined) size = await uprightSize(file);
	if (!size) return { blob: file, decoded: false, shrunk: false, screen: null };
	const { width, height } = size;
	const side = Math.max(width, height);
	const fit = (limit) => {
		const scale = Math.min(1, limit / side);
		return [Math.max(1, Math.round(width * scale)), Math.max(1, Math.round(height * scale))];
	};
	const small = file.size < o.skipBelowBytes && side <= o.maxDimension;
	const [w, h] = small ? [width, height] : fit(o.maxDimension);
	const [sw, sh] = screenSide > 0 ? fit(screenSide) : [w, h];
	const screenToo = 2 * sw * sh <= w * h;
	if (small && !screenToo) return { blob: file, decoded: true, width, height, shrunk: false, screen: null };
	const made = await decodeTo(file, w, h, async (bitmap) => ({
		blob: small ? file : await encodeAs(bitmap, w, h, 'image/jpeg', o.quality),
		screen: screenToo ? await encodeAs(bitmap, sw, sh, 'image/jpeg', o.quality) : null,
	}));
	if (!made?.blob) return { blob: file, decoded: false, shrunk: false, screen: null };
	return {
		blob: made.blob, decoded: true, width: w, height: h, shrunk: !small,
		screen: made.screen ? { blob: made.screen, width: sw, height: sh } : null,
	};
}

/**
 * A small proxy of a photo for the preview: upright, its shorter side
 * proxySide pixels (never enlarged; the longer at most twice that), in
 * the format proxyFormat picks where the browser writes it, else JPEG. A
 * JPEG is decoded at a reduced scale by the decoder itself where the browser can (for a 12 MP photo, a
 * quarter of its sides in about 40 % of the time of decoding it to that
 * size), anything else straight to that size.
 * Returns a Blob, or null where the browser cannot decode the photo.
 */
export async function makeProxy(file, opts = {}, size = undefined) {
	const o = { ...DEFAULTS, ...opts };
	if (size === undefined) size = await uprightSize(file);
	if (!size) return null;
	const { width, height } = size;
	const scale = Math.min(1, o.proxySide / Math.min(width, height), 2 * o.proxySide / Math.max(width, height));
	const w = Math.max(1, Math.round(width * scale));
	const h = Math.max(1, Math.round(height * scale));
	// a few tens of KB is the point (about 0.4 s up on 3G): fur and grass
	// need a lower quality, encoded again from the same decode
	const qualities = o.proxyQuality > 0.4 ? [o.proxyQuality, 0.4] : [o.proxyQuality];
	const type = proxyFormat(o);
	const make = async (bitmap) => {
		let proxy = null;
		for (const q of qualities) {
			const blob = await encodeAs(bitmap, w, h, type, q, 'image/jpeg');
			if (blob && (!proxy || blob.size < proxy.size)) proxy = blob;
			if (!proxy || proxy.size <= o.proxyBytes) break;
		}
		return proxy;
	};
	return decodeTo(file, w, h, make, await scaledJpeg(file, w, h, size));
}

// The proxy's format: o.proxyType, or for 'auto' the quicker of the two to
// get to the server. A browser writes a 683 x 512 WebP in 60-80 ms and a
// JPEG in about 17 ms, the JPEG 1.5-1.8 x the bytes (some 10-15 KB more):
// on a fast network (NetInfo's 4g) JPEG is there first, on 3G or slower
// (10 KB: 0.1-0.2 s) or where the network is not known, WebP.
function proxyFormat(o) {
	if (o.proxyType !== 'auto') return o.proxyType;
	return networkType() === '4g' ? 'image/jpeg' : 'image/webp';
}

// A JPEG decoded by WebCodecs' ImageDecoder at the smallest of libjpeg's
// scales (n/8) that still gives at least w x h: a VideoFrame (drawn, it is
// upright and scaled to what it is drawn at), or null where this cannot be
// done here (not a JPEG, no ImageDecoder, a browser that would not turn the
// frame upright).
async function scaledJpeg(file, w, h, size) {
	if (!size?.jpeg || typeof ImageDecoder === 'undefined') return null;
	let decoder, frame;
	try {
		if (!(await ImageDecoder.isTypeSupported('image/jpeg'))) return null;
		// the smallest of libjpeg's scales that gives at least w x h, asked
		// for as the size it decodes to (the decoder picks the largest
		// scale within that many pixels, whichever way the photo is
		// stored): for a 12 MP photo a quarter, 0.76 MP, where a box twice
		// the proxy's side let it pick 3/8, 1.7 MP and 20 % more time
		const n = Math.min(8, Math.max(Math.ceil((8 * w) / size.width), Math.ceil((8 * h) / size.height)));
		const desiredWidth = Math.ceil((size.width * n) / 8), desiredHeight = Math.ceil((size.height * n) / 8);
		decoder = new ImageDecoder({ data: file.stream(), type: 'image/jpeg', desiredWidth, desiredHeight });
		frame = (await decoder.decode()).image;
		const upright = frame.displayWidth >= w && frame.displayHeight >= h &&
			(frame.displayWidth >= frame.displayHeight) === (size.width >= size.height) &&
			(size.orientation <= 1 || frame.rotation !== undefined);
		if (upright) return frame;
	} catch {
		/* not decodable this way: the caller decodes it otherwise */
	} finally {
		decoder?.close();
	}
	frame?.close();
	return null;
}

// The file decoded upright straight to w x h (the browser's decoder scales
// as it decodes, off the main thread), or the decoded image given as
// decoded (closed here either way), given to use(bitmap): what use returns,
// or null where the browser cannot decode the file.
async function decodeTo(file, w, h, use, decoded = null) {
	let bitmap = decoded;
	try {
		bitmap ??= await createImageBitmap(file, { imageOrientation: 'from-image', resizeWidth: w, resizeHeight: h, resizeQuality: 'high' });
	} catch {
		return null;
	}
	try {
		return await use(bitmap);
	} finally {
		bitmap.close();
	}
}

// bitmap at w x h as type, or as fallback where the browser does not write
// type (Safari writes no WebP): a Blob, or null.
async function encodeAs(bitmap, w, h, type, quality, fallback = null) {
	const blob = await encode(bitmap, w, h, type, quality);
	if (blob && blob.type === type) return blob;
	return fallback ? encode(bitmap, w, h, fallback, quality) : blob;
}

/** A photo's size as shown (EXIF orientation applied), from its header alone; null if this browser cannot read it. */
export async function uprightSize(file) {
	try { // a JPEG's from its markers, at once
		const size = jpegSize(new Uint8Array(await file.slice(0, 262144).arrayBuffer()));
		if (size) return size;
	} catch { /* not readable: let the browser say */ }
	return imageSize(file);
}

// A JPEG's size as shown, from its markers: {width, height, orientation,
// jpeg: true}, the frame's (SOFn) sides swapped by an EXIF orientation of 5
// to 8; null if not found there.
export function jpegSize(b) {
	if (b.length < 4 || b[0] !== 0xff || b[1] !== 0xd8) return null;
	let orientation = 1;
	for (let i = 2; i + 9 < b.length;) {
		if (b[i] !== 0xff) return null;
		const m = b[i + 1];
		if (m === 0xff) { i++; continue; } // fill
		if (m === 0x01 || (m >= 0xd0 && m <= 0xd8)) { i += 2; continue; } // no length
		const len = (b[i + 2] << 8) | b[i + 3];
		if (len < 2) return null;
		if (m === 0xe1) orientation = exifOrientation(b, i + 4, Math.min(b.length, i + 2 + len)) || orientation;
		if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) { // a frame
			const h = (b[i + 5] << 8) | b[i + 6];
			const w = (b[i + 7] << 8) | b[i + 8];
			if (!w || !h) return null;
			const turned = orientation >= 5 && orientation <= 8;
			return { width: turned ? h : w, height: turned ? w : h, orientation, jpeg: true };
		}
		if (m === 0xda || m === 0xd9) return null; // the scan came first
		i += 2 + len;
	}
	return null;
}

// The orientation tag (1 to 8) of an Exif segment's first IFD, or 0.
function exifOrientation(b, start, end) {
	if (end - start < 16 || b[start] !== 0x45 || b[start + 1] !== 0x78 || b[start + 2] !== 0x69 || b[start + 3] !== 0x66) return 0;
	const t = start + 6; // the TIFF header, after "Exif\0\0"
	const le = b[t] === 0x49;
	const u16 = (o) => (le ? b[o] | (b[o + 1] << 8) : (b[o] << 8) | b[o + 1]);
	const u32 = (o) => (le ? u16(o) + u16(o + 2) * 65536 : u16(o) * 65536 + u16(o + 2));
	const ifd = t + u32(t + 4);
	if (ifd + 2 > end) return 0;
	for (let k = 0, n = u16(ifd); k < n; k++) {
		const e = ifd + 2 + 12 * k;
		if (e + 12 > end) return 0;
		if (u16(e) === 0x0112) {
			const v = u16(e + 8);
			return v >= 1 && v <= 8 ? v : 0;
		}
	}
	return 0;
}

// An image's size as the browser shows it, from an <img> that is never
// painted (so its pixels are not decoded); null if it cannot read it.
function imageSize(file) {
	return new Promise((resolve) => {
		if (typeof Image === 'undefined') return resolve(null);
		const url = URL.createObjectURL(file);
		const img = new Image();
		const end = (size) => { URL.revokeObjectURL(url); resolve(size); };
		img.onload = () => end(img.naturalWidth ? { width: img.naturalWidth, height: img.naturalHeight } : null);
		img.onerror = () => end(null);
		img.src = url;
	});
}

// bitmap drawn at w x h with high-quality smoothing and encoded: a Blob or null
async function encode(bitmap, w, h, type, quality) {
	if (typeof OffscreenCanvas !== 'undefined') {
		const canvas = new OffscreenCanvas(w, h);
		draw(canvas.getContext('2d'), bitmap, w, h);
		return canvas.convertToBlob({ type, quality }).catch(() => null);
	}
	const canvas = document.createElement('canvas');
	canvas.width = w;
	canvas.height = h;
	draw(canvas.getContext('2d'), bitmap, w, h);
	return new Promise((resolve) => canvas.toBlob(resolve, type, quality));
}

function draw(ctx, bitmap, w, h) {
	ctx.imageSmoothingEnabled = true;
	ctx.imageSmoothingQuality = 'high';
	// JPEG has no alpha: transparent parts become white, not black
	ctx.fillStyle = '#fff';
	ctx.fillRect(0, 0, w, h);
	ctx.drawImage(bitmap, 0, 0, w, h);
}

// What results are asked for in: AVIF (about half the bytes of WebP, and
// as quick to make) where the browser shows it, else WebP.
async function accepted() {
	return (await showsAvif()) ? 'image/avif,image/webp' : 'image/webp';
}

// A 2x2 AVIF: whether the browser shows AVIF is found by decoding it, once.
const TINY_AVIF = 'AAAAHGZ0eXBhdmlmAAAAAGF2aWZtaWYxbWlhZgAAAOptZXRhAAAAAAAAACFoZGxyAAAAAAAAAABwaWN0AAAAAAAAAAAAAAAAAAAAAA5waXRtAAAAAAABAAAAImlsb2MAAAAAREAAAQABAAAAAAEOAAEAAAAAAAAAGAAAACNpaW5mAAAAAAABAAAAFWluZmUCAAAAAAEAAGF2MDEAAAAAamlwcnAAAABLaXBjbwAAABNjb2xybmNseAACAAIABoAAAAAMYXYxQ4EADAAAAAAUaXNwZQAAAAAAAAACAAAAAgAAABBwaXhpAAAAAAMICAgAAAAXaXBtYQAAAAAAAAABAAEEgYIDhAAAACBtZGF0EgAKCBgANggQEDQgMgobAAAAQACwE16A';
let avifCheck = null;
function showsAvif() {
	if (!avifCheck && typeof createImageBitmap !== 'function') avifCheck = Promise.resolve(false);
	if (!avifCheck) {
		const bytes = Uint8Array.from(atob(TINY_AVIF), (c) => c.charCodeAt(0));
		avifCheck = createImageBitmap(new Blob([bytes], { type: 'image/avif' }))
			.then((b) => { b.close(); return true; }, () => false);
	}
	return avifCheck;
}

// A blob as an object URL and an <img> of it, decoded: inserted in a page,
// it paints at once
async function decoded(blob) {
	const url = URL.createObjectURL(blob);
	const image = new Image();
	image.src = url;
	try { await image.decode(); } catch { /* shown as it comes */ }
	return { url, image };
}

const JSON_TYPE = 'application/json';

// A removal's answer ({resultId, imageId}) as a result {result_id, image_id, url}.
function resultOf(r) {
	return { result_id: r.resultId, image_id: r.imageId, url: `/v1/results/${r.resultId}` };
}

// A promise with its resolve at hand.
function deferred() {
	let resolve;
	const promise = new Promise((r) => { resolve = r; });
	return { promise, resolve };
}

// Whether removal params are all relative to the photo's size, so that a
// smaller copy of the photo gives the same cut-out, smaller: no fit, outline
// or margin in pixels.
function scaleFree(params) {
	const set = (v) => v !== undefined && v !== null && v !== '';
	return !set(params.fit) && !set(params.outline) && (!set(params.margin) || /%\s*$/.test(String(params.margin)));
}

// ===== The uploader =====

let nextSlotId = 1;

/**
 * Uploads photos to a petcut server, one slot per photo. A slot is a plain
 * object the page can read: {id, file, status, statusText, previewUrl,
 * imageId, imageUrl, fraction, tries, error}.
 */
export class PetcutUploader extends EventTarget {
	constructor(options = {}) {
		super();
		this.options = { ...DEFAULTS, ...options };
		this.options.endpoint = String(this.options.endpoint || '').replace(/\/+$/, '');
		this.slots = [];
		showsAvif(); // found out now, not when the first preview waits for it
		this._running = 0;
		this._queue = [];
	}

	/** The absolute URL of a server path. */
	url(path) {
		const base = this.options.endpoint || globalThis.location?.origin || '';
		return new URL(path, base + '/').href;
	}

	/** Starts on a file: shows it, prepares it, queues its upload. Returns its slot. */
	add(file) {
		const o = this.options;
		const slot = {
			id: nextSlotId++, file, status: 'preparing', statusText: 'Preparing…', previewUrl: '',
			imageId: '', imageUrl: '', proxyId: '', fraction: 0, tries: 0, error: null,
			pickedAt: performance.now(), waits: {},
			_abort: new AbortController(), _promise: null, _previewing: null, _views: [], _reported: false,
			_prepared: deferred(), _screenFull: null,
		};
		// the photo on screen: its proxy, when there is one (a 12 MP original
		// would cost the page a whole decode while it waits for the preview)
		const original = () => { if (!likelyUndisplayable(file)) slot.previewUrl = URL.createObjectURL(file); };
		if (!o.instantPreview) original();
		this.slots.push(slot);
		this._emit('slot', { slot });
		slot._size = o.preprocess || o.instantPreview ? uprightSize(file) : Promise.resolve(null);
		slot._proxy = o.instantPreview ? slot._size.then((size) => makeProxy(file, o, size)).catch(() => null) : Promise.resolve(null);
		if (o.instantPreview) {
			slot._proxy.then((proxy) => {
				if (slot.previewUrl) return;
				if (proxy) slot.previewUrl = URL.createObjectURL(proxy); else original();
				this._emit('slot', { slot });
			});
		}
		if (o.autoPreview) this.preview(slot, o.previewParams).catch(() => {}); // reported through events
		slot._promise = this._run(slot);
		slot._promise.catch(() => {}); // reported through events
		return slot;
	}

	/** The upload of a slot, as a promise of {id, url}. */
	uploaded(slot) {
		return slot._promise;
	}

	/** Stops a slot's upload (a resumable upload is terminated on the server). */
	cancel(slot) {
		slot._abort.abort();
	}

	/** Removes a slot, cancelling what it still does. */
	remove(slot) {
		this.cancel(slot);
		if (slot.previewUrl.startsWith('blob:')) URL.revokeObjectURL(slot.previewUrl);
		for (const url of slot._views) URL.revokeObjectURL(url);
		slot._views = [];
		this.slots = this.slots.filter((s) => s !== slot);
		this._emit('slot', { slot, removed: true });
	}

	/**
	 * Background removal for a slot's photo, in two 'result' events: the
	 * preview, made from the proxy in one round trip without waiting for the
	 * upload (from the upload where the browser could not decode the photo),
	 * then the full quality. Each event's url is the cut-out sized for the
	 * screen (at most opts.max, default displaySize, pixels on its longer
	 * side: WebP, or AVIF where the browser shows it), decoded and ready to
	 * show; download is the full-resolution file, exactly what
	 * remove-background makes for these params. params are
	 * remove-background's options (bg, effect, crop, format...).
	 *
	 * The full quality on screen comes from a copy of the photo sized for
	 * the screen where the photo has more than twice its pixels and the
	 * params are all relative to the photo's size (no fit, outline or margin
	 * in pixels): that copy goes up first and its full-size removal
	 * answers in the same round trip, while the photo follows for the
	 * full-resolution file. That event's download is then '', and a
	 * 'download' event {slot, result, download} says when the file is
	 * ready. Resolves with the full-resolution result {result_id, image_id, url}.
	 */
	async preview(slot, params = {}, opts = {}) {
		const max = Math.max(16, Math.min(4096, Math.round(opts.max || this.options.displaySize)));
		const fields = { ...params, size: 'full', max };
		const key = JSON.stringify(fields);
		// a photo not yet sent can bring the full result back with it
		const fresh = !slot._sending;
		if (fresh) slot._fullAsk = { fields, key, accept: accepted(), screen: this.options.screenCopy && scaleFree(params) };
		const first = this._previewFirst(slot, params, max);
		// the upload waits until the preview is painted: the link is the proxy's first
		slot._previewing = first.then(painted, () => {});
		slot._screenFull = fresh ? this._screenFull(slot, slot._fullAsk) : Promise.resolve(null);
		try {
			await first;
		} catch (err) {
			if (err.name === 'AbortError') throw err;
			// the full result may still come: the preview's failure is only said
			this._emit('error', { slot, error: err, size: 'preview' });
		}
		try {
			const onScreen = await slot._screenFull;
			const done = await this.uploaded(slot);
			const image = { ...params, image_id: slot.imageId, size: 'full' };
			if (onScreen) {
				// only the full-resolution result's id is still to come
				const full = done.full?.key === key ? done.full : await this._removal(slot, image, max, JSON_TYPE);
				return this._downloadReady(slot, resultOf(full));
			}
			const full = done.full?.key === key ? done.full : await this._removal(slot, image, max, await accepted());
			return this._downloadReady(slot, await this._show(slot, 'full', full));
		} finally {
			this._reportWait(slot);
		}
	}

	_downloadReady(slot, result) {
		this._emit('download', { slot, result, download: this.url(result.url) });
		return result;
	}

	// The full quality on screen from the copy of the photo sized for the
	// screen, once the preview is painted: the result shown, or null where
	// there is no such copy or it failed (the full quality then comes from
	// the photo).
	async _screenFull(slot, ask) {
		if (!ask.screen || !(await slot._proxy)) return null;
		await slot._previewing;
		const prep = await slot._prepared.promise;
		if (!ask.screen || !prep?.screen || slot._fullAsk !== ask) return null;
		try {
			const r = await this._removal(slot, ask.fields, ask.fields.max, await ask.accept, prep.screen.blob);
			const result = await this._show(slot, 'full', r, '');
			await painted();
			return result;
		} catch (err) {
			if (err.name === 'AbortError') throw err;
			return null;
		}
	}

	// The preview: from the proxy (by its id when the server has it), else
	// from the uploaded photo.
	async _previewFirst(slot, params, max) {
		const proxy = await slot._proxy;
		const accept = await accepted();
		if (!proxy) {
			await this.uploaded(slot);
			return this._show(slot, 'preview', await this._removal(slot, { ...params, image_id: slot.imageId, size: 'preview' }, max, accept));
		}
		if (slot.proxyId) {
			try {
				return this._show(slot, 'preview', await this._removal(slot, { ...params, image_id: slot.proxyId, size: 'preview' }, max, accept));
			} catch (err) {
				if (err.status !== 404) throw err; // else the store lost it: send it again
			}
		}
		const r = await this._removal(slot, { ...params, size: 'preview' }, max, accept, proxy);
		slot.proxyId = r.imageId;
		return this._show(slot, 'preview', r);
	}

	// POST /v1/remove-background answered with the image (a view of at most
	// max pixels): body is the JSON's fields, or with image the query's, the
	// image being the body. Retries network errors, 429 and 5xx twice.
	async _removal(slot, body, max, accept, image = null) {
		const fields = { ...body, max };
		for (let attempt = 0; ; attempt++) {
			try {
				let res;
				if (image) {
					res = await fetch(this.url(`/v1/remove-background?${query(fields)}`), {
						method: 'POST', headers: { 'Content-Type': image.type || 'application/octet-stream', Accept: accept },
						body: image, signal: slot._abort.signal,
					});
				} else {
					res = await fetch(this.url('/v1/remove-background'), {
						method: 'POST', headers: { 'Content-Type': 'application/json', Accept: accept },
						body: JSON.stringify(fields), signal: slot._abort.signal,
					});
				}
				if (!res.ok) {
					const after = res.headers.get('Retry-After');
					throw httpError(res.status, await res.text(), /^\d+$/.test(after || '') ? Number(after) * 1000 : undefined);
				}
				if (accept === JSON_TYPE) {
					const j = await res.json();
					return { blob: null, resultId: j.result_id, imageId: j.image_id || body.image_id };
				}
				const resultId = res.headers.get('Petcut-Result-Id');
				return { blob: await res.blob(), resultId, imageId: res.headers.get('Petcut-Image-Id') || body.image_id };
			} catch (err) {
				if (err.name === 'AbortError' || !retriable(err) || attempt >= 2) throw err;
				await sleep(Math.max(err.retryAfterMs || 0, 500 * 2 ** attempt), slot._abort.signal);
			}
		}
	}

	// Emits a 'result' once its image is decoded; records the wait since the
	// pick. download: the full-resolution file's URL ('' while it is to come).
	async _show(slot, size, r, download = undefined) {
		const { url, image } = await decoded(r.blob);
		slot._views.push(url);
		const result = resultOf(r);
		if (slot.waits[size] === undefined) slot.waits[size] = performance.now() - slot.pickedAt;
		this._emit('result', { slot, size, result, url, image, download: download ?? this.url(result.url) });
		return result;
	}

	// Reports what the customer waited for the first results, once per slot.
	_reportWait(slot) {
		if (slot._reported || !this.options.reportMetrics) return;
		const { preview, full } = slot.waits;
		if (preview === undefined && full === undefined) return;
		slot._reported = true;
		const ms = (v) => (v === undefined ? undefined : Math.min(3600000, Math.max(0, v)));
		this._send({ kind: 'wait', preview_ms: ms(preview), full_ms: ms(full), network: networkType(), device: deviceClass() });
	}

	/** POST /v1/remove-background {image_id, ...params}: the JSON result. */
	async removeBackground(imageId, params = {}) {
		const res = await fetch(this.url('/v1/remove-background'), {
			method: 'POST',
			headers: { 'Content-Type': 'application/json' },
			body: JSON.stringify({ image_id: imageId, ...params }),
		});
		const text = await res.text();
		if (!res.ok) throw httpError(res.status, text);
		return JSON.parse(text);
	}

	// ----- internals -----

	_emit(type, detail) {
		this.dispatchEvent(new CustomEvent(type, { detail }));
	}

	_status(slot, status, text) {
		slot.status = status;
		slot.statusText = text;
		this._emit('slot', { slot });
	}

	// At most `parallel` uploads at once.
	async _acquire() {
		if (this._running < this.options.parallel) { this._running++; return; }
		await new Promise((resolve) => this._queue.push(resolve));
	}

	_release() {
		const next = this._queue.shift();
		if (next) next(); else this._running--;
	}

	async _run(slot) {
		const o = this.options;
		const t0 = performance.now();
		let bytes = 0;
		let resumable = false;
		try {
			// the proxy first: the photo is prepared once the preview is back
			// or has had the processor for a moment, and goes up once the
			// preview is on screen
			const proxy = await slot._proxy;
			if (proxy && slot._previewing) {
				await Promise.race([Promise.resolve(slot._previewing).catch(() => {}), sleep(o.prepareAfterMs, slot._abort.signal)]);
			}
			const ask = slot._fullAsk;
			const prep = await prepareImage(slot.file, o, await slot._size, proxy && ask?.screen ? ask.fields.max : 0);
			slot._prepared.resolve(prep);
			const blob = prep.blob;
			// a preview from the proxy has the link to itself until it is on
			// screen, and then the copy sized for the screen until its full
			// quality is: the photo then brings back only its result's id
			if (proxy && slot._previewing) await Promise.resolve(slot._previewing).catch(() => {});
			if (proxy && prep.screen && slot._screenFull && (await slot._screenFull.catch(() => null)) && slot._fullAsk === ask) {
				slot._fullAsk = { ...ask, accept: Promise.resolve(JSON_TYPE) };
			}
			bytes = blob.size;
			slot.sent = { type: blob.type, size: blob.size, shrunk: prep.shrunk, width: prep.width, height: prep.height };
			slot._sending = true; // what it asks for is settled now
			this._status(slot, 'waiting', 'Waiting to upload…');
			await this._acquire();
			try {
				slot._t0 = performance.now();
				this._status(slot, 'uploading', 'Uploading…');
				resumable = blob.size > o.resumableAbove;
				const done = resumable ? await this._tusUpload(slot, blob) : await this._plainUpload(slot, blob);
				slot.imageId = done.id;
				slot.imageUrl = this.url(done.url);
				if (!slot.previewUrl || (!prep.decoded && o.preprocess)) {
					// the browser could not show it (HEIC...): the server's thumbnail can
					if (slot.previewUrl.startsWith('blob:')) URL.revokeObjectURL(slot.previewUrl);
					slot.previewUrl = this.url(`/v1/images/${done.id}?max=512&format=jpeg`);
				}
				this._progress(slot, 1, 1, blob.size);
				this._status(slot, 'done', 'Uploaded');
				this._emit('done', { slot, id: done.id, url: slot.imageUrl });
				this._report('success', bytes, performance.now() - t0, slot.tries, resumable);
				return done;
			} finally {
				this._release();
			}
		} catch (err) {
			slot._prepared.resolve(null);
			const cancelled = err.name === 'AbortError';
			slot.error = err;
			this._status(slot, cancelled ? 'cancelled' : 'error', cancelled ? 'Cancelled' : describe(err));
			if (!cancelled) this._emit('error', { slot, error: err });
			this._report(cancelled ? 'cancelled' : 'failure', bytes, performance.now() - t0, Math.max(1, slot.tries), resumable);
			throw err;
		}
	}

	// fraction of the whole upload, never going back
	_progress(slot, done, total, bytes) {
		const fraction = Math.min(1, total ? done / total : 0);
		if (fraction < slot.fraction) return;
		slot.fraction = fraction;
		this._emit('progress', { slot, loaded: Math.round(fraction * bytes), total: bytes, fraction });
	}

	// Runs attempt() until it succeeds, with exponential backoff and jitter
	// on retriable errors; waits for the network while the browser is
	// offline (those waits are not counted as tries).
	async _withRetries(slot, attempt) {
		const o = this.options;
		let failures = 0;
		let lockedMs = 0;
		for (;;) {
			slot.tries++;
			try {
				return await attempt();
			} catch (err) {
				if (err.name === 'AbortError' || !retriable(err)) throw err;
				if (!err.status && globalThis.navigator && navigator.onLine === false) {
					slot.tries--;
					await this._waitOnline(slot);
					continue;
				}
				if (err.status === 423 && lockedMs < 60000) {
					// the server still holds a PATCH of ours that was cut off, until
					// it sees the connection is gone (its idle timeout, 30 s by
					// default): wait for that without spending the retries
					slot.tries--;
					lockedMs += 2000;
					this._status(slot, 'retrying', 'Resuming…');
					await sleep(2000, slot._abort.signal);
					continue;
				}
				if (failures >= o.retries) throw err;
				failures++;
				const cap = Math.min(o.retryMaxMs, o.retryBaseMs * 2 ** (failures - 1));
				let delayMs = cap / 2 + Math.random() * cap / 2;
				if (err.retryAfterMs !== undefined) delayMs = Math.max(delayMs, err.retryAfterMs);
				this._emit('retry', { slot, attempt: failures, delayMs, reason: err.status ? `HTTP ${err.status}` : err.message });
				this._status(slot, 'retrying', `Retrying in ${Math.ceil(delayMs / 1000)} s…`);
				await sleep(delayMs, slot._abort.signal);
				if (globalThis.navigator && navigator.onLine === false) await this._waitOnline(slot);
				this._status(slot, 'uploading', 'Uploading…');
			}
		}
	}

	async _waitOnline(slot) {
		this._status(slot, 'offline', 'Waiting for network…');
		await new Promise((resolve, reject) => {
			const signal = slot._abort.signal;
			const done = () => { window.removeEventListener('online', done); resolve(); };
			window.addEventListener('online', done);
			signal.addEventListener('abort', () => { window.removeEventListener('online', done); reject(abortError()); }, { once: true });
			if (navigator.onLine) done();
		});
		this._status(slot, 'uploading', 'Uploading…');
	}

	// One XHR: resolves with {status, xhr}; rejects on network errors and
	// on statuses that are not in `ok`.
	_xhr(slot, { method, url, headers = {}, body = null, ok, onProgress, responseType = '' }) {
		return new Promise((resolve, reject) => {
			const xhr = new XMLHttpRequest();
			const signal = slot._abort.signal;
			if (signal.aborted) return reject(abortError());
			const onAbort = () => xhr.abort();
			signal.addEventListener('abort', onAbort, { once: true });
			xhr.open(method, url);
			xhr.responseType = responseType;
			for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
			if (onProgress && body) xhr.upload.onprogress = (e) => onProgress(e.loaded);
			xhr.onload = () => {
				signal.removeEventListener('abort', onAbort);
				if (ok.includes(xhr.status)) resolve(xhr);
				else if (responseType === 'blob') xhr.response.text().then((text) => reject(httpError(xhr.status, text, retryAfter(xhr))), reject);
				else reject(httpError(xhr.status, xhr.responseText, retryAfter(xhr)));
			};
			xhr.onerror = xhr.ontimeout = () => {
				signal.removeEventListener('abort', onAbort);
				reject(new Error('network error'));
			};
			xhr.onabort = () => reject(abortError());
			xhr.send(body);
		});
	}

	// With the full result asked for (slot._fullAsk), one try of POST
	// /v1/remove-background with the photo as the body: the photo is stored
	// as an upload would store it, and the answer is the full result sized
	// for the screen, one round trip sooner. Any failure falls back to a
	// plain upload. Returns {id, url, full} or null.
	async _uploadForFull(slot, blob) {
		const ask = slot._fullAsk;
		let xhr;
		try {
			slot.tries++;
			xhr = await this._xhr(slot, {
				method: 'POST', url: this.url(`/v1/remove-background?${query(ask.fields)}`), body: blob, ok: [200], responseType: 'blob',
				headers: { 'Content-Type': blob.type || 'application/octet-stream', Accept: await ask.accept },
				onProgress: (loaded) => this._progress(slot, Math.min(loaded, blob.size - 1), blob.size, blob.size),
			});
		} catch (err) {
			if (err.name === 'AbortError') throw err;
			return null;
		}
		let full = { key: ask.key, blob: xhr.response, resultId: xhr.getResponseHeader('Petcut-Result-Id'), imageId: xhr.getResponseHeader('Petcut-Image-Id') };
		if ((await ask.accept) === JSON_TYPE) {
			const j = await xhr.response.text().then(JSON.parse, () => null);
			full = { key: ask.key, blob: null, resultId: j?.result_id, imageId: j?.image_id };
		}
		if (!full.imageId || !full.resultId) return null;
		return { id: full.imageId, url: `/v1/images/${full.imageId}`, full };
	}

	// POST /v1/images with the bytes; the answer is the image's JSON.
	async _plainUpload(slot, blob) {
		if (slot._fullAsk) {
			const done = await this._uploadForFull(slot, blob);
			if (done) return done;
		}
		const precompute = this.options.precompute ? `?precompute=${encodeURIComponent(this.options.precompute)}` : '';
		const xhr = await this._withRetries(slot, () => this._xhr(slot, {
			method: 'POST', url: this.url(`/v1/images${precompute}`), body: blob, ok: [200, 201],
			headers: { 'Content-Type': blob.type || 'application/octet-stream' },
			onProgress: (loaded) => this._progress(slot, Math.min(loaded, blob.size - 1), blob.size, blob.size),
		}));
		return JSON.parse(xhr.responseText);
	}

	// tus 1.0: create, then PATCH chunk by chunk (each with its SHA-256);
	// after a failure ask the server where it is (HEAD) and go on from there.
	async _tusUpload(slot, blob) {
		const o = this.options;
		const tus = { 'Tus-Resumable': '1.0.0' };
		const meta = `filename ${utf8base64(slot.file.name || 'photo')},filetype ${utf8base64(blob.type || 'application/octet-stream')}`;
		const create = async () => {
			const xhr = await this._withRetries(slot, () => this._xhr(slot, {
				method: 'POST', url: this.url('/v1/uploads'), ok: [201],
				headers: { ...tus, 'Upload-Length': String(blob.size), 'Upload-Metadata': meta },
			}));
			return this.url(xhr.getResponseHeader('Location'));
		};
		let location = await create();
		slot.uploadUrl = location;
		let offset = 0;
		let needHead = false;
		const canHash = !!globalThis.crypto?.subtle;
		try {
			return await this._withRetries(slot, async () => {
				if (needHead) {
					const head = await this._xhr(slot, { method: 'HEAD', url: location, headers: tus, ok: [200, 404, 410] });
					if (head.status !== 200) { // gone (expired): start again
						location = await create();
						slot.uploadUrl = location;
						offset = 0;
					} else {
						offset = Number(head.getResponseHeader('Upload-Offset'));
						const id = head.getResponseHeader('Petcut-Image-Id');
						if (id) return { id, url: head.getResponseHeader('Petcut-Image-Url') || `/v1/images/${id}` };
					}
					needHead = false;
				}
				for (;;) {
					const chunk = blob.slice(offset, Math.min(blob.size, offset + o.chunkBytes));
					const headers = { ...tus, 'Content-Type': 'application/offset+octet-stream', 'Upload-Offset': String(offset) };
					if (o.precompute) headers['Petcut-Precompute'] = o.precompute; // read by the PATCH that ends it
					if (canHash) {
						const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', await chunk.arrayBuffer()));
						headers['Upload-Checksum'] = `sha256 ${base64(digest)}`;
					}
					const start = offset;
					let xhr;
					try {
						xhr = await this._xhr(slot, {
							method: 'PATCH', url: location, headers, body: chunk, ok: [204],
							onProgress: (loaded) => this._progress(slot, Math.min(start + loaded, blob.size - 1), blob.size, blob.size),
						});
					} catch (err) {
						// out of step (409), the chunk damaged on the way (460), or the
						// server still busy with a PATCH that was cut off (423): ask it
						// where it is, then go on from there
						if ([409, 423, 460].includes(err.status)) err.retry = true;
						if (retriable(err)) needHead = true;
						throw err;
					}
					offset = Number(xhr.getResponseHeader('Upload-Offset'));
					const id = xhr.getResponseHeader('Petcut-Image-Id');
					if (id) return { id, url: xhr.getResponseHeader('Petcut-Image-Url') || `/v1/images/${id}` };
					if (offset >= blob.size) { needHead = true; throw Object.assign(new Error('no image id'), { retry: true }); }
				}
			});
		} catch (err) {
			if (err.name === 'AbortError') {
				// drop the partial upload on the server (best effort; 423 while the
				// server still finishes the PATCH that was cut off)
				(async () => {
					for (let i = 0; i < 4; i++) {
						const r = await fetch(location, { method: 'DELETE', headers: tus }).catch(() => null);
						if (!r || r.status !== 423) return;
						await sleep(500);
					}
				})();
			}
			throw err;
		}
	}

	_report(outcome, bytes, durationMs, tries, resumable) {
		if (!this.options.reportMetrics) return;
		this._send({
			outcome, bytes: Math.max(0, Math.round(bytes)), duration_ms: Math.min(3600000, Math.max(0, durationMs)),
			tries: Math.min(100, Math.max(1, tries)), network: networkType(), device: deviceClass(), resumable,
		});
	}

	// POST /v1/client-metrics, best effort
	_send(report) {
		fetch(this.url('/v1/client-metrics'), {
			method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(report), keepalive: true,
		}).catch(() => {});
	}
}

/** A sentence for an error, for people. */
export function describe(err) {
	if (!err) return '';
	if (err.name === 'AbortError') return 'Cancelled';
	if (!err.status) return 'The network failed; please try again.';
	switch (err.status) {
	case 413: return 'This photo is too large.';
	case 415: return 'This file is not a photo we can read.';
	case 422: return 'This photo could not be decoded.';
	case 429: return 'The server is busy; please try again in a moment.';
	default:
		if (err.status >= 500) return 'The server is unavailable; please try again later.';
		return err.message || `Upload failed (HTTP ${err.status}).`;
	}
}
