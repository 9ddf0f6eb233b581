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

#define NS_IMAGES "img"
#define NS_MASKS "mask"
#define NS_RESULTS "res"
#define NS_RESULT_META "resmeta"
#define MAX_BODY (64u << 20) /* a base64 image fits */
#define KV_LOCK "petcut:lock:"	      /* + key: the instance doing that work */
#define KV_INDEX "petcut:result:"     /* + result key: the result's figures (JSON) */
#define KV_INDEX_TTL_MS (7 * 86400000L) /* the store keeps results; the index, a week of them */
#define KV_POLL_MIN_MS 10	      /* waits for a lock held elsewhere: 10 ms, doubling... */
#define KV_POLL_MAX_MS 200	      /* ... up to this */

/* ===== Set-up ===== */

static int file_sha256(const char *path, char hex[STORE_KEY_LEN + 1])
{
	unsigned char buf[1 << 16], d[32];
	unsigned int n = 0;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	FILE *f = fopen(path, "rb");
	size_t got;
	int ok = md && f && EVP_DigestInit_ex(md, EVP_sha256(), NULL);

	while (ok && (got = fread(buf, 1, sizeof buf, f)) > 0)
		ok = EVP_DigestUpdate(md, buf, got);
	ok = ok && !ferror(f) && EVP_DigestFinal_ex(md, d, &n);
	if (f)
		fclose(f);
	EVP_MD_CTX_free(md);
	for (int i = 0; ok && i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
	return ok ? 0 : -1;
}

static void scrape_batcher(void *ctx)
{
	struct http_server *s = ctx;
	struct batcher_stats st;
	if (!s->batcher)
		return;
	batcher_get_stats(s->batcher, &st);
	metrics_set(s->queue_now, st.queued);
	metrics_set(metrics_series(s->inferences, (const char *const[]){"batches"}), (double)st.batches);
	metrics_set(metrics_series(s->inferences, (const char *const[]){"requests"}), (double)st.completed);
	metrics_set(metrics_series(s->inferences, (const char *const[]){"rejected_queue_full"}), (double)st.rejected_full);
	metrics_set(metrics_series(s->inferences, (const char *const[]){"expired"}), (double)st.expired);
	metrics_set(metrics_series(s->inferences, (const char *const[]){"failed"}), (double)st.failed);
	metrics_set(metrics_series(s->inferences, (const char *const[]){"failed_passes"}), (double)st.failed_passes);
	metrics_set(metrics_series(s->inferences, (const char *const[]){"rejected_failing"}), (double)st.rejected_failing);
	metrics_set(metrics_series(s->inferences, (const char *const[]){"busy_seconds"}), (double)st.busy_ns / 1e9);
	metrics_set(metrics_series(s->inferences, (const char *const[]){"fp32_fallbacks"}), (double)st.fallbacks);
	metrics_set(s->merged, (double)cache_flights_merged(s->flights));
	for (int n = 1; n <= BATCHER_MAX_BATCH; n++)
		if (st.batch_sizes[n]) {
			char size[12];
			snprintf(size, sizeof size, "%d", n);
			metrics_set(metrics_series(s->batch_size, (const char *const[]){size}), (double)st.batch_sizes[n]);
		}
}

/* The configured precision, or the next one down where it cannot run here
 * (int8 without a calibration: bf16; bf16 without AVX512_BF16: fp32), said
 * on stderr. */
static void set_precision(struct http_server *s, const char *model_file)
{
	char calib[PATH_MAX + 64];
	int p = s->cfg.precision;
	struct stat sb;

	if (p == NN_PRECISION_INT8) {
		if (model_calibration_path(model_file, calib, sizeof calib) == MODEL_OK &&
		    nn_model_load_calibration(s->model, calib) == NN_OK &&
		    nn_model_set_precision(s->model, NN_PRECISION_INT8) == NN_OK && !stat(calib, &sb)) {
			snprintf(s->calib_id, sizeof s->calib_id, "%lld.%lld", (long long)sb.st_size,
				 (long long)sb.st_mtim.tv_sec);
			return;
		}
		fprintf(stderr, "petcut serve: no int8 (%s; run: petcut model calibrate --images DIR): bf16\n",
			*nn_errmsg() ? nn_errmsg() : model_errmsg());
		p = NN_PRECISION_BF16;
	}
	if (p == NN_PRECISION_BF16 && nn_model_set_precision(s->model, NN_PRECISION_BF16) != NN_OK)
		fprintf(stderr, "petcut serve: %s\n", nn_errmsg()); /* and on at fp32 */
}

int http_remove_init(struct http_server *s, char *errbuf, size_t errlen)
{
	const char *out_name = "output";
	char path[4096];
	struct batcher_opts bo = {s->cfg.max_batch, s->cfg.max_delay_ms, s->cfg.max_queue, s->cfg.fallback_above};

	/* gauges read from the batcher when scraped (counters it keeps itself) */
	s->inferences = metrics_family(s->metrics, METRICS_GAUGE, "petcut_inference",
				       "Inference worker totals since start: batches, requests, rejected_queue_full, "
				       "expired, failed, failed_passes (forward passes that failed), rejected_failing "
				       "(refused in the pause after one), busy_seconds.",
				       "what", NULL, 0);
	s->batch_size = metrics_family(s->metrics, METRICS_GAUGE, "petcut_inference_batches_by_size",
				       "Forward passes by the number of requests batched in them.", "size", NULL, 0);
	s->queue_depth = metrics_family(s->metrics, METRICS_GAUGE, "petcut_inference_queue_depth",
					"Inference requests waiting.", NULL, NULL, 0);
	s->cache = metrics_family(s->metrics, METRICS_COUNTER, "petcut_cache_requests_total",
				  "Lookups of cached results and masks.", "kind,outcome", NULL, 0);
	s->stage = metrics_family(s->metrics, METRICS_HISTOGRAM, "petcut_stage_seconds",
				  "Time of each stage of background removal.", "stage,size", metrics_latency_buckets,
				  metrics_latency_buckets_n);
	s->queue_now = metrics_series(s->queue_depth, NULL);
	s->cache_hit = metrics_series(s->cache, (const char *const[]){"result", "hit"});
	s->cache_miss = metrics_series(s->cache, (const char *const[]){"result", "miss"});
	s->mask_hit = metrics_series(s->cache, (const char *const[]){"mask", "hit"});
	/* hits answered from the shared index (also counted as result hits) */
	s->index_hit = s->kv ? metrics_series(s->cache, (const char *const[]){"index", "hit"}) : NULL;
	s->merged = metrics_series(metrics_family(s->metrics, METRICS_GAUGE, "petcut_singleflight_merged",
						  "Requests that waited for identical work in flight instead of doing it.",
						  NULL, NULL, 0),
				   NULL);
	if (!(s->flights = cache_flights_new())) {
		snprintf(errbuf, errlen, "out of memory");
		return -1;
	}
	if (!s->inferences || !s->batch_size || !s->queue_now || !s->cache_hit || !s->stage) {
		snprintf(errbuf, errlen, "cannot set up metrics");
		return -1;
	}
	metrics_on_scrape(s->metrics, scrape_batcher, s);

	if (s->cfg.model)
		snprintf(path, sizeof path, "%s", s->cfg.model);
	else if (model_path("medium", path, sizeof path) != MODEL_OK) {
		/* the service still stores and serves images; /readyz says why not ready */
		fprintf(stderr, "petcut serve: no model (run: petcut model fetch); background removal is off\n");
		return 0;
	}
	if (file_sha256(path, s->model_id) || nn_model_load_file(path, &s->model) != NN_OK ||
	    nn_model_select_outputs(s->model, &out_name, 1) != NN_OK) {
		snprintf(errbuf, errlen, "cannot load the model %s: %s", path, nn_errmsg());
		nn_model_free(s->model);
		s->model = NULL;
		return -1;
	}
	set_precision(s, path);
	/* how masks are computed, for the cache keys (the guard's fp32 reruns
	 * depend on the mask alone, so its threshold names them; an int8
	 * calibration is named by its file's identity) */
	switch (nn_model_precision(s->model)) {
	case NN_PRECISION_INT8:
		snprintf(s->precision_key, sizeof s->precision_key, "int8.%s/guard%.3g", s->calib_id,
			 s->cfg.fallback_above);
		break;
	case NN_PRECISION_BF16:
		snprintf(s->precision_key, sizeof s->precision_key, "bf16/guard%.3g", s->cfg.fallback_above);
		break;
	default:
		snprintf(s->precision_key, sizeof s->precision_key, "fp32");
	}
	/* plans for both network sizes now, so no request pays for them; with
	 * the guard on, its fp32 plans too (an unsure mask is rerun at once,
	 * not after seconds of planning and rereading the weights) */
	bool guard = nn_model_precision(s->model) != NN_PRECISION_FP32 && s->cfg.fallback_above > 0;
	for (int side = 512; side <= 1024; side *= 2) {
		struct nn_tensor t = {.dtype = NN_DTYPE_F32, .rank = 4, .dims = {1, 3, side, side}};
		if (guard)
			nn_model_prepare_at(s->model, NN_PRECISION_FP32, &t, 1);
		nn_model_prepare(s->model, &t, 1);
	}
	if (batcher_create(s->model, &bo, &s->batcher) != BATCHER_OK) {
		snprintf(errbuf, errlen, "cannot start the inference worker");
		nn_model_free(s->model);
		s->model = NULL;
		return -1;
	}
	return 0;
}

void http_remove_fini(struct http_server *s)
{
	/* background precomputations use the batcher: let them end first */
	for (int i = 0; i < 6000 && atomic_load(&s->precomputing) > 0; i++)
		usleep(10000);
	batcher_destroy(s->batcher);
	s->batcher = NULL;
	cache_flights_free(s->flights);
	s->flights = NULL;
	nn_model_free(s->model);
	s->model = NULL;
}

/* ===== Parameters ===== */

static const char *mime_of(enum img_format f)
{
	switch (f) {
	case IMG_FORMAT_WEBP: return "image/webp";
	case IMG_FORMAT_JPEG: return "image/jpeg";
	case IMG_FORMAT_AVIF: return "image/avif";
	default: return "image/png";
	}
}

/* The id in "/v1/images/ID", "http://host/v1/images/ID" or "ID". */
static int id_from_url(const char *url, char id[STORE_KEY_LEN + 1])
{
	const char *p = strstr(url, "/v1/images/");
	if (!p)
		return -1;
	p += 11;
	if (strlen(p) != STORE_KEY_LEN || !store_key_valid(p))
		return -1;
	memcpy(id, p, STORE_KEY_LEN + 1);
	return 0;
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

int http_base64_decode(const char *text, unsigned char **out, size_t *len)
{
	size_t n = strlen(text);
	unsigned char *raw;
	int got, pad;

	if (!strncmp(text, "data:", 5) && strchr(text, ','))
		text = strchr(text, ',') + 1, n = strlen(text);
	if (n % 4 || !n || n > INT_MAX || !(raw = malloc(n / 4 * 3 + 1)))
		return -1;
	got = EVP_DecodeBlock(raw, (const unsigned char *)text, (int)n);
	pad = (n >= 1 && text[n - 1] == '=') + (n >= 2 && text[n - 2] == '=');
	if (got < 0) {
		free(raw);
		return -1;
	}
	*out = raw;
	*len = (size_t)(got - pad);
	return 0;
}

/* Stores the image of a body that brought its own (image_url of another
 * host, where allowed, or image in base64) as an upload would: its id in
 * p->image_id. 0, or an HTTP status with why set. */
static int store_source(struct http_server *s, struct remove_params *p, char *why, size_t wl)
{
	unsigned char *raw;
	size_t len;
	int st;

	if (p->source == REMOVE_SOURCE_ID)
		return 0;
	if (p->source == REMOVE_SOURCE_URL) {
		if ((st = http_fetch(s, p->source_text, &raw, &len, why, wl)))
			return st;
	} else if (http_base64_decode(p->source_text, &raw, &len)) {
		snprintf(why, wl, "image is not valid base64");
		return 400;
	}
	if (len > s->cfg.max_upload_bytes) { /* as an upload of the same bytes would be */
		free(raw);
		snprintf(why, wl, "the image is over %zu MB", s->cfg.max_upload_bytes >> 20);
		return 413;
	}
	st = store_bytes(s, raw, len, p->image_id, why, wl);
	free(raw);
	return st;
}

/* One side of fit ("WxH"): digits, 0 to REMOVE_MAX_FIT, then the character
 * end; *s moves past it. 0, or -1 (nothing wraps: a huge number is refused). */
static int fit_side(const char **s, char end, int *out)
{
	long v = 0;
	const char *p = *s;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++)
		if ((v = v * 10 + (*p - '0')) > REMOVE_MAX_FIT)
			return -1;
	if (*p != end)
		return -1;
	*out = (int)v;
	*s = end ? p + 1 : p;
	return 0;
}

int http_remove_parse(json_t *j, struct remove_params *p, char *why, size_t wl)
{
	const char *id = NULL, *url = NULL, *b64 = NULL, *size = "preview", *format = "png", *bg = NULL;
	const char *effect = NULL, *refine = "none", *color = "keep", *margin = NULL, *fit = NULL;
	int crop = 0, lossy = 0, mask = 0;
	json_int_t outline = 0, quality = 0, max = 0; /* whole: an int would wrap 2^32 + 50 to 50 */
	json_error_t err;

	memset(p, 0, sizeof *p);
	if (json_unpack_ex(j, &err, JSON_STRICT,
			   "{s?s,s?s,s?s,s?s,s?s,s?s,s?s,s?s,s?b,s?s,s?s,s?I,s?I,s?b,s?b,s?s,s?I}", "image_id", &id,
			   "image_url", &url, "image", &b64, "size", &size, "format", &format, "bg", &bg, "effect",
			   &effect, "refine", &refine, "crop", &crop, "margin", &margin, "fit", &fit, "outline",
			   &outline, "quality", &quality, "lossy", &lossy, "mask", &mask, "color", &color, "max", &max)) {
		snprintf(why, wl, "bad field: %s", err.text);
		return 400;
	}
	if (json_object_get(j, "max") && (max < VIEW_MIN_SIDE || max > VIEW_MAX_SIDE)) {
		snprintf(why, wl, "max is %d to %d pixels", VIEW_MIN_SIDE, VIEW_MAX_SIDE);
		return 400;
	}
	p->view_max = (int)max;
	if (!!id + !!url + !!b64 != 1) {
		snprintf(why, wl, "give exactly one of image_id, image_url, image");
		return 400;
	}
	if (id) {
		if (!store_key_valid(id)) {
			snprintf(why, wl, "image_id is 64 lowercase hex characters");
			return 400;
		}
		memcpy(p->image_id, id, STORE_KEY_LEN + 1);
		p->source = REMOVE_SOURCE_ID;
	} else if (url) {
		p->source = id_from_url(url, p->image_id) ? REMOVE_SOURCE_URL : REMOVE_SOURCE_ID;
		if (p->source == REMOVE_SOURCE_URL) /* another host's: fetched if allowed */
			p->source_text = url;
	} else {
		p->source = REMOVE_SOURCE_BASE64;
		p->source_text = b64;
	}
	if (!strcmp(size, "preview"))
		p->side = 512;
	else if (!strcmp(size, "full"))
		p->side = 1024;
	else {
		snprintf(why, wl, "size is preview or full");
		return 400;
	}
	if (img_format_parse(format, &p->save.format)) {
		snprintf(why, wl, "format is png, webp, jpeg or avif");
		return 400;
	}
	p->refine = !strcmp(refine, "guided") ? IMG_REFINE_GUIDED : IMG_REFINE_NONE;
	if (strcmp(refine, "guided") && strcmp(refine, "none")) {
		snprintf(why, wl, "refine is guided or none");
		return 400;
	}
	p->save.color = !strcmp(color, "srgb") ? IMG_COLOR_SRGB : IMG_COLOR_KEEP;
	if (strcmp(color, "srgb") && strcmp(color, "keep")) {
		snprintf(why, wl, "color is keep or srgb");
		return 400;
	}
	if (quality < 0 || quality > 100 || outline < 0 || outline > REMOVE_MAX_OUTLINE) {
		snprintf(why, wl, "quality is 1 to 100, outline 0 to 1000");
		return 400;
	}
	p->save.quality = (int)quality;
	p->save.lossy = lossy;
	p->render.kind = mask ? IMG_CUT_MASK : IMG_CUT_RGBA;
	if (bg) {
		if (!strcmp(bg, "blur"))
			p->render.bg = IMG_BG_BLUR;
		else if (!img_color_parse(bg, p->render.color))
			p->render.bg = IMG_BG_COLOR;
		else if (store_key_valid(bg) || !id_from_url(bg, p->bg_image_id)) {
			if (store_key_valid(bg))
				memcpy(p->bg_image_id, bg, STORE_KEY_LEN + 1);
			p->render.bg = IMG_BG_IMAGE;
		} else {
			snprintf(why, wl, "bg is a colour, 'blur', or the id of an uploaded image");
			return 400;
		}
	}
	if (effect) {
		if (!strcmp(effect, "sticker"))
			p->render.effect = IMG_EFFECT_STICKER;
		else if (!strcmp(effect, "shadow"))
			p->render.effect = IMG_EFFECT_SHADOW;
		else if (!strcmp(effect, "popart"))
			p->render.effect = IMG_EFFECT_POPART;
		else {
			snprintf(why, wl, "effect is sticker, shadow or popart");
			return 400;
		}
	}
	p->render.outline_px = (int)outline;
	p->render.crop = crop;
	if (margin) {
		char *end;
		double m = strtod(margin, &end);
		p->render.margin_percent = *end == '%';
		/* !(in range), so that "nan" is refused too */
		if (end == margin || (*end && strcmp(end, "%")) || !(m >= 0 && m <= REMOVE_MAX_MARGIN)) {
			snprintf(why, wl, "margin is a number of pixels or a percentage (\"10%%\")");
			return 400;
		}
		p->render.margin = m;
	}
	if (fit && (fit_side(&fit, 'x', &p->render.fit_w) || fit_side(&fit, 0, &p->render.fit_h))) {
		snprintf(why, wl, "fit is WxH");
		return 400;
	}
	if (p->save.format == IMG_FORMAT_JPEG && !mask && (p->render.bg == IMG_BG_NONE ||
							   (p->render.bg == IMG_BG_COLOR && p->render.color[3] < 255))) {
		snprintf(why, wl, "JPEG has no transparency: give an opaque bg");
		return 400;
	}
	snprintf(p->canonical, sizeof p->canonical,
		 "side=%d;refine=%d;kind=%d;bg=%d;color=%02x%02x%02x%02x;bgimg=%s;crop=%d;margin=%g%s;fit=%dx%d;"
		 "effect=%d;outline=%d;format=%d;quality=%d;lossy=%d;colorspace=%d",
		 p->side, p->refine, p->render.kind, p->render.bg, p->render.color[0], p->render.color[1],
		 p->render.color[2], p->render.color[3], p->bg_image_id, p->render.crop, p->render.margin,
		 p->render.margin_percent ? "%" : "", p->render.fit_w, p->render.fit_h, p->render.effect,
		 p->render.outline_px, p->save.format, p->save.quality, p->save.lossy, p->save.color);
	return 0;
}

int http_remove_query_field(json_t *body, const char *key, const char *value, char *why, size_t wl)
{
	static const char *const booleans[] = {"crop", "lossy", "mask"};
	static const char *const integers[] = {"outline", "quality", "max"};
	json_t *v = NULL;

	if (!strcmp(key, "image") || !strcmp(key, "image_id") || !strcmp(key, "image_url")) {
		snprintf(why, wl, "the image is the request's body: no %s", key);
		return 400;
	}
	if (json_object_get(body, key)) {
		snprintf(why, wl, "%s is given twice", key);
		return 400;
	}
	if (!value)
		value = "";
	for (size_t i = 0; i < sizeof booleans / sizeof *booleans && !v; i++)
		if (!strcmp(key, booleans[i])) {
			if (strcmp(value, "true") && strcmp(value, "1") && strcmp(value, "false") && strcmp(value, "0")) {
				snprintf(why, wl, "%s is true or false", key);
				return 400;
			}
			v = json_boolean(!strcmp(value, "true") || !strcmp(value, "1"));
		}
	for (size_t i = 0; i < sizeof integers / sizeof *integers && !v; i++)
		if (!strcmp(key, integers[i])) {
			json_int_t n = 0;
			const char *d = value;
			for (; *d >= '0' && *d <= '9'; d++)
				if (n <= 1000000) /* no wrap: a huge number stays huge, for the range check */
					n = n * 10 + (*d - '0');
			if (!*value || *d) {
				snprintf(why, wl, "%s is a whole number", key);
				return 400;
			}
			v = json_integer(n);
		}
	if (!v)
		v = json_string(value);
	if (!v || json_object_set_new(body, key, v)) {
		snprintf(why, wl, "%s is not UTF-8 text", key);
		return 400;
	}
	return 0;
}

/* ===== Gates ===== */

/* The items of one batch request meet here before queueing their tensors,
 * so the batcher gets them together whatever their decoding took. Each
 * item passes once: before queueing, or when it ends without queueing. */
struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int n, arrived;
};

static void gate_pass(struct gate *g, int *passed)
{
	if (!g || *passed)
		return;
	*passed = 1;
	pthread_mutex_lock(&g->lock);
	g->arrived++;
	pthread_cond_broadcast(&g->cond);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5; /* never stuck: a late item just misses the batch */
	while (g->arrived < g->n)
		if (pthread_cond_timedwait(&g->cond, &g->lock, &ts))
			break;
	pthread_mutex_unlock(&g->lock);
}

/* ===== Single-flight, here and across instances ===== */

/*
 * Joins the work on key: among this instance's requests (cache_flight_join)
 * and, with a shared kv, among instances (the lock KV_LOCK key). Returns 1
 * when the caller does the work (then flight_done), 0 once someone else's
 * work on key has ended (the caller looks for the result again), -1 on no
 * memory. The kv being down makes the caller work alone, never wait.
 */
static int flight_join(struct http_server *s, const char *key)
{
	char lock[96];
	long pause = KV_POLL_MIN_MS;
	int lead = cache_flight_join(s->flights, key);

	if (lead <= 0 || !s->kv)
		return lead;
	snprintf(lock, sizeof lock, KV_LOCK "%s", key);
	if (kv_lock(s->kv, lock, s->kv_token, s->cfg.redis_lock_ms) != KV_MISS)
		return 1; /* taken, or no kv: ours */
	/* another instance does it: wait for its lock to go (released or
	 * expired), holding this instance's flight so that its other requests
	 * for key wait here rather than in the kv */
	metrics_add(s->remote_waits, 1);
	double until = http_now_ms() + s->cfg.redis_lock_ms + 1000.0;
	while (http_now_ms() < until && kv_exists(s->kv, lock) == KV_OK) {
		usleep((useconds_t)pause * 1000);
		pause = pause * 2 > KV_POLL_MAX_MS ? KV_POLL_MAX_MS : pause * 2;
	}
	cache_flight_done(s->flights, key);
	return 0;
}

/* Ends the caller's work on key (flight_join returned 1). */
static void flight_done(struct http_server *s, const char *key)
{
	char lock[96];

	if (s->kv) {
		snprintf(lock, sizeof lock, KV_LOCK "%s", key);
		kv_unlock(s->kv, lock, s->kv_token);
	}
	cache_flight_done(s->flights, key);
}

/* The figures of result key from the shared index, or NULL. */
static json_t *index_get(struct http_server *s, const char *key)
{
	char name[96], *text;
	size_t len;
	json_t *meta;

	if (!s->kv)
		return NULL;
	snprintf(name, sizeof name, KV_INDEX "%s", key);
	if (kv_get(s->kv, name, &text, &len) != KV_OK)
		return NULL;
	meta = json_loadb(text, len, 0, NULL);
	free(text);
	if (meta && !json_is_object(meta)) {
		json_decref(meta);
		meta = NULL;
	}
	return meta;
}

/* Records result key's figures in the shared index (best effort: the store
 * has them too). */
static void index_put(struct http_server *s, const char *key, const char *text, size_t len)
{
	char name[96];

	if (!s->kv)
		return;
	snprintf(name, sizeof name, KV_INDEX "%s", key);
	kv_set(s->kv, name, text, len, KV_INDEX_TTL_MS);
}

/* ===== The mask ===== */

static int make_mask(struct http_server *s, struct remove_params *p, const struct img *photo, const char *key,
		     float **mask, struct batcher_timing *t, char *why, size_t wl);

/* The network's mask for the image at side x side: from the store, or from
 * a forward pass (then stored). Returns 0 or an HTTP status. */
static int get_mask(struct http_server *s, struct remove_params *p, const struct img *photo, float **mask,
		    struct batcher_timing *t, int *hit, char *why, size_t wl)
{
	char name[256], key[STORE_KEY_LEN + 1];
	size_t n = (size_t)p->side * p->side, len;
	void *buf;

	/* the precision changes the mask a little: it is part of the name */
	snprintf(name, sizeof name, "mask|v1|%s|%s|%s|%d", p->image_id, s->model_id, s->precision_key,
		 p->side);
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
		if ((lead = flight_join(s, key)) != 0)
			break;
	}
	*hit = 0;
	int status = make_mask(s, p, photo, key, mask, t, why, wl);
	if (lead > 0)
		flight_done(s, key);
	return status;
}

/* Runs the network for the mask and stores it under key. */
static int make_mask(struct http_server *s, struct remove_params *p, const struct img *photo, const char *key,
		     float **mask, struct batcher_timing *t, char *why, size_t wl)
{
	size_t n = (size_t)p->side * p->side;
	float *tensor = malloc(sizeof(float) * 3 * n);
	if (!tensor) {
		snprintf(why, wl, "out of memory");
		return 503;
	}
	if (img_to_tensor(photo, p->side, p->side, tensor) != IMG_OK) {
		free(tensor);
		snprintf(why, wl, "%s", img_errmsg());
		return 422;
	}
	struct batcher_job *job;
	int64_t deadline = s->cfg.request_timeout_ms > 0 ? batcher_now_ms() + s->cfg.request_timeout_ms : 0;
	gate_pass(p->gate, p->passed);
	batcher_status bs = batcher_submit(s->batcher, tensor, 3, p->side, p->side, deadline, &job);
	free(tensor);
	if (bs == BATCHER_FULL) {
		snprintf(why, wl, "the inference queue is full");
		return 429;
	}
	if (bs != BATCHER_OK) {
		snprintf(why, wl, "%s", bs == BATCHER_UNAVAILABLE ? "the inference worker failed; it is tried again shortly"
								 : "the inference worker is not taking requests");
		return 503;
	}
	const float *out;
	int rank;
	int64_t dims[NN_MAX_RANK];
	bs = batcher_wait(job, &out, &rank, dims, t);
	int64_t got = 1;
	for (int i = 0; bs == BATCHER_OK && i < rank; i++)
		got *= dims[i];
	if (bs == BATCHER_OK && (size_t)got == n && (*mask = malloc(sizeof(float) * n)))
		memcpy(*mask, out, sizeof(float) * n);
	else if (bs == BATCHER_OK)
		bs = BATCHER_ERR_NN;
	if (bs != BATCHER_OK)
		snprintf(why, wl, "%s", bs == BATCHER_EXPIRED ? "the request's deadline passed in the queue"
							  : batcher_job_error(job));
	batcher_release(job);
	if (bs == BATCHER_EXPIRED)
		return 504;
	if (bs != BATCHER_OK) /* the model failed: this instance cannot remove backgrounds now */
		return 503;
	store_put_buffer(s->store, NS_MASKS, key, *mask, sizeof(float) * n, NULL, NULL); /* a cache: best effort */
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
int http_remove_run(struct http_server *s, json_t *body, struct gate *gate, int *passed, struct outcome *o)
{
	struct remove_params p;
	char why[300] = "", name[800], key[STORE_KEY_LEN + 1];
	void *orig = NULL, *meta_buf = NULL, *enc = NULL;
	size_t olen, mlen, enclen = 0;
	struct img *photo = NULL, *alpha = NULL, *out = NULL, *bgimg = NULL;
	float *mask = NULL;
	struct batcher_timing bt = {0};
	struct img_subject subj = {0};
	int ret;
	int status, mask_hit = 0, leading = 0;
	double t0 = http_now_ms(), t_decode, t_mask, t_compose, t_encode;

	/* every parameter is checked before an image of the body is stored */
	status = http_remove_parse(body, &p, why, sizeof why);
	if (!status)
		status = store_source(s, &p, why, sizeof why);
	p.gate = gate;
	p.passed = passed;
	if (status)
		return fail_out(o, status,
				status == 413	? "too_large"
				: status == 415 ? "not_an_image"
				: status == 503 ? "storage_unavailable"
						: "bad_request",
				"%s", why);
	if (!s->batcher)
		return fail_out(o, 503, "model_unavailable", "no model is loaded");
	memcpy(o->image_id, p.image_id, sizeof o->image_id);
	o->view_max = p.view_max;
	snprintf(name, sizeof name, "result|v1|%s|%s|%s|%s", p.image_id, s->model_id, s->precision_key,
		 p.canonical);
	store_key_of(name, strlen(name), key);

	/* a result made before (here or by another instance), or being made by
	 * an identical request */
	for (;;) {
		json_t *meta = index_get(s, key);
		if (meta) {
			metrics_add(s->cache_hit, 1);
			metrics_add(s->index_hit, 1);
			return finish(o, key, meta, 1, json_pack("{s:f}", "total_ms", http_now_ms() - t0));
		}
		if (store_get(s->store, NS_RESULT_META, key, &meta_buf, &mlen) == STORE_OK) {
			meta = json_loadb(meta_buf, mlen, 0, NULL);
			size_t rl;
			if (meta && store_head(s->store, NS_RESULTS, key, &rl) == STORE_OK) {
				index_put(s, key, meta_buf, mlen);
				free(meta_buf);
				metrics_add(s->cache_hit, 1);
				return finish(o, key, meta, 1,
						    json_pack("{s:f}", "total_ms", http_now_ms() - t0));
			}
			free(meta_buf);
			json_decref(meta);
		}
		if ((leading = flight_join(s, key)) != 0)
			break;
	}
	metrics_add(s->cache_miss, 1);

	struct img_load_opts lo = {.max_pixels = s->cfg.max_pixels};
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
	if (p.render.bg == IMG_BG_IMAGE) {
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
		p.render.bg_image = bgimg;
	}
	t_decode = http_now_ms();
	if ((status = get_mask(s, &p, photo, &mask, &bt, &mask_hit, why, sizeof why))) {
		ret = fail_out(o, status,
				       status == 429 ? "overloaded" : status == 504 ? "timeout" : status == 422 ? "undecodable"
							       : status == 503 ? "model_unavailable" : "internal",
				       "%s", why);
		goto out;
	}
	t_mask = http_now_ms();
	if (img_mask_to_alpha(photo, mask, p.side, p.side, p.refine, &alpha) != IMG_OK ||
	    img_render(photo, alpha, &p.render, &out, &subj) != IMG_OK) {
		ret = fail_out(o, 500, "internal", "%s", img_errmsg());
		goto out;
	}
	t_compose = http_now_ms();
	if (img_encode(out, &p.save, &enc, &enclen) != IMG_OK) {
		ret = fail_out(o, 422, "unencodable", "%s", img_errmsg());
		goto out;
	}
	t_encode = http_now_ms();
	json_t *meta = json_pack("{s:i,s:i,s:[i,i,i,i],s:f,s:s}", "width", img_width(out), "height", img_height(out),
				 "bbox", subj.x, subj.y, subj.w, subj.h, "coverage", subj.coverage, "content_type",
				 mime_of(p.save.format));
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
	index_put(s, key, mtext, strlen(mtext));
	free(mtext);
	if (o->image_answer && p.view_max)
		http_view_put(s, key, out, p.view_max, o->view_fmt);
	const char *size = p.side == 512 ? "preview" : "full";
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
				     "total_ms", http_now_ms() - t0));
out:
	if (leading > 0)
		flight_done(s, key);
	free(orig);
	free(enc);
	free(mask);
	img_free(photo);
	img_free(alpha);
	img_free(out);
	img_free(bgimg);
	return ret;
}


/* Answers a single removal: the JSON, or with an Accept of image/ANY the
 * image: the result itself, or with max a view of it sized for a screen. */
static enum MHD_Result reply_outcome(struct MHD_Connection *c, struct req *r, struct outcome *o)
{
	const char *headers[] = {"Petcut-Result-Id", o->key, "Petcut-Image-Id", o->image_id, NULL};
	char etag[80];
	size_t len;
	int fd;

	if (o->status != 200)
		return http_reply_error(c, r, o->status, o->code, "%s", o->msg);
	if (!o->image_answer)
		return http_reply_json(c, r, 200, o->result);
	json_decref(o->result);
	if (o->view_max) /* its format came from Accept: negotiated */
		return http_reply_view(c, r, o->key, o->view_max, o->view_fmt, 1, o->image_id);
	snprintf(etag, sizeof etag, "\"%s\"", o->key);
	if (store_get_fd(r->srv->store, NS_RESULTS, o->key, &fd, &len) != STORE_OK)
		return http_reply_error(c, r, 503, "storage_unavailable", "the store cannot be read");
	return http_reply_fd(c, r, fd, len, etag, headers);
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
	struct gate *gate;
	int passed;
	struct outcome o;
	pthread_t thread;
};

static void *item_main(void *arg)
{
	struct item *it = arg;
	http_remove_run(it->s, it->body, it->gate, &it->passed, &it->o);
	gate_pass(it->gate, &it->passed); /* if it never queued */
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
	struct gate gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, (int)n, 0};
	memset(it, 0, sizeof it);
	for (size_t i = 0; i < n; i++) {
		it[i].s = srv;
		it[i].gate = &gate;
		it[i].body = json_array_get(items, i);
		if (!json_is_object(it[i].body) || pthread_create(&it[i].thread, NULL, item_main, &it[i])) {
			fail_out(&it[i].o, json_is_object(it[i].body) ? 503 : 400,
				 json_is_object(it[i].body) ? "overloaded" : "bad_request", "an item must be an object");
			it[i].body = NULL;
			gate_pass(NULL, &it[i].passed);
			pthread_mutex_lock(&gate.lock); /* it will not come: do not wait for it */
			gate.n--;
			pthread_cond_broadcast(&gate.cond);
			pthread_mutex_unlock(&gate.lock);
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
	pthread_mutex_destroy(&gate.lock);
	pthread_cond_destroy(&gate.cond);
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

enum MHD_Result http_remove(struct MHD_Connection *c, struct req *r, const char *data, size_t *size)
{
	if (*size) { /* gather the body: JSON, or the image itself */
		if (!r->error_status) {
			char *b;
			size_t limit = r->raw_image ? r->srv->cfg.max_upload_bytes : MAX_BODY;
			if (r->body_len + *size > limit) {
				r->error_status = 413;
			} else if (!(b = realloc(r->body, r->body_len + *size + 1))) {
				r->error_status = 503;
			} else {
				r->body = b;
				memcpy(r->body + r->body_len, data, *size);
				r->body_len += *size;
			}
		}
		*size = 0;
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
	struct outcome o = {0};
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
	if (!s->batcher || atomic_fetch_add(&s->precomputing, 1) >= MAX_PRECOMPUTING)
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

enum MHD_Result http_get_result(struct MHD_Connection *c, struct req *r, const char *id)
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
