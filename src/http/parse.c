/*
 * parse.c - the parsers of parse.h: what clients send to the http routes
 * (a removal's JSON or query, a remove.bg form, tus headers, browsers'
 * reports), read and checked without touching the store, the network, the
 * model or the metrics.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "http/parse.h"

/* ===== A removal: POST /v1/remove-background ===== */

/* The id in "/v1/images/ID", "http://host/v1/images/ID" or "ID". */
static int id_from_url(const char *url, char id[STORE_KEY_LEN + 1])
{
	const char *p = strstr(url, "/v1/images/");
	if (!p)
		return -1;
	p += 11;
	if (strlen(p) != STORE_KEY_LEN || !store_key_valid(p))
		return -1;
	memcpy(id, p, STORE_KEY_LEN + 1);
	return 0;
}

int http_base64_decode(const char *text, unsigned char **out, size_t *len)
{
	size_t n = strlen(text);
	unsigned char *raw;
	int got, pad;

	if (!strncmp(text, "data:", 5) && strchr(text, ','))
		text = strchr(text, ',') + 1, n = strlen(text);
	if (n % 4 || !n || n > INT_MAX || !(raw = malloc(n / 4 * 3 + 1)))
		return -1;
	got = EVP_DecodeBlock(raw, (const unsigned char *)text, (int)n);
	pad = (n >= 1 && text[n - 1] == '=') + (n >= 2 && text[n - 2] == '=');
	if (got < 0) {
		free(raw);
		return -1;
	}
	*out = raw;
	*len = (size_t)(got - pad);
	return 0;
}

int http_remove_parse(json_t *j, struct remove_params *p, char *why, size_t wl)
{
	const char *id = NULL, *url = NULL, *b64 = NULL, *key;
	char err[256];
	json_t *v;
	int opt;

	memset(p, 0, sizeof *p);
	pipe_request_init(&p->req, PIPE_SIDE_PREVIEW);
	if (!json_is_object(j)) {
		snprintf(why, wl, "the body is a JSON object");
		return 400;
	}
	json_object_foreach(j, key, v) {
		const char **src = !strcmp(key, "image_id") ? &id : !strcmp(key, "image_url") ? &url
				 : !strcmp(key, "image") ? &b64 : NULL;
		if (src) {
			if (!json_is_string(v)) {
				snprintf(why, wl, "%s is text", key);
				return 400;
			}
			*src = json_string_value(v);
		} else if (!strcmp(key, "images")) { /* a group portrait */
			size_t i, n = json_array_size(v);
			json_t *one;
			if (!json_is_array(v) || n < 2 || n > IMG_GROUP_MAX) {
				snprintf(why, wl, "images is a list of 2 to %d ids of uploaded images", IMG_GROUP_MAX);
				return 400;
			}
			json_array_foreach(v, i, one) {
				if (!json_is_string(one) || !store_key_valid(json_string_value(one))) {
					snprintf(why, wl, "images[%zu] is not an uploaded image's id (64 lowercase hex characters)", i);
					return 400;
				}
				memcpy(p->group_ids[i], json_string_value(one), STORE_KEY_LEN + 1);
			}
			p->req.group_n = (int)n;
			id = p->group_ids[0];
		} else if (!strcmp(key, "max")) {
			if (!json_is_integer(v) || json_integer_value(v) < VIEW_MIN_SIDE ||
			    json_integer_value(v) > VIEW_MAX_SIDE) {
				snprintf(why, wl, "max is %d to %d pixels", VIEW_MIN_SIDE, VIEW_MAX_SIDE);
				return 400;
			}
			p->view_max = (int)json_integer_value(v);
		} else if ((opt = pipe_opt_by_field(key)) < 0) {
			snprintf(why, wl, "unknown field '%.64s'", key);
			return 400;
		} else if (pipe_set_json(&p->req, (enum pipe_opt)opt, v, err, sizeof err)) {
			snprintf(why, wl, "%s is %s", key, err);
			return 400;
		}
	}
	if (!!id + !!url + !!b64 != 1 || (p->req.group_n && json_object_get(j, "image_id"))) {
		snprintf(why, wl, "give exactly one of image_id, image_url, image, images");
		return 400;
	}
	if (id) {
		if (!store_key_valid(id)) {
			snprintf(why, wl, "image_id is 64 lowercase hex characters");
			return 400;
		}
		memcpy(p->image_id, id, STORE_KEY_LEN + 1);
		p->source = REMOVE_SOURCE_ID;
	} else if (url) {
		p->source = id_from_url(url, p->image_id) ? REMOVE_SOURCE_URL : REMOVE_SOURCE_ID;
		if (p->source == REMOVE_SOURCE_URL) /* another host's: fetched if allowed */
			p->source_text = url;
	} else {
		p->source = REMOVE_SOURCE_BASE64;
		p->source_text = b64;
	}
	/* a background image is one of this store's, by id or URL */
	const char *bg = p->req.bg_ref;
	if (p->req.render.bg == IMG_BG_IMAGE && !store_key_valid(bg) && id_from_url(bg, p->bg_image_id)) {
		if (strncasecmp(bg, "http://", 7) && strncasecmp(bg, "https://", 8)) {
			snprintf(why, wl, "bg is a colour, 'blur', the id of an uploaded image, or an image's URL");
			return 400;
		}
		p->bg_url = bg; /* another host's: fetched as image_url is */
	}
	if (p->req.render.bg == IMG_BG_IMAGE && store_key_valid(bg))
		memcpy(p->bg_image_id, bg, STORE_KEY_LEN + 1);
	p->req.bg_ref = NULL;
	if (pipe_check(&p->req, err, sizeof err) || pipe_check_format(&p->req, p->req.save.format, err, sizeof err)) {
		snprintf(why, wl, "%s", err);
		return 400;
	}
	if (pipe_canonical(&p->req, p->bg_image_id, p->canonical, sizeof p->canonical)) {
		snprintf(why, wl, "the request is too long");
		return 400;
	}
	return 0;
}

int http_remove_query_field(json_t *body, const char *key, const char *value, char *why, size_t wl)
{
	int opt = pipe_opt_by_field(key);
	enum pipe_kind kind = !strcmp(key, "max") ? PIPE_INTEGER : opt >= 0 ? pipe_opt_kind((enum pipe_opt)opt) : PIPE_TEXT;
	json_t *v = NULL;

	if (!strcmp(key, "image") || !strcmp(key, "image_id") || !strcmp(key, "image_url")) {
		snprintf(why, wl, "the image is the request's body: no %s", key);
		return 400;
	}
	if (json_object_get(body, key)) {
		snprintf(why, wl, "%s is given twice", key);
		return 400;
	}
	if (!value)
		value = "";
	if (kind == PIPE_SWITCH) {
		if (strcmp(value, "true") && strcmp(value, "1") && strcmp(value, "false") && strcmp(value, "0")) {
			snprintf(why, wl, "%s is true or false", key);
			return 400;
		}
		v = json_boolean(!strcmp(value, "true") || !strcmp(value, "1"));
	} else if (kind == PIPE_INTEGER) {
		json_int_t n = 0;
		const char *d = value;
		for (; *d >= '0' && *d <= '9'; d++)
			if (n <= 1000000) /* no wrap: a huge number stays huge, for the range check */
				n = n * 10 + (*d - '0');
		if (!*value || *d) {
			snprintf(why, wl, "%s is a whole number", key);
			return 400;
		}
		v = json_integer(n);
	} else {
		v = json_string(value); /* unknown keys too, for http_remove_parse to refuse */
	}
	if (!v || json_object_set_new(body, key, v)) {
		snprintf(why, wl, "%s is not UTF-8 text", key);
		return 400;
	}
	return 0;
}

/* ===== A remove.bg form: POST /v1.0/removebg ===== */

static const char *field(json_t *form, const char *name)
{
	return http_form_value(form, name);
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

/* remove.bg's documented fields, each with what petcut does with it:
 * PASS, read below; KEEP, taken only at the value that asks for what petcut
 * does anyway (any other is refused, naming the field); nothing else is
 * taken (image_file and bg_image_file come as files, not text). */
enum rb_use { RB_PASS, RB_KEEP };
static const struct rb_field {
	const char *name;
	enum rb_use use;
	const char *neutral; /* RB_KEEP: the values taken, '|' between them */
	const char *why;     /* RB_KEEP: why another value is refused */
} rb_fields[] = {
	{"image_file_b64", RB_PASS, NULL, NULL},
	{"image_url", RB_PASS, NULL, NULL},
	{"size", RB_PASS, NULL, NULL},
	{"format", RB_PASS, NULL, NULL},
	{"bg_color", RB_PASS, NULL, NULL},
	{"bg_image_url", RB_PASS, NULL, NULL},
	{"crop", RB_PASS, NULL, NULL},
	{"crop_margin", RB_PASS, NULL, NULL},
	{"channels", RB_PASS, NULL, NULL},
	{"add_shadow", RB_PASS, NULL, NULL},
	{"type", RB_KEEP, "auto", "petcut does not choose by kind: its network cuts out a foreground of any kind"},
	{"type_level", RB_KEEP, "none", "petcut does not classify the foreground"},
	{"semitransparency", RB_KEEP, "true|1|yes", "petcut's edges are always partly transparent where the photo is"},
	{"roi", RB_PASS, NULL, NULL},
	{"scale", RB_PASS, NULL, NULL},
	{"position", RB_PASS, NULL, NULL},
};

/* Whether v is one of alternatives ('|' between them), case aside. */
static int among(const char *v, const char *alternatives)
{
	size_t n = strlen(v);
	for (const char *p = alternatives; *p;) {
		size_t len = strcspn(p, "|");
		if (len == n && !strncasecmp(p, v, n))
			return 1;
		p += len + (p[len] == '|');
	}
	return 0;
}

/* A remove.bg boolean: 1, 0, or -1 for another value. */
static int boolean(const char *v)
{
	return among(v, "true|1|yes") ? 1 : among(v, "false|0|no") ? 0 : -1;
}

static json_t *refuse(const char **code, const char *c, char *why, size_t wl, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static json_t *refuse(const char **code, const char *c, char *why, size_t wl, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, wl, fmt, ap);
	va_end(ap);
	*code = c;
	return NULL;
}

/* Checks every field of the form: UTF-8, one of remove.bg's, and for
 * those petcut takes at one value only, that value. 0, or -1 with *code
 * and why set. */
static int removebg_fields(json_t *form, const char **code, char *why, size_t wl)
{
	const char *key;
	json_t *v;

	json_object_foreach(form, key, v) {
		const struct rb_field *f = NULL;
		for (size_t i = 0; i < sizeof rb_fields / sizeof *rb_fields && !f; i++)
			if (!strcmp(key, rb_fields[i].name))
				f = &rb_fields[i];
		if (!f) {
			refuse(code, "unknown_parameter", why, wl, "unknown parameter '%.64s'", key);
			return -1;
		}
		const char *text = field(form, key);
		if (!text || !is_utf8(text, strlen(text))) {
			refuse(code, "invalid_field", why, wl, "form field '%s' is not UTF-8 text", key);
			return -1;
		}
		if (f->use == RB_KEEP && !among(text, f->neutral)) {
			char first[32];
			snprintf(first, sizeof first, "%.*s", (int)strcspn(f->neutral, "|"), f->neutral);
			refuse(code, "unsupported_parameter", why, wl, "%s '%.40s' is not supported: %s (give %s or leave it out)",
			       key, text, f->why, first);
			return -1;
		}
	}
	return 0;
}

json_t *http_removebg_body(json_t *form, json_t *files, const char **code, char *why, size_t wl)
{
	json_t *body, *img = NULL, *bg_img = NULL, *file;
	size_t i;

	if (removebg_fields(form, code, why, wl))
		return NULL;
	json_array_foreach(files, i, file) {
		const char *name = json_string_value(json_object_get(file, "field"));
		json_t **slot = name && !strcmp(name, "bg_image_file") ? &bg_img : &img;
		if (*slot)
			return refuse(code, "invalid_field", why, wl, "give one %s", slot == &img ? "image_file" : "bg_image_file");
		*slot = file;
	}
	const char *size = field(form, "size"), *format = field(form, "format"), *bg = field(form, "bg_color");
	const char *b64 = field(form, "image_file_b64"), *url = field(form, "image_url");
	const char *channels = field(form, "channels"), *margin = field(form, "crop_margin");
	const char *bg_url = field(form, "bg_image_url"), *crop = field(form, "crop"), *shadow = field(form, "add_shadow");
	const char *scale = field(form, "scale"), *position = field(form, "position"), *roi = field(form, "roi");

	if (!!img + !!b64 + !!url != 1)
		return refuse(code, "missing_source", why, wl, "give exactly one of image_file, image_file_b64, image_url");
	if ((bg && *bg) + !!bg_url + !!bg_img > 1)
		return refuse(code, "invalid_field", why, wl, "give at most one of bg_color, bg_image_url, bg_image_file");
	/* remove.bg's sizes: the output's megapixels at most (the photo's
	 * size is never enlarged), and the network's input for them */
	static const struct {
		const char *names, *fit, *side;
	} sizes[] = {
		{"preview|small|regular", "0.25MP", "preview"}, {"medium", "1.5MP", "full"}, {"hd", "4MP", "full"},
		{"4k", "10MP", "full"}, {"full", "25MP", "full"}, {"50mp", "50MP", "full"}, {"auto", NULL, "full"},
	};
	size_t sz = 0; /* preview when not given, as remove.bg */
	if (size) {
		for (sz = 0; sz < sizeof sizes / sizeof *sizes && !among(size, sizes[sz].names); sz++)
			;
		if (sz == sizeof sizes / sizeof *sizes)
			return refuse(code, "invalid_field", why, wl,
				      "size is one of preview, small, regular, medium, hd, 4k, full, 50MP or auto");
	}
	if (channels && !among(channels, "rgba|alpha"))
		return refuse(code, "invalid_field", why, wl, "channels is rgba or alpha");
	int want_crop = crop ? boolean(crop) : 0, want_shadow = shadow ? boolean(shadow) : 0;
	if (want_crop < 0 || want_shadow < 0)
		return refuse(code, "invalid_field", why, wl, "%s is true or false", want_crop < 0 ? "crop" : "add_shadow");
	int alpha = channels && !strcasecmp(channels, "alpha");
	int background = (bg && *bg) || bg_url || bg_img;
	if (alpha && (background || want_shadow))
		return refuse(code, "invalid_field", why, wl, "channels alpha is the mask alone: it takes no %s",
			      want_shadow ? "add_shadow" : "background");
	/* scale and position lay the subject out on a canvas of the photo's
	 * size: scaled to a share of it, centred unless placed */
	int laid_out = scale && !among(scale, "original");
	if (position && !among(position, "original") && !laid_out)
		return refuse(code, "unsupported_parameter", why, wl,
			      "position '%.40s' is supported with scale (a percentage) only: petcut scales the subject "
			      "to the canvas it places it on (give scale, or position original)", position);
	if (laid_out && (alpha || want_crop))
		return refuse(code, "invalid_field", why, wl, "scale lays the subject out on the whole photo: not with %s",
			      alpha ? "channels alpha" : "crop");
	const char *fmt = !format || among(format, "auto") ? (background ? "jpeg" : "png")
			  : among(format, "jpg")	       ? "jpeg"
							       : format;
	if (!(body = json_object()))
		return refuse(code, "overloaded", why, wl, "out of memory");
	if (img)
		json_object_set(body, "image_id", json_object_get(img, "id"));
	else if (b64)
		json_object_set_new(body, "image", json_string(b64));
	else
		json_object_set_new(body, "image_url", json_string(url));
	json_object_set_new(body, "size", json_string(sizes[sz].side));
	if (sizes[sz].fit && !alpha) /* the mask alone keeps the photo's size */
		json_object_set_new(body, "fit", json_string(sizes[sz].fit));
	if (bg && *bg) {
		/* remove.bg takes hex without '#', or a colour name */
		int hex = strspn(bg, "0123456789abcdefABCDEF") == strlen(bg) && (strlen(bg) == 3 || strlen(bg) == 6 ||
										   strlen(bg) == 8);
		json_object_set_new(body, "bg", hex ? json_sprintf("#%s", bg) : json_string(bg));
	} else if (bg_url) {
		json_object_set_new(body, "bg", json_string(bg_url));
	} else if (bg_img) {
		json_object_set(body, "bg", json_object_get(bg_img, "id"));
	}
	json_object_set_new(body, "format", json_string(fmt));
	if (want_crop)
		json_object_set_new(body, "crop", json_true());
	if (margin && *margin && want_crop) { /* a margin around the crop */
		size_t n = strlen(margin); /* "10px" -> "10", "10%" stays */
		if (n > 2 && !strcasecmp(margin + n - 2, "px"))
			n -= 2;
		json_object_set_new(body, "margin", json_stringn(margin, n));
	}
	if (want_shadow)
		json_object_set_new(body, "effect", json_string("shadow"));
	if (alpha)
		json_object_set_new(body, "mask", json_true());
	if (roi && *roi)
		json_object_set_new(body, "roi", json_string(roi));
	if (laid_out) {
		json_object_set_new(body, "canvas", json_string("photo"));
		json_object_set_new(body, "scale", json_string(scale));
		json_object_set_new(body, "snap", json_string("none"));
		if (position && !among(position, "original|center"))
			json_object_set_new(body, "position", json_string(position));
	}
	return body;
}

/* ===== Resumable uploads: the tus headers ===== */

int http_tus_id_valid(const char *id)
{
	return id && strlen(id) == TUS_ID_LEN && strspn(id, "0123456789abcdef") == TUS_ID_LEN;
}

int http_tus_parse_u64(const char *v, uint64_t *out)
{
	char *end;
	if (!v || !*v || strspn(v, "0123456789") != strlen(v) || strlen(v) > 19)
		return -1;
	*out = strtoull(v, &end, 10);
	return 0;
}

int http_tus_metadata_valid(const char *m)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=";
	const char *p = m;

	if (strlen(m) > TUS_MAX_METADATA)
		return 0;
	while (*p) {
		const char *key = p;
		/* visible ASCII: the upload's info file keeps the metadata as
		 * JSON text, which other bytes could not always be */
		while (*p > ' ' && *p < 0x7f && *p != ',')
			p++;
		if (p == key)
			return 0;
		if (*p == ' ') {
			size_t val = strspn(++p, b64);
			if (!val || val % 4)
				return 0;
			p += val;
		}
		if (*p == ',')
			p++;
		else if (*p)
			return 0;
		while (*p == ' ')
			p++;
	}
	return 1;
}

int http_digest_from_b64(const char *b64, size_t len, unsigned char out[32])
{
	unsigned char raw[48], again[48];

	if (len != 44 || EVP_DecodeBlock(raw, (const unsigned char *)b64, 44) != 33)
		return -1;
	/* exactly the digest's encoding: 44 characters hold 33 bytes, and
	 * other texts (no '=', stray bits, '=' inside) would decode too */
	EVP_EncodeBlock(again, raw, 32);
	if (memcmp(again, b64, 44))
		return -1;
	memcpy(out, raw, 32);
	return 0;
}

int http_tus_parse_checksum(const char *v, unsigned char out[32])
{
	const char *sp;

	if (!v)
		return 0;
	if (!(sp = strchr(v, ' ')))
		return -1;
	if ((size_t)(sp - v) != 6 || strncasecmp(v, "sha256", 6))
		return -2;
	sp++;
	return http_digest_from_b64(sp, strlen(sp), out) ? -1 : 1;
}

int http_tus_version_ok(const char *v)
{
	return v && !strcmp(v, TUS_VERSION);
}

static int fail(const char **code, const char *what, int status, char *why, size_t wl, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));
static int fail(const char **code, const char *what, int status, char *why, size_t wl, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, wl, fmt, ap);
	va_end(ap);
	*code = what;
	return status;
}

int http_tus_check_creation(const struct tus_headers *h, uint64_t max_bytes, struct tus_parsed *out,
			    const char **code, char *why, size_t wl)
{
	memset(out, 0, sizeof *out);
	if (h->defer_length)
		return fail(code, "bad_request", 400, why, wl,
			    "Upload-Defer-Length is not supported: give Upload-Length");
	if (http_tus_parse_u64(h->length, &out->length))
		return fail(code, "bad_request", 400, why, wl, "Upload-Length must be a non-negative integer");
	if (!out->length)
		return fail(code, "empty", 400, why, wl, "the upload is empty");
	if (out->length > max_bytes)
		return fail(code, "too_large", 413, why, wl, "Upload-Length is over Tus-Max-Size (%" PRIu64 " bytes)",
			    max_bytes);
	if (h->metadata && !http_tus_metadata_valid(h->metadata))
		return fail(code, "bad_request", 400, why, wl, "malformed Upload-Metadata (or over %d bytes)",
			    TUS_MAX_METADATA);
	return 0;
}

int http_tus_check_patch(const struct tus_headers *h, struct tus_parsed *out, const char **code, char *why,
			 size_t wl)
{
	int ck;

	memset(out, 0, sizeof *out);
	if (!h->content_type || strcasecmp(h->content_type, "application/offset+octet-stream"))
		return fail(code, "unsupported_media_type", 415, why, wl,
			    "a PATCH body is application/offset+octet-stream");
	if (http_tus_parse_u64(h->offset, &out->offset))
		return fail(code, "bad_request", 400, why, wl, "Upload-Offset must be a non-negative integer");
	if ((ck = http_tus_parse_checksum(h->checksum, out->want)) < 0)
		return fail(code, "bad_checksum", 400, why, wl, "%s",
			    ck == -2 ? "the checksum algorithm is not supported (sha256 is)"
				     : "malformed Upload-Checksum (expected 'sha256 BASE64')");
	out->has_checksum = ck == 1;
	out->has_content_length = !http_tus_parse_u64(h->content_length, &out->content_length);
	return 0;
}

/* ===== Browsers' reports: POST /v1/client-metrics ===== */

static const char *const networks[] = {"slow-2g", "2g", "3g", "4g", "unknown"};
static const char *const devices[] = {"phone", "tablet", "desktop", "unknown"};
static const char *const outcomes[] = {"success", "failure", "cancelled"};

static int one_of(const char *v, const char *const *set, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v, set[i]))
			return 1;
	return 0;
}

/* The labels every report has: network and device, from their closed sets. */
static int check_labels(const char *network, const char *device, struct client_report *out, char *why, size_t wl)
{
	if (!one_of(network, networks, sizeof networks / sizeof *networks)) {
		snprintf(why, wl, "network is slow-2g, 2g, 3g, 4g or unknown");
		return 400;
	}
	if (!one_of(device, devices, sizeof devices / sizeof *devices)) {
		snprintf(why, wl, "device is phone, tablet, desktop or unknown");
		return 400;
	}
	out->network = network;
	out->device = device;
	return 0;
}

/* A wait in ms: absent (-1), or a number from 0 to an hour. */
static int wait_ms(json_t *v, const char *name, double *out, char *why, size_t wl)
{
	*out = -1;
	if (!v)
		return 0;
	double ms = json_number_value(v);
	if (!json_is_number(v) || !(ms >= 0 && ms <= CLIENT_MAX_DURATION_MS)) {
		snprintf(why, wl, "%s is a number from 0 to %.0f", name, CLIENT_MAX_DURATION_MS);
		return 400;
	}
	*out = ms;
	return 0;
}

/* {"kind":"wait", "preview_ms", "full_ms", "network", "device"} */
static int parse_wait(json_t *j, struct client_report *out, char *why, size_t wl)
{
	const char *kind, *network = "unknown", *device = "unknown";
	json_t *preview = NULL, *full = NULL;
	json_error_t err;

	if (json_unpack_ex(j, &err, JSON_STRICT, "{s:s,s?o,s?o,s?s,s?s}", "kind", &kind, "preview_ms", &preview,
			   "full_ms", &full, "network", &network, "device", &device)) {
		snprintf(why, wl, "bad report: %s", err.text);
		return 400;
	}
	out->kind = CLIENT_REPORT_WAIT;
	if (wait_ms(preview, "preview_ms", &out->preview_ms, why, wl) || wait_ms(full, "full_ms", &out->full_ms, why, wl))
		return 400;
	if (out->preview_ms < 0 && out->full_ms < 0) {
		snprintf(why, wl, "a wait report has preview_ms, full_ms or both");
		return 400;
	}
	return check_labels(network, device, out, why, wl);
}

int http_client_report_parse(json_t *j, struct client_report *out, char *why, size_t wl)
{
	const char *outcome, *kind_text, *network = "unknown", *device = "unknown";
	json_t *bytes = NULL, *duration = NULL, *kind = json_object_get(j, "kind");
	json_int_t tries = 1;
	int resumable = 0;
	json_error_t err;

	memset(out, 0, sizeof *out);
	out->preview_ms = out->full_ms = -1;
	if (kind && (!json_is_string(kind) ||
		     (strcmp(json_string_value(kind), "wait") && strcmp(json_string_value(kind), "upload")))) {
		snprintf(why, wl, "kind is upload or wait");
		return 400;
	}
	if (kind && !strcmp(json_string_value(kind), "wait"))
		return parse_wait(j, out, why, wl);
	if (json_unpack_ex(j, &err, JSON_STRICT, "{s?s,s:s,s:o,s:o,s?I,s?s,s?s,s?b}", "kind", &kind_text, "outcome",
			   &outcome, "bytes", &bytes, "duration_ms", &duration, "tries", &tries, "network", &network,
			   "device", &device, "resumable", &resumable)) {
		snprintf(why, wl, "bad report: %s", err.text);
		return 400;
	}
	double b = json_number_value(bytes), ms = json_number_value(duration);
	if (!json_is_integer(bytes) || b < 0 || b > CLIENT_MAX_BYTES_SENT) {
		snprintf(why, wl, "bytes is an integer from 0 to %.0f", CLIENT_MAX_BYTES_SENT);
		return 400;
	}
	if (!json_is_number(duration) || !(ms >= 0 && ms <= CLIENT_MAX_DURATION_MS)) {
		snprintf(why, wl, "duration_ms is a number from 0 to %.0f", CLIENT_MAX_DURATION_MS);
		return 400;
	}
	if (tries < 1 || tries > CLIENT_MAX_TRIES) {
		snprintf(why, wl, "tries is 1 to %d", CLIENT_MAX_TRIES);
		return 400;
	}
	if (!one_of(outcome, outcomes, sizeof outcomes / sizeof *outcomes)) {
		snprintf(why, wl, "outcome is success, failure or cancelled");
		return 400;
	}
	if (check_labels(network, device, out, why, wl))
		return 400;
	out->outcome = outcome;
	out->bytes = b;
	out->duration_ms = ms;
	out->tries = (int)tries;
	out->resumable = resumable;
	return 0;
}
