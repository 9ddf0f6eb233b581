/*
 * reply.c - what every route answers with: the common headers of each
 * response (request id, nosniff, CORS, Retry-After on 429 and 503, the
 * RateLimit fields of a key with limits, close while draining), JSON
 * bodies and errors, stored objects served from their files with ETag and
 * If-None-Match, and work run off the connection's thread. The routes call
 * down to it; it calls no route.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "http/http_int.h"
#include "util/util.h"


/* ===== Responses ===== */

void http_add_retry_after(struct MHD_Response *resp, int status)
{
	/* overloaded or a backend down: every such refusal says when to come
	 * back, so clients wait instead of hammering a store that is down
	 * (unless the answer already says: a key's rate limit knows when) */
	if (MHD_get_response_header(resp, "Retry-After"))
		return;
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
	http_quota_headers(resp, r);
	http_cors_headers(resp, r);
	r->status = status;
	ret = MHD_queue_response(c, (unsigned)status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* Adds headers, name and value pairs ending with NULL (or none). */
static void add_headers(struct MHD_Response *resp, const char *const *headers)
{
	for (; headers && headers[0] && headers[1]; headers += 2)
		MHD_add_response_header(resp, headers[0], headers[1]);
}

/* body as JSON, with headers (pairs, NULL-terminated, or NULL). */
static enum MHD_Result reply_json(struct MHD_Connection *c, struct req *r, int status, json_t *body,
				  const char *const *headers)
{
	char *text = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(6));
	struct MHD_Response *resp;

	json_decref(body);
	if (!text)
		return MHD_NO;
	resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", "application/json");
	add_headers(resp, headers);
	return http_queue(c, r, status, resp);
}

enum MHD_Result http_reply_json(struct MHD_Connection *c, struct req *r, int status, json_t *body)
{
	return reply_json(c, r, status, body, NULL);
}

static enum MHD_Result reply_error(struct MHD_Connection *c, struct req *r, int status, const char *const *headers,
				   const char *code, const char *fmt, va_list ap)
{
	char msg[300];

	vsnprintf(msg, sizeof msg, fmt, ap);
	return reply_json(c, r, status, json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg), headers);
}

enum MHD_Result http_reply_error_with(struct MHD_Connection *c, struct req *r, int status,
				      const char *const *headers, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	enum MHD_Result ret = reply_error(c, r, status, headers, code, fmt, ap);
	va_end(ap);
	return ret;
}

enum MHD_Result http_reply_error(struct MHD_Connection *c, struct req *r, int status, const char *code,
				 const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	enum MHD_Result ret = reply_error(c, r, status, NULL, code, fmt, ap);
	va_end(ap);
	return ret;
}

/* ===== Stored objects ===== */

static const char *sniff_mime(const unsigned char *b, size_t n)
{
	if (n < 12)
		return "application/octet-stream";
	if (b[0] == 0xff && b[1] == 0xd8)
		return "image/jpeg";
	if (!memcmp(b, "\x89PNG", 4))
		return "image/png";
	if (!memcmp(b, "RIFF", 4) && !memcmp(b + 8, "WEBP", 4))
		return "image/webp";
	if (!memcmp(b, "GIF8", 4))
		return "image/gif";
	if (!memcmp(b, "II*\0", 4) || !memcmp(b, "MM\0*", 4))
		return "image/tiff";
	if (!memcmp(b + 4, "ftypavif", 8) || !memcmp(b + 4, "ftypavis", 8))
		return "image/avif";
	if (!memcmp(b + 4, "ftyp", 4))
		return "image/heic";
	if (!memcmp(b, "PK\x03\x04", 4))
		return "application/zip";
	return "application/octet-stream";
}

static void release_ref(void *ref)
{
	store_ref_release(ref);
}

struct MHD_Response *http_body_response(struct store_body *b, const char **mime)
{
	struct MHD_Response *resp;
	unsigned char head[16] = {0};
	size_t n = 0;

	if (b->ref) {
		const unsigned char *bytes = store_ref_bytes(b->ref, &n);
		*mime = sniff_mime(bytes, n);
		/* sent straight from the memory tier; the reference goes when
		 * the response is destroyed */
		resp = MHD_create_response_from_buffer_with_free_callback_cls(n, (void *)bytes, release_ref, b->ref);
		if (!resp)
			store_ref_release(b->ref);
	} else {
		ssize_t got = pread(b->fd, head, sizeof head, 0);
		*mime = sniff_mime(head, got > 0 ? (size_t)got : 0);
		if (!(resp = MHD_create_response_from_fd(b->len, b->fd)))
			close(b->fd);
	}
	b->ref = NULL;
	b->fd = -1;
	return resp;
}

enum MHD_Result http_reply_body(struct MHD_Connection *c, struct req *r, struct store_body *b, const char *etag,
				const char *const *headers)
{
	const char *mime;
	struct MHD_Response *resp = http_body_response(b, &mime);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type", mime);
	MHD_add_response_header(resp, "ETag", etag);
	MHD_add_response_header(resp, "Cache-Control", "public, max-age=31536000, immutable");
	add_headers(resp, headers);
	return http_queue(c, r, 200, resp);
}

enum MHD_Result http_serve_object(struct MHD_Connection *c, struct req *r, const char *ns, const char *id,
				  const char *what, const char *const *headers)
{
	const char *inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-None-Match");
	char etag[80];
	struct store_body b;

	/* objects never change under their names: the name is the ETag */
	snprintf(etag, sizeof etag, "\"%s\"", id);
	if (inm && strstr(inm, id)) {
		struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
		if (resp) {
			MHD_add_response_header(resp, "ETag", etag);
			add_headers(resp, headers);
		}
		return http_queue(c, r, 304, resp);
	}
	store_status st = store_get_body(r->srv->store, ns, id, &b);
	if (st == STORE_NOT_FOUND)
		return http_reply_error(c, r, 404, "not_found", "no %s %s", what, id);
	if (st != STORE_OK)
		return http_reply_error(c, r, 503, "storage_unavailable", "the store cannot be read");
	return http_reply_body(c, r, &b, etag, headers);
}

/* The HTTP status and error code of an image that failed its probe. */
int http_probe_status(img_status st, const char **code)
{
	if (st == IMG_ERR_TOO_LARGE) {
		*code = "too_large";
		return 413;
	}
	if (st == IMG_ERR_NOT_IMAGE || st == IMG_ERR_UNSUPPORTED) {
		*code = "not_an_image";
		return 415;
	}
	*code = "undecodable";
	return 422;
}

/* ===== Request bodies ===== */

void http_gather_body(struct req *r, const char *data, size_t *size, size_t limit)
{
	char *b;

	if (!r->error_status) {
		if (r->body_len + *size > limit) {
			r->error_status = 413;
		} else if (!(b = realloc(r->body, r->body_len + *size + 1))) {
			r->error_status = 503;
		} else {
			r->body = b;
			memcpy(r->body + r->body_len, data, *size);
			r->body_len += *size;
			r->body[r->body_len] = '\0';
		}
	}
	*size = 0;
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
