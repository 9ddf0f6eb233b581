/*
 * removebg.c - POST /v1.0/removebg, shaped like remove.bg's API so existing
 * clients work unchanged: a form (multipart or urlencoded) with image_file,
 * image_file_b64 or image_url, and remove.bg's options (parse.c's
 * http_removebg_body says which, and refuses the rest by name); the answer
 * is the image itself with X-Width, X-Height and
 * X-Foreground-{Top,Left,Width,Height}, or with Accept: application/json
 * {"data":{"result_b64", "foreground_top", ...}}; errors are
 * {"errors":[{"title":..., "code":...}]}.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "http/http_int.h"
#include "http/parse.h"

static enum MHD_Result reply_errors(struct MHD_Connection *c, struct req *r, int status, const char *code,
				    const char *title)
{
	return http_reply_json(c, r, status,
			       json_pack("{s:[{s:s,s:s}]}", "errors", "title", title, "code", code ? code : "error"));
}

static void removebg_work(struct req *r)
{
	http_remove_run(r->srv, r->json, NULL, NULL, &r->out);
}

enum MHD_Result http_removebg(struct MHD_Connection *c, struct req *r)
{
	const char *code = "bad_request";
	char why[200];
	json_t *body = http_removebg_body(r->form, r->uploaded, &code, why, sizeof why);

	if (!body)
		return reply_errors(c, r, !strcmp(code, "overloaded") ? 503 : 400, code, why);
	/* the removal runs off this thread; removebg_reply answers */
	r->json = body;
	if (http_work_start(c, r, removebg_work))
		return reply_errors(c, r, 503, "overloaded", "cannot start the work");
	return MHD_YES;
}

/* remove.bg's JSON answer: the image in base64 and the foreground's box. */
static enum MHD_Result reply_b64(struct MHD_Connection *c, struct req *r, const struct outcome *o, json_t *bb)
{
	void *bytes;
	size_t len;
	char *b64;

	if (store_get(r->srv->store, NS_RESULTS, o->key, &bytes, &len) != STORE_OK)
		return reply_errors(c, r, 503, "storage_unavailable", "the store cannot be read");
	if (len > (size_t)INT_MAX / 4 * 3 || !(b64 = malloc(len / 3 * 4 + 5))) {
		free(bytes);
		return reply_errors(c, r, 503, "overloaded", "out of memory");
	}
	EVP_EncodeBlock((unsigned char *)b64, bytes, (int)len);
	free(bytes);
	json_t *j = json_pack("{s:{s:s,s:O,s:O,s:O,s:O}}", "data", "result_b64", b64, "foreground_top",
			      json_array_get(bb, 1), "foreground_left", json_array_get(bb, 0), "foreground_width",
			      json_array_get(bb, 2), "foreground_height", json_array_get(bb, 3));
	free(b64);
	if (!j)
		return reply_errors(c, r, 503, "overloaded", "out of memory");
	return http_reply_json(c, r, 200, j);
}

enum MHD_Result http_removebg_reply(struct MHD_Connection *c, struct req *r)
{
	struct outcome o = r->out;
	const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept");
	enum MHD_Result ret;

	r->out.result = NULL; /* ours now */
	if (o.status != 200)
		return reply_errors(c, r, o.status, o.code, o.msg);
	json_t *bb = json_object_get(o.result, "bbox");
	if (http_accepts(accept, "application/json")) {
		ret = reply_b64(c, r, &o, bb);
		json_decref(o.result);
		return ret;
	}

	struct store_body b;
	const char *mime;
	char hdr[32];
	if (store_get_body(r->srv->store, NS_RESULTS, o.key, &b) != STORE_OK) {
		json_decref(o.result);
		return reply_errors(c, r, 503, "storage_unavailable", "the store cannot be read");
	}
	struct MHD_Response *resp = http_body_response(&b, &mime);
	if (!resp) {
		json_decref(o.result);
		return MHD_NO;
	}
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
