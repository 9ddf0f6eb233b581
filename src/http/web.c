/*
 * web.c - serves the web files built into petcut: the upload module
 * (/petcut-upload.js) a shop embeds, and the demo page at /.
 *
 * The files are compiled in (web_files.h), so a petcut binary serves the
 * script that matches its API. Their ETag is a hash of their bytes; they are
 * revalidated on each use (no-cache), so a new petcut's page is seen at once.
 * Pages of any origin may import the module (cors.c).
 */
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "http/http_int.h"
#include "http/web_files.h"

static const struct http_web_file *web_find(const char *url)
{
	if (!strcmp(url, "/"))
		url = "/index.html";
	for (int i = 0; i < http_web_files_n; i++)
		if (!strcmp(url, http_web_files[i].path))
			return &http_web_files[i];
	return NULL;
}

int http_web_has(const char *url)
{
	return web_find(url) != NULL;
}

enum MHD_Result http_web(struct MHD_Connection *c, struct req *r, const char *id, const char *data, size_t *size)
{
	const char *url = r->url;
	const struct http_web_file *f = web_find(url);
	const char *inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-None-Match");
	unsigned char d[32];
	char etag[24];
	struct MHD_Response *resp;
	int status = 200;

	if (!f)
		return http_reply_error(c, r, 404, "not_found", "no route for %s %s", r->method, url);
	EVP_Digest(f->data, f->len, d, NULL, EVP_sha256(), NULL);
	snprintf(etag, sizeof etag, "\"%02x%02x%02x%02x%02x%02x%02x%02x\"", d[0], d[1], d[2], d[3], d[4], d[5], d[6],
		 d[7]);
	if (inm && strstr(inm, etag)) {
		status = 304;
		resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	} else {
		resp = MHD_create_response_from_buffer(f->len, (void *)f->data, MHD_RESPMEM_PERSISTENT);
	}
	if (!resp)
		return MHD_NO;
	if (status == 200)
		MHD_add_response_header(resp, "Content-Type", f->type);
	MHD_add_response_header(resp, "ETag", etag);
	MHD_add_response_header(resp, "Cache-Control", "no-cache");
	return http_queue(c, r, status, resp); /* with CORS: a shop's page imports the module from here */
}
