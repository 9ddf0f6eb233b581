/*
 * removebg.c - POST /v1.0/removebg, shaped like remove.bg's API so existing
 * clients work unchanged: a form (multipart or urlencoded) with image_file,
 * image_file_b64 or image_url, and size, format, bg_color, crop, crop_margin,
 * channels; the answer is the image itself with X-Width, X-Height and
 * X-Foreground-{Top,Left,Width,Height}; errors are
 * {"errors":[{"title":..., "code":...}]}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "http/http_int.h"
#include "http/parse.h"

static enum MHD_Result reply_errors(struct MHD_Connection *c, struct req *r, int status, const char *code,
				    const char *title)
{
	return http_reply_json(c, r, status,
			       json_pack("{s:[{s:s,s:s}]}", "errors", "title", title, "code", code ? code : "error"));
}

static const char *field(json_t *form, const char *name)
{
	return http_form_value(form, name);
}

static void removebg_work(struct req *r)
{
	http_remove_run(r->srv, r->json, NULL, NULL, &r->out);
}

static int is_true(const char *v)
{
	return v && (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes"));
}

/* Whether text is UTF-8 (as JSON strings must be). */
static int is_utf8(const char *text, size_t len)
{
	json_t *j = json_stringn(text, len);
	json_decref(j);
	return j != NULL;
}

/* The bytes of a value's pieces. */
static size_t pieces_len(json_t *pieces)
{
	size_t n = 0, i;
	json_t *v;
	json_array_foreach(pieces, i, v)
		n += json_string_length(v);
	return n;
}

/*
 * A form's value is kept as the pieces it came in (a JSON array of strings
 * holding the bytes as sent), so gathering a large one costs its length,
 * not its length times its pieces; http_form_value joins them once.
 */
int http_form_add(json_t *form, const char *key, const char *data, uint64_t off, size_t size, char *why,
		  size_t wl)
{
	json_t *pieces = json_object_get(form, key);

	if (!is_utf8(key, strlen(key))) {
		snprintf(why, wl, "a form field's name is not UTF-8 text");
		return 400;
	}
	if (size && memchr(data, 0, size)) {
		snprintf(why, wl, "form field '%s' is not text", key);
		return 400;
	}
	if (!pieces && json_object_size(form) >= FORM_MAX_FIELDS) {
		snprintf(why, wl, "the form has over %d fields", FORM_MAX_FIELDS);
		return 413;
	}
	if (!pieces || !off) { /* a new field, or one named again: the last counts */
		if (!(pieces = json_array()) || json_object_set_new(form, key, pieces))
			goto nomem;
	}
	if (pieces_len(pieces) + size > FORM_MAX_FIELD) {
		snprintf(why, wl, "form field '%s' is too large", key);
		return 413;
	}
	if (json_array_append_new(pieces, json_stringn_nocheck(size ? data : "", size)))
		goto nomem;
	return 0;
nomem:
	snprintf(why, wl, "out of memory");
	return 503;
}

const char *http_form_value(json_t *form, const char *key)
{
	json_t *v = json_object_get(form, key);
	size_t n, at = 0, i;
	json_t *piece;
	char *text;

	if (!json_is_array(v))
		return json_string_value(v);
	if (!(text = malloc((n = pieces_len(v)) + 1)))
		return NULL;
	json_array_foreach(v, i, piece) {
		memcpy(text + at, json_string_value(piece), json_string_length(piece));
		at += json_string_length(piece);
	}
	v = json_stringn_nocheck(text, n);
	free(text);
	if (!v || json_object_set_new(form, key, v))
		return NULL;
	return json_string_value(v);
}

json_t *http_removebg_body(json_t *form, json_t *img, const char **code, char *why, size_t wl)
{
	const char *size = field(form, "size"), *format = field(form, "format"), *bg = field(form, "bg_color");
	const char *b64 = field(form, "image_file_b64"), *url = field(form, "image_url");
	const char *channels = field(form, "channels"), *margin = field(form, "crop_margin");
	const char *texts[] = {"size", "format", "bg_color", "image_file_b64", "image_url", "crop_margin"};
	json_t *body;

	for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
		const char *v = field(form, texts[i]);
		if (v && !is_utf8(v, strlen(v))) {
			*code = "invalid_field";
			snprintf(why, wl, "form field '%s' is not UTF-8 text", texts[i]);
			return NULL;
		}
	}
	if (!!img + !!b64 + !!url != 1) {
		*code = "missing_source";
		snprintf(why, wl, "give exactly one of image_file, image_file_b64, image_url");
		return NULL;
	}
	if (!(body = json_object())) {
		*code = "overloaded";
		snprintf(why, wl, "out of memory");
		return NULL;
	}
	if (img)
		json_object_set(body, "image_id", json_object_get(img, "id"));
	else if (b64)
		json_object_set_new(body, "image", json_string(b64));
	else
		json_object_set_new(body, "image_url", json_string(url));
	/* remove.bg's sizes: the small ones are our preview, the rest full */
	json_object_set_new(body, "size", json_string(size && (!strcmp(size, "preview") || !strcmp(size, "small") ||
							       !strcmp(size, "regular"))
							      ? "preview"
							      : "full"));
	if (bg && *bg) {
		/* remove.bg takes hex without '#', or a colour name */
		int hex = strspn(bg, "0123456789abcdefABCDEF") == strlen(bg) && (strlen(bg) == 3 || strlen(bg) == 6 ||
										   strlen(bg) == 8);
		json_object_set_new(body, "bg", hex ? json_sprintf("#%s", bg) : json_string(bg));
	}
	const char *fmt = format && !strcasecmp(format, "jpg") ? "jpeg" : format && strcasecmp(format, "auto") ? format
						      : bg && *bg ? "jpeg" : "png";
	if (!strcasecmp(fmt, "zip")) {
		json_decref(body);
		*code = "unsupported_format";
		snprintf(why, wl, "format zip is not supported: use png, jpg or webp");
		return NULL;
	}
	json_object_set_new(body, "format", json_string(fmt));
	if (is_true(field(form, "crop")))
		json_object_set_new(body, "crop", json_true());
	if (margin && *margin) {
		size_t n = strlen(margin); /* "10px" -> "10", "10%" stays */
		if (n > 2 && !strcasecmp(margin + n - 2, "px"))
			n -= 2;
		json_object_set_new(body, "margin", json_stringn(margin, n));
	}
	if (channels && !strcasecmp(channels, "alpha"))
		json_object_set_new(body, "mask", json_true());
	return body;
}

enum MHD_Result http_removebg(struct MHD_Connection *c, struct req *r)
{
	const char *code = "bad_request";
	char why[200];
	json_t *body = http_removebg_body(r->form, json_array_get(r->uploaded, 0), &code, why, sizeof why);

	if (!body)
		return reply_errors(c, r, !strcmp(code, "overloaded") ? 503 : 400, code, why);
	/* the removal runs off this thread; removebg_reply answers */
	r->json = body;
	if (http_work_start(c, r, removebg_work))
		return reply_errors(c, r, 503, "overloaded", "cannot start the work");
	return MHD_YES;
}

enum MHD_Result http_removebg_reply(struct MHD_Connection *c, struct req *r)
{
	struct outcome o = r->out;
	char hdr[32];

	r->out.result = NULL; /* ours now */
	if (o.status != 200)
		return reply_errors(c, r, o.status, o.code, o.msg);

	size_t len;
	int fd;
	if (store_get_fd(r->srv->store, "res", o.key, &fd, &len) != STORE_OK) {
		json_decref(o.result);
		return reply_errors(c, r, 503, "storage_unavailable", "the store cannot be read");
	}
	struct MHD_Response *resp = MHD_create_response_from_fd(len, fd);
	if (!resp) {
		close(fd);
		json_decref(o.result);
		return MHD_NO;
	}
	json_t *bb = json_object_get(o.result, "bbox");
	const char *names[] = {"X-Foreground-Left", "X-Foreground-Top", "X-Foreground-Width", "X-Foreground-Height"};
	for (int i = 0; i < 4; i++) {
		snprintf(hdr, sizeof hdr, "%lld", (long long)json_integer_value(json_array_get(bb, (size_t)i)));
		MHD_add_response_header(resp, names[i], hdr);
	}
	snprintf(hdr, sizeof hdr, "%lld", (long long)json_integer_value(json_object_get(o.result, "width")));
	MHD_add_response_header(resp, "X-Width", hdr);
	snprintf(hdr, sizeof hdr, "%lld", (long long)json_integer_value(json_object_get(o.result, "height")));
	MHD_add_response_header(resp, "X-Height", hdr);
	MHD_add_response_header(resp, "X-Type", "other");
	MHD_add_response_header(resp, "X-Credits-Charged", "0");
	MHD_add_response_header(resp, "Content-Type", json_string_value(json_object_get(o.result, "content_type")));
	json_decref(o.result);
	return http_queue(c, r, 200, resp);
}
