// petcut-upload.js - the browser side of petcut: shows a chosen photo at
// once, shrinks it, uploads it in the background (with progress, retries and
// resumable uploads), then asks for the background removal by the photo's id.
//
// A plain ES module with no dependencies and no build step:
//
//   import { PetcutUploader } from '/petcut-upload.js';
//   const up = new PetcutUploader({ endpoint: 'https://cut.example' });
//   up.addEventListener('progress', (e) => bar.value = e.detail.fraction);
//   const slot = up.add(input.files[0]);
//   const result = await up.preview(slot);   // preview size, then full
//
// Events (CustomEvent, details in `detail`): 'slot' (a slot changed: status,
// thumbnail), 'progress' {slot, loaded, total, fraction}, 'retry' {slot,
// attempt, delayMs, reason}, 'done' {slot, id, url}, 'error' {slot, error},
// 'result' {slot, size, result, url}.

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
	reportMetrics: true,		// POST each upload's outcome to /v1/client-metrics
});

// ===== Small helpers =====

const sleep = (ms, signal) => new Promise((resolve, reject) => {
	if (signal?.aborted) return reject(abortError());
	const t = setTimeout(resolve, ms);
	signal?.addEventListener('abort', () => { clearTimeout(t); reject(abortError()); }, { once: true });
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
 * fitted within maxDimension with high-quality smoothing, as a JPEG.
 * Returns {blob, decoded, width, height, shrunk}.
 */
export async function prepareImage(file, opts = {}) {
	const o = { ...DEFAULTS, ...opts };
	if (!o.preprocess) return { blob: file, decoded: false, shrunk: false };
	let bitmap;
	try {
		bitmap = await createImageBitmap(file, { imageOrientation: 'from-image' });
	} catch {
		return { blob: file, decoded: false, shrunk: false };
	}
	const { width, height } = bitmap;
	const side = Math.max(width, height);
	if (file.size < o.skipBelowBytes && side <= o.maxDimension) {
		bitmap.close();
		return { blob: file, decoded: true, width, height, shrunk: false };
	}
	const scale = Math.min(1, o.maxDimension / side);
	const w = Math.max(1, Math.round(width * scale));
	const h = Math.max(1, Math.round(height * scale));
	let blob;
	if (typeof OffscreenCanvas !== 'undefined') {
		const canvas = new OffscreenCanvas(w, h);
		draw(canvas.getContext('2d'), bitmap, w, h);
		blob = await canvas.convertToBlob({ type: 'image/jpeg', quality: o.quality });
	} else {
		const canvas = document.createElement('canvas');
		canvas.width = w;
		canvas.height = h;
		draw(canvas.getContext('2d'), bitmap, w, h);
		blob = await new Promise((resolve) => canvas.toBlob(resolve, 'image/jpeg', o.quality));
	}
	bitmap.close();
	if (!blob) return { blob: file, decoded: true, width, height, shrunk: false };
	return { blob, decoded: true, width: w, height: h, shrunk: true };
}

function draw(ctx, bitmap, w, h) {
	ctx.imageSmoothingEnabled = true;
	ctx.imageSmoothingQuality = 'high';
	// JPEG has no alpha: transparent parts become white, not black
	ctx.fillStyle = '#fff';
	ctx.fillRect(0, 0, w, h);
	ctx.drawImage(bitmap, 0, 0, w, h);
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
		const slot = {
			id: nextSlotId++, file, status: 'preparing', statusText: 'Preparing…', previewUrl: '',
			imageId: '', imageUrl: '', fraction: 0, tries: 0, error: null,
			_abort: new AbortController(), _promise: null,
		};
		if (!likelyUndisplayable(file)) slot.previewUrl = URL.createObjectURL(file);
		this.slots.push(slot);
		this._emit('slot', { slot });
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
		this.slots = this.slots.filter((s) => s !== slot);
		this._emit('slot', { slot, removed: true });
	}

	/**
	 * Background removal for a slot's photo, by its id: first at preview
	 * size (shown as soon as it is there, a 'result' event), then full size.
	 * params are remove-background's options (bg, effect, crop, format...).
	 * Resolves with the full-size result.
	 */
	async preview(slot, params = {}) {
		await this.uploaded(slot);
		let last;
		for (const size of ['preview', 'full']) {
			const result = await this.removeBackground(slot.imageId, { ...params, size });
			last = result;
			this._emit('result', { slot, size, result, url: this.url(result.url) });
		}
		return last;
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
			const prep = await prepareImage(slot.file, o);
			const blob = prep.blob;
			bytes = blob.size;
			slot.sent = { type: blob.type, size: blob.size, shrunk: prep.shrunk, width: prep.width, height: prep.height };
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
	_xhr(slot, { method, url, headers = {}, body = null, ok, onProgress }) {
		return new Promise((resolve, reject) => {
			const xhr = new XMLHttpRequest();
			const signal = slot._abort.signal;
			if (signal.aborted) return reject(abortError());
			const onAbort = () => xhr.abort();
			signal.addEventListener('abort', onAbort, { once: true });
			xhr.open(method, url);
			for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
			if (onProgress && body) xhr.upload.onprogress = (e) => onProgress(e.loaded);
			xhr.onload = () => {
				signal.removeEventListener('abort', onAbort);
				if (ok.includes(xhr.status)) resolve(xhr);
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

	// POST /v1/images with the bytes; the answer is the image's JSON.
	async _plainUpload(slot, blob) {
		const xhr = await this._withRetries(slot, () => this._xhr(slot, {
			method: 'POST', url: this.url('/v1/images'), body: blob, ok: [200, 201],
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
		const body = JSON.stringify({
			outcome, bytes: Math.max(0, Math.round(bytes)), duration_ms: Math.min(3600000, Math.max(0, durationMs)),
			tries: Math.min(100, Math.max(1, tries)), network: networkType(), device: deviceClass(), resumable,
		});
		fetch(this.url('/v1/client-metrics'), {
			method: 'POST', headers: { 'Content-Type': 'application/json' }, body, keepalive: true,
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
