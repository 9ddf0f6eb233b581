/*
 * options.c - a removal's options: one table of names, one validator per
 * option, the checks across options, and the canonical text of a request
 * for cache keys. The CLI, the JSON API, the query string, the remove.bg
 * form and jobs all come through here, so they accept and refuse the same
 * values with the same words.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pipeline/pipeline.h"

static const struct {
	const char *field, *flag;
	enum pipe_kind kind;
} opts[PIPE_OPT_COUNT] = {
	[PIPE_OPT_SIZE] = {"size", "--size", PIPE_TEXT},
	[PIPE_OPT_FORMAT] = {"format", "--format", PIPE_TEXT},
	[PIPE_OPT_BG] = {"bg", "--bg", PIPE_TEXT},
	[PIPE_OPT_EFFECT] = {"effect", "--effect", PIPE_TEXT},
	[PIPE_OPT_REFINE] = {"refine", "--refine", PIPE_TEXT},
	[PIPE_OPT_CROP] = {"crop", "--crop", PIPE_SWITCH},
	[PIPE_OPT_MARGIN] = {"margin", "--margin", PIPE_TEXT},
	[PIPE_OPT_FIT] = {"fit", "--fit", PIPE_TEXT},
	[PIPE_OPT_OUTLINE] = {"outline", "--outline", PIPE_INTEGER},
	[PIPE_OPT_QUALITY] = {"quality", "--quality", PIPE_INTEGER},
	[PIPE_OPT_LOSSY] = {"lossy", "--lossy", PIPE_SWITCH},
	[PIPE_OPT_MASK] = {"mask", "--mask", PIPE_SWITCH},
	[PIPE_OPT_COLOR] = {"color", "--color", PIPE_TEXT},
	[PIPE_OPT_EDGES] = {"edges", "--edges", PIPE_TEXT},
	[PIPE_OPT_CANVAS] = {"canvas", "--canvas", PIPE_TEXT},
	[PIPE_OPT_DPI] = {"dpi", "--dpi", PIPE_INTEGER},
	[PIPE_OPT_SCALE] = {"scale", "--scale", PIPE_TEXT},
	[PIPE_OPT_POSITION] = {"position", "--position", PIPE_TEXT},
	[PIPE_OPT_PADDING] = {"padding", "--padding", PIPE_TEXT},
	[PIPE_OPT_SNAP] = {"snap", "--snap", PIPE_TEXT},
	[PIPE_OPT_ROI] = {"roi", "--roi", PIPE_TEXT},
	[PIPE_OPT_SHADOW] = {"shadow", "--shadow", PIPE_TEXT},
	[PIPE_OPT_SHADOW_OPACITY] = {"shadow_opacity", "--shadow-opacity", PIPE_NUMBER},
	[PIPE_OPT_SHADOW_BLUR] = {"shadow_blur", "--shadow-blur", PIPE_NUMBER},
	[PIPE_OPT_SHADOW_OFFSET] = {"shadow_offset", "--shadow-offset", PIPE_NUMBER},
	[PIPE_OPT_SHADOW_ANGLE] = {"shadow_angle", "--shadow-angle", PIPE_NUMBER},
	[PIPE_OPT_OVERLAP] = {"overlap", "--overlap", PIPE_TEXT},
	[PIPE_OPT_HEIGHTS] = {"heights", "--heights", PIPE_TEXT},
};

void pipe_request_init(struct pipe_request *r, int side)
{
	*r = (struct pipe_request){.side = side, .refine = IMG_REFINE_NONE};
	r->save.format = IMG_FORMAT_PNG;
	r->save.color = IMG_COLOR_KEEP;
	r->render.kind = IMG_CUT_RGBA;
	r->render.bg = IMG_BG_NONE;
	r->render.effect = IMG_EFFECT_NONE;
	r->render.align_x = r->render.align_y = 0.5;
}

int pipe_opt_by_field(const char *field)
{
	for (int i = 0; i < PIPE_OPT_COUNT; i++)
		if (!strcmp(field, opts[i].field))
			return i;
	return -1;
}

int pipe_opt_by_flag(const char *flag)
{
	for (int i = 0; i < PIPE_OPT_COUNT; i++)
		if (!strcmp(flag, opts[i].flag))
			return i;
	return -1;
}

const char *pipe_opt_field(enum pipe_opt opt)
{
	return opts[opt].field;
}

const char *pipe_opt_flag(enum pipe_opt opt)
{
	return opts[opt].flag;
}

enum pipe_kind pipe_opt_kind(enum pipe_opt opt)
{
	return opts[opt].kind;
}

/* A word among names (NULL-terminated) into *out: its index. */
static int word(const char *text, const char *const *names, int *out)
{
	for (int i = 0; names[i]; i++)
		if (!strcmp(text, names[i])) {
			*out = i;
			return 0;
		}
	return -1;
}

/* Decimal digits only, lo to hi: 0, or -1 (a huge number never wraps). */
static int integer(const char *text, long lo, long hi, int *out)
{
	long v = 0;
	const char *p = text;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++)
		if ((v = v * 10 + (*p - '0')) > hi)
			return -1;
	if (*p || v < lo)
		return -1;
	*out = (int)v;
	return 0;
}

/* One side of fit: digits, 0 to PIPE_MAX_FIT, then the character end; *s
 * moves past it. */
static int fit_side(const char **s, char end, int *out)
{
	long v = 0;
	const char *p = *s;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++)
		if ((v = v * 10 + (*p - '0')) > PIPE_MAX_FIT)
			return -1;
	if (*p != end)
		return -1;
	*out = (int)v;
	*s = end ? p + 1 : p;
	return 0;
}

static int fail(char *why, size_t wl, const char *msg)
{
	snprintf(why, wl, "%s", msg);
	return -1;
}

/* A number at *s (digits, at most one point), then a unit among units
 * (NULL-terminated, "" for none) whose index goes to *unit; *s moves past
 * both. 0, or -1. */
static int number_unit(const char **s, const char *const *units, double *v, int *unit)
{
	const char *p = *s;
	size_t n = strspn(p, "0123456789."), best = 0;
	char *end;

	if (!n || n > 12 || *p == '.')
		return -1;
	errno = 0;
	*v = strtod(p, &end);
	if (errno || end != p + n || !isfinite(*v))
		return -1;
	*unit = -1;
	for (int i = 0; units[i]; i++) /* the longest unit that matches */
		if (!strncasecmp(p + n, units[i], strlen(units[i])) && (*unit < 0 || strlen(units[i]) > best)) {
			*unit = i;
			best = strlen(units[i]);
		}
	if (*unit < 0)
		return -1;
	*s = p + n + best;
	return 0;
}

/* The canvas in pixels from its size in inches and the DPI. */
static void canvas_pixels(struct pipe_request *r)
{
	if (r->canvas_in[0] <= 0)
		return;
	double dpi = r->render.dpi > 0 ? r->render.dpi : PIPE_DEFAULT_DPI;
	/* clamped, not wrapped: pipe_check refuses what is too large */
	r->render.canvas_w = (int)fmin(fmax(1, lround(r->canvas_in[0] * dpi)), INT_MAX / 2);
	r->render.canvas_h = (int)fmin(fmax(1, lround(r->canvas_in[1] * dpi)), INT_MAX / 2);
	r->render.dpi = dpi;
}

/* One value of position: a percentage (0% to 100%) into *v. */
static int percent(const char **s, double *v)
{
	static const char *const pct[] = {"%", NULL};
	int u;
	return number_unit(s, pct, v, &u) || !(*v <= 100) ? -1 : (*v /= 100, 0);
}

int pipe_set(struct pipe_request *r, enum pipe_opt opt, const char *text, char *why, size_t wl)
{
	struct img_render *rr = &r->render;
	int i = 0;

	if ((unsigned)opt >= PIPE_OPT_COUNT || !text)
		return fail(why, wl, "no such option");
	if (opts[opt].kind == PIPE_SWITCH) {
		if (word(text, (const char *const[]){"false", "true", "0", "1", NULL}, &i))
			return fail(why, wl, "true or false");
		i &= 1;
	}
	switch (opt) {
	case PIPE_OPT_SIZE:
		if (word(text, (const char *const[]){"preview", "full", NULL}, &i))
			return fail(why, wl, "preview or full");
		r->side = i ? PIPE_SIDE_FULL : PIPE_SIDE_PREVIEW;
		return 0;
	case PIPE_OPT_FORMAT:
		if (img_format_parse(text, &r->save.format))
			return fail(why, wl, "png, webp, jpg, avif or zip (a colour JPEG and an alpha PNG)");
		r->format_given = 1;
		return 0;
	case PIPE_OPT_BG:
		r->bg_ref = NULL;
		if (!img_color_parse(text, rr->color))
			rr->bg = IMG_BG_COLOR;
		else if (!strcmp(text, "blur"))
			rr->bg = IMG_BG_BLUR;
		else if (*text) {
			rr->bg = IMG_BG_IMAGE;
			r->bg_ref = text;
		} else
			return fail(why, wl, "a colour (#rgb, #rrggbb, #rrggbbaa or a name), 'blur', or an image");
		return 0;
	case PIPE_OPT_EFFECT: {
		static const enum img_effect effects[] = {IMG_EFFECT_NONE, IMG_EFFECT_SHADOW, IMG_EFFECT_STICKER,
							  IMG_EFFECT_POPART};
		if (word(text, (const char *const[]){"none", "shadow", "sticker", "popart", NULL}, &i))
			return fail(why, wl, "none, shadow, sticker (a white outline) or popart (a 2x2 grid)");
		rr->effect = effects[i];
		return 0;
	}
	case PIPE_OPT_REFINE: {
		static const enum img_refine refines[] = {IMG_REFINE_NONE, IMG_REFINE_GUIDED, IMG_REFINE_MATTING};
		if (word(text, (const char *const[]){"none", "guided", "matting", NULL}, &i))
			return fail(why, wl, "none, guided or matting (fine edges)");
		r->refine = refines[i];
		return 0;
	}
	case PIPE_OPT_CROP:
		rr->crop = i;
		return 0;
	case PIPE_OPT_EDGES: {
		static const enum img_edges edges[] = {IMG_EDGES_AUTO, IMG_EDGES_CLEAN, IMG_EDGES_PHOTO};
		if (word(text, (const char *const[]){"auto", "clean", "photo", NULL}, &i))
			return fail(why, wl,
				    "auto (clean where something is drawn under the subject), clean (the subject's own "
				    "colours at its soft edge) or photo (the photo's pixels)");
		rr->edges = edges[i];
		return 0;
	}
	case PIPE_OPT_MARGIN: {
		char *end;
		double m;

		errno = 0;
		m = strtod(text, &end);
		/* !(in range), so that "nan" is refused too */
		if (errno || end == text || (*end && strcmp(end, "%")) || !(m >= 0 && m <= PIPE_MAX_MARGIN))
			return fail(why, wl, "pixels (20) or a percentage of the subject's box (10%), at most 10000");
		rr->margin = m;
		rr->margin_percent = *end == '%';
		r->margin_given = 1;
		return 0;
	}
	case PIPE_OPT_FIT: {
		const char *s = text;
		int w, h;

		size_t n = strlen(text);
		if (n > 2 && !strcasecmp(text + n - 2, "mp")) { /* megapixels: "0.25MP" */
			char *end;
			double mp = strtod(text, &end);
			if (end != text + n - 2 || strspn(text, "0123456789.") != n - 2 || !(mp * 1e6 >= 1) ||
			    !(mp <= PIPE_MAX_FIT_MP))
				return fail(why, wl, "WIDTHxHEIGHT in pixels (800x600; 0 for a free side, each at most 20000), "
						     "or megapixels (0.25MP, at most 1000MP)");
			rr->fit_w = rr->fit_h = 0;
			rr->fit_pixels = (long)floor(mp * 1e6 + 0.5);
			return 0;
		}
		if (fit_side(&s, 'x', &w) || fit_side(&s, 0, &h) || (!w && !h))
			return fail(why, wl, "WIDTHxHEIGHT in pixels (800x600; 0 for a free side, each at most 20000), "
					     "or megapixels (0.25MP, at most 1000MP)");
		rr->fit_w = w;
		rr->fit_h = h;
		rr->fit_pixels = 0;
		return 0;
	}
	case PIPE_OPT_OUTLINE:
		if (integer(text, 1, PIPE_MAX_OUTLINE, &rr->outline_px))
			return fail(why, wl, "a number of pixels from 1 to 1000");
		r->outline_given = 1;
		return 0;
	case PIPE_OPT_QUALITY:
		if (integer(text, 1, 100, &r->save.quality))
			return fail(why, wl, "a number from 1 to 100");
		return 0;
	case PIPE_OPT_LOSSY:
		r->save.lossy = i;
		return 0;
	case PIPE_OPT_MASK:
		rr->kind = i ? IMG_CUT_MASK : IMG_CUT_RGBA;
		return 0;
	case PIPE_OPT_COLOR:
		if (word(text, (const char *const[]){"keep", "srgb", NULL}, &i))
			return fail(why, wl, "keep (the photo's colour profile) or srgb");
		r->save.color = i ? IMG_COLOR_SRGB : IMG_COLOR_KEEP;
		return 0;
	case PIPE_OPT_CANVAS: {
		static const char *const units[] = {"", "px", "in", "cm", "mm", NULL};
		static const double per_inch[] = {0, 0, 1, 2.54, 25.4};
		const char *p = text;
		double w, h;
		int uw, uh;
		if (!strcmp(text, "photo")) { /* the photo's own size */
			rr->canvas_w = rr->canvas_h = -1;
			r->canvas_in[0] = r->canvas_in[1] = 0;
			return 0;
		}
		if (number_unit(&p, units, &w, &uw) || (*p != 'x' && *p != 'X') || (p++, number_unit(&p, units, &h, &uh)) ||
		    *p || (uw != uh && uw > 1) || !(w > 0 && h > 0))
			goto bad_canvas;
		if (uh <= 1) { /* pixels */
			if (w != floor(w) || h != floor(h) || w > PIPE_MAX_CANVAS || h > PIPE_MAX_CANVAS ||
			    w * h > PIPE_MAX_CANVAS_MP * 1e6)
				goto bad_canvas;
			rr->canvas_w = (int)w;
			rr->canvas_h = (int)h;
			r->canvas_in[0] = r->canvas_in[1] = 0;
			return 0;
		}
		r->canvas_in[0] = w / per_inch[uh];
		r->canvas_in[1] = h / per_inch[uh];
		canvas_pixels(r);
		return 0;
	bad_canvas:
		return fail(why, wl, "WIDTHxHEIGHT in pixels (2400x3000), inches (8x10in), centimetres (20x25cm) or "
				     "millimetres, at most 20000 pixels a side and 100 megapixels; or photo (the photo's size)");
	}
	case PIPE_OPT_DPI:
		if (integer(text, 1, PIPE_MAX_DPI, &i))
			return fail(why, wl, "dots per inch, 1 to 4800");
		rr->dpi = i;
		canvas_pixels(r);
		return 0;
	case PIPE_OPT_SCALE: {
		const char *p = text;
		double v;
		if (percent(&p, &v) || *p || !(v >= 0.01))
			return fail(why, wl, "the share of the canvas the subject takes, 1% to 100%");
		rr->scale = v;
		r->layout_given = 1;
		return 0;
	}
	case PIPE_OPT_POSITION: {
		static const char *const words[] = {"center", "centre", "top", "bottom", "left", "right", NULL};
		static const double at[][2] = {{.5, .5}, {.5, .5}, {.5, 0}, {.5, 1}, {0, .5}, {1, .5}};
		const char *p = text;
		double x, y;
		if (!word(text, words, &i)) {
			rr->align_x = at[i][0];
			rr->align_y = at[i][1];
			r->layout_given = 1;
			return 0;
		}
		if (percent(&p, &x))
			goto bad_position;
		y = x;
		if ((*p == ',' || *p == ' ') && (p++, percent(&p, &y)))
			goto bad_position;
		if (*p)
			goto bad_position;
		rr->align_x = x;
		rr->align_y = y;
		r->layout_given = 1;
		return 0;
	bad_position:
		return fail(why, wl, "center, top, bottom, left, right, or X% Y% of the room left (0% 100%: "
				     "bottom left; one value for both)");
	}
	case PIPE_OPT_PADDING: {
		static const char *const units[] = {"", "px", "%", NULL};
		double v[4];
		int pc[4], n = 0;
		const char *p = text;
		for (;;) { /* values, one separator (a comma or a space) between them */
			if (number_unit(&p, units, &v[n], &pc[n]) || v[n] > PIPE_MAX_MARGIN)
				goto bad_padding;
			pc[n] = pc[n] == 2;
			n++;
			if (!*p)
				break;
			if (n == 4 || (*p != ',' && *p != ' '))
				goto bad_padding;
			p++;
		}
		if (n == 3)
			goto bad_padding;
		/* CSS's order: all; top and bottom, right and left; top right bottom left */
		for (int k = 0; k < 4; k++) {
			int from = n == 1 ? 0 : n == 2 ? k % 2 : k;
			rr->pad[k] = v[from];
			rr->pad_percent[k] = pc[from];
		}
		r->layout_given = 1;
		return 0;
	bad_padding:
		return fail(why, wl, "1, 2 or 4 values (all; top and bottom, sides; top right bottom left), each "
				     "pixels (40) or a percentage of the canvas's side (5%), at most 10000");
	}
	case PIPE_OPT_SNAP: {
		static const enum img_snap snaps[] = {IMG_SNAP_AUTO, IMG_SNAP_NONE, IMG_SNAP_TOP, IMG_SNAP_RIGHT,
						      IMG_SNAP_BOTTOM, IMG_SNAP_LEFT};
		if (word(text, (const char *const[]){"auto", "none", "top", "right", "bottom", "left", NULL}, &i))
			return fail(why, wl,
				    "auto (against the canvas's edge where the photo cuts the subject off), none, top, "
				    "right, bottom or left");
		rr->snap = snaps[i];
		r->layout_given = 1;
		return 0;
	}
	case PIPE_OPT_ROI: {
		static const char *const units[] = {"", "px", "%", NULL};
		double v[4];
		int pc[4], whole = 1;
		const char *p = text;
		for (int n = 0; n < 4; n++) { /* x0 y0 x1 y1, one separator (a space or a comma) between them */
			if (n && *p != ' ' && *p != ',')
				goto bad_roi;
			p += n > 0;
			if (number_unit(&p, units, &v[n], &pc[n]))
				goto bad_roi;
			pc[n] = pc[n] == 2;
			if (v[n] > (pc[n] ? 100 : PIPE_MAX_CANVAS * 10))
				goto bad_roi;
			whole &= pc[n] && v[n] == (n < 2 ? 0 : 100);
		}
		if (*p || (pc[0] == pc[2] && v[2] <= v[0]) || (pc[1] == pc[3] && v[3] <= v[1]))
			goto bad_roi;
		for (int k = 0; k < 4; k++) { /* the whole photo is no region: the key stays as without */
			rr->roi[k] = whole ? 0 : v[k];
			rr->roi_percent[k] = whole ? 0 : pc[k];
		}
		return 0;
	bad_roi:
		return fail(why, wl, "the region the subject lies in, x0 y0 x1 y1 (x1 > x0, y1 > y0), each pixels "
				     "(120px) or a percentage of the photo's side (10%)");
	}
	case PIPE_OPT_SHADOW: {
		static const enum img_shadow_kind kinds[] = {IMG_SHADOW_DROP, IMG_SHADOW_SOFT, IMG_SHADOW_HARD,
							     IMG_SHADOW_FLOATING};
		if (word(text, (const char *const[]){"drop", "soft", "hard", "floating", NULL}, &i))
			return fail(why, wl, "drop (on a wall behind), soft (shade around the base), hard (cast on the "
					     "ground behind) or floating (shade under a hovering subject)");
		rr->effect = IMG_EFFECT_SHADOW;
		rr->shadow.kind = kinds[i];
		r->shadow_given = 1;
		return 0;
	}
	case PIPE_OPT_SHADOW_OPACITY: {
		static const char *const units[] = {"", "%", NULL};
		const char *p = text;
		double v;
		int u;
		if (number_unit(&p, units, &v, &u) || *p || !(v <= 100))
			return fail(why, wl, "a percentage, 0 to 100");
		rr->shadow.opacity = v / 100;
		rr->shadow.given |= IMG_SHADOW_OPACITY;
		return 0;
	}
	case PIPE_OPT_SHADOW_BLUR:
	case PIPE_OPT_SHADOW_OFFSET: {
		static const char *const units[] = {"", "px", "%", NULL};
		const char *p = text;
		double v;
		int u;
		if (number_unit(&p, units, &v, &u) || *p || !(v <= (u == 2 ? 100 : PIPE_MAX_MARGIN)))
			return fail(why, wl, "pixels (12) or a percentage of the subject's longer side (2%), at most "
					     "10000 pixels or 100%");
		if (opt == PIPE_OPT_SHADOW_BLUR) {
			rr->shadow.blur = v, rr->shadow.blur_percent = u == 2;
			rr->shadow.given |= IMG_SHADOW_BLUR;
		} else {
			rr->shadow.offset = v, rr->shadow.offset_percent = u == 2;
			rr->shadow.given |= IMG_SHADOW_OFFSET;
		}
		return 0;
	}
	case PIPE_OPT_SHADOW_ANGLE: {
		static const char *const units[] = {"", "deg", NULL};
		const char *p = text + (*text == '-' || *text == '+');
		double v;
		int u;
		if (number_unit(&p, units, &v, &u) || *p || !(v <= 85))
			return fail(why, wl, "degrees from straight down, -85 to 85 (positive: to the right)");
		rr->shadow.angle = *text == '-' ? -v : v;
		rr->shadow.given |= IMG_SHADOW_ANGLE;
		return 0;
	}
	case PIPE_OPT_OVERLAP: {
		const char *p = text + (*text == '-');
		double v;
		if (percent(&p, &v) || *p || !(*text == '-' ? v <= 1 : v <= 0.9))
			return fail(why, wl, "a percentage of the narrower neighbour's width, -100% (a gap) to 90%");
		r->group.overlap = *text == '-' ? -v : v;
		r->group_given = 1;
		return 0;
	}
	case PIPE_OPT_HEIGHTS: {
		const char *p = text;
		int n = 0;
		if (!strcmp(text, "equal")) {
			memset(r->group.heights, 0, sizeof r->group.heights);
			r->heights_n = 0;
			r->group_given = 1;
			return 0;
		}
		double h[IMG_GROUP_MAX];
		for (;;) {
			if (n == IMG_GROUP_MAX || percent(&p, &h[n]) || !(h[n] >= 0.01))
				goto bad_heights;
			n++;
			if (!*p)
				break;
			if (*p != ',' && *p != ' ')
				goto bad_heights;
			p++;
		}
		memset(r->group.heights, 0, sizeof r->group.heights);
		memcpy(r->group.heights, h, sizeof *h * (size_t)n);
		r->heights_n = n;
		r->group_given = 1;
		return 0;
	bad_heights:
		return fail(why, wl, "equal, or each pet's height as a share of the tallest's, in order (100%,80%,60%; "
				     "1% to 100%, at most 8)");
	}
	case PIPE_OPT_COUNT:
		break;
	}
	return fail(why, wl, "no such option");
}

int pipe_set_json(struct pipe_request *r, enum pipe_opt opt, json_t *v, char *why, size_t wl)
{
	char num[32];

	if ((unsigned)opt >= PIPE_OPT_COUNT)
		return fail(why, wl, "no such option");
	switch (opts[opt].kind) {
	case PIPE_SWITCH:
		if (!json_is_boolean(v))
			return fail(why, wl, "true or false");
		return pipe_set(r, opt, json_is_true(v) ? "true" : "false", why, wl);
	case PIPE_INTEGER:
		if (!json_is_integer(v))
			return fail(why, wl, "a whole number");
		/* a negative number fails the digits' check, as its text would */
		snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
		return pipe_set(r, opt, num, why, wl);
	case PIPE_NUMBER:
		if (json_is_number(v)) {
			snprintf(num, sizeof num, "%.15g", json_number_value(v));
			return pipe_set(r, opt, num, why, wl);
		}
		__attribute__((fallthrough)); /* text, with its unit */
	case PIPE_TEXT:
		if (!json_is_string(v))
			return fail(why, wl, opts[opt].kind == PIPE_NUMBER ? "a number, or text with its unit" : "text");
		/* a NUL inside would cut the text short: refused, not read otherwise */
		if (strlen(json_string_value(v)) != json_string_length(v))
			return fail(why, wl, "text without NUL characters");
		return pipe_set(r, opt, json_string_value(v), why, wl);
	}
	return fail(why, wl, "no such option");
}

int pipe_check(const struct pipe_request *r, char *why, size_t wl)
{
	const struct img_render *rr = &r->render;

	if (rr->kind == IMG_CUT_MASK &&
	    (rr->bg != IMG_BG_NONE || rr->effect != IMG_EFFECT_NONE || rr->crop || rr->fit_w || rr->fit_h ||
	     rr->fit_pixels || rr->edges != IMG_EDGES_AUTO))
		return fail(why, wl, "mask makes the mask alone: no bg, effect, crop, fit or edges with it");
	if (rr->effect == IMG_EFFECT_POPART && rr->bg != IMG_BG_NONE)
		return fail(why, wl, "effect popart brings its own backgrounds: no bg with it");
	if (r->margin_given && !rr->crop)
		return fail(why, wl, "margin applies to crop: add crop");
	if (r->outline_given && rr->effect != IMG_EFFECT_STICKER)
		return fail(why, wl, "outline applies to effect sticker");
	if (rr->canvas_w && (rr->kind == IMG_CUT_MASK || rr->crop || rr->effect == IMG_EFFECT_POPART))
		return fail(why, wl, "canvas lays the subject out itself: no mask, crop or popart with it");
	if (rr->canvas_w > 0 && (rr->canvas_w > PIPE_MAX_CANVAS || rr->canvas_h > PIPE_MAX_CANVAS ||
				 (double)rr->canvas_w * rr->canvas_h > PIPE_MAX_CANVAS_MP * 1e6 || rr->canvas_h < 1))
		return fail(why, wl, "canvas at that dpi is over 20000 pixels a side or 100 megapixels");
	if (r->shadow_given && rr->effect != IMG_EFFECT_SHADOW)
		return fail(why, wl, "a shadow kind goes with effect shadow, not another effect");
	if (rr->shadow.given && rr->effect != IMG_EFFECT_SHADOW)
		return fail(why, wl, "shadow_opacity, shadow_blur, shadow_offset and shadow_angle shape a shadow: add "
				     "shadow (drop, soft, hard or floating) or effect shadow");
	if ((rr->shadow.given & IMG_SHADOW_ANGLE) &&
	    (rr->shadow.kind == IMG_SHADOW_SOFT || rr->shadow.kind == IMG_SHADOW_FLOATING))
		return fail(why, wl, "shadow_angle applies to drop and hard shadows");
	if ((rr->shadow.given & IMG_SHADOW_OFFSET) &&
	    (rr->shadow.kind == IMG_SHADOW_SOFT || rr->shadow.kind == IMG_SHADOW_HARD))
		return fail(why, wl, "shadow_offset applies to drop and floating shadows");
	if (r->group_given && !r->group_n)
		return fail(why, wl, "overlap and heights arrange a group portrait: give images (2 to 8 ids)");
	if (r->group_n && (rr->kind == IMG_CUT_MASK || rr->crop || rr->effect == IMG_EFFECT_POPART ||
			   rr->bg == IMG_BG_BLUR || rr->roi[2] > 0 || rr->roi[3] > 0))
		return fail(why, wl, "a group portrait takes no mask, crop, popart, bg blur or roi");
	if (r->heights_n > r->group_n && r->group_n)
		return fail(why, wl, "heights gives more values than there are photos");
	if (r->layout_given && !rr->canvas_w)
		return fail(why, wl, "scale, position, padding and snap lay the subject out on a canvas: add canvas "
				     "(2400x3000, 8x10in, or photo for the photo's own size)");
	return 0;
}

int pipe_check_format(const struct pipe_request *r, enum img_format fmt, char *why, size_t wl)
{
	const struct img_render *rr = &r->render;

	if (fmt == IMG_FORMAT_ZIP && rr->kind == IMG_CUT_MASK)
		return fail(why, wl, "zip holds the colours and the alpha: not the mask alone (png, for one)");
	if (fmt != IMG_FORMAT_JPEG || rr->kind == IMG_CUT_MASK || rr->effect == IMG_EFFECT_POPART)
		return 0;
	if (rr->bg == IMG_BG_NONE || (rr->bg == IMG_BG_COLOR && rr->color[3] < 255))
		return fail(why, wl,
			    "JPEG has no transparency: choose a background with --bg, or bg in the API (white, for one)");
	return 0;
}

int pipe_canonical(const struct pipe_request *r, const char *bg_id, char *out, size_t n)
{
	const struct img_render *rr = &r->render;
	int len = snprintf(out, n,
			   "side=%d;refine=%d;kind=%d;bg=%d;color=%02x%02x%02x%02x;bgimg=%s;crop=%d;margin=%g%s;"
			   "fit=%dx%d;effect=%d;outline=%d;format=%d;quality=%d;lossy=%d;colorspace=%d;edges=%d",
			   r->side, r->refine, rr->kind, rr->bg, rr->color[0], rr->color[1], rr->color[2],
			   rr->color[3], bg_id ? bg_id : "", rr->crop, rr->margin, rr->margin_percent ? "%" : "",
			   rr->fit_w, rr->fit_h, rr->effect, rr->outline_px, r->save.format, r->save.quality,
			   r->save.lossy, r->save.color, rr->edges);
	if (len >= 0 && (size_t)len < n && rr->fit_pixels) /* named only when set: other keys stay as they were */
		len += snprintf(out + len, n - (size_t)len, ";fitpx=%ld", rr->fit_pixels);
	if (len >= 0 && (size_t)len < n && rr->canvas_w)
		len += snprintf(out + len, n - (size_t)len, ";canvas=%dx%d;scale=%g;at=%g,%g;pad=%g%s,%g%s,%g%s,%g%s;snap=%d",
				rr->canvas_w, rr->canvas_h, rr->scale, rr->align_x, rr->align_y, rr->pad[0],
				rr->pad_percent[0] ? "%" : "", rr->pad[1], rr->pad_percent[1] ? "%" : "", rr->pad[2],
				rr->pad_percent[2] ? "%" : "", rr->pad[3], rr->pad_percent[3] ? "%" : "", rr->snap);
	if (len >= 0 && (size_t)len < n && rr->dpi > 0)
		len += snprintf(out + len, n - (size_t)len, ";dpi=%g", rr->dpi);
	const struct img_shadow *sh = &rr->shadow;
	if (len >= 0 && (size_t)len < n && rr->effect == IMG_EFFECT_SHADOW)
		len += snprintf(out + len, n - (size_t)len, ";shadow=%d,%u,%g,%g%s,%g%s,%g", sh->kind, sh->given,
				sh->opacity, sh->blur, sh->blur_percent ? "%" : "", sh->offset,
				sh->offset_percent ? "%" : "", sh->angle);
	if (len >= 0 && (size_t)len < n && r->group_n) {
		len += snprintf(out + len, n - (size_t)len, ";group=%d,%g", r->group_n, r->group.overlap);
		for (int i = 0; i < r->heights_n && len >= 0 && (size_t)len < n; i++)
			len += snprintf(out + len, n - (size_t)len, ",%g", r->group.heights[i]);
	}
	if (len >= 0 && (size_t)len < n && (rr->roi[2] > 0 || rr->roi[3] > 0))
		len += snprintf(out + len, n - (size_t)len, ";roi=%g%s,%g%s,%g%s,%g%s", rr->roi[0],
				rr->roi_percent[0] ? "%" : "", rr->roi[1], rr->roi_percent[1] ? "%" : "", rr->roi[2],
				rr->roi_percent[2] ? "%" : "", rr->roi[3], rr->roi_percent[3] ? "%" : "");
	return len < 0 || (size_t)len >= n ? -1 : 0;
}

int pipe_parse_fallback(const char *text, int *guard_bf16, int *on)
{
	int i;

	if (!text || word(text, (const char *const[]){"auto", "fp32", "none", NULL}, &i))
		return -1;
	*guard_bf16 = i == 1;
	*on = i != 2;
	return 0;
}

int pipe_parse_precision(const char *text, int *prec)
{
	static const int precs[] = {NN_PRECISION_FP32, NN_PRECISION_BF16, NN_PRECISION_INT8};
	int i;

	if (!text || word(text, (const char *const[]){"fp32", "bf16", "int8", NULL}, &i))
		return -1;
	*prec = precs[i];
	return 0;
}
