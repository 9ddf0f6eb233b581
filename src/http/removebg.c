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
	return json_string_value(json_object_get(form, name));
}

static void removebg_work(struct req *r)
{
	http_remove_run(r->srv, r->json, NULL, NULL, &r->out);
}

static int is_true(const char *v)
{
	return v && (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes"));
}

int http_form_add(json_t *form, const char *key, const char *data, size_t size, char *why, size_t wl)
{
	const char *had = json_string_value(json_object_get(form, key));
	size_t hl = had ? strlen(had) : 0;
	char *v;

	if (hl + size > FORM_MAX_FIELD || json_object_size(form) >= FORM_MAX_FIELDS) {
		snprintf(why, wl, "form field '%s' is too large", key);
		return 413;
	}
	if (!(v = malloc(hl + size + 1))) {
		snprintf(why, wl, "out of memory");
		return 503;
	}
	memcpy(v, had ? had : "", hl);
	memcpy(v + hl, data, size);
	v[hl + size] = 0;
	json_object_set_new(form, key, json_string(v));
	free(v);
	return 0;
}

json_t *http_removebg_body(json_t *form, json_t *img, const char **code, char *why, size_t wl)
{
	const char *size = field(form, "size"), *format = field(form, "format"), *bg = field(form, "bg_color");
	const char *b64 = field(form, "image_file_b64"), *url = field(form, "image_url");
	const char *channels = field(form, "channels"), *margin = field(form, "crop_margin");
	json_t *body;
	char color[16];

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
		snprintf(color, sizeof color, "%s%s", hex ? "#" : "", bg);
		json_object_set_new(body, "bg", json_string(color));
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
		char m[32];
		snprintf(m, sizeof m, "%.*s", (int)strcspn(margin, "px"), margin); /* "10px" -> "10", "10%" stays */
		json_object_set_new(body, "margin", json_string(m));
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
	MHD_add_response_header(resp, "X-Request-Id", r->id);
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	http_cors_headers(resp, r);
	json_decref(o.result);
	r->status = 200;
	enum MHD_Result ret = MHD_queue_response(c, 200, resp);
	MHD_destroy_response(resp);
	return ret;
}
