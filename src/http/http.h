/*
 * http.h - petcut's HTTP service on libmicrohttpd: uploads streamed into the
 * store under their SHA-256, originals and thumbnails served back, health
 * and Prometheus metrics. (Background removal by reference joins it next.)
 *
 * The server runs its own threads (a pool on epoll); http_server_start
 * returns once it listens, http_server_stop stops accepting, lets the
 * requests in flight finish, and frees it.
 */
#ifndef PETCUT_HTTP_H
#define PETCUT_HTTP_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct http_config {
	const char *listen;	 /* "ADDR:PORT" (default 127.0.0.1:8080; port 0 picks one) */
	const char *data_dir;	 /* local state: resumable uploads, temporary files, and the store
				  * itself unless store says otherwise (default ./petcut-data) */
	const char *store;	 /* where images and results live: a store_open spec such as
				  * "s3://BUCKET/PREFIX"; NULL: the data_dir folder */
	const char *redis;	 /* redis://HOST:PORT/DB shared by several instances (result index,
				  * single-flight across them); NULL: this instance works alone */
	int memory_cache_mb;	 /* the store's memory tier of hot objects, in MB (0 off; default -1:
				  * 128 in front of a bucket, none in front of a folder) */
	int redis_lock_ms;	 /* a lock on work in flight expires after this if its holder dies
				  * (default: request_timeout_ms + 10 s) */
	int job_consumers;	 /* threads doing queued jobs (petcut worker; needs redis; default 0) */
	int job_claim_ms;	 /* a job not acknowledged this long is taken by another consumer
				  * (default: request_timeout_ms + 30 s) */
	const char *allow_fetch_hosts; /* "HOST,..." image_url may fetch from (default none: own images only) */
	int allow_fetch_private;       /* those hosts may be at loopback or private addresses (an image
					* host inside the network; default 0: public addresses only) */
	int min_body_rate;	 /* bytes/s a request body must average after its first 10 s (default 8192; 0 off) */
	const char *cors_origins;   /* "ORIGIN,..." pages that may call the API from a browser
				     * (default "*": any; no credentials either way) */
	const char *api_key_file;   /* keys the /v1 routes ask for, one a line, each with optional limits
				     * ("KEY rate=120/min concurrency=4"; default none: open) */
	const char *callback_allow; /* "HOST[:PORT],..." a job's callback_url may name (default none:
				     * no callbacks), so a job cannot make petcut call anywhere */
	const char *webhook_secret_file; /* secrets that sign callbacks, one a line: whsec_ + base64 of
					  * 24 to 64 bytes (default none: unsigned) */
	int webhook_retry_s;	 /* a callback without a 2xx answer is tried again for this long,
				  * then given up (default 86400) */
	int threads;		 /* connection threads (default 4) */
	int max_connections;	 /* default 256 */
	int per_ip_connections;	 /* default 32 */
	int timeout_s;		 /* idle connection timeout (default 30) */
	size_t max_upload_bytes; /* default 50 MB */
	long long max_pixels;	 /* default 50 MP */
	const char *model;	 /* .onnx path; NULL: the fetched "medium" model */
	int max_batch;		 /* requests per forward pass (default 4) */
	int max_delay_ms;	 /* wait for a batch to fill (default 5) */
	int max_queue;		 /* inference requests waiting before 429 (default 32) */
	int request_timeout_ms;	 /* a request's deadline for inference (default 30000) */
	int precision;		 /* nn_precision: bf16 by default (fp32 where the CPU lacks it); int8 needs a calibration */
	double fallback_above;	 /* quality guard: rerun at fp32 above this mask uncertainty (default 0.8; 0 off) */
	int fallback_bf16;	 /* 1: the guard reruns bf16 masks too (default 0: int8's alone) */
	int upload_expire_s;	 /* an unfinished resumable upload idle this long is dropped (default 86400) */
	int drain_s;		 /* on stop, requests in flight get this long to finish (default 20) */
};

struct http_server;

/* Fills cfg with the defaults, then the PETCUT_* environment overrides
 * (PETCUT_LISTEN, PETCUT_DATA, PETCUT_STORE, PETCUT_REDIS, PETCUT_THREADS,
 * PETCUT_MAX_UPLOAD_MB, PETCUT_UPLOAD_EXPIRE_S, PETCUT_REDIS_LOCK_MS,
 * PETCUT_CALLBACK_ALLOW, PETCUT_MEMORY_CACHE_MB, PETCUT_WEBHOOK_SECRET_FILE,
 * PETCUT_WEBHOOK_RETRY_SECONDS). */
void http_config_defaults(struct http_config *cfg);

/* Starts the server. On failure returns -1 with a message in errbuf. */
int http_server_start(const struct http_config *cfg, struct http_server **out, char *errbuf, size_t errlen);

/* The address it listens on, e.g. "127.0.0.1:41234". */
const char *http_server_address(const struct http_server *s);

/* Stops accepting (new connections are refused), lets the requests in
 * flight finish for up to drain_s seconds, closes the rest and frees the
 * server. Returns 0, or 1 when work off a connection was still running at
 * the end: the server is then left as it is, and the process should exit
 * at once (_exit) without freeing what that work uses. */
int http_server_stop(struct http_server *s);

#ifdef __cplusplus
}
#endif
#endif
