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

static const char *const route_names[ROUTE_COUNT] = {
	[ROUTE_NOT_FOUND] = "other", [ROUTE_HEALTHZ] = "/healthz",	 [ROUTE_READYZ] = "/readyz",
	[ROUTE_METRICS] = "/metrics", [ROUTE_OPENAPI] = "/openapi.json", [ROUTE_UPLOAD] = "/v1/images", [ROUTE_IMAGE] = "/v1/images/{id}",
	[ROUTE_REMOVE] = "/v1/remove-background", [ROUTE_REMOVE_BATCH] = "/v1/remove-background/batch",
	[ROUTE_RESULT] = "/v1/results/{id}", [ROUTE_REMOVEBG] = "/v1.0/removebg",
	[ROUTE_TUS] = "/v1/uploads", [ROUTE_TUS_UPLOAD] = "/v1/uploads/{id}",
	[ROUTE_CLIENT_METRICS] = "/v1/client-metrics", [ROUTE_WEB] = "web",
	[ROUTE_JOBS] = "/v1/jobs", [ROUTE_JOB] = "/v1/jobs/{id}",
};

double http_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

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
	cfg->callback_allow = (v = getenv("PETCUT_CALLBACK_ALLOW")) && *v ? v : NULL;
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
	cfg->fallback_above = (v = getenv("PETCUT_FALLBACK")) && !strcmp(v, "none") ? 0 : 0.9;
	cfg->upload_expire_s = (int)env_long("PETCUT_UPLOAD_EXPIRE_S", 86400);
	cfg->drain_s = (int)env_long("PETCUT_DRAIN_SECONDS", 20);
}

/* Seconds a request body may take before its average rate is checked. */
#define BODY_GRACE_S 10.0

/* ===== Replies ===== */

void http_add_retry_after(struct MHD_Response *resp, int status)
{
	/* overloaded or a backend down: every such refusal says when to come
	 * back, so clients wait instead of hammering a store that is down */
	if (status == 429)
		MHD_add_response_header(resp, "Retry-After", "1");
	else if (status == 503)
		MHD_add_response_header(resp, "Retry-After", "2");
}

enum MHD_Result http_queue(struct MHD_Connection *c, struct req *r, int status, struct MHD_Response *resp)
{
	enum MHD_Result ret;

	if (!resp)
		return MHD_NO;
	/* draining: the client's next request goes to another instance */
	if (atomic_load(&r->srv->stopping))
		MHD_add_response_header(resp, "Connection", "close");
	MHD_add_response_header(resp, "X-Request-Id", r->id);
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	http_add_retry_after(resp, status);
	http_cors_headers(resp, r);
	r->status = status;
	ret = MHD_queue_response(c, (unsigned)status, resp);
	MHD_destroy_response(resp);
	return ret;
}

enum MHD_Result http_reply_json(struct MHD_Connection *c, struct req *r, int status, json_t *body)
{
	char *text = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(6));
	struct MHD_Response *resp;

	json_decref(body);
	if (!text)
		return MHD_NO;
	size_t len = strlen(text);
	text[len] = 0;
	resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", "application/json");
	return http_queue(c, r, status, resp);
}

enum MHD_Result http_reply_error(struct MHD_Connection *c, struct req *r, int status, const char *code,
				 const char *fmt, ...)
{
	char msg[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return http_reply_json(c, r, status,
			       json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg));
}

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

static void *work_main(void *arg)
{
	struct req *r = arg;
	struct http_server *s = r->srv;

	r->work_fn(r);
	r->work = WORK_DONE;
	/* from here on MHD owns r again and may answer and free it */
	MHD_resume_connection(r->conn);
	atomic_fetch_sub(&s->working, 1);
	return NULL;
}

int http_work_start(struct MHD_Connection *c, struct req *r, void (*fn)(struct req *r))
{
	pthread_attr_t attr;
	pthread_t t;
	int bad;

	r->conn = c;
	r->work_fn = fn;
	r->work = WORK_RUNNING;
	atomic_fetch_add(&r->srv->working, 1);
	MHD_suspend_connection(c);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	bad = pthread_create(&t, &attr, work_main, r);
	pthread_attr_destroy(&attr);
	if (bad) {
		MHD_resume_connection(c);
		r->work = WORK_NONE;
		atomic_fetch_sub(&r->srv->working, 1);
		return -1;
	}
	return 0;
}

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
	if (!s->requests || !s->latency || !s->upload_bytes_total || !s->rss_bytes || !s->slow_cut)
		return -1;
	metrics_on_scrape(s->metrics, scrape_rss, s);
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

/* The routes by path: an entry ending in '/' takes the rest of the URL as
 * the id (images, results, uploads, jobs). */
static const struct {
	const char *path;
	enum route route;
} routes[] = {
	{"/healthz", ROUTE_HEALTHZ},
	{"/readyz", ROUTE_READYZ},
	{"/metrics", ROUTE_METRICS},
	{"/openapi.json", ROUTE_OPENAPI},
	{"/v1/images", ROUTE_UPLOAD},
	{"/v1/images/", ROUTE_IMAGE},
	{"/v1/remove-background", ROUTE_REMOVE},
	{"/v1/remove-background/batch", ROUTE_REMOVE_BATCH},
	{"/v1.0/removebg", ROUTE_REMOVEBG},
	{"/v1/results/", ROUTE_RESULT},
	{"/v1/uploads", ROUTE_TUS},
	{"/v1/uploads/", ROUTE_TUS_UPLOAD},
	{"/v1/client-metrics", ROUTE_CLIENT_METRICS},
	{"/v1/jobs", ROUTE_JOBS},
	{"/v1/jobs/", ROUTE_JOB},
};

static enum route route_of(const char *method, const char *url, const char **id)
{
	(void)method;
	*id = NULL;
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		size_t n = strlen(routes[i].path);
		int prefix = routes[i].path[n - 1] == '/';
		if (prefix ? !strncmp(url, routes[i].path, n) : !strcmp(url, routes[i].path)) {
			*id = prefix ? url + n : NULL;
			return routes[i].route;
		}
	}
	return http_web_has(url) ? ROUTE_WEB : ROUTE_NOT_FOUND;
}

static int method_allowed(enum route rt, const char *method)
{
	switch (rt) {
	case ROUTE_UPLOAD:
	case ROUTE_REMOVE:
	case ROUTE_REMOVE_BATCH:
	case ROUTE_REMOVEBG:
	case ROUTE_JOBS:
	case ROUTE_CLIENT_METRICS: return !strcmp(method, "POST");
	case ROUTE_NOT_FOUND:
	case ROUTE_TUS:
	case ROUTE_TUS_UPLOAD: return 1; /* tus.c answers every method itself */
	default: return !strcmp(method, "GET") || !strcmp(method, "HEAD");
	}
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
			      const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct http_server *s = cls;
	struct req *r = *con_cls;
	const char *id;

	(void)version;
	if (!r) { /* headers: set the request up, read the body in later calls */
		if (!(r = calloc(1, sizeof *r)))
			return MHD_NO;
		r->srv = s;
		atomic_fetch_add(&s->active, 1);
		r->start_ms = http_now_ms();
		r->method = method;
		r->url = url;
		r->route = route_of(method, url, &id);
		r->origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
		const char *rid = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-Id");
		if (rid && *rid && strlen(rid) < sizeof r->id && strspn(rid, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == strlen(rid))
			snprintf(r->id, sizeof r->id, "%s", rid);
		else
			snprintf(r->id, sizeof r->id, "%016llx", (unsigned long long)atomic_fetch_add(&s->next_id, 1));
		*con_cls = r;
		if (http_cors_is_preflight(c, method))
			return MHD_YES;
		if (http_auth_needed(s, r->route, method) && !http_auth_ok(s, c)) {
			r->unauthorized = 1;
			return MHD_YES; /* any body is read and dropped */
		}
		if (r->route == ROUTE_TUS || r->route == ROUTE_TUS_UPLOAD)
			return http_tus(c, r, id, upload_data, upload_data_size);
		if ((r->route != ROUTE_UPLOAD && r->route != ROUTE_REMOVE && r->route != ROUTE_REMOVE_BATCH &&
		     r->route != ROUTE_REMOVEBG && r->route != ROUTE_CLIENT_METRICS && r->route != ROUTE_JOBS) ||
		    !method_allowed(r->route, method))
			return MHD_YES; /* any body is read and dropped */
	}
	/* a body trickling in slower than min_body_rate on average, once past
	 * its first seconds, holds a connection and a thread's buffers: cut */
	if (*upload_data_size) {
		double secs = (http_now_ms() - r->start_ms) / 1000.0;
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
		return http_cors_preflight(c, r);
	}
	if (r->unauthorized) {
		if (*upload_data_size) {
			*upload_data_size = 0;
			return MHD_YES;
		}
		return http_reply_error(c, r, 401, "unauthorized",
					"a valid API key is needed (X-Api-Key or Authorization: Bearer)");
	}
	if ((r->route == ROUTE_UPLOAD || r->route == ROUTE_REMOVEBG) && !strcmp(method, "POST"))
		return http_upload(c, r, upload_data, upload_data_size);
	if ((r->route == ROUTE_REMOVE || r->route == ROUTE_REMOVE_BATCH) && !strcmp(method, "POST"))
		return http_remove(c, r, upload_data, upload_data_size);
	if (r->route == ROUTE_TUS || r->route == ROUTE_TUS_UPLOAD) {
		route_of(method, url, &id);
		return http_tus(c, r, id, upload_data, upload_data_size);
	}
	if (r->route == ROUTE_CLIENT_METRICS && !strcmp(method, "POST"))
		return http_client_metrics(c, r, upload_data, upload_data_size);
	if (r->route == ROUTE_JOBS && !strcmp(method, "POST"))
		return http_jobs(c, r, upload_data, upload_data_size);
	if (*upload_data_size) { /* a body nobody asked for */
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (!method_allowed(r->route, method))
		return http_reply_error(c, r, 405, "method_not_allowed", "%s is not allowed on %s", method, url);
	route_of(method, url, &id);
	switch (r->route) {
	case ROUTE_HEALTHZ:
		return http_reply_json(c, r, 200, json_pack("{s:s}", "status", "ok"));
	case ROUTE_READYZ: {
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
		if (!s->batcher)
			return http_reply_error(c, r, 503, "model_unavailable", "no model is loaded");
		batcher_get_stats(s->batcher, &bs);
		if (bs.failing)
			return http_reply_error(c, r, 503, "model_unavailable",
						"the inference worker failed; it is tried again shortly");
		/* without the shared kv the instance still answers everything,
		 * alone: degraded, not unready (a balancer keeps sending) */
		if (s->kv && kv_ping(s->kv) != KV_OK)
			return http_reply_json(c, r, 200, json_pack("{s:s,s:s}", "status", "degraded", "redis",
								     "unavailable"));
		return http_reply_json(c, r, 200, json_pack("{s:s,s:s*}", "status", "ready", "redis",
							     s->kv ? "ok" : NULL));
	}
	case ROUTE_METRICS: {
		size_t len;
		char *text = metrics_render(s->metrics, &len);
		if (!text)
			return MHD_NO;
		return reply_text(c, r, 200, "text/plain; version=0.0.4", text, len);
	}
	case ROUTE_OPENAPI: {
		char *doc = strdup(http_openapi_json);
		return doc ? reply_text(c, r, 200, "application/json", doc, strlen(doc)) : MHD_NO;
	}
	case ROUTE_IMAGE:
		return http_get_image(c, r, id);
	case ROUTE_RESULT:
		return http_get_result(c, r, id);
	case ROUTE_JOB:
		return http_get_job(c, r, id);
	case ROUTE_WEB:
		return http_web(c, r, url);
	default:
		return http_reply_error(c, r, 404, "not_found", "no route for %s %s", method, url);
	}
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct http_server *s = cls;
	struct req *r = *con_cls;
	char status[8];

	(void)c;
	if (!r)
		return;
	double ms = http_now_ms() - r->start_ms;
	snprintf(status, sizeof status, "%d", r->status ? r->status : 499);
	metrics_add(metrics_series(s->requests, (const char *const[]){route_names[r->route], r->method, status}), 1);
	metrics_observe(metrics_series(s->latency, (const char *const[]){route_names[r->route]}), ms / 1e3);
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
	if (http_cors_init(s, errbuf, errlen) || http_auth_init(s, errbuf, errlen))
		goto fail;
	/* before any connection thread can fetch an image_url */
	if (cfg->allow_fetch_hosts && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(errbuf, errlen, "cannot start libcurl");
		goto fail;
	}
	if (metrics_init(s) || http_client_metrics_init(s)) {
		snprintf(errbuf, errlen, "cannot set up metrics");
		goto fail;
	}
	if (http_kv_init(s, errbuf, errlen) || http_tus_init(s, errbuf, errlen) || http_remove_init(s, errbuf, errlen))
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
	http_remove_fini(s);
	http_tus_fini(s);
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
	double until = http_now_ms() + 1000.0 * s->cfg.drain_s;
	while ((atomic_load(&s->active) || atomic_load(&s->working)) && http_now_ms() < until)
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
	http_remove_fini(s);
	http_tus_fini(s);
	kv_close(s->kv);
	store_close(s->store);
	metrics_free(s->metrics);
	http_auth_fini(s);
	free(s);
	return 0;
}
