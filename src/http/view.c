/*
 * view.c - results sized for a screen.
 *
 * A view is a stored result at most N pixels on its longer side, in a
 * compact format that keeps the alpha: WebP, or AVIF for a client whose
 * Accept names image/avif (PNG when asked for by name). It is made once from
 * the result and kept in the store under the key of "view|v1|RESULT|N|FMT",
 * so it is as immutable as the result; the full-resolution result is never
 * touched. A page shows a view in its box and downloads the result.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/http_int.h"

#define VIEW_QUALITY 80 /* WebP: lossy colours; the alpha stays lossless (sharp edges) */
#define VIEW_QUALITY_AVIF 50 /* a 683 x 512 cut-out of fur: 53 kB, against 73 kB at AVIF's default 60 */

int http_accepts(const char *accept, const char *type)
{
	size_t tl = strlen(type);

	for (const char *p = accept; p && *p;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		const char *end = p + strcspn(p, ",");
		const char *semi = memchr(p, ';', (size_t)(end - p));
		const char *name_end = semi ? semi : end;
		while (name_end > p && (name_end[-1] == ' ' || name_end[-1] == '\t'))
			name_end--;
		if ((size_t)(name_end - p) == tl && !strncasecmp(p, type, tl)) {
			const char *q = semi ? strstr(semi, "q=") : NULL;
			return !(q && q < end && strtod(q + 2, NULL) <= 0);
		}
		p = end;
	}
	return 0;
}

int http_view_format(struct MHD_Connection *c, const char *name, enum img_format *fmt, int *negotiated)
{
	*negotiated = !name;
	if (name)
		return img_format_parse(name, fmt) || *fmt == IMG_FORMAT_JPEG || *fmt == IMG_FORMAT_ZIP ||
				       !img_format_writable(*fmt)
			       ? -1
			       : 0;
	const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept");
	*fmt = IMG_FORMAT_WEBP;
	if (!accept)
		return 0;
	if (http_accepts(accept, "image/avif") && img_format_writable(IMG_FORMAT_AVIF))
		*fmt = IMG_FORMAT_AVIF;
	else if (!http_accepts(accept, "image/webp") && !http_accepts(accept, "image/*") && !http_accepts(accept, "*/*") &&
		 http_accepts(accept, "image/png"))
		*fmt = IMG_FORMAT_PNG;
	return 0;
}

/* The key of result key's view at max pixels in fmt. */
static void view_key(const char *key, int max, enum img_format fmt, char vkey[STORE_KEY_LEN + 1])
{
	char name[160];
	snprintf(name, sizeof name, "view|v1|%s|%d|%s", key, max, img_format_ext(fmt));
	store_key_of(name, strlen(name), vkey);
}

/* Stores the view vkey of result (an image): 0, or an HTTP status with why set. */
static int put_view(struct http_server *s, const struct img *result, int max, enum img_format fmt,
		    const char *vkey, char *why, size_t wl)
{
	/* lossy colours, the quickest effort: for a screen */
	struct img_save_opts so = {.format = fmt, .quality = fmt == IMG_FORMAT_AVIF ? VIEW_QUALITY_AVIF : VIEW_QUALITY,
				   .lossy = 1, .color = IMG_COLOR_SRGB, .fast = 1};
	struct img *small = NULL;
	void *out = NULL;
	size_t outlen = 0;
	int status = 0;

	if (img_thumbnail(result, max, &small) != IMG_OK || img_encode(small, &so, &out, &outlen) != IMG_OK) {
		snprintf(why, wl, "%s", img_errmsg());
		status = 422;
	} else if (store_put_buffer(s->store, NS_VIEWS, vkey, out, outlen, NULL, NULL) != STORE_OK) {
		snprintf(why, wl, "the store cannot be written");
		status = 503;
	}
	free(out);
	img_free(small);
	return status;
}

void http_view_put(struct http_server *s, const char *key, const struct img *result, int max, enum img_format fmt)
{
	char vkey[STORE_KEY_LEN + 1], why[300];
	view_key(key, max, fmt, vkey);
	put_view(s, result, max, fmt, vkey, why, sizeof why); /* best effort: else made when asked for */
}

/* Makes the view vkey of result key from the stored result: 0, or an HTTP
 * status with why set. */
static int make_view(struct http_server *s, const char *key, int max, enum img_format fmt, const char *vkey,
		     char *why, size_t wl)
{
	struct img_load_opts lo = {.max_pixels = s->cfg.max_pixels};
	struct img *im = NULL;
	void *buf = NULL;
	size_t len = 0;
	int status;

	store_status st = store_get(s->store, NS_RESULTS, key, &buf, &len);
	if (st != STORE_OK) {
		snprintf(why, wl, st == STORE_NOT_FOUND ? "no result %s" : "the store cannot be read", key);
		return st == STORE_NOT_FOUND ? 404 : 503;
	}
	if (img_load_buffer_opts(buf, len, &lo, &im) != IMG_OK) {
		snprintf(why, wl, "%s", img_errmsg());
		status = 422;
	} else {
		status = put_view(s, im, max, fmt, vkey, why, wl);
	}
	free(buf);
	img_free(im);
	return status;
}

enum MHD_Result http_reply_view(struct MHD_Connection *c, struct req *r, const char *key, int max,
				enum img_format fmt, int negotiated, const char *image_id)
{
	struct http_server *s = r->srv;
	char vkey[STORE_KEY_LEN + 1], why[300];
	size_t len;
	int status;
	const char *headers[] = {"Petcut-Result-Id", key, image_id ? "Petcut-Image-Id" : NULL, image_id,
				 NULL, NULL, NULL};

	if (negotiated) /* the next free pair: the answer depends on Accept */
		headers[image_id ? 4 : 2] = "Vary", headers[image_id ? 5 : 3] = "Accept";
	view_key(key, max, fmt, vkey);
	if (store_head(s->store, NS_VIEWS, vkey, &len) != STORE_OK &&
	    (status = make_view(s, key, max, fmt, vkey, why, sizeof why)))
		return http_reply_error(c, r, status,
					status == 404	? "not_found"
					: status == 503 ? "storage_unavailable"
							: "unencodable",
					"%s", why);
	return http_serve_object(c, r, NS_VIEWS, vkey, "result", headers);
}
