/*
 * server.c - the daemon, routing, JSON replies, request logs and metrics.
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "http/http_int.h"
#include "util/util.h"

/* ===== Configuration ===== */

static long env_long(const char *name, long def)
{
	const char *v = getenv(name);
	char *end;
	long n;
	if (!v || !*v)
		return def;
	n = strtol(v, &end, 10);
	return *end || n < 0 ? def : n;
}

void http_config_defaults(struct http_config *cfg)
{
	const char *v;
	memset(cfg, 0, sizeof *cfg);
	cfg->listen = (v = getenv("PETCUT_LISTEN")) && *v ? v : "127.0.0.1:8080";
	cfg->data_dir = (v = getenv("PETCUT_DATA")) && *v ? v : "./petcut-data";
	cfg->store = (v = getenv("PETCUT_STORE")) && *v ? v : NULL;
	cfg->redis = (v = getenv("PETCUT_REDIS")) && *v ? v : NULL;
	cfg->redis_lock_ms = (int)env_long("PETCUT_REDIS_LOCK_MS", 0);
	cfg->memory_cache_mb = (int)env_long("PETCUT_MEMORY_CACHE_MB", -1);
	cfg->callback_allow = (v = getenv("PETCUT_CALLBACK_ALLOW")) && *v ? v : NULL;
	cfg->webhook_secret_file = (v = getenv("PETCUT_WEBHOOK_SECRET_FILE")) && *v ? v : NULL;
	cfg->webhook_retry_s = (int)env_long("PETCUT_WEBHOOK_RETRY_SECONDS", 86400);
	cfg->api_key_file = (v = getenv("PETCUT_API_KEY_FILE")) && *v ? v : NULL;
	cfg->cors_origins = (v = getenv("PETCUT_CORS_ORIGINS")) && *v ? v : "*";
	cfg->allow_fetch_hosts = (v = getenv("PETCUT_ALLOW_FETCH_HOST")) && *v ? v : NULL;
	cfg->min_body_rate = (int)env_long("PETCUT_MIN_BODY_RATE", 8192);
	cfg->threads = (int)env_long("PETCUT_THREADS", 4);
	cfg->max_connections = 256;
	cfg->per_ip_connections = 32;
	cfg->timeout_s = 30;
	cfg->max_upload_bytes = (size_t)env_long("PETCUT_MAX_UPLOAD_MB", 50) << 20;
	cfg->max_pixels = IMG_DEFAULT_MAX_PIXELS;
	cfg->model = (v = getenv("PETCUT_MODEL")) && *v ? v : NULL;
	cfg->max_batch = (int)env_long("PETCUT_MAX_BATCH", 4);
	cfg->max_delay_ms = (int)env_long("PETCUT_MAX_DELAY_MS", 5);
	cfg->max_queue = (int)env_long("PETCUT_MAX_QUEUE", 32);
	cfg->request_timeout_ms = (int)env_long("PETCUT_REQUEST_TIMEOUT_MS", 30000);
	v = getenv("PETCUT_PRECISION");
	cfg->precision = v && !strcmp(v, "fp32")   ? NN_PRECISION_FP32
			 : v && !strcmp(v, "int8") ? NN_PRECISION_INT8
						   : NN_PRECISION_BF16;
	int on = 1;
	if ((v = getenv("PETCUT_FALLBACK")))
		pipe_parse_fallback(v, &cfg->fallback_bf16, &on);
	cfg->fallback_above = on ? PIPE_GUARD_ABOVE : 0;
	cfg->upload_expire_s = (int)env_long("PETCUT_UPLOAD_EXPIRE_S", 86400);
	cfg->drain_s = (int)env_long("PETCUT_DRAIN_SECONDS", 20);
}

/* Seconds a request body may take before its average rate is checked. */
#define BODY_GRACE_S 10.0

/* ===== Replies ===== */

static enum MHD_Result reply_text(struct MHD_Connection *c, struct req *r, int status, const char *type, char *text,
				  size_t len)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", type);
	return http_queue(c, r, status, resp);
}

/* ===== Work off the connection's thread ===== */

/* ===== Metrics ===== */

static void scrape_rss(void *ctx)
{
	struct http_server *s = ctx;
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	metrics_set(s->rss_bytes, (double)rss * (double)sysconf(_SC_PAGESIZE));
}

static int metrics_init(struct http_server *s)
{
	if (!(s->metrics = metrics_new()))
		return -1;
	s->requests = metrics_family(s->metrics, METRICS_COUNTER, "petcut_http_requests_total",
				     "HTTP requests by route, method and status.", "route,method,status", NULL, 0);
	s->latency = metrics_family(s->metrics, METRICS_HISTOGRAM, "petcut_http_request_duration_seconds",
				    "Time from the request's headers to its response, by route.", "route",
				    metrics_latency_buckets, metrics_latency_buckets_n);
	s->upload_bytes = metrics_family(s->metrics, METRICS_COUNTER, "petcut_upload_bytes_total",
					 "Bytes of uploaded images received.", NULL, NULL, 0);
	s->rss = metrics_family(s->metrics, METRICS_GAUGE, "petcut_process_resident_memory_bytes",
				"Resident memory of the process.", NULL, NULL, 0);
	s->upload_bytes_total = metrics_series(s->upload_bytes, NULL);
	s->rss_bytes = metrics_series(s->rss, NULL);
	struct metrics_family *slow = metrics_family(s->metrics, METRICS_COUNTER, "petcut_http_slow_bodies_cut_total",
						     "Connections closed because the request body came in slower "
						     "than --min-body-rate.", NULL, NULL, 0);
	s->slow_cut = slow ? metrics_series(slow, NULL) : NULL;
	struct metrics_family *build = metrics_family(s->metrics, METRICS_GAUGE, "petcut_build_info",
						      "The version and commit of the running petcut (always 1).",
						      "version,commit", NULL, 0);
	struct metrics_series *built = build ? metrics_series(build, (const char *const[]){petcut_version, petcut_commit})
					     : NULL;
	if (!built)
		return -1;
	metrics_set(built, 1);
	if (!s->requests || !s->latency || !s->upload_bytes_total || !s->rss_bytes || !s->slow_cut)
		return -1;
	metrics_on_scrape(s->metrics, scrape_rss, s);
	return 0;
}

/* ===== The store's memory tier ===== */

/* Counters that the store keeps are brought up to its figures. */
static void scrape_counter(struct metrics_series *c, unsigned long long now)
{
	double was = metrics_value(c);
	if ((double)now > was)
		metrics_add(c, (double)now - was);
}

static void scrape_memory(void *ctx)
{
	struct http_server *s = ctx;
	struct store_memory_stats st;

	if (store_memory_stats(s->store, &st))
		return;
	scrape_counter(metrics_series(s->mem_reads, (const char *const[]){"hit"}), st.hits);
	scrape_counter(metrics_series(s->mem_reads, (const char *const[]){"miss"}), st.misses);
	scrape_counter(metrics_series(s->mem_evictions, NULL), st.evictions);
	metrics_set(metrics_series(s->mem_size, (const char *const[]){"bytes"}), (double)st.bytes);
	metrics_set(metrics_series(s->mem_size, (const char *const[]){"max_bytes"}), (double)st.max_bytes);
	metrics_set(metrics_series(s->mem_size, (const char *const[]){"objects"}), (double)st.objects);
}

static int memory_metrics_init(struct http_server *s)
{
	struct store_memory_stats st;

	if (store_memory_stats(s->store, &st))
		return 0; /* no tier: no figures */
	s->mem_reads = metrics_family(s->metrics, METRICS_COUNTER, "petcut_memory_cache_reads_total",
				      "Reads of stored objects by whether the memory tier had them (hit) or the "
				      "store was asked (miss).",
				      "outcome", NULL, 0);
	s->mem_evictions = metrics_family(s->metrics, METRICS_COUNTER, "petcut_memory_cache_evictions_total",
					  "Objects dropped from the memory tier to make room.", NULL, NULL, 0);
	s->mem_size = metrics_family(s->metrics, METRICS_GAUGE, "petcut_memory_cache",
				     "The memory tier now: bytes held (objects plus a fixed cost each), its "
				     "max_bytes, and objects held.",
				     "what", NULL, 0);
	if (!s->mem_reads || !s->mem_evictions || !s->mem_size)
		return -1;
	metrics_on_scrape(s->metrics, scrape_memory, s);
	return 0;
}

/* ===== The shared kv ===== */

static void scrape_kv(void *ctx)
{
	struct http_server *s = ctx;
	struct kv_stats st;

	kv_get_stats(s->kv, &st);
	metrics_set(metrics_series(s->redis, (const char *const[]){"up"}), st.up);
	metrics_set(metrics_series(s->redis, (const char *const[]){"errors"}), (double)st.errors);
	metrics_set(metrics_series(s->redis, (const char *const[]){"reconnects"}), (double)st.reconnects);
}

int http_kv_init(struct http_server *s, char *errbuf, size_t errlen)
{
	unsigned char rnd[8];
	FILE *f;

	if (!s->cfg.redis)
		return 0;
	if (kv_open(s->cfg.redis, 500, 1000, &s->kv, errbuf, errlen) != KV_OK)
		return -1;
	if (s->cfg.redis_lock_ms <= 0)
		s->cfg.redis_lock_ms = s->cfg.request_timeout_ms + 10000;
	/* a name for this instance's locks: random, so that two instances on
	 * one host never take each other's */
	if (!(f = fopen("/dev/urandom", "rb")) || fread(rnd, 1, sizeof rnd, f) != sizeof rnd) {
		if (f)
			fclose(f);
		snprintf(errbuf, errlen, "no random bytes for the instance's name");
		return -1;
	}
	fclose(f);
	snprintf(s->kv_token, sizeof s->kv_token, "%d-%02x%02x%02x%02x%02x%02x%02x%02x", (int)getpid(), rnd[0], rnd[1],
		 rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
	s->redis = metrics_family(s->metrics, METRICS_GAUGE, "petcut_redis",
				  "The shared Redis: up (the last command reached it), errors (commands that failed, "
				  "the server down included) and reconnects since start.",
				  "what", NULL, 0);
	s->remote_waits = metrics_series(
		metrics_family(s->metrics, METRICS_COUNTER, "petcut_singleflight_remote_waits_total",
			       "Requests that waited for identical work in flight on another instance.", NULL, NULL, 0),
		NULL);
	if (!s->redis || !s->remote_waits) {
		snprintf(errbuf, errlen, "cannot set up metrics");
		return -1;
	}
	metrics_on_scrape(s->metrics, scrape_kv, s);
	if (kv_ping(s->kv) != KV_OK)
		fprintf(stderr, "petcut serve: %s does not answer; working alone until it does\n", kv_address(s->kv));
	return 0;
}

/* ===== Dispatch ===== */

static enum MHD_Result on_healthz(struct MHD_Connection *c, struct req *r, const char *id, const char *data,
				  size_t *size)
{
	return http_reply_json(c, r, 200,
			       json_pack("{s:s, s:s, s:s}", "status", "ok", "version", petcut_version, "commit", petcut_commit));
}

static enum MHD_Result on_readyz(struct MHD_Connection *c, struct req *r, const char *id, const char *data,
				 size_t *size)
{
	struct http_server *s = r->srv;
	char probe[STORE_KEY_LEN + 1];
	struct batcher_stats bs;

	if (atomic_load(&s->stopping))
		return http_reply_error(c, r, 503, "stopping", "the server is stopping");
	/* ready when the store takes a write */
	store_status st = store_put_buffer(s->store, "health", NULL, "ok", 2, probe, NULL);
	if (st == STORE_NO_SPACE)
		return http_reply_error(c, r, 503, "insufficient_storage", "the store is out of space");
	if (st != STORE_OK)
		return http_reply_error(c, r, 503, "storage_unavailable", "the store cannot be written");
	if (!s->engine)
		return http_reply_error(c, r, 503, "model_unavailable", "no model is loaded");
	batcher_get_stats(s->engine->batcher, &bs);
	if (bs.failing)
		return http_reply_error(c, r, 503, "model_unavailable",
					"the inference worker failed; it is tried again shortly");
	/* without the shared kv the instance still answers everything, alone:
	 * degraded, not unready (a balancer keeps sending) */
	if (s->kv && kv_ping(s->kv) != KV_OK)
		return http_reply_json(c, r, 200, json_pack("{s:s,s:s}", "status", "degraded", "redis", "unavailable"));
	return http_reply_json(c, r, 200, json_pack("{s:s,s:s*}", "status", "ready", "redis", s->kv ? "ok" : NULL));
}

static enum MHD_Result on_metrics(struct MHD_Connection *c, struct req *r, const char *id, const char *data,
				  size_t *size)
{
	size_t len;
	char *text = metrics_render(r->srv->metrics, &len);

	return text ? reply_text(c, r, 200, "text/plain; version=0.0.4", text, len) : MHD_NO;
}

static enum MHD_Result on_openapi(struct MHD_Connection *c, struct req *r, const char *id, const char *data,
				  size_t *size)
{
	char *doc = strdup(http_openapi_json);

	return doc ? reply_text(c, r, 200, "application/json", doc, strlen(doc)) : MHD_NO;
}

enum { M_GET = 1, M_POST = 2, M_ANY = 4 }; /* M_GET: GET and HEAD; M_ANY: the handler answers every method */
enum { AUTH_OPEN, AUTH_WRITES, AUTH_ALL };  /* what needs an API key when the server has keys */

/* Every route, by enum route: its path (ending in '/': the rest of the URL
 * is the id), its name in metrics, the methods it takes, whether it reads
 * a body, what needs an API key, and its handler. Results and images are
 * open to GET and HEAD: their ids are capability URLs (auth.c). */
static const struct {
	const char *path;
	const char *name;
	int methods, body, auth;
	http_route_fn fn;
} routes[ROUTE_COUNT] = {
	[ROUTE_NOT_FOUND] = {NULL, "other", M_ANY, 0, AUTH_OPEN, NULL},
	[ROUTE_HEALTHZ] = {"/healthz", "/healthz", M_GET, 0, AUTH_OPEN, on_healthz},
	[ROUTE_READYZ] = {"/readyz", "/readyz", M_GET, 0, AUTH_OPEN, on_readyz},
	[ROUTE_METRICS] = {"/metrics", "/metrics", M_GET, 0, AUTH_OPEN, on_metrics},
	[ROUTE_OPENAPI] = {"/openapi.json", "/openapi.json", M_GET, 0, AUTH_OPEN, on_openapi},
	[ROUTE_UPLOAD] = {"/v1/images", "/v1/images", M_POST, 1, AUTH_ALL, http_upload},
	[ROUTE_IMAGE] = {"/v1/images/", "/v1/images/{id}", M_GET, 0, AUTH_WRITES, http_get_image},
	[ROUTE_REMOVE] = {"/v1/remove-background", "/v1/remove-background", M_POST, 1, AUTH_ALL, http_remove},
	[ROUTE_REMOVE_BATCH] = {"/v1/remove-background/batch", "/v1/remove-background/batch", M_POST, 1, AUTH_ALL,
				http_remove},
	[ROUTE_REMOVEBG] = {"/v1.0/removebg", "/v1.0/removebg", M_POST, 1, AUTH_ALL, http_upload},
	[ROUTE_RESULT] = {"/v1/results/", "/v1/results/{id}", M_GET, 0, AUTH_WRITES, http_get_result},
	[ROUTE_TUS] = {"/v1/uploads", "/v1/uploads", M_ANY, 1, AUTH_ALL, http_tus},
	[ROUTE_TUS_UPLOAD] = {"/v1/uploads/", "/v1/uploads/{id}", M_ANY, 1, AUTH_ALL, http_tus},
	[ROUTE_CLIENT_METRICS] = {"/v1/client-metrics", "/v1/client-metrics", M_POST, 1, AUTH_ALL, http_client_metrics},
	[ROUTE_WEB] = {NULL, "web", M_GET, 0, AUTH_OPEN, http_web}, /* the files http_web_has */
	[ROUTE_JOBS] = {"/v1/jobs", "/v1/jobs", M_POST, 1, AUTH_ALL, http_jobs},
	[ROUTE_JOB] = {"/v1/jobs/", "/v1/jobs/{id}", M_GET, 0, AUTH_ALL, http_get_job},
};

static enum route route_of(const char *url, const char **id)
{
	*id = NULL;
	for (int i = 0; i < ROUTE_COUNT; i++) {
		const char *path = routes[i].path;
		size_t n = path ? strlen(path) : 0;
		if (!n)
			continue;
		int prefix = path[n - 1] == '/';
		if (prefix ? !strncmp(url, path, n) : !strcmp(url, path)) {
			*id = prefix ? url + n : NULL;
			return (enum route)i;
		}
	}
	return http_web_has(url) ? ROUTE_WEB : ROUTE_NOT_FOUND;
}

static int method_allowed(enum route rt, const char *method)
{
	int m = routes[rt].methods;
	return (m & M_ANY) || ((m & M_GET) && (!strcmp(method, "GET") || !strcmp(method, "HEAD"))) ||
	       ((m & M_POST) && !strcmp(method, "POST"));
}

static int auth_needed(const struct http_server *s, enum route rt, const char *method)
{
	int a = routes[rt].auth;
	return s->n_api_keys && (a == AUTH_ALL || (a == AUTH_WRITES && strcmp(method, "GET") && strcmp(method, "HEAD")));
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
			      const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct http_server *s = cls;
	struct req *r = *con_cls;

	(void)version;
	if (!r) { /* headers: set the request up, read the body in later calls */
		if (!(r = calloc(1, sizeof *r)))
			return MHD_NO;
		r->srv = s;
		atomic_fetch_add(&s->active, 1);
		r->start_ms = util_now_ms();
		r->method = method;
		r->url = url;
		r->route = route_of(url, &r->path_id);
		r->origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
		const char *rid = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-Id");
		if (rid && *rid && strlen(rid) < sizeof r->id && strspn(rid, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == strlen(rid))
			snprintf(r->id, sizeof r->id, "%s", rid);
		else
			snprintf(r->id, sizeof r->id, "%016llx", (unsigned long long)atomic_fetch_add(&s->next_id, 1));
		*con_cls = r;
		if (http_cors_is_preflight(c, method))
			return MHD_YES;
		if (auth_needed(s, r->route, method)) {
			int key = http_auth_key(s, c);
			if (key < 0) {
				r->unauthorized = 1;
				return MHD_YES; /* any body is read and dropped */
			}
			/* counted against the key's limits now, released in
			 * completed() however the request ends */
			if (http_quota_take(s, r, key))
				return MHD_YES; /* any body is read and dropped, then 429 */
		}
		if (!routes[r->route].body || !method_allowed(r->route, method))
			return MHD_YES; /* any body is read and dropped */
	}
	/* a body trickling in slower than min_body_rate on average, once past
	 * its first seconds, holds a connection and a thread's buffers: cut */
	if (*upload_data_size) {
		double secs = (util_now_ms() - r->start_ms) / 1000.0;
		r->rx_bytes += *upload_data_size;
		if (s->cfg.min_body_rate > 0 && secs > BODY_GRACE_S && r->rx_bytes < s->cfg.min_body_rate * secs) {
			metrics_add(s->slow_cut, 1);
			return MHD_NO; /* closes the connection */
		}
	}
	if (http_cors_is_preflight(c, method)) {
		if (*upload_data_size) {
			*upload_data_size = 0;
			return MHD_YES;
		}
		if (!http_cors_allowed(r))
			return http_reply_error(c, r, 403, "origin_not_allowed",
						"this origin may not use the API from a browser (--cors-origins)");
		return http_queue(c, r, 204, http_cors_preflight(r));
	}
	if (r->unauthorized) {
		if (*upload_data_size) {
			*upload_data_size = 0;
			return MHD_YES;
		}
		return http_reply_error(c, r, 401, "unauthorized",
					"a valid API key is needed (X-Api-Key or Authorization: Bearer)");
	}
	if (r->quota.refused) {
		if (*upload_data_size) {
			*upload_data_size = 0;
			return MHD_YES;
		}
		return http_quota_refuse(c, r);
	}
	if (routes[r->route].body && method_allowed(r->route, method))
		return routes[r->route].fn(c, r, r->path_id, upload_data, upload_data_size);
	if (*upload_data_size) { /* a body nobody asked for */
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (!method_allowed(r->route, method))
		return http_reply_error(c, r, 405, "method_not_allowed", "%s is not allowed on %s", method, url);
	if (!routes[r->route].fn)
		return http_reply_error(c, r, 404, "not_found", "no route for %s %s", method, url);
	return routes[r->route].fn(c, r, r->path_id, NULL, upload_data_size);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct http_server *s = cls;
	struct req *r = *con_cls;
	char status[8];

	(void)c;
	if (!r)
		return;
	double ms = util_now_ms() - r->start_ms;
	snprintf(status, sizeof status, "%d", r->status ? r->status : 499);
	metrics_add(metrics_series(s->requests, (const char *const[]){routes[r->route].name, r->method, status}), 1);
	metrics_observe(metrics_series(s->latency, (const char *const[]){routes[r->route].name}), ms / 1e3);
	/* one JSON line per request; the URL is escaped by jansson */
	json_t *log = json_pack("{s:s,s:s,s:s,s:i,s:f,s:b}", "request_id", r->id, "method", r->method, "path", r->url,
				"status", r->status, "ms", ms, "completed", toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
	if (log) {
		char *line = json_dumps(log, JSON_COMPACT);
		if (line)
			fprintf(stderr, "%s\n", line);
		free(line);
		json_decref(log);
	}
	http_quota_release(r);
	http_tus_cleanup(r);
	http_req_cleanup_upload(r);
	free(r);
	*con_cls = NULL;
	atomic_fetch_sub(&s->active, 1);
}

/* ===== Start and stop ===== */

static int parse_listen(const char *spec, struct sockaddr_in *sa)
{
	char host[64];
	const char *colon = strrchr(spec, ':');
	char *end;
	long port;

	if (!colon || (size_t)(colon - spec) >= sizeof host)
		return -1;
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = 0;
	port = strtol(colon + 1, &end, 10);
	if (*end || port < 0 || port > 65535)
		return -1;
	memset(sa, 0, sizeof *sa);
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	if (!*host || !strcmp(host, "localhost"))
		strcpy(host, "127.0.0.1");
	return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

/* mkdir -p: 0, or -1 with errno */
static int mkdir_p(const char *dir)
{
	char path[4096];

	if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *p = path + 1;; p++) {
		if (*p && *p != '/')
			continue;
		char c = *p;
		*p = 0;
		if (mkdir(path, 0777) && errno != EEXIST)
			return -1;
		if (!(*p = c))
			return 0;
	}
}

int http_server_start(const struct http_config *cfg, struct http_server **out, char *errbuf, size_t errlen)
{
	struct http_server *s = calloc(1, sizeof *s);
	struct sockaddr_in sa;
	store_status st;

	*out = NULL;
	if (!s) {
		snprintf(errbuf, errlen, "out of memory");
		return -1;
	}
	s->cfg = *cfg;
	if (parse_listen(cfg->listen, &sa)) {
		snprintf(errbuf, errlen, "bad --listen '%s' (expected IPv4ADDR:PORT)", cfg->listen);
		goto fail;
	}
	if (img_init() != IMG_OK) {
		snprintf(errbuf, errlen, "%s", img_errmsg());
		goto fail;
	}
	img_need_heif(); /* now, not beside the first HEIC's neighbours */
	/* the data folder holds local state even when the store is elsewhere:
	 * partial uploads, and in tmp/ the bytes a remote store's puts spool */
	char tmpdir[4096];
	snprintf(tmpdir, sizeof tmpdir, "%s/tmp", cfg->data_dir);
	if (mkdir_p(tmpdir)) {
		snprintf(errbuf, errlen, "cannot create %s: %s", tmpdir, strerror(errno));
		goto fail;
	}
	if ((st = store_open(cfg->store ? cfg->store : cfg->data_dir, &s->store)) != STORE_OK) {
		snprintf(errbuf, errlen, "%s", store_errmsg());
		goto fail;
	}
	/* a folder's hot files are in the kernel's page cache already; a
	 * bucket's are a network round trip away */
	int mem_mb = cfg->memory_cache_mb >= 0 ? cfg->memory_cache_mb
		     : strcmp(store_backend_name(s->store), "fs") ? MEMORY_CACHE_DEFAULT_MB : 0;
	if ((st = store_set_memory(s->store, (size_t)mem_mb << 20)) != STORE_OK) {
		snprintf(errbuf, errlen, "%s", store_errmsg());
		goto fail;
	}
	if (http_cors_init(s, errbuf, errlen) || http_auth_init(s, errbuf, errlen) ||
	    http_webhook_init(s, errbuf, errlen))
		goto fail;
	/* before any connection thread can fetch an image_url */
	if (cfg->allow_fetch_hosts && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(errbuf, errlen, "cannot start libcurl");
		goto fail;
	}
	if (metrics_init(s) || http_client_metrics_init(s) || memory_metrics_init(s)) {
		snprintf(errbuf, errlen, "cannot set up metrics");
		goto fail;
	}
	if (http_kv_init(s, errbuf, errlen) || http_quota_init(s, errbuf, errlen) || http_tus_init(s, errbuf, errlen) ||
	    http_remove_init(s, errbuf, errlen))
		goto fail;
	if (s->cfg.job_consumers > 0 && !s->kv) {
		snprintf(errbuf, errlen, "a job worker needs --redis");
		goto fail;
	}
	if (s->cfg.job_claim_ms <= 0)
		s->cfg.job_claim_ms = s->cfg.request_timeout_ms + 30000;
	if (http_jobs_init(s, errbuf, errlen))
		goto fail;
	/* ITC: so that quiescing (on stop) works in every thread mode */
	s->d = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG | MHD_USE_ITC, 0, NULL, NULL, handle, s,
				MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
				MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(cfg->threads > 0 ? cfg->threads : 1),
				MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
				MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->per_ip_connections,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->timeout_s,
				MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(128 << 10),
				MHD_OPTION_NOTIFY_COMPLETED, completed, s, MHD_OPTION_END);
	if (!s->d) {
		snprintf(errbuf, errlen, "cannot listen on %s: %s", cfg->listen, strerror(errno));
		goto fail;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	char host[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &sa.sin_addr, host, sizeof host);
	snprintf(s->address, sizeof s->address, "%s:%u", host, info ? info->port : ntohs(sa.sin_port));
	*out = s;
	return 0;
fail:
	http_jobs_fini(s);
	http_webhook_fini(s);
	http_remove_fini(s);
	http_tus_fini(s);
	http_quota_fini(s);
	kv_close(s->kv);
	store_close(s->store);
	metrics_free(s->metrics);
	http_auth_fini(s);
	free(s);
	return -1;
}

const char *http_server_address(const struct http_server *s)
{
	return s->address;
}

int http_server_stop(struct http_server *s)
{
	if (!s)
		return 0;
	/* stop accepting: the listening socket is shut down at once, so new
	 * connections are refused (not left in its backlog); it is closed
	 * once the daemon is stopped, as MHD asks */
	atomic_store(&s->stopping, 1);
	MHD_socket ls = MHD_quiesce_daemon(s->d);
	if (ls != MHD_INVALID_SOCKET)
		shutdown(ls, SHUT_RDWR);
	/* requests in flight finish, for up to drain_s; idle kept-alive
	 * connections do not hold the drain (stopping the daemon closes them) */
	double until = util_now_ms() + 1000.0 * s->cfg.drain_s;
	while ((atomic_load(&s->active) || atomic_load(&s->working)) && util_now_ms() < until)
		usleep(20000);
	int left = atomic_load(&s->active);
	if (left)
		fprintf(stderr, "petcut serve: %d request%s still in flight after %d s: closed\n", left,
			left == 1 ? "" : "s", s->cfg.drain_s);
	/* work still running owns its request: the daemon must not close the
	 * suspended connection under it, nor the model be freed */
	if (atomic_load(&s->working)) {
		fprintf(stderr, "petcut serve: work still running after %d s: exiting without cleanup\n",
			s->cfg.drain_s);
		return 1;
	}
	MHD_stop_daemon(s->d);
	if (ls != MHD_INVALID_SOCKET)
		close(ls);
	http_jobs_fini(s);
	http_webhook_fini(s);
	http_remove_fini(s);
	http_tus_fini(s);
	http_quota_fini(s);
	kv_close(s->kv);
	store_close(s->store);
	metrics_free(s->metrics);
	http_auth_fini(s);
	free(s);
	return 0;
}
