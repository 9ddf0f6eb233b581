/*
 * http_int.h - internals shared by the http module's files.
 */
#ifndef PETCUT_HTTP_INT_H
#define PETCUT_HTTP_INT_H

#include <stdatomic.h>
#include <microhttpd.h>
#include <jansson.h>

#include "batcher/batcher.h"
#include "pipeline/pipeline.h"
#include "cache/cache.h"
#include "http/http.h"
#include "img/img.h"
#include "kv/kv.h"
#include "metrics/metrics.h"
#include "store/store.h"

/* Routes, for dispatch and for the metrics' route label. */
enum route {
	ROUTE_NOT_FOUND,
	ROUTE_HEALTHZ,
	ROUTE_READYZ,
	ROUTE_METRICS,
	ROUTE_OPENAPI,
	ROUTE_UPLOAD,
	ROUTE_IMAGE,
	ROUTE_REMOVE,
	ROUTE_REMOVE_BATCH,
	ROUTE_REMOVEBG,
	ROUTE_RESULT,
	ROUTE_TUS,		/* /v1/uploads: tus creation and OPTIONS */
	ROUTE_TUS_UPLOAD,	/* /v1/uploads/{id}: HEAD, PATCH, DELETE */
	ROUTE_CLIENT_METRICS,	/* /v1/client-metrics */
	ROUTE_WEB,		/* the embedded web files (/, /petcut-upload.js) */
	ROUTE_JOBS,		/* /v1/jobs: POST queues one */
	ROUTE_JOB,		/* /v1/jobs/{id} */
	ROUTE_COUNT
};

/* A key's limits, from its line of the key file (quota.c). */
struct http_limits {
	long long rate;	 /* requests per window (0: no rate limit) */
	int window_s;	 /* the rate's window: 1, 60 or 3600 */
	int concurrency; /* requests in progress at once (0: no limit) */
};

struct http_server {
	struct MHD_Daemon *d;
	struct http_config cfg;
	unsigned char (*api_keys)[32]; /* SHA-256 of each accepted key (auth.c) */
	struct http_limits *api_limits; /* each key's limits, in the order of api_keys */
	int n_api_keys;
	struct quota_table *quota;	/* the limits' counters (quota.c) */
	struct store *store;
	struct metrics *metrics;
	struct metrics_family *requests, *latency, *upload_bytes, *rss;
	struct metrics_series *upload_bytes_total, *rss_bytes;
	struct metrics_series *slow_cut; /* bodies cut for trickling */
	/* inference */
	struct pipe_engine *engine;    /* the model and its worker; NULL: no model */
	struct cache *cache;	       /* identical work done once, here and among instances; the index */
	atomic_int precomputing;       /* background precomputations running */
	atomic_int working;	       /* requests whose work runs off their connection */
	atomic_int active;	       /* requests between their headers and their end */
	atomic_int stopping;	       /* draining: /readyz 503, answers close their connection */
	struct metrics_family *inferences, *batch_size, *queue_depth, *cache_requests, *stage;
	struct metrics_series *inference_count, *queue_now, *cache_hit, *cache_miss, *mask_hit, *merged;
	char address[64];
	atomic_ullong next_id;
	struct tus *tus;		/* resumable uploads (tus.c) */
	/* shared with other instances (cfg.redis): NULL when alone */
	struct kv *kv;
	char kv_token[40];		/* this instance's name on the locks it takes */
	struct metrics_family *redis;	/* petcut_redis{what}: up, errors, reconnects */
	struct metrics_series *remote_waits, *index_hit;
	struct metrics_family *mem_reads, *mem_evictions, *mem_size; /* the store's memory tier (server.c) */
	struct jobs *jobs;		/* asynchronous jobs (jobs.c); NULL without kv */
	struct webhook *webhook;	/* job callbacks: secrets, delivery (webhook.c) */
	struct metrics_family *client_uploads, *client_duration, *client_bytes, *client_tries, *client_rejected;
	struct metrics_family *client_wait_preview, *client_wait_full; /* pick to result on screen */
};

/* What one removal came to: 200 with its result, or an error. */
struct outcome {
	int status;
	const char *code;
	char msg[300];
	json_t *result; /* status 200: the answer's JSON (result_id, url, width, height, bbox...) */
	char key[STORE_KEY_LEN + 1];
	char image_id[STORE_KEY_LEN + 1]; /* the photo's */
	int view_max;	/* the request's max: an image answer is a view of this size */
	/* decided from Accept before the work (answer_kind in remove.c): the
	 * answer is the image, and a view of it is in view_fmt, so that a
	 * result made now makes its view from memory */
	int image_answer;
	enum img_format view_fmt;
	int background; /* set by the caller: nobody waits for this removal (a precompute) */
};

/* A route's handler (server.c's table): id is the rest of the URL after a
 * path ending in '/' (NULL for others). A route that reads a body is called
 * for the headers (data NULL, *size 0, once), for each piece of the body
 * (it sets *size to 0), and at its end (*size 0); any other is called once,
 * at the end, its body dropped. */
struct req;
typedef enum MHD_Result (*http_route_fn)(struct MHD_Connection *c, struct req *r, const char *id, const char *data,
					 size_t *size);

/* What an API key's limits decided for one request (quota.c). */
struct http_quota {
	int limited; /* its key has limits: the answer carries the RateLimit fields */
	int key;     /* limited: the key's index in api_keys */
	int known;   /* st holds the counts (not when the shared kv could not decide) */
	int refused; /* 0, or the kv_limit_verdict that refused the request */
	int held;    /* a slot of the key's concurrency is held: 1 here, 2 in the kv */
	struct kv_limit_state st;
	char holder[64]; /* held in the kv: the slot's name there */
};

/* One request's state, from its headers to its completion. */
struct req {
	struct http_server *srv;
	enum route route;
	int unauthorized;    /* no valid API key: its body is dropped, then 401 */
	struct http_quota quota; /* its key's limits: over one, its body is dropped, then 429 */
	const char *origin;  /* the Origin header, or NULL (cors.c) */
	uint64_t rx_bytes;   /* body bytes received so far, for the trickle check */
	double start_ms;
	char id[40];	     /* request id: X-Request-Id or generated */
	const char *method;
	const char *url;
	const char *path_id; /* the route's id: the URL after its path (server.c) */
	int status;	     /* sent status, for logs and metrics */
	/* uploads */
	struct store_put *put;
	unsigned char *head; /* the first bytes, for probing before commit */
	size_t head_len;
	int multipart;
	struct MHD_PostProcessor *pp;
	json_t *uploaded;    /* multipart: the stored files (remove.bg route: each with its "field") */
	char part_field[16]; /* the form field of the file being received */
	json_t *form;	     /* form fields that are not files (remove.bg route) */
	int began;	     /* the body's calls have started */
	char *body;	     /* a JSON request body, or the image of a removal (raw_image) */
	json_t *json;	     /* ... parsed (raw_image: the query's parameters) */
	int raw_image;	     /* a removal whose body is the image itself */
	/* work done off the connection's thread (http_work_start) */
	struct MHD_Connection *conn;
	enum { WORK_NONE, WORK_RUNNING, WORK_DONE } work;
	void (*work_fn)(struct req *r);
	struct outcome out;
	size_t body_len;
	struct tus_patch *tus; /* a tus PATCH being received (tus.c) */
	int error_status;    /* an error met while reading the body */
	const char *error_code;
	char error_msg[200];
};

#define UPLOAD_HEAD_BYTES (4u << 20)

/* The store's namespaces (store.h): uploaded images, their thumbnails,
 * masks, results and their figures (JSON), and results sized for a screen. */
#define NS_IMAGES "img"
#define NS_THUMBS "thumb"
#define NS_MASKS "mask"
#define NS_RESULTS "res"
#define NS_RESULT_META "resmeta"
#define NS_VIEWS "view"

/* The store's memory tier in front of a bucket unless --memory-cache-mb says
 * otherwise, in MB. */
#define MEMORY_CACHE_DEFAULT_MB 128

/* Queues a JSON response (takes ownership of body). */
enum MHD_Result http_reply_json(struct MHD_Connection *c, struct req *r, int status, json_t *body);
/* Queues {"error":{"code":..., "message":...}}. */
enum MHD_Result http_reply_error(struct MHD_Connection *c, struct req *r, int status, const char *code,
				 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* http_reply_error with more headers: name and value pairs, NULL-terminated. */
enum MHD_Result http_reply_error_with(struct MHD_Connection *c, struct req *r, int status,
				      const char *const *headers, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

/* images.c */
enum MHD_Result http_upload(struct MHD_Connection *c, struct req *r, const char *id, const char *data, size_t *size);
enum MHD_Result http_get_image(struct MHD_Connection *c, struct req *r, const char *id, const char *data, size_t *size);
void http_req_cleanup_upload(struct req *r);
/* The post processor's callback of a multipart (or urlencoded) body: files
 * ("file", "image_file", and on the remove.bg route "bg_image_file") are
 * stored as uploads into r->uploaded, other fields kept in r->form
 * (http_form_add) when the route reads them. */
enum MHD_Result http_upload_field(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
				  const char *content_type, const char *transfer_encoding, const char *data,
				  uint64_t off, size_t size);
/* Commits the file being received (if any) into r->uploaded, marked with its
 * form field on the remove.bg route. 0, or -1 with r->error_* set. */
int http_upload_commit_part(struct req *r, const char *expect);

/* remove.c */
/* Sets up the shared kv (cfg.redis) and its metrics; 0, or -1 with errbuf. */
int http_kv_init(struct http_server *s, char *errbuf, size_t errlen);
/* Makes (or finds) the result a remove-background body asks for; gate and
 * passed are for batch requests (NULL otherwise). Returns o->status. */
int http_remove_run(struct http_server *s, json_t *body, struct pipe_gate *gate, int *passed, struct outcome *o);
struct remove_params;

/* The network's mask of photo (p's image_id, at p's side): stored, or made
 * (p->gate and p->passed as for batch requests) and then stored. 0 with
 * *mask (malloc'd) and *hit, or an HTTP status with why. */
int http_get_mask(struct http_server *s, struct remove_params *p, const struct img *photo, float **mask,
		  struct pipe_mask_info *t, int *hit, char *why, size_t wl);

/* group.c: a group portrait (a removal with images) */
struct http_group_times {
	double decode_ms, mask_ms, compose_ms, encode_ms;
	struct pipe_mask_info mask; /* the first photo's (its batch's size) */
	int masks_stored;	    /* masks found stored */
};

/* Makes the group portrait p asks for: its photos from the store, their
 * masks (those not stored in one forward pass), rendered and encoded as
 * p says. 0 with *enc (*enclen bytes), *out (the rendered image), *subj
 * (the whole group's box), *subjects (a JSON list of each pet's box) and
 * *t; or an HTTP status with *code and why. */
int http_group_make(struct http_server *s, struct remove_params *p, const struct img_load_opts *lo, void **enc,
		    size_t *enclen, struct img **out, struct img_subject *subj, json_t **subjects,
		    struct http_group_times *t, const char **code, char *why, size_t wl);

/* removebg.c: the remove.bg-compatible route, once its form is read */
enum MHD_Result http_removebg(struct MHD_Connection *c, struct req *r);
enum MHD_Result http_removebg_reply(struct MHD_Connection *c, struct req *r);
int http_remove_init(struct http_server *s, char *errbuf, size_t errlen);
void http_remove_fini(struct http_server *s);
enum MHD_Result http_remove(struct MHD_Connection *c, struct req *r, const char *id, const char *data, size_t *size);
enum MHD_Result http_get_result(struct MHD_Connection *c, struct req *r, const char *id, const char *data, size_t *size);
/* Starts making what a Preview click for this image will ask for, in the
 * background, so that the click is a cache hit. */
void http_precompute(struct http_server *s, const char *image_id, const char *size);
/* The same when the request asks for it: ?precompute=preview|full, or the
 * header Petcut-Precompute (an upload's, or a tus PATCH's that ends one). */
void http_precompute_if_asked(struct MHD_Connection *c, struct req *r, const char *image_id);
/* A response of a stored object's bytes (from memory or its descriptor),
 * and its type sniffed from them into *mime; b is handed over either way
 * (NULL: no memory). */
struct MHD_Response *http_body_response(struct store_body *b, const char **mime);
/* Answers 200 with a stored object's bytes (b is handed over), its type,
 * the ETag and Cache-Control immutable, plus headers: name and value pairs
 * ending with NULL (NULL for none). */
enum MHD_Result http_reply_body(struct MHD_Connection *c, struct req *r, struct store_body *b, const char *etag,
				const char *const *headers);
/* Serves a stored object by name (ETag, 304 on If-None-Match, 404, 503),
 * with headers as http_reply_body. */
enum MHD_Result http_serve_object(struct MHD_Connection *c, struct req *r, const char *ns, const char *id,
				  const char *what, const char *const *headers);

/* Suspends the connection and runs fn(r) on a new thread, then resumes it:
 * the handler is called again with r->work == WORK_DONE. 0, or -1 if no
 * thread could start (nothing suspended). */
/* Appends a piece of a request's body (data, *size bytes) to r->body (NUL
 * after its r->body_len bytes), unless the request already failed; over
 * limit bytes in all sets error_status 413, out of memory 503. *size
 * becomes 0. */
void http_gather_body(struct req *r, const char *data, size_t *size, size_t limit);
int http_work_start(struct MHD_Connection *c, struct req *r, void (*fn)(struct req *r));

/* The first steps of an image upload, shared with tus.c: begin a put,
 * write bytes, then probe and commit them (returns the image's JSON, or NULL
 * with r->error_status, error_code and error_msg set). */
int http_image_begin(struct req *r);
int http_image_write(struct req *r, const char *data, size_t len);
json_t *http_image_commit(struct req *r, const char *expect);
/* The HTTP status and error code for image bytes img_probe refused: 413
 * too_large (over the pixel limit), 415 not_an_image, 422 undecodable. */
int http_probe_status(img_status st, const char **code);

/* view.c: results sized for a screen */
/* Whether an Accept header (NULL: none) takes type: named in it with a q
 * above 0. */
int http_accepts(const char *accept, const char *type);
/* The format of a view: name ("webp", "avif", "png") when given, else from
 * the request's Accept (AVIF where it names image/avif and this build
 * writes it, else WebP, or PNG for a client that takes only PNG), with
 * *negotiated set. 0, or -1 for a name that is not one of those. */
int http_view_format(struct MHD_Connection *c, const char *name, enum img_format *fmt, int *negotiated);
/* Answers result key at most max pixels on its longer side (never enlarged)
 * in fmt, made from the stored result the first time: ETag, immutable, 304
 * on If-None-Match, Petcut-Result-Id and (when given) Petcut-Image-Id, Vary:
 * Accept when the format was negotiated. */
enum MHD_Result http_reply_view(struct MHD_Connection *c, struct req *r, const char *key, int max,
				enum img_format fmt, int negotiated, const char *image_id);
/* Makes and stores that view from the result in memory (just rendered), so
 * that answering it reads no result back; best effort. */
void http_view_put(struct http_server *s, const char *key, const struct img *result, int max, enum img_format fmt);
/* tus.c: resumable uploads (tus 1.0) under DATA/uploads/ */
int http_tus_init(struct http_server *s, char *errbuf, size_t errlen);
void http_tus_fini(struct http_server *s);
/* Every call of a request on /v1/uploads or /v1/uploads/{id}. */
enum MHD_Result http_tus(struct MHD_Connection *c, struct req *r, const char *id, const char *data, size_t *size);
/* The request ends (answered or cut off): a PATCH not answered keeps what
 * it wrote, unless its checksum could not be verified. */
void http_tus_cleanup(struct req *r);

/* client_metrics.c: POST /v1/client-metrics, the browser's upload reports */
int http_client_metrics_init(struct http_server *s);
enum MHD_Result http_client_metrics(struct MHD_Connection *c, struct req *r, const char *id, const char *data, size_t *size);

/* jobs.c: asynchronous removals on the shared Redis (POST /v1/jobs, GET
 * /v1/jobs/{id}) and, with cfg.job_consumers, the threads that do them */
int http_jobs_init(struct http_server *s, char *errbuf, size_t errlen);
void http_jobs_fini(struct http_server *s);
enum MHD_Result http_jobs(struct MHD_Connection *c, struct req *r, const char *id, const char *data, size_t *size);
enum MHD_Result http_get_job(struct MHD_Connection *c, struct req *r, const char *id, const char *data, size_t *size);

/* webhook.c: job callbacks signed per Standard Webhooks and delivered, with
 * retries, from a queue on the shared Redis */
/* Reads cfg.webhook_secret_file, when given (a bad secret is an error, so
 * that it is told at start-up). 0, or -1 with errbuf. */
int http_webhook_init(struct http_server *s, char *errbuf, size_t errlen);
/* Sets up the callbacks' metrics and starts the delivery thread (in a
 * process with job consumers); jobs is petcut_jobs_total, where deliveries
 * count callback_sent and callback_failed. 0, or -1 with errbuf. */
int http_webhook_start(struct http_server *s, struct metrics_family *jobs, char *errbuf, size_t errlen);
/* Stops the delivery thread (a try in flight is cut short and left due) and
 * frees the secrets. */
void http_webhook_fini(struct http_server *s);
/* Queues the callback of job_id: body to be POSTed to url, due now. KV_OK
 * (also when it is queued already), or the kv's error. */
kv_status http_webhook_queue(struct http_server *s, struct kv *kv, const char *job_id, const char *url,
			     const char *body);
/* Decodes a secret "whsec_" + base64 of 24 to 64 bytes (padded or not) into
 * key (64 bytes at most), its length in *len: 0, or -1 for anything else. */
int http_webhook_secret_parse(const char *text, unsigned char *key, size_t *len);
/* "v1," + base64(HMAC-SHA256(key, "ID.TS.BODY")) into out: 0, or -1. */
#define HTTP_WEBHOOK_SIG_LEN 48 /* "v1," + 44 + NUL */
int http_webhook_sign(const unsigned char *key, size_t keylen, const char *id, long long ts, const char *body,
		      size_t len, char out[HTTP_WEBHOOK_SIG_LEN]);

/* web.c: the embedded web files; url is the request's path */
int http_web_has(const char *url);
enum MHD_Result http_web(struct MHD_Connection *c, struct req *r, const char *id, const char *data, size_t *size);

/* cors.c: the origins that may use the API from a browser (--cors-origins;
 * no credentials). http_cors_init checks the list; http_cors_headers adds
 * the answer's CORS headers for the request's Origin. */
int http_cors_init(struct http_server *s, char *errbuf, size_t errlen);
void http_cors_headers(struct MHD_Response *resp, const struct req *r);
/* An OPTIONS request with Access-Control-Request-Method. */
int http_cors_is_preflight(struct MHD_Connection *c, const char *method);
/* The 204 answer to a preflight from an allowed origin, or NULL (not
 * allowed, or out of memory: the caller tells which by http_cors_allowed). */
struct MHD_Response *http_cors_preflight(const struct req *r);
int http_cors_allowed(const struct req *r);

/* The OpenAPI document (src/http/openapi.json, built in). */
extern const char http_openapi_json[];

/* Retry-After on a 429 or 503 answer (server.c). */
void http_add_retry_after(struct MHD_Response *resp, int status);
/* Sends resp (NULL: MHD_NO) with what every answer carries: X-Request-Id,
 * nosniff, CORS, Retry-After on 429 and 503 (unless resp has one), the
 * RateLimit fields of a key with limits (quota.c), Connection: close while
 * the server drains; records the status and releases resp (reply.c). */
enum MHD_Result http_queue(struct MHD_Connection *c, struct req *r, int status, struct MHD_Response *resp);

/* fetch.c: image_url (and bg) from the hosts of --allow-fetch-host */
/* 1 if petcut never connects to this address (loopback, private, ...). */
int http_addr_blocked(const struct sockaddr *sa);
/* Fetches url into *out (malloc'd); 0, or an HTTP status with why set,
 * naming the URL as what (the field that gave it: "image_url", "bg"). */
int http_fetch(struct http_server *s, const char *url, const char *what, unsigned char **out, size_t *out_len,
	       char *why, size_t wl);

/* auth.c: optional API keys (--api-key-file) */
int http_auth_init(struct http_server *s, char *errbuf, size_t errlen);
void http_auth_fini(struct http_server *s);
/* Whether the request carries one of the keys. */
int http_auth_ok(const struct http_server *s, struct MHD_Connection *c);
/* The index in api_keys of the key the request carries, or -1. */
int http_auth_key(const struct http_server *s, struct MHD_Connection *c);

/* quota.c: each key's limits (a rate, requests in progress) */
/* Parses the settings after a key in the key file ("rate=120/min
 * concurrency=4", or nothing: no limits). 0, or -1 with why. */
int http_limits_parse(const char *text, struct http_limits *out, char *why, size_t wl);
/* One decision in this process, the same as the shared kv's script: a
 * request at now (microseconds) under l, with the key's theoretical arrival
 * time *tat_us (0 at first) and its requests in progress *in_progress, both
 * moved on when it is allowed; the verdict and what is left in *st. */
void http_limit_decide(const struct kv_limit *l, long long *tat_us, int *in_progress, long long now,
		       struct kv_limit_state *st);
/* Sets up the counters (after the kv and the metrics). 0, or -1 with errbuf. */
int http_quota_init(struct http_server *s, char *errbuf, size_t errlen);
void http_quota_fini(struct http_server *s);
/* Counts a request carrying key (its index in api_keys) against the key's
 * limits, into r->quota: 0 allowed (a slot may be held: see
 * http_quota_release), -1 refused (answer with http_quota_refuse). */
int http_quota_take(struct http_server *s, struct req *r, int key);
/* Gives back the slot the request holds, if any; at its completion. */
void http_quota_release(struct req *r);
/* RateLimit-Policy and RateLimit on the answer of a request whose key has
 * limits (http_queue). */
void http_quota_headers(struct MHD_Response *resp, const struct req *r);
/* The 429 of a refused request, with Retry-After. */
enum MHD_Result http_quota_refuse(struct MHD_Connection *c, struct req *r);

#endif
