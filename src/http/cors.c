/*
 * cors.c - which web pages may use petcut from the browser: a shop's product
 * page on its own domain imports /petcut-upload.js and calls the API on
 * petcut's.
 *
 * --cors-origins lists the origins allowed (scheme://host[:port], comma
 * separated). An answer to a request from one of them names that origin in
 * Access-Control-Allow-Origin (with Vary: Origin); a request from any other
 * origin gets no such header, so the browser keeps the answer from its page,
 * and its preflight is refused with 403. The default, "*", allows any origin:
 * petcut uses no cookies, so a page of another origin can do nothing through
 * a browser that it could not do with curl, and images are named by content
 * hashes nobody can guess. Credentials are never allowed.
 *
 * The headers a client must read (tus offsets, the finished upload's image
 * id, Retry-After) are exposed, and a preflight (OPTIONS with
 * Access-Control-Request-Method) is answered for every route.
 */
#include <stdio.h>
#include <string.h>

#include "http/http_int.h"

#define CORS_METHODS "GET, HEAD, POST, PATCH, DELETE, OPTIONS"
#define CORS_HEADERS                                                                                   \
	"Content-Type, Content-Digest, Upload-Checksum, Upload-Length, Upload-Offset, Upload-Metadata, " \
	"Upload-Defer-Length, Tus-Resumable, Petcut-Precompute, X-Request-Id, If-None-Match, X-Api-Key, " \
	"Authorization, Idempotency-Key"
#define CORS_EXPOSE                                                                                   \
	"Location, Upload-Offset, Upload-Length, Upload-Expires, Upload-Metadata, Tus-Resumable, "    \
	"Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm, Petcut-Image-Id, "         \
	"Petcut-Image-Url, Petcut-Result-Id, Retry-After, X-Request-Id, X-Width, X-Height, "          \
	"X-Foreground-Top, X-Foreground-Left, X-Foreground-Width, X-Foreground-Height, X-Type, ETag, " \
	"RateLimit, RateLimit-Policy"

/* Whether one origin of the list (len bytes at o) is well formed:
 * http(s)://host[:port], no path, no wildcard. */
static int origin_valid(const char *o, size_t len)
{
	size_t scheme = !strncmp(o, "https://", 8) ? 8 : !strncmp(o, "http://", 7) ? 7 : 0;

	if (!scheme || len <= scheme || len > 255)
		return 0;
	for (size_t i = scheme; i < len; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyz0123456789.-:[]", o[i]))
			return 0;
	return 1;
}

int http_cors_init(struct http_server *s, char *errbuf, size_t errlen)
{
	const char *p = s->cfg.cors_origins;

	if (!p || !strcmp(p, "*"))
		return 0;
	for (;;) {
		size_t len = strcspn(p, ",");
		if (!origin_valid(p, len)) {
			snprintf(errbuf, errlen, "--cors-origins: '%.*s' is not an origin (http[s]://host[:port], "
				 "lower case, comma separated; or *)", (int)(len > 80 ? 80 : len), p);
			return -1;
		}
		if (!p[len])
			return 0;
		p += len + 1;
	}
}

int http_cors_allowed(const struct req *r)
{
	const char *p = r->srv->cfg.cors_origins;
	size_t n;

	if (!p || !strcmp(p, "*"))
		return 1;
	if (!r->origin)
		return 0;
	n = strlen(r->origin);
	for (;;) {
		size_t len = strcspn(p, ",");
		if (len == n && !strncasecmp(p, r->origin, n))
			return 1;
		if (!p[len])
			return 0;
		p += len + 1;
	}
}

void http_cors_headers(struct MHD_Response *resp, const struct req *r)
{
	const char *list = r->srv->cfg.cors_origins;

	if (!list || !strcmp(list, "*")) {
		MHD_add_response_header(resp, "Access-Control-Allow-Origin", "*");
	} else {
		MHD_add_response_header(resp, "Vary", "Origin");
		if (!http_cors_allowed(r))
			return;
		MHD_add_response_header(resp, "Access-Control-Allow-Origin", r->origin);
	}
	MHD_add_response_header(resp, "Access-Control-Expose-Headers", CORS_EXPOSE);
}

int http_cors_is_preflight(struct MHD_Connection *c, const char *method)
{
	return !strcmp(method, "OPTIONS") &&
	       MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Access-Control-Request-Method");
}

struct MHD_Response *http_cors_preflight(const struct req *r)
{
	struct MHD_Response *resp;

	if (!http_cors_allowed(r) || !(resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT)))
		return NULL;
	MHD_add_response_header(resp, "Access-Control-Allow-Methods", CORS_METHODS);
	MHD_add_response_header(resp, "Access-Control-Allow-Headers", CORS_HEADERS);
	MHD_add_response_header(resp, "Access-Control-Max-Age", "86400");
	return resp;
}
