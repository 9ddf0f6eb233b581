/*
 * remove.c - POST /v1/remove-background and GET /v1/results/{id}.
 *
 * A request names a stored image (image_id, or a URL of this server's own
 * store, or the image itself in base64) and what to make of it. Two things
 * are cached in the store, by content:
 *   - the network's mask, under SHA-256(image id, model, network size), so a
 *     new background, effect or format costs no model run;
 *   - each rendered result, under SHA-256(image id, model, every parameter
 *     in a canonical order), with a small JSON of its figures beside it, so
 *     a repeated request is answered from the store at once.
 * A miss decodes the photo, queues its tensor on the model's batcher (which
 * batches requests of the same size into one forward pass), refines the mask
 * to the photo's size, renders, encodes and stores the result.
 *
 * With a shared kv (--redis), instances that share a store also share the
 * work: a result's figures are indexed there (a hit costs one GET, not two
 * store requests), and identical work is done once among all of them: the
 * instance that takes the work's lock (SET NX PX) does it, the others wait
 * until the lock is gone and find the result stored. The lock expires by
 * itself when its holder dies. Without the kv, or while it is down, each
 * instance does its own work, once per key among its own requests.
 */
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "http/http_int.h"
#include "http/parse.h"
#include "model/model.h"
#include "util/util.h"

#define MAX_BODY (64u << 20) /* a base64 image fits */

/* ===== Set-up ===== */

static void scrape_batcher(void *ctx)
{
	struct http_server *s = ctx;
	struct batcher_stats st;
	if (!s->engine)
		return;
	batcher_get_stats(s->engine->batcher, &st);
	metrics_set(s->queue_now, st.queued);
	metrics_set(metrics_series(s->inferences, (const char *const[]){"batches"}), (double)st.batches);
	metrics_set(metrics_series(s->inferences, (const char *const[]){"requests"}), (double)st.completed);
	metrics_set(metrics_series(s->inferences, (const char *const[]){"rejected_queue_full"}), (double)st.rejected_full);
	metrics_set(metrics_series(s->inferences, (const char *const[]){"rejected_late"}), (double)st.rejected_late);
	metrics_set(metrics_series(s->inferences, (const char *const[]){"expired"}), (double)st.expired);
	metrics_set(metrics_series(s->inferences, (const char *const[]){"failed"}), (double)st.failed);
	metrics_set(metrics_series(s->inferences, (const char *const[]){"failed_passes"}), (double)st.failed_passes);
	metrics_set(metrics_series(s->inferences, (const char *const[]){"rejected_failing"}), (double)st.rejected_failing);
	metrics_set(metrics_series(s->inferences, (const char *const[]){"busy_seconds"}), (double)st.busy_ns / 1e9);
	metrics_set(metrics_series(s->inferences, (const char *const[]){"fp32_fallbacks"}), (double)st.fallbacks);
	metrics_set(s->merged, (double)cache_merged(s->cache));
	for (int n = 1; n <= BATCHER_MAX_BATCH; n++)
		if (st.batch_sizes[n]) {
			char size[12];
			snprintf(size, sizeof size, "%d", n);
			metrics_set(metrics_series(s->batch_size, (const char *const[]){size}), (double)st.batch_sizes[n]);
		}
}

static void count_remote_wait(void *arg)
{
	struct http_server *s = arg;
	metrics_add(s->remote_waits, 1);
}

int http_remove_init(struct http_server *s, char *errbuf, size_t errlen)
{
	/* gauges read from the batcher when scraped (counters it keeps itself) */
	s->inferences = metrics_family(s->metrics, METRICS_GAUGE, "petcut_inference",
				       "Inference worker totals since start: batches, requests, rejected_queue_full, "
				       "rejected_late (its deadline would have passed in the queue), expired, failed, failed_passes (forward passes that failed), rejected_failing "
				       "(refused in the pause after one), busy_seconds.",
				       "what", NULL, 0);
	s->batch_size = metrics_family(s->metrics, METRICS_GAUGE, "petcut_inference_batches_by_size",
				       "Forward passes by the number of requests batched in them.", "size", NULL, 0);
	s->queue_depth = metrics_family(s->metrics, METRICS_GAUGE, "petcut_inference_queue_depth",
					"Inference requests waiting.", NULL, NULL, 0);
	s->cache_requests = metrics_family(s->metrics, METRICS_COUNTER, "petcut_cache_requests_total",
				  "Lookups of cached results and masks.", "kind,outcome", NULL, 0);
	s->stage = metrics_family(s->metrics, METRICS_HISTOGRAM, "petcut_stage_seconds",
				  "Time of each stage of background removal.", "stage,size", metrics_latency_buckets,
				  metrics_latency_buckets_n);
	s->queue_now = metrics_series(s->queue_depth, NULL);
	s->cache_hit = metrics_series(s->cache_requests, (const char *const[]){"result", "hit"});
	s->cache_miss = metrics_series(s->cache_requests, (const char *const[]){"result", "miss"});
	s->mask_hit = metrics_series(s->cache_requests, (const char *const[]){"mask", "hit"});
	/* hits answered from the shared index (also counted as result hits) */
	s->index_hit = s->kv ? metrics_series(s->cache_requests, (const char *const[]){"index", "hit"}) : NULL;
	s->merged = metrics_series(metrics_family(s->metrics, METRICS_GAUGE, "petcut_singleflight_merged",
						  "Requests that waited for identical work in flight instead of doing it.",
						  NULL, NULL, 0),
				   NULL);
	struct cache_opts co = {s->kv, s->kv_token, s->cfg.redis_lock_ms, count_remote_wait, s};
	if (!(s->cache = cache_new(&co))) {
		snprintf(errbuf, errlen, "out of memory");
		return -1;
	}
	if (!s->inferences || !s->batch_size || !s->queue_now || !s->cache_hit || !s->stage) {
		snprintf(errbuf, errlen, "cannot set up metrics");
		return -1;
	}
	metrics_on_scrape(s->metrics, scrape_batcher, s);

	struct pipe_engine_opts eo = {.model = s->cfg.model, .precision = s->cfg.precision,
				      .guard_above = s->cfg.fallback_above, .guard_bf16 = s->cfg.fallback_bf16,
				      .max_batch = s->cfg.max_batch,
				      .max_delay_ms = s->cfg.max_delay_ms, .max_queue = s->cfg.max_queue,
				      .prepare = 1, .identify = 1};
	char path[PATH_MAX], note[1024];
	if (s->cfg.model && !strcmp(s->cfg.model, "none")) {
		/* asked for: the service stores and serves images; /readyz says why not ready */
		fprintf(stderr, "petcut serve: --model none: background removal is off\n");
		return 0;
	}
	if (!s->cfg.model && (pipe_model_path(NULL, path, sizeof path, note, sizeof note) || access(path, F_OK))) {
		snprintf(errbuf, errlen, "no model: run `petcut model fetch` (into $PETCUT_MODELS, else ~/.cache/petcut/models), "
					 "or give --model PATH, or --model none to serve images without removal");
		return -1;
	}
	if (pipe_engine_open(&eo, &s->engine, note, sizeof note, errbuf, errlen)) {
		char why[1024];
		snprintf(why, sizeof why, "cannot load the model: %s", errbuf);
		snprintf(errbuf, errlen, "%s", why);
		return -1;
	}
	if (*note)
		fprintf(stderr, "petcut serve: %s\n", note);
	return 0;
}

void http_remove_fini(struct http_server *s)
{
	/* background precomputations use the batcher: let them end first */
	for (int i = 0; i < 6000 && atomic_load(&s->precomputing) > 0; i++)
		usleep(10000);
	pipe_engine_close(s->engine);
	s->engine = NULL;
	cache_free(s->cache);
	s->cache = NULL;
}

/* ===== Parameters ===== */

static const char *mime_of(enum img_format f)
{
	switch (f) {
	case IMG_FORMAT_WEBP: return "image/webp";
	case IMG_FORMAT_JPEG: return "image/jpeg";
	case IMG_FORMAT_AVIF: return "image/avif";
	case IMG_FORMAT_ZIP: return "application/zip";
	default: return "image/png";
	}
}

/* Stores image bytes as an upload would (probed first: not an image, or
 * over the pixel limit, is refused); its id in id. */
static int store_bytes(struct http_server *s, const unsigned char *raw, size_t len, char id[STORE_KEY_LEN + 1],
		       char *why, size_t wl)
{
	struct img_info info;
	struct img_load_opts o = {.max_pixels = s->cfg.max_pixels};
	img_status is = img_probe(raw, len, &o, &info);
	const char *code;

	if (is != IMG_OK) {
		snprintf(why, wl, "%s", img_errmsg());
		return http_probe_status(is, &code);
	}
	if (store_put_buffer(s->store, NS_IMAGES, NULL, raw, len, id, NULL) != STORE_OK) {
		snprintf(why, wl, "the store cannot be written");
		return 503;
	}
	return 0;
}

/* The bytes of an image given by another host's URL (fetched where
 * allowed: http_fetch) or in base64, stored as an upload of them would be:
 * its id in id. field (the one that gave it) and what name it in messages.
 * 0, or an HTTP status with why set. */
static int store_given(struct http_server *s, const char *url, const char *b64, const char *field,
		       const char *what, char id[STORE_KEY_LEN + 1], char *why, size_t wl)
{
	unsigned char *raw;
	size_t len;
	int st;

	if (url) {
		if ((st = http_fetch(s, url, field, &raw, &len, why, wl)))
			return st;
	} else if (http_base64_decode(b64, &raw, &len)) {
		snprintf(why, wl, "%s is not valid base64", field);
		return 400;
	}
	if (len > s->cfg.max_upload_bytes) { /* as an upload of the same bytes would be */
		free(raw);
		snprintf(why, wl, "the %s is over %zu MB", what, s->cfg.max_upload_bytes >> 20);
		return 413;
	}
	st = store_bytes(s, raw, len, id, why, wl);
	free(raw);
	return st;
}

/* Stores what a body brought of its own (image_url of another host, where
 * allowed, or image in base64; a background image's URL of another host) as
 * uploads would: their ids in p->image_id and p->bg_image_id, the
 * canonical text then naming the background by its id. 0, or an HTTP
 * status with why set. */
static int store_source(struct http_server *s, struct remove_params *p, char *why, size_t wl)
{
	int st = 0;

	if (p->source != REMOVE_SOURCE_ID)
		st = store_given(s, p->source == REMOVE_SOURCE_URL ? p->source_text : NULL, p->source_text,
				 p->source == REMOVE_SOURCE_URL ? "image_url" : "image", "image", p->image_id, why, wl);
	if (!st && p->bg_url) {
		if ((st = store_given(s, p->bg_url, NULL, "bg", "background image", p->bg_image_id, why, wl)))
			return st;
		p->bg_url = NULL;
		if (pipe_canonical(&p->req, p->bg_image_id, p->canonical, sizeof p->canonical)) {
			snprintf(why, wl, "the request is too long");
			return 400;
		}
	}
	return st;
}

/* ===== The shared index of results ===== */

/* The figures of result key from the shared index, or NULL. */
static json_t *index_get(struct http_server *s, const char *key)
{
	size_t len;
	char *text = cache_index_get(s->cache, key, &len);
	json_t *meta = text ? json_loadb(text, len, 0, NULL) : NULL;

	free(text);
	if (meta && !json_is_object(meta)) {
		json_decref(meta);
		meta = NULL;
	}
	return meta;
}

/* ===== The mask ===== */

static int make_mask(struct http_server *s, struct remove_params *p, const struct img *photo, const char *key,
		     float **mask, struct pipe_mask_info *t, char *why, size_t wl);

/* The network's mask for the image at side x side: from the store, or from
 * a forward pass (then stored). Returns 0 or an HTTP status. */
int http_get_mask(struct http_server *s, struct remove_params *p, const struct img *photo, float **mask,
		  struct pipe_mask_info *t, int *hit, char *why, size_t wl)
{
	char name[256], key[STORE_KEY_LEN + 1];
	size_t n = (size_t)p->req.side * p->req.side, len;
	void *buf;

	/* the precision changes the mask a little: it is part of the name */
	snprintf(name, sizeof name, "mask|v1|%s|%s|%s|%d", p->image_id, s->engine->model_id,
		 s->engine->precision_key, p->req.side);
	store_key_of(name, strlen(name), key);
	int lead;
	for (;;) { /* stored, or being made by another request: wait for it */
		if (store_get(s->store, NS_MASKS, key, &buf, &len) == STORE_OK) {
			if (len == n * sizeof(float)) {
				*mask = buf;
				*hit = 1;
				metrics_add(s->mask_hit, 1);
				return 0;
			}
			free(buf); /* not a mask of this size: make it again */
		}
		if ((lead = cache_join(s->cache, key)) != 0)
			break;
	}
	*hit = 0;
	int status = make_mask(s, p, photo, key, mask, t, why, wl);
	if (lead > 0)
		cache_done(s->cache, key);
	return status;
}

/* Lets a batch request's item through its gate as its input joins the queue. */
static void submitting(void *arg)
{
	struct remove_params *p = arg;
	pipe_gate_pass(p->gate, p->passed);
}

/* Runs the network for the mask and stores it under key. */
static int make_mask(struct http_server *s, struct remove_params *p, const struct img *photo, const char *key,
		     float **mask, struct pipe_mask_info *t, char *why, size_t wl)
{
	static const int status[] = {[PIPE_OK] = 0,	       [PIPE_BAD_INPUT] = 422, [PIPE_BUSY] = 429,
				     [PIPE_TIMEOUT] = 504,     [PIPE_UNAVAILABLE] = 503, [PIPE_FAILED] = 503,
				     [PIPE_REFUSED] = 422};
	int64_t deadline = s->cfg.request_timeout_ms > 0 ? batcher_now_ms() + s->cfg.request_timeout_ms : 0;
	enum pipe_status ps =
		pipe_mask(s->engine, photo, p->req.side, deadline, p->background, submitting, p, mask, t, why, wl);

	if (ps != PIPE_OK)
		return status[ps];
	/* a cache: best effort */
	store_put_buffer(s->store, NS_MASKS, key, *mask, sizeof(float) * p->req.side * p->req.side, NULL, NULL);
	return 0;
}

/* ===== The route ===== */

static int fail_out(struct outcome *o, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail_out(struct outcome *o, int status, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(o->msg, sizeof o->msg, fmt, ap);
	va_end(ap);
	o->status = status;
	o->code = code;
	return status;
}

static int finish(struct outcome *o, const char *key, json_t *meta, int cached, json_t *timings)
{
	char url[96];
	snprintf(url, sizeof url, "/v1/results/%s", key);
	json_object_set_new(meta, "result_id", json_string(key));
	json_object_set_new(meta, "image_id", json_string(o->image_id));
	json_object_set_new(meta, "url", json_string(url));
	json_object_set_new(meta, "cached", json_boolean(cached));
	json_object_set_new(meta, "timings", timings);
	memcpy(o->key, key, sizeof o->key);
	o->result = meta;
	o->status = 200;
	return 200;
}

/* Makes (or finds) the result a request body asks for. */
int http_remove_run(struct http_server *s, json_t *body, struct pipe_gate *gate, int *passed, struct outcome *o)
{
	struct remove_params p;
	char why[300] = "", name[1600], key[STORE_KEY_LEN + 1];
	void *orig = NULL, *meta_buf = NULL, *enc = NULL;
	size_t olen, mlen, enclen = 0;
	struct img *photo = NULL, *alpha = NULL, *out = NULL, *bgimg = NULL;
	float *mask = NULL;
	struct pipe_mask_info bt = {0};
	struct img_subject subj = {0};
	json_t *subjects = NULL;
	int ret;
	int status, mask_hit = 0, leading = 0;
	double t0 = util_now_ms(), t_decode, t_mask, t_compose, t_encode;

	/* every parameter is checked before an image of the body is stored */
	status = http_remove_parse(body, &p, why, sizeof why);
	if (!status)
		status = store_source(s, &p, why, sizeof why);
	p.gate = gate;
	p.passed = passed;
	p.background = o->background;
	if (status)
		return fail_out(o, status,
				status == 413	? "too_large"
				: status == 415 ? "not_an_image"
				: status == 503 ? "storage_unavailable"
						: "bad_request",
				"%s", why);
	if (!s->engine)
		return fail_out(o, 503, "model_unavailable", "no model is loaded");
	memcpy(o->image_id, p.image_id, sizeof o->image_id);
	o->view_max = p.view_max;
	char ids[IMG_GROUP_MAX * (STORE_KEY_LEN + 1) + 1] = "";
	for (int i = 0; i < p.req.group_n; i++) /* a group's: every photo's, in order */
		snprintf(ids + strlen(ids), sizeof ids - strlen(ids), "%s%s", i ? "," : "", p.group_ids[i]);
	snprintf(name, sizeof name, "result|v1|r%d|%s|%s|%s|%s", IMG_RENDER_REVISION, p.req.group_n ? ids : p.image_id,
		 s->engine->model_id, s->engine->precision_key, p.canonical);
	store_key_of(name, strlen(name), key);

	/* a result made before (here or by another instance), or being made by
	 * an identical request */
	for (;;) {
		json_t *meta = index_get(s, key);
		if (meta) {
			metrics_add(s->cache_hit, 1);
			metrics_add(s->index_hit, 1);
			return finish(o, key, meta, 1, json_pack("{s:f}", "total_ms", util_now_ms() - t0));
		}
		if (store_get(s->store, NS_RESULT_META, key, &meta_buf, &mlen) == STORE_OK) {
			meta = json_loadb(meta_buf, mlen, 0, NULL);
			size_t rl;
			if (meta && store_head(s->store, NS_RESULTS, key, &rl) == STORE_OK) {
				cache_index_put(s->cache, key, meta_buf, mlen);
				free(meta_buf);
				metrics_add(s->cache_hit, 1);
				return finish(o, key, meta, 1,
						    json_pack("{s:f}", "total_ms", util_now_ms() - t0));
			}
			free(meta_buf);
			json_decref(meta);
		}
		if ((leading = cache_join(s->cache, key)) != 0)
			break;
	}
	metrics_add(s->cache_miss, 1);

	struct img_load_opts lo = {.max_pixels = s->cfg.max_pixels};
	if (p.req.render.bg == IMG_BG_IMAGE) {
		void *bb;
		size_t bl;
		if (store_get(s->store, NS_IMAGES, p.bg_image_id, &bb, &bl) != STORE_OK) {
			ret = fail_out(o, 404, "not_found", "no background image %s", p.bg_image_id);
			goto out;
		}
		img_status is = img_load_buffer_opts(bb, bl, &lo, &bgimg);
		free(bb);
		if (is != IMG_OK) {
			ret = fail_out(o, 422, "undecodable", "background: %s", img_errmsg());
			goto out;
		}
		p.req.render.bg_image = bgimg;
	}
	double compose_ms = 0, encode_ms = -1; /* encode_ms stays -1 unless it is tried */
	if (p.req.group_n) {
		struct http_group_times gt = {0};
		const char *code = "internal";
		if ((status = http_group_make(s, &p, &lo, &enc, &enclen, &out, &subj, &subjects, &gt, &code, why,
					      sizeof why))) {
			ret = fail_out(o, status, code, "%s", why);
			goto out;
		}
		bt = gt.mask;
		mask_hit = gt.masks_stored == p.req.group_n;
		t_decode = t0 + gt.decode_ms;
		t_mask = t_decode + gt.mask_ms;
		compose_ms = gt.compose_ms;
		encode_ms = gt.encode_ms;
		goto made;
	}
	store_status st = store_get(s->store, NS_IMAGES, p.image_id, &orig, &olen);
	if (st != STORE_OK) {
		ret = st == STORE_NOT_FOUND ? fail_out(o, 404, "not_found", "no image %s", p.image_id)
					    : fail_out(o, 503, "storage_unavailable", "the store cannot be read");
		goto out;
	}
	if (img_load_buffer_opts(orig, olen, &lo, &photo) != IMG_OK) {
		ret = fail_out(o, 422, "undecodable", "%s", img_errmsg());
		goto out;
	}
	t_decode = util_now_ms();
	if ((status = http_get_mask(s, &p, photo, &mask, &bt, &mask_hit, why, sizeof why))) {
		ret = fail_out(o, status,
				       status == 429 ? "overloaded" : status == 504 ? "timeout" : status == 422 ? "undecodable"
							       : status == 503 ? "model_unavailable" : "internal",
				       "%s", why);
		goto out;
	}
	t_mask = util_now_ms();
	img_status ist = pipe_alpha(photo, mask, p.req.side, &p.req, &alpha);
	if (ist == IMG_OK)
		ist = pipe_output(photo, alpha, &p.req, p.req.save.format, &enc, &enclen, &subj, &out, &compose_ms,
				  &encode_ms);
	if (ist != IMG_OK) {
		ret = encode_ms < 0 ? fail_out(o, 500, "internal", "%s", img_errmsg())
				    : fail_out(o, 422, "unencodable", "%s", img_errmsg());
		goto out;
	}
made:
	t_compose = t_mask + compose_ms;
	t_encode = t_compose + encode_ms;
	json_t *meta = json_pack("{s:i,s:i,s:[i,i,i,i],s:f,s:f,s:s}", "width", img_width(out), "height",
				 img_height(out), "bbox", subj.x, subj.y, subj.w, subj.h, "coverage", subj.coverage,
				 "scale", round(subj.scale * 1e4) / 1e4, "content_type", mime_of(p.req.save.format));
	if (meta && subjects) /* a group's: each pet's box */
		json_object_set(meta, "subjects", subjects);
	char *mtext = meta ? json_dumps(meta, JSON_COMPACT) : NULL;
	/* the result before its figures: a figures file always has its result */
	if (!mtext || store_put_buffer(s->store, NS_RESULTS, key, enc, enclen, NULL, NULL) != STORE_OK ||
	    store_put_buffer(s->store, NS_RESULT_META, key, mtext, strlen(mtext), NULL, NULL) != STORE_OK) {
		free(mtext);
		json_decref(meta);
		ret = fail_out(o, 503, "storage_unavailable", "the store cannot be written");
		goto out;
	}
	/* indexed before the lock goes, so instances waiting on it find it */
	cache_index_put(s->cache, key, mtext, strlen(mtext));
	free(mtext);
	if (o->image_answer && p.view_max)
		http_view_put(s, key, out, p.view_max, o->view_fmt);
	const char *size = p.req.side == PIPE_SIDE_PREVIEW ? "preview" : "full";
	metrics_observe(metrics_series(s->stage, (const char *const[]){"decode", size}), (t_decode - t0) / 1e3);
	if (!mask_hit) {
		metrics_observe(metrics_series(s->stage, (const char *const[]){"queue", size}), bt.queue_ms / 1e3);
		metrics_observe(metrics_series(s->stage, (const char *const[]){"infer", size}), bt.infer_ms / 1e3);
	}
	metrics_observe(metrics_series(s->stage, (const char *const[]){"compose", size}), (t_compose - t_mask) / 1e3);
	metrics_observe(metrics_series(s->stage, (const char *const[]){"encode", size}), (t_encode - t_compose) / 1e3);
	ret = finish(o, key, meta, 0,
			   json_pack("{s:f,s:f,s:f,s:i,s:b,s:f,s:f,s:f}", "decode_ms", t_decode - t0, "queue_ms",
				     bt.queue_ms, "infer_ms", bt.infer_ms, "batch_size", bt.batch_size, "mask_cached",
				     mask_hit, "compose_ms", t_compose - t_mask, "encode_ms", t_encode - t_compose,
				     "total_ms", util_now_ms() - t0));
out:
	if (leading > 0)
		cache_done(s->cache, key);
	free(orig);
	free(enc);
	free(mask);
	img_free(photo);
	img_free(alpha);
	img_free(out);
	img_free(bgimg);
	json_decref(subjects);
	return ret;
}


/* Answers a single removal: the JSON, or with an Accept of image/ANY the
 * image: the result itself, or with max a view of it sized for a screen. */
static enum MHD_Result reply_outcome(struct MHD_Connection *c, struct req *r, struct outcome *o)
{
	const char *headers[] = {"Petcut-Result-Id", o->key, "Petcut-Image-Id", o->image_id, NULL};
	char etag[80];
	struct store_body b;

	if (o->status != 200)
		return http_reply_error(c, r, o->status, o->code, "%s", o->msg);
	if (!o->image_answer)
		return http_reply_json(c, r, 200, o->result);
	json_decref(o->result);
	if (o->view_max) /* its format came from Accept: negotiated */
		return http_reply_view(c, r, o->key, o->view_max, o->view_fmt, 1, o->image_id);
	snprintf(etag, sizeof etag, "\"%s\"", o->key);
	if (store_get_body(r->srv->store, NS_RESULTS, o->key, &b) != STORE_OK)
		return http_reply_error(c, r, 503, "storage_unavailable", "the store cannot be read");
	return http_reply_body(c, r, &b, etag, headers);
}

/* A removal whose body is the image itself: its parameters are checked,
 * then the image is stored as an upload would be, then removed as by id. */
static void run_raw(struct http_server *s, struct req *r)
{
	struct remove_params p;
	char why[300];
	char id[STORE_KEY_LEN + 1];
	int status = http_remove_parse(r->json, &p, why, sizeof why);

	if (!status)
		status = store_bytes(s, (const unsigned char *)r->body, r->body_len, id, why, sizeof why);
	if (status) {
		fail_out(&r->out, status,
			 status == 413	 ? "too_large"
			 : status == 415 ? "not_an_image"
			 : status == 422 ? "undecodable"
			 : status == 503 ? "storage_unavailable"
					 : "bad_request",
			 "%s", why);
		return;
	}
	http_remove_run(s, r->json, NULL, NULL, &r->out);
}

static void batch_run(struct http_server *srv, json_t *body, struct outcome *o);

/* Runs on a work thread (http_work_start): the removal or the batch. */
static void remove_work(struct req *r)
{
	if (r->route == ROUTE_REMOVE_BATCH)
		batch_run(r->srv, r->json, &r->out);
	else if (r->raw_image)
		run_raw(r->srv, r);
	else
		http_remove_run(r->srv, r->json, NULL, NULL, &r->out);
}

/* ===== Several at once ===== */

#define MAX_BATCH_ITEMS 8

struct item {
	struct http_server *s;
	json_t *body;
	struct pipe_gate *gate;
	int passed;
	struct outcome o;
	pthread_t thread;
};

static void *item_main(void *arg)
{
	struct item *it = arg;
	http_remove_run(it->s, it->body, it->gate, &it->passed, &it->o);
	pipe_gate_pass(it->gate, &it->passed); /* if it never queued */
	return NULL;
}

/* {"items":[{...}, ...]}: each item as a removal on its own thread, so the
 * batcher sees them together and runs those of one size in one pass. */
static void batch_run(struct http_server *srv, json_t *body, struct outcome *o)
{
	json_t *items = json_object_get(body, "items"), *results;
	struct item it[MAX_BATCH_ITEMS];
	size_t n = json_array_size(items);

	if (!json_is_array(items) || n < 1 || n > MAX_BATCH_ITEMS || json_object_size(body) != 1)
	{
		fail_out(o, 400, "bad_request", "the body is {\"items\": [1 to %d removals]}", MAX_BATCH_ITEMS);
		return;
	}
	struct pipe_gate gate;
	pipe_gate_init(&gate, (int)n);
	memset(it, 0, sizeof it);
	for (size_t i = 0; i < n; i++) {
		it[i].s = srv;
		it[i].gate = &gate;
		it[i].body = json_array_get(items, i);
		if (!json_is_object(it[i].body) || pthread_create(&it[i].thread, NULL, item_main, &it[i])) {
			fail_out(&it[i].o, json_is_object(it[i].body) ? 503 : 400,
				 json_is_object(it[i].body) ? "overloaded" : "bad_request", "an item must be an object");
			it[i].body = NULL;
			pipe_gate_drop(&gate); /* it will not come: do not wait for it */
		}
	}
	results = json_array();
	for (size_t i = 0; i < n; i++) {
		if (it[i].body)
			pthread_join(it[i].thread, NULL);
		if (it[i].o.status == 200)
			json_array_append_new(results, it[i].o.result);
		else
			json_array_append_new(results, json_pack("{s:{s:s,s:s},s:i}", "error", "code", it[i].o.code,
								 "message", it[i].o.msg, "status", it[i].o.status));
	}
	pipe_gate_destroy(&gate);
	o->status = 200;
	o->result = json_pack("{s:o}", "results", results);
}

/* The query's parameters, for a removal whose body is the image. */
struct query {
	json_t *body;
	int status;
	char why[200];
};

static enum MHD_Result query_field(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct query *q = cls;
	if (!q->status)
		q->status = http_remove_query_field(q->body, key, value, q->why, sizeof q->why);
	return MHD_YES;
}

/* What a single removal answers, decided once from Accept before the work:
 * the JSON, or (image/...) the image, whose view's format is known then so
 * that a result made now makes its view too. */
static void answer_kind(struct MHD_Connection *c, struct req *r)
{
	const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept");
	int negotiated;
	r->out.image_answer = accept && !strncasecmp(accept, "image/", 6);
	http_view_format(c, NULL, &r->out.view_fmt, &negotiated);
}

/* Whether a Content-Type says the body is an image (image/..., or bytes). */
static int is_image_type(const char *type)
{
	return type && (!strncasecmp(type, "image/", 6) || !strncasecmp(type, "application/octet-stream", 24));
}

enum MHD_Result http_remove(struct MHD_Connection *c, struct req *r, const char *id, const char *data, size_t *size)
{
	if (*size) { /* gather the body: JSON, or the image itself */
		http_gather_body(r, data, size, r->raw_image ? r->srv->cfg.max_upload_bytes : MAX_BODY);
		return MHD_YES;
	}
	if (!r->began) { /* the first call: headers only */
		r->began = 1;
		r->raw_image = r->route == ROUTE_REMOVE &&
			       is_image_type(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type"));
		return MHD_YES;
	}
	if (r->error_status)
		return http_reply_error(c, r, r->error_status, r->error_status == 413 ? "too_large" : "overloaded",
					"the request body is too large or could not be held");
	if (r->work == WORK_DONE) { /* resumed: the answer is ready */
		struct outcome o = r->out;
		r->out.result = NULL; /* handed to the reply */
		if (r->route == ROUTE_REMOVE_BATCH && o.status == 200)
			return http_reply_json(c, r, 200, o.result);
		return reply_outcome(c, r, &o);
	}
	if (r->work == WORK_RUNNING)
		return MHD_YES;
	if (r->raw_image) { /* the parameters are in the query */
		struct query q = {.body = json_object()};
		if (!r->body_len) {
			json_decref(q.body);
			return http_reply_error(c, r, 400, "bad_request", "the body is the image, and it is empty");
		}
		if (q.body)
			MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, query_field, &q);
		if (!q.body || q.status) {
			json_decref(q.body);
			return q.body ? http_reply_error(c, r, 400, "bad_request", "%s", q.why)
				      : http_reply_error(c, r, 503, "overloaded", "out of memory");
		}
		char id[STORE_KEY_LEN + 1];
		store_key_of(r->body, r->body_len, id);
		json_object_set_new(q.body, "image_id", json_string(id));
		r->json = q.body;
		answer_kind(c, r);
		if (http_work_start(c, r, remove_work))
			return http_reply_error(c, r, 503, "overloaded", "cannot start the work");
		return MHD_YES;
	}
	json_error_t err;
	json_t *body = r->body ? json_loadb(r->body, r->body_len, 0, &err) : NULL;
	if (!body)
		return http_reply_error(c, r, 400, "bad_json", "the body is not JSON%s%s", r->body ? ": " : "",
					r->body ? err.text : "");
	if (!json_is_object(body)) {
		json_decref(body);
		return http_reply_error(c, r, 400, "bad_json", "the body must be a JSON object");
	}
	/* the work may wait on the model: it runs on its own thread while the
	 * connection is suspended, so this thread serves others meanwhile */
	r->json = body;
	if (r->route == ROUTE_REMOVE)
		answer_kind(c, r);
	if (http_work_start(c, r, remove_work))
		return http_reply_error(c, r, 503, "overloaded", "cannot start the work");
	return MHD_YES;
}

/* ===== Precomputation ===== */

#define MAX_PRECOMPUTING 8

struct precompute {
	struct http_server *s;
	json_t *body;
};

static void *precompute_main(void *arg)
{
	struct precompute *pc = arg;
	struct outcome o = {.background = 1}; /* nobody waits for it */
	http_remove_run(pc->s, pc->body, NULL, NULL, &o);
	json_decref(o.result);
	json_decref(pc->body);
	atomic_fetch_sub(&pc->s->precomputing, 1);
	free(pc);
	return NULL;
}

void http_precompute(struct http_server *s, const char *image_id, const char *size)
{
	struct precompute *pc;
	pthread_attr_t attr;
	pthread_t t;

	/* best effort: never more than a few at once, never in the way */
	if (!s->engine || atomic_fetch_add(&s->precomputing, 1) >= MAX_PRECOMPUTING)
		goto skip;
	if (!(pc = calloc(1, sizeof *pc)) ||
	    !(pc->body = json_pack("{s:s,s:s}", "image_id", image_id, "size", size))) {
		free(pc);
		goto skip;
	}
	pc->s = s;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	int bad = pthread_create(&t, &attr, precompute_main, pc);
	pthread_attr_destroy(&attr);
	if (!bad)
		return;
	json_decref(pc->body);
	free(pc);
skip:
	atomic_fetch_sub(&s->precomputing, 1);
}

enum MHD_Result http_get_result(struct MHD_Connection *c, struct req *r, const char *id, const char *data, size_t *size)
{
	const char *max = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "max");
	const char *format = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "format");
	const char *headers[] = {"Petcut-Result-Id", id, NULL};
	enum img_format fmt;
	int negotiated;

	if (!store_key_valid(id))
		return http_reply_error(c, r, 400, "bad_id", "a result id is 64 lowercase hex characters");
	if (!max && !format)
		return http_serve_object(c, r, NS_RESULTS, id, "result", headers);
	/* sized for a screen: ?max=N (default 1024), ?format=webp|avif|png
	 * (default from Accept) */
	char *end = NULL;
	long m = max ? strtol(max, &end, 10) : 1024;
	if ((max && (end == max || *end || m < VIEW_MIN_SIDE || m > VIEW_MAX_SIDE)) ||
	    http_view_format(c, format, &fmt, &negotiated))
		return http_reply_error(c, r, 400, "bad_parameter", "max is %d to %d and format one of webp, avif, png",
					VIEW_MIN_SIDE, VIEW_MAX_SIDE);
	return http_reply_view(c, r, id, (int)m, fmt, negotiated, NULL);
}
