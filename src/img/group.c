/*
 * group.c - group portraits: several pets, each cut out of its own photo,
 * standing side by side on one line, then drawn as one subject (its
 * background, shadow or outline, canvas) by img_render.
 *
 * Each subject is cut out with a little room around its box (its soft fur
 * edge) in its own colours where the output wants clean edges, brought into
 * the first photo's colour space, scaled to its height, and laid on a
 * transparent row: bottoms on one line, each next to the one before (its
 * box overlapping that one's by overlap of the narrower width), drawn over
 * it. The row's colours and alpha then go through img_render as a photo and
 * its alpha, so a group takes every option one pet does, one shadow falling
 * from the whole group on one floor.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "img/img_int.h"

/* The room kept around each subject's box: its soft edge (percent of the
 * box's sides). */
#define GROUP_CUT_MARGIN 3.0

struct pet {
	VipsImage *cut;	 /* RGBA, in the first photo's colour space, at its size in the row */
	int sx, sy, sw, sh; /* the subject's box in cut */
	int x, y;	 /* where cut goes in the row */
};

/* Premultiplied resize of an RGBA image to exactly w x h; a new reference,
 * or NULL. */
static VipsImage *resize_rgba(VipsImage *in, int w, int h)
{
	VipsImage *p = NULL, *r = NULL, *u = NULL, *c = NULL;

	if (w == in->Xsize && h == in->Ysize) {
		g_object_ref(in);
		return in;
	}
	if (!vips_premultiply(in, &p, NULL) && !img_resize_exact(p, &r, w, h) && !vips_unpremultiply(r, &u, NULL))
		vips_cast(u, &c, VIPS_FORMAT_UCHAR, NULL);
	if (p)
		g_object_unref(p);
	if (r)
		g_object_unref(r);
	if (u)
		g_object_unref(u);
	return c;
}

/* Pet i cut out, in like's colour space, scaled by k. */
static img_status cut_pet(const struct img *photo, const struct img *alpha, int clean, VipsImage *like, double k,
			  int i, struct pet *p)
{
	struct img_render one = {.crop = 1, .margin = GROUP_CUT_MARGIN, .margin_percent = 1,
				 .edges = clean ? IMG_EDGES_CLEAN : IMG_EDGES_PHOTO};
	struct img *cut = NULL;
	struct img_subject s;
	VipsImage *conv;
	img_status st;

	if ((st = img_render(photo, alpha, &one, &cut, &s)) != IMG_OK)
		return st;
	if (s.w == 0) {
		img_free(cut);
		return img_fail(IMG_ERR_ARG, "photo %d shows no subject to put in the group", i + 1);
	}
	conv = img_to_space_of(like, cut->pix);
	img_free(cut);
	if (!conv)
		return img_fail_vips(IMG_ERR_VIPS, "cannot bring a subject into the group's colours");
	int w = VIPS_MAX(1, (int)lround(conv->Xsize * k)), h = VIPS_MAX(1, (int)lround(conv->Ysize * k));
	double kx = (double)w / conv->Xsize, ky = (double)h / conv->Ysize;
	p->sx = (int)lround(s.x * kx), p->sy = (int)lround(s.y * ky);
	p->sw = VIPS_MAX(1, (int)lround(s.w * kx)), p->sh = VIPS_MAX(1, (int)lround(s.h * ky));
	p->cut = resize_rgba(conv, w, h);
	g_object_unref(conv);
	if (!p->cut)
		return img_fail_vips(IMG_ERR_VIPS, "cannot scale a subject for the group");
	return IMG_OK;
}

img_status img_render_group(const struct img *const *photos, const struct img *const *alphas, int n,
			    const struct img_render *r, const struct img_group *g, struct img **out,
			    struct img_subject *subjects, struct img_subject *group)
{
	static const struct img_group equal;
	struct pet pets[IMG_GROUP_MAX] = {0};
	struct img_subject sub[IMG_GROUP_MAX], whole, dummy;
	struct img *row_photo = NULL, *row_alpha = NULL;
	VipsImage *base = NULL, *row = NULL, *rgb = NULL, *a = NULL, *tagged = NULL;
	img_status st = IMG_OK;

	if (!out)
		return img_fail(IMG_ERR_ARG, "no place for the result");
	*out = NULL;
	if (!g)
		g = &equal;
	if (!group)
		group = &dummy;
	if (n < 1 || n > IMG_GROUP_MAX || !photos || !alphas || !r)
		return img_fail(IMG_ERR_ARG, "a group is 1 to %d photos with their alphas", IMG_GROUP_MAX);
	for (int i = 0; i < n; i++)
		if (!photos[i] || !alphas[i])
			return img_fail(IMG_ERR_ARG, "photo %d or its alpha is missing", i + 1);
	if (r->kind != IMG_CUT_RGBA || r->crop || r->effect == IMG_EFFECT_POPART || r->bg == IMG_BG_BLUR ||
	    r->roi[2] > 0 || r->roi[3] > 0)
		return img_fail(IMG_ERR_ARG, "a group takes no mask, crop, pop art, blurred photo or roi");
	if (!(g->overlap >= -1 && g->overlap <= 0.9))
		return img_fail(IMG_ERR_ARG, "a group's overlap is -100%% to 90%%");
	for (int i = 0; i < n; i++)
		if (!(g->heights[i] >= 0 && g->heights[i] <= 1))
			return img_fail(IMG_ERR_ARG, "a group's heights are shares of the tallest, 0 to 100%%");

	/* the subjects' heights: tall for a share of 1, so that none is made
	 * smaller than it is; but no taller than a canvas, which the row is
	 * scaled to anyway */
	for (int i = 0; i < n; i++)
		if ((st = img_subject_of(alphas[i], &sub[i])) != IMG_OK)
			return st;
	double tall = 0;
	for (int i = 0; i < n; i++)
		tall = fmax(tall, sub[i].h / (g->heights[i] > 0 ? g->heights[i] : 1));
	if (r->canvas_h > 0)
		tall = fmin(tall, r->canvas_h);
	int clean = r->edges == IMG_EDGES_CLEAN ||
		    (r->edges == IMG_EDGES_AUTO && (r->bg != IMG_BG_NONE || r->effect != IMG_EFFECT_NONE));
	for (int i = 0; i < n && st == IMG_OK; i++) {
		double want = tall * (g->heights[i] > 0 ? g->heights[i] : 1);
		double k = sub[i].h > 0 ? want / sub[i].h : 1;
		st = cut_pet(photos[i], alphas[i], clean, photos[0]->pix, k, i, &pets[i]);
	}
	if (st != IMG_OK)
		goto out;

	/* side by side, bottoms on one line (row y 0 before the shift) */
	int x0 = 0, y0 = 0, x1 = 0, y1 = 0;
	for (int i = 0; i < n; i++) {
		struct pet *p = &pets[i];
		if (i == 0) {
			p->x = -p->sx;
		} else {
			const struct pet *q = &pets[i - 1];
			double right = q->x + q->sx + q->sw, over = g->overlap * VIPS_MIN(q->sw, p->sw);
			p->x = (int)lround(right - over) - p->sx;
		}
		p->y = -(p->sy + p->sh);
		if (i == 0 || p->x < x0)
			x0 = p->x;
		if (i == 0 || p->y < y0)
			y0 = p->y;
		x1 = i == 0 ? p->x + p->cut->Xsize : VIPS_MAX(x1, p->x + p->cut->Xsize);
		y1 = i == 0 ? p->y + p->cut->Ysize : VIPS_MAX(y1, p->y + p->cut->Ysize);
	}
	int RW = x1 - x0, RH = y1 - y0;
	if ((double)RW * RH > IMG_MAX_PIXELS) {
		st = img_fail(IMG_ERR_TOO_LARGE, "the group would be %dx%d pixels", RW, RH);
		goto out;
	}

	/* each drawn over the one before, on a transparent row */
	VipsImage *in[IMG_GROUP_MAX + 1];
	int xs[IMG_GROUP_MAX], ys[IMG_GROUP_MAX], modes[IMG_GROUP_MAX];
	if (vips_black(&base, RW, RH, "bands", 4, NULL) ||
	    vips_copy(base, &tagged, "interpretation", VIPS_INTERPRETATION_sRGB, NULL)) {
		st = img_fail_vips(IMG_ERR_VIPS, "cannot lay out the group");
		goto out;
	}
	in[0] = tagged;
	for (int i = 0; i < n; i++) {
		in[i + 1] = pets[i].cut;
		xs[i] = pets[i].x - x0;
		ys[i] = pets[i].y - y0;
		modes[i] = VIPS_BLEND_MODE_OVER;
	}
	VipsArrayInt *ax = vips_array_int_new(xs, n), *ay = vips_array_int_new(ys, n);
	VipsImage *comp = NULL;
	int bad = vips_composite(in, &comp, n + 1, modes, "x", ax, "y", ay, NULL) ||
		  vips_cast(comp, &row, VIPS_FORMAT_UCHAR, NULL);
	vips_area_unref(VIPS_AREA(ax));
	vips_area_unref(VIPS_AREA(ay));
	if (comp)
		g_object_unref(comp);
	if (bad || vips_extract_band(row, &rgb, 0, "n", 3, NULL) || vips_extract_band(row, &a, 3, NULL)) {
		st = img_fail_vips(IMG_ERR_VIPS, "cannot lay out the group");
		goto out;
	}
	/* the row is in the first photo's colours: its profile goes with it */
	const void *icc;
	size_t icc_len;
	if (vips_image_get_typeof(photos[0]->pix, VIPS_META_ICC_NAME) &&
	    !vips_image_get_blob(photos[0]->pix, VIPS_META_ICC_NAME, &icc, &icc_len))
		vips_image_set_blob_copy(rgb, VIPS_META_ICC_NAME, icc, icc_len);
	if ((st = img_adopt(rgb, "cannot lay out the group", &row_photo)) != IMG_OK ||
	    (st = img_adopt(a, "cannot lay out the group", &row_alpha)) != IMG_OK ||
	    (st = img_subject_of(row_alpha, &whole)) != IMG_OK)
		goto out;

	/* the row as one subject; its edges' colours are made already */
	struct img_render rr = *r;
	rr.edges = IMG_EDGES_PHOTO;
	if ((st = img_render(row_photo, row_alpha, &rr, out, group)) != IMG_OK)
		goto out;
	/* each subject's box, mapped as the whole group's was */
	for (int i = 0; subjects && i < n; i++) {
		double px = pets[i].x - x0 + pets[i].sx, py = pets[i].y - y0 + pets[i].sy;
		int l = (int)lround(group->x + (px - whole.x) * group->scale);
		int t = (int)lround(group->y + (py - whole.y) * group->scale);
		int rgt = (int)lround(group->x + (px + pets[i].sw - whole.x) * group->scale);
		int btm = (int)lround(group->y + (py + pets[i].sh - whole.y) * group->scale);
		subjects[i] = (struct img_subject){l, t, VIPS_MAX(1, rgt - l), VIPS_MAX(1, btm - t), 0, group->scale};
	}
out:
	for (int i = 0; i < n; i++)
		if (pets[i].cut)
			g_object_unref(pets[i].cut);
	img_free(row_photo);
	img_free(row_alpha);
	if (base)
		g_object_unref(base);
	if (tagged)
		g_object_unref(tagged);
	if (row)
		g_object_unref(row);
	if (rgb)
		g_object_unref(rgb);
	if (a)
		g_object_unref(a);
	return st;
}
