/*
 * images.c - POST /v1/images (raw bytes or multipart/form-data, streamed into
 * the store while hashed) and GET /v1/images/{id} (the original, or a
 * web-displayable thumbnail with ?max=N&format=webp|jpeg|png).
 *
 * An upload is checked before it is committed: its first bytes are kept
 * (UPLOAD_HEAD_BYTES) and probed for format and size, so something that is
 * not an image, or too large, never gets a name in the store. An optional
 * Content-Digest (sha-256=:BASE64:) or Upload-Checksum (sha256 BASE64) is
 * verified; on a mismatch nothing is stored.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "http/http_int.h"
#include "http/parse.h"
#include "util/util.h"


/* ===== Checksums ===== */

/* The expected SHA-256 (hex) from Content-Digest or Upload-Checksum; 0 if
 * none, 1 if found, -1 if present but malformed. */
static int expected_digest(struct MHD_Connection *c, char hex[STORE_KEY_LEN + 1])
{
	const char *cd = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Digest");
	const char *uc = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Upload-Checksum");
	unsigned char raw[32];

	if (cd) {
		const char *p = strcasestr(cd, "sha-256=:");
		const char *end;
		if (!p || !(end = strchr(p + 9, ':')) || http_digest_from_b64(p + 9, (size_t)(end - (p + 9)), raw))
			return -1;
	} else if (uc) {
		if (strncasecmp(uc, "sha256 ", 7) || http_digest_from_b64(uc + 7, strlen(uc + 7), raw))
			return -1;
	} else {
		return 0;
	}
	util_hex(raw, 32, hex);
	return 1;
}

/* ===== One stored file ===== */

/* A store that failed a write: 507 when it is full (the request may fit
 * later, or a smaller one now), 503 otherwise. */
static void store_write_error(struct req *r, store_status st)
{
	int full = st == STORE_NO_SPACE;
	r->error_status = full ? 507 : 503;
	r->error_code = full ? "insufficient_storage" : "storage_unavailable";
	snprintf(r->error_msg, sizeof r->error_msg, "%s",
		 full ? "the store is out of space" : "the store cannot be written");
}

/* Starts a put for one file of the request. */
static int file_begin(struct req *r)
{
	store_status st = store_put_begin(r->srv->store, NS_IMAGES, r->srv->cfg.max_upload_bytes, &r->put);
	if (st != STORE_OK) {
		store_write_error(r, st);
		return -1;
	}
	r->head_len = 0;
	return 0;
}

static int file_write(struct req *r, const char *data, size_t len)
{
	store_status st;

	if (r->error_status || !r->put)
		return -1;
	if (r->head_len < UPLOAD_HEAD_BYTES) {
		size_t n = len < UPLOAD_HEAD_BYTES - r->head_len ? len : UPLOAD_HEAD_BYTES - r->head_len;
		if (!r->head && !(r->head = malloc(UPLOAD_HEAD_BYTES)))
			goto nomem;
		memcpy(r->head + r->head_len, data, n);
		r->head_len += n;
	}
	st = store_put_write(r->put, data, len);
	if (st == STORE_OK) {
		metrics_add(r->srv->upload_bytes_total, (double)len);
		return 0;
	}
	if (st != STORE_TOO_LARGE) {
		store_write_error(r, st);
		return -1;
	}
	r->error_status = 413;
	r->error_code = "too_large";
	snprintf(r->error_msg, sizeof r->error_msg, "the upload is larger than the limit");
	return -1;
nomem:
	r->error_status = 503;
	r->error_code = "overloaded";
	snprintf(r->error_msg, sizeof r->error_msg, "out of memory");
	return -1;
}

/* Probes and commits the current file; returns its JSON description, or
 * NULL with the request's error set. */
static json_t *file_commit(struct req *r, const char *expect)
{
	struct img_load_opts o = {.max_pixels = r->srv->cfg.max_pixels};
	struct img_info info;
	char key[STORE_KEY_LEN + 1], url[96];
	size_t bytes = store_put_size(r->put);
	int existed = 0;
	img_status is;
	store_status st;

	if (!bytes) {
		store_put_abort(r->put);
		r->put = NULL;
		r->error_status = 400;
		r->error_code = "empty";
		snprintf(r->error_msg, sizeof r->error_msg, "the upload is empty");
		return NULL;
	}
	is = img_probe(r->head, r->head_len, &o, &info);
	if (is != IMG_OK && !(is == IMG_ERR_CORRUPT && bytes > r->head_len)) {
		store_put_abort(r->put);
		r->put = NULL;
		r->error_status = http_probe_status(is, &r->error_code);
		snprintf(r->error_msg, sizeof r->error_msg, "%s", img_errmsg());
		return NULL;
	}
	st = store_put_commit(r->put, NULL, expect, key, &existed);
	r->put = NULL;
	if (st != STORE_OK) {
		if (st == STORE_MISMATCH) {
			r->error_status = 400;
			r->error_code = "checksum_mismatch";
			snprintf(r->error_msg, sizeof r->error_msg, "%s", store_errmsg());
		} else {
			store_write_error(r, st);
		}
		return NULL;
	}
	if (is != IMG_OK) { /* the head alone was not enough: probe the whole object */
		void *all;
		size_t len;
		if (store_get(r->srv->store, NS_IMAGES, key, &all, &len) != STORE_OK ||
		    (is = img_probe(all, len, &o, &info)) != IMG_OK) {
			if (!existed)
				store_delete(r->srv->store, NS_IMAGES, key);
			r->error_status = 422;
			r->error_code = "undecodable";
			snprintf(r->error_msg, sizeof r->error_msg, "%s", img_errmsg());
			if (is == IMG_OK)
				free(all);
			return NULL;
		}
		free(all);
	}
	snprintf(url, sizeof url, "/v1/images/%s", key);
	return json_pack("{s:s,s:s,s:I,s:s,s:i,s:i,s:b}", "id", key, "url", url, "bytes", (json_int_t)bytes, "format",
			 img_type_name(info.type), "width", info.width, "height", info.height, "existed", existed);
}

int http_image_begin(struct req *r)
{
	return file_begin(r);
}

int http_image_write(struct req *r, const char *data, size_t len)
{
	return file_write(r, data, len);
}

json_t *http_image_commit(struct req *r, const char *expect)
{
	return file_commit(r, expect);
}

/* ===== Multipart ===== */

enum MHD_Result http_upload_field(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
				const char *content_type, const char *transfer_encoding, const char *data,
				uint64_t off, size_t size)
{
	struct req *r = cls;
	(void)kind, (void)filename, (void)content_type, (void)transfer_encoding;

	if (r->error_status)
		return MHD_NO;
	if (!key) { /* a part whose Content-Disposition has no name */
		r->error_status = 400;
		r->error_code = "bad_request";
		snprintf(r->error_msg, sizeof r->error_msg, "a part of the form has no name");
		return MHD_NO;
	}
	if (strcmp(key, "file") && strcmp(key, "image_file") && !(r->form && !strcmp(key, "bg_image_file"))) {
		/* other fields: kept (bounded) where the route reads them */
		if (!r->form)
			return MHD_YES;
		int st = http_form_add(r->form, key, data, off, size, r->error_msg, sizeof r->error_msg);
		if (st) {
			r->error_status = st;
			r->error_code = st == 413 ? "too_large" : st == 400 ? "bad_request" : "overloaded";
			return MHD_NO;
		}
		return MHD_YES;
	}
	if (off == 0) { /* a new file: finish the previous one */
		if (http_upload_commit_part(r, NULL))
			return MHD_NO;
		snprintf(r->part_field, sizeof r->part_field, "%s", key);
		if (file_begin(r))
			return MHD_NO;
	}
	return size && file_write(r, data, size) ? MHD_NO : MHD_YES;
}

int http_upload_commit_part(struct req *r, const char *expect)
{
	if (!r->put)
		return 0;
	json_t *j = file_commit(r, expect);
	if (!j)
		return -1;
	if (r->form) /* the remove.bg route tells its files apart by field */
		json_object_set_new(j, "field", json_string(r->part_field));
	json_array_append_new(r->uploaded, j);
	return 0;
}

/* ===== The upload route ===== */

void http_precompute_if_asked(struct MHD_Connection *c, struct req *r, const char *image_id)
{
	const char *what = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "precompute");
	if (!what)
		what = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Petcut-Precompute");
	if (what && image_id && (!strcmp(what, "preview") || !strcmp(what, "full")))
		http_precompute(r->srv, image_id, what);
}

static void precompute_if_asked(struct MHD_Connection *c, struct req *r, json_t *image)
{
	http_precompute_if_asked(c, r, json_string_value(json_object_get(image, "id")));
}

enum MHD_Result http_upload(struct MHD_Connection *c, struct req *r, const char *id, const char *data, size_t *size)
{
	const char *type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	char expect[STORE_KEY_LEN + 1];
	int has_expect;

	if (r->work == WORK_DONE) /* the remove.bg route, resumed */
		return http_removebg_reply(c, r);
	if (r->work == WORK_RUNNING)
		return MHD_YES;
	if (!r->put && !r->pp && !r->error_status && !r->uploaded) { /* the first call: headers only */
		if (type && (!strncasecmp(type, "multipart/form-data", 19) ||
			     (r->route == ROUTE_REMOVEBG && !strncasecmp(type, "application/x-www-form-urlencoded", 33)))) {
			r->multipart = 1;
			r->uploaded = json_array();
			if (r->route == ROUTE_REMOVEBG)
				r->form = json_object();
			r->pp = MHD_create_post_processor(c, 64 << 10, http_upload_field, r);
			if (!r->pp || !r->uploaded) {
				r->error_status = 400;
				r->error_code = "bad_request";
				snprintf(r->error_msg, sizeof r->error_msg, "malformed multipart/form-data");
			}
		} else if (!type || !strncasecmp(type, "image/", 6) || !strncasecmp(type, "application/octet-stream", 24)) {
			file_begin(r);
		} else if (r->route == ROUTE_REMOVEBG) {
			r->error_status = 415;
			r->error_code = "unsupported_media_type";
			snprintf(r->error_msg, sizeof r->error_msg, "send multipart/form-data or a urlencoded form");
		} else {
			r->error_status = 415;
			r->error_code = "unsupported_media_type";
			snprintf(r->error_msg, sizeof r->error_msg,
				 "send the image as raw bytes (image/* or application/octet-stream) or multipart/form-data");
		}
		return MHD_YES;
	}
	if (*size) { /* a chunk of the body */
		if (!r->error_status) {
			if (r->multipart) {
				if (MHD_post_process(r->pp, data, *size) != MHD_YES && !r->error_status) {
					r->error_status = 400;
					r->error_code = "bad_request";
					snprintf(r->error_msg, sizeof r->error_msg, "malformed multipart/form-data");
				}
			} else {
				file_write(r, data, *size);
			}
		}
		*size = 0; /* consumed (or dropped after an error) */
		return MHD_YES;
	}
	/* the body is complete */
	if (r->error_status)
		return http_reply_error(c, r, r->error_status, r->error_code, "%s", r->error_msg);
	has_expect = expected_digest(c, expect);
	if (has_expect < 0)
		return http_reply_error(c, r, 400, "bad_checksum", "malformed Content-Digest or Upload-Checksum");
	if (r->multipart) {
		if (http_upload_commit_part(r, has_expect ? expect : NULL))
			return http_reply_error(c, r, r->error_status, r->error_code, "%s", r->error_msg);
		if (r->route == ROUTE_REMOVEBG)
			return http_removebg(c, r);
		size_t n = json_array_size(r->uploaded);
		for (size_t i = 0; i < n; i++)
			precompute_if_asked(c, r, json_array_get(r->uploaded, i));
		if (!n)
			return http_reply_error(c, r, 400, "no_file", "no 'file' field in the form");
		int all_existed = 1;
		for (size_t i = 0; i < n; i++)
			all_existed &= json_is_true(json_object_get(json_array_get(r->uploaded, i), "existed"));
		json_t *body = n == 1 ? json_incref(json_array_get(r->uploaded, 0)) : json_pack("{s:O}", "images", r->uploaded);
		return http_reply_json(c, r, all_existed ? 200 : 201, body);
	}
	json_t *j = file_commit(r, has_expect ? expect : NULL);
	if (!j)
		return http_reply_error(c, r, r->error_status, r->error_code, "%s", r->error_msg);
	precompute_if_asked(c, r, j);
	int existed = json_is_true(json_object_get(j, "existed"));
	return http_reply_json(c, r, existed ? 200 : 201, j);
}

void http_req_cleanup_upload(struct req *r)
{
	if (r->put)
		store_put_abort(r->put);
	if (r->pp)
		MHD_destroy_post_processor(r->pp);
	json_decref(r->uploaded);
	json_decref(r->form);
	json_decref(r->json);
	json_decref(r->out.result);
	free(r->head);
	free(r->body);
}

/* ===== Reading images back ===== */

/* A thumbnail, made once and kept in the store under a key derived from
 * the original's and the parameters. */
static enum MHD_Result get_thumbnail(struct MHD_Connection *c, struct req *r, const char *id, int max,
				     enum img_format fmt)
{
	struct http_server *s = r->srv;
	char name[128], key[STORE_KEY_LEN + 1], etag[80];
	struct store_body b;

	snprintf(name, sizeof name, "thumb:%s:%d:%s", id, max, img_format_ext(fmt));
	store_key_of(name, strlen(name), key);
	snprintf(etag, sizeof etag, "\"%s\"", key);
	if (store_get_body(s->store, NS_THUMBS, key, &b) == STORE_OK)
		return http_reply_body(c, r, &b, etag, NULL);

	void *orig = NULL, *out = NULL;
	size_t olen = 0, outlen = 0;
	struct img *im = NULL, *th = NULL;
	struct img_load_opts o = {.max_pixels = s->cfg.max_pixels};
	/* thumbnails are for display: lossy, sRGB */
	struct img_save_opts so = {.format = fmt, .quality = 80, .lossy = 1, .color = IMG_COLOR_SRGB};
	store_status st = store_get(s->store, NS_IMAGES, id, &orig, &olen);
	enum MHD_Result ret;

	if (st != STORE_OK)
		return st == STORE_NOT_FOUND ? http_reply_error(c, r, 404, "not_found", "no image %s", id)
					     : http_reply_error(c, r, 503, "storage_unavailable", "the store cannot be read");
	if (img_load_buffer_opts(orig, olen, &o, &im) != IMG_OK || img_thumbnail(im, max, &th) != IMG_OK ||
	    img_encode(th, &so, &out, &outlen) != IMG_OK) {
		ret = http_reply_error(c, r, 422, "undecodable", "%s", img_errmsg());
		goto out;
	}
	if (store_put_buffer(s->store, NS_THUMBS, key, out, outlen, NULL, NULL) != STORE_OK ||
	    store_get_body(s->store, NS_THUMBS, key, &b) != STORE_OK) {
		ret = http_reply_error(c, r, 503, "storage_unavailable", "the store cannot be written");
		goto out;
	}
	ret = http_reply_body(c, r, &b, etag, NULL);
out:
	free(orig);
	free(out);
	img_free(im);
	img_free(th);
	return ret;
}

enum MHD_Result http_get_image(struct MHD_Connection *c, struct req *r, const char *id, const char *data, size_t *size)
{
	if (!store_key_valid(id))
		return http_reply_error(c, r, 400, "bad_id", "an image id is 64 lowercase hex characters");
	const char *max = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "max");
	const char *format = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "format");
	if (max || format) {
		char *end = NULL;
		long m = max ? strtol(max, &end, 10) : 512;
		enum img_format fmt = IMG_FORMAT_WEBP;
		if ((max && (*end || m < 16 || m > 4096)) || (format && img_format_parse(format, &fmt)))
			return http_reply_error(c, r, 400, "bad_parameter",
						"max is 16 to 4096 and format one of webp, jpeg, png");
		return get_thumbnail(c, r, id, (int)m, fmt);
	}
	return http_serve_object(c, r, NS_IMAGES, id, "image", NULL);
}
