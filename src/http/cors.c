/*
 * cors.c - lets pages of any origin use petcut from the browser: a shop's
 * product page on its own domain imports /petcut-upload.js and calls the API
 * on petcut's.
 *
 * Every answer allows any origin, without credentials: petcut uses no
 * cookies or authentication, so a page of another origin can do nothing
 * through a browser that it could not do with curl, and images are named by
 * content hashes nobody can guess. The headers a client must read (tus
 * offsets, the finished upload's image id, Retry-After) are exposed, and a
 * preflight (OPTIONS with Access-Control-Request-Method) is answered for
 * every route.
 */
#include <string.h>

#include "http/http_int.h"

#define CORS_METHODS "GET, HEAD, POST, PATCH, DELETE, OPTIONS"
#define CORS_HEADERS                                                                                   \
	"Content-Type, Content-Digest, Upload-Checksum, Upload-Length, Upload-Offset, Upload-Metadata, " \
	"Upload-Defer-Length, Tus-Resumable, Petcut-Precompute, X-Request-Id, If-None-Match"
#define CORS_EXPOSE                                                                                   \
	"Location, Upload-Offset, Upload-Length, Upload-Expires, Upload-Metadata, Tus-Resumable, "    \
	"Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm, Petcut-Image-Id, "         \
	"Petcut-Image-Url, Retry-After, X-Request-Id, X-Width, X-Height, ETag"

void http_cors_headers(struct MHD_Response *resp)
{
	MHD_add_response_header(resp, "Access-Control-Allow-Origin", "*");
	MHD_add_response_header(resp, "Access-Control-Expose-Headers", CORS_EXPOSE);
}

int http_cors_is_preflight(struct MHD_Connection *c, const char *method)
{
	return !strcmp(method, "OPTIONS") &&
	       MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Access-Control-Request-Method");
}

enum MHD_Result http_cors_preflight(struct MHD_Connection *c, struct req *r)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret;

	if (!resp)
		return MHD_NO;
	http_cors_headers(resp);
	MHD_add_response_header(resp, "Access-Control-Allow-Methods", CORS_METHODS);
	MHD_add_response_header(resp, "Access-Control-Allow-Headers", CORS_HEADERS);
	MHD_add_response_header(resp, "Access-Control-Max-Age", "86400");
	MHD_add_response_header(resp, "X-Request-Id", r->id);
	r->status = 204;
	ret = MHD_queue_response(c, 204, resp);
	MHD_destroy_response(resp);
	return ret;
}
