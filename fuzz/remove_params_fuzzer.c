/*
 * remove_params_fuzzer.c - fuzz target for the body of POST
 * /v1/remove-background: any bytes, read as JSON the way the route reads
 * them, go through http_remove_parse (each item of {"items": [...]} too).
 * A body that parses must give fields within the bounds parse.h promises,
 * the same canonical key when parsed again, and the integers it was given;
 * an image in base64 is decoded as the route would. Anything else aborts,
 * so the fuzzer finds wrong answers as well as crashes.
 *
 * Bytes that start with '?' are a query string instead ("k=v&k=v", as the
 * route gets a removal whose body is the image): each pair goes through
 * http_remove_query_field, and a query it takes whole is parsed as above,
 * its booleans and integers being what the text said.
 *
 * Built with libFuzzer by `make fuzz`, and with replay.c as a plain program
 * that `make test` runs over the committed corpus.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/parse.h"
#include "pipeline/pipeline.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                 \
	do {                        \
		if (!(cond))        \
			abort();    \
	} while (0)

/* The integer the body gave for name, or def. */
static json_int_t int_field(json_t *body, const char *name, json_int_t def)
{
	json_t *v = json_object_get(body, name);
	return json_is_integer(v) ? json_integer_value(v) : def;
}

static void check_parsed(json_t *body, const struct remove_params *p)
{
	struct remove_params again;
	char why[300];

	CHECK((p->image_id[0] == 0) == (p->source != REMOVE_SOURCE_ID));
	CHECK(p->source != REMOVE_SOURCE_ID || store_key_valid(p->image_id));
	CHECK((p->source == REMOVE_SOURCE_ID) == !p->source_text);
	CHECK(p->req.side == 512 || p->req.side == 1024);
	CHECK(p->req.refine == IMG_REFINE_NONE || p->req.refine == IMG_REFINE_GUIDED ||
	      p->req.refine == IMG_REFINE_MATTING);
	CHECK(p->req.render.kind == IMG_CUT_RGBA || p->req.render.kind == IMG_CUT_MASK);
	CHECK(p->req.render.bg >= IMG_BG_NONE && p->req.render.bg <= IMG_BG_IMAGE);
	CHECK((p->req.render.bg == IMG_BG_IMAGE) == (p->bg_image_id[0] || p->bg_url));
	CHECK(!p->bg_url || (!p->bg_image_id[0] && (!strncasecmp(p->bg_url, "http://", 7) || !strncasecmp(p->bg_url, "https://", 8))));
	CHECK(!p->bg_image_id[0] || store_key_valid(p->bg_image_id));
	CHECK(!p->req.render.bg_image);
	CHECK(p->req.render.effect >= IMG_EFFECT_NONE && p->req.render.effect <= IMG_EFFECT_POPART);
	CHECK(p->req.render.outline_px >= 0 && p->req.render.outline_px <= PIPE_MAX_OUTLINE);
	CHECK(isfinite(p->req.render.margin) && p->req.render.margin >= 0 && p->req.render.margin <= PIPE_MAX_MARGIN);
	CHECK(p->req.render.fit_w >= 0 && p->req.render.fit_w <= PIPE_MAX_FIT);
	CHECK(p->req.render.fit_h >= 0 && p->req.render.fit_h <= PIPE_MAX_FIT);
	CHECK(p->req.render.fit_pixels >= 0 && p->req.render.fit_pixels <= PIPE_MAX_FIT_MP * 1000000L);
	CHECK(!p->req.render.fit_pixels || (!p->req.render.fit_w && !p->req.render.fit_h));
	CHECK(p->req.save.format >= IMG_FORMAT_PNG && p->req.save.format <= IMG_FORMAT_AVIF);
	CHECK(p->req.save.quality >= 0 && p->req.save.quality <= 100);
	CHECK(p->req.save.color == IMG_COLOR_KEEP || p->req.save.color == IMG_COLOR_SRGB);
	CHECK(p->req.save.format != IMG_FORMAT_JPEG || p->req.render.kind == IMG_CUT_MASK ||
	      (p->req.render.bg != IMG_BG_NONE && (p->req.render.bg != IMG_BG_COLOR || p->req.render.color[3] == 255)));
	/* the integers given are the integers used (no silent wrap-around) */
	CHECK(int_field(body, "quality", 0) == p->req.save.quality);
	CHECK(int_field(body, "outline", 0) == p->req.render.outline_px);
	CHECK(int_field(body, "max", 0) == p->view_max);
	/* (without one, a canvas in inches or centimetres takes 300) */
	CHECK(!json_is_integer(json_object_get(body, "dpi")) || int_field(body, "dpi", 0) == (json_int_t)p->req.render.dpi);
	CHECK(p->view_max == 0 || (p->view_max >= VIEW_MIN_SIDE && p->view_max <= VIEW_MAX_SIDE));
	const char *fit = json_string_value(json_object_get(body, "fit"));
	long long fw, fh;
	if (fit && sscanf(fit, "%lldx%lld", &fw, &fh) == 2)
		CHECK(fw == p->req.render.fit_w && fh == p->req.render.fit_h);
	/* the cache key is whole, and the same for the same body */
	CHECK(strlen(p->canonical) < sizeof p->canonical - 1);
	CHECK(http_remove_parse(body, &again, why, sizeof why) == 0);
	CHECK(!strcmp(again.canonical, p->canonical) && !strcmp(again.image_id, p->image_id));
	if (p->source == REMOVE_SOURCE_BASE64) {
		unsigned char *raw;
		size_t len, n = strlen(p->source_text);
		if (!http_base64_decode(p->source_text, &raw, &len)) {
			CHECK(len <= n / 4 * 3);
			free(raw);
		}
	}
}

static void one(json_t *body)
{
	struct remove_params p;
	char why[300];

	memset(why, 'x', sizeof why);
	int st = http_remove_parse(body, &p, why, sizeof why);
	CHECK(st == 0 || st == 400);
	if (st) {
		CHECK(memchr(why, 0, sizeof why) && why[0]);
		return;
	}
	check_parsed(body, &p);
}

/* "?k=v&k=v": the query of a removal whose body is the image. */
static void query(const char *q, size_t size)
{
	json_t *body = json_object();
	char *text = strndup(q, size), *save = NULL, why[200];
	int bad = 0;

	CHECK(body && text);
	for (char *pair = strtok_r(text, "&", &save); pair && !bad; pair = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(pair, '=');
		if (eq)
			*eq = 0;
		memset(why, 'x', sizeof why);
		int st = http_remove_query_field(body, pair, eq ? eq + 1 : NULL, why, sizeof why);
		CHECK(st == 0 || st == 400);
		if (st) {
			CHECK(memchr(why, 0, sizeof why) && why[0]);
			bad = 1;
			continue;
		}
		/* what the text said, in the field's type (the options' table
		 * says which are switches and whole numbers; max is the view's) */
		json_t *v = json_object_get(body, pair);
		const char *t = eq ? eq + 1 : "";
		int opt = pipe_opt_by_field(pair);
		enum pipe_kind kind = !strcmp(pair, "max") ? PIPE_INTEGER
				      : opt >= 0      ? pipe_opt_kind((enum pipe_opt)opt)
						      : PIPE_TEXT;
		if (kind == PIPE_SWITCH)
			CHECK(json_is_boolean(v) && json_is_true(v) == (!strcmp(t, "true") || !strcmp(t, "1")));
		else if (kind == PIPE_INTEGER)
			CHECK(json_is_integer(v) && json_integer_value(v) >= 0 &&
			      (strlen(t) > 7 || json_integer_value(v) == strtoll(t, NULL, 10)));
		else
			CHECK(json_is_string(v) && !strcmp(json_string_value(v), t));
	}
	if (!bad) {
		CHECK(!json_object_get(body, "image") && !json_object_get(body, "image_url"));
		json_object_set_new(body, "image_id", json_string("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
		one(body);
	}
	free(text);
	json_decref(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t err;
	if (size && data[0] == '?') {
		query((const char *)data + 1, size - 1);
		return 0;
	}
	json_t *body = json_loadb((const char *)data, size, 0, &err), *items;

	if (!json_is_object(body)) {
		json_decref(body);
		return 0;
	}
	items = json_object_get(body, "items");
	if (json_is_array(items)) { /* a batch: each item is a removal */
		for (size_t i = 0; i < json_array_size(items) && i < 16; i++)
			if (json_is_object(json_array_get(items, i)))
				one(json_array_get(items, i));
	} else {
		one(body);
	}
	json_decref(body);
	return 0;
}
