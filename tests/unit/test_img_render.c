/*
 * test_img_render.c - checks of rendering and encoding (src/img/compose.c,
 * src/img/encode.c) on a synthetic photo (noise, so blur shows) and a
 * synthetic alpha (a disc): every kind of output checked by its content,
 * the subject's box and coverage, every format saved and read back, JPEG's
 * refusal of transparency, colour profiles, and colour names.
 * Prints one "ok - ..." / "not ok - ..." line per check; exits 0 when all
 * pass, 1 otherwise.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vips/vips.h>

#include "img/img.h"

#include "check.h"

static char tmpdir[] = "/tmp/petcut-test-render-XXXXXX";


/* ===== The test picture ===== */

/* The photo: W x H noise around mid-grey; the subject: a disc of radius R
 * centred at (CX, CY). */
enum { W = 200, H = 150, CX = 100, CY = 75, R = 40 };

static int in_disc(int x, int y)
{
	return (x - CX) * (x - CX) + (y - CY) * (y - CY) <= R * R;
}

static struct img *decode_vips(VipsImage *pic)
{
	struct img *im = NULL;
	void *buf;
	size_t len;

	if (vips_pngsave_buffer(pic, &buf, &len, NULL))
		return NULL;
	img_load_buffer(buf, len, &im);
	g_free(buf);
	return im;
}

static struct img *make_photo(void)
{
	VipsImage *n[3], *j, *u, *t;
	struct img *im;

	for (int i = 0; i < 3; i++)
		vips_gaussnoise(&n[i], W, H, "mean", 128.0, "sigma", 50.0, "seed", 7 + i, NULL);
	vips_bandjoin(n, &j, 3, NULL);
	vips_cast(j, &u, VIPS_FORMAT_UCHAR, NULL);
	vips_copy(u, &t, "interpretation", VIPS_INTERPRETATION_sRGB, NULL);
	im = decode_vips(t);
	for (int i = 0; i < 3; i++)
		g_object_unref(n[i]);
	g_object_unref(j);
	g_object_unref(u);
	g_object_unref(t);
	return im;
}

/* The alpha as the CLI makes it: a mask at the photo's size through
 * img_cutout(IMG_CUT_MASK). */
static struct img *make_alpha(const struct img *photo, int full)
{
	float *m = malloc(sizeof *m * W * H);
	struct img *a = NULL;

	for (int y = 0; y < H; y++)
		for (int x = 0; x < W; x++)
			m[y * W + x] = full || in_disc(x, y) ? 1.0f : 0.0f;
	img_cutout(photo, m, H, W, IMG_CUT_MASK, &a);
	free(m);
	return a;
}

/* An image's pixels, through a lossless PNG in memory (the public way). */
static VipsImage *pixels(const struct img *im)
{
	struct img_save_opts o = {.format = IMG_FORMAT_PNG};
	VipsImage *v, *mem = NULL;
	void *buf;
	size_t len;

	if (!im || img_encode(im, &o, &buf, &len) != IMG_OK)
		return NULL;
	v = vips_image_new_from_buffer(buf, len, "", NULL);
	if (v) {
		mem = vips_image_copy_memory(v);
		g_object_unref(v);
	}
	free(buf);
	return mem;
}

static double px(VipsImage *v, int x, int y, int b)
{
	double *p = NULL, out = -1;
	int n;

	if (v && !vips_getpoint(v, &p, &n, x, y, NULL) && b < n)
		out = p[b];
	g_free(p);
	return out;
}

/* Mean absolute difference of the first three bands over a region. */
static double region_diff(VipsImage *a, VipsImage *b, int x0, int y0, int w, int h)
{
	double sum = 0;

	for (int y = y0; y < y0 + h; y++)
		for (int x = x0; x < x0 + w; x++)
			for (int c = 0; c < 3; c++)
				sum += fabs(px(a, x, y, c) - px(b, x, y, c));
	return sum / (w * h * 3);
}

static struct img *render(const struct img *photo, const struct img *alpha, const struct img_render *r,
			  struct img_subject *s)
{
	struct img *out = NULL;
	img_status st = img_render(photo, alpha, r, &out, s);

	if (st != IMG_OK)
		printf("# render failed: %s\n", img_errmsg());
	return out;
}

/* ===== Checks ===== */

static void test_subject(const struct img *alpha)
{
	struct img_subject s;
	int n = 0;

	for (int y = 0; y < H; y++)
		for (int x = 0; x < W; x++)
			n += in_disc(x, y);
	check(img_subject_of(alpha, &s) == IMG_OK, "subject of the disc");
	check(s.x == CX - R && s.y == CY - R && s.w == 2 * R + 1 && s.h == 2 * R + 1,
	      "its box is the disc's: %d,%d %dx%d (want %d,%d %dx%d)", s.x, s.y, s.w, s.h, CX - R, CY - R,
	      2 * R + 1, 2 * R + 1);
	check(fabs(s.coverage - (double)n / (W * H)) < 1e-9, "coverage %.4f is the disc's share %.4f", s.coverage,
	      (double)n / (W * H));
}

static void test_refusals(const struct img *photo, const struct img *alpha)
{
	struct img_render r = {.bg = (enum img_bg)9};
	struct img *o = NULL, *tiny = NULL, *tiny_alpha = NULL;
	VipsImage *black;
	float one = 1;

	check(img_render(photo, alpha, &r, &o, NULL) == IMG_ERR_ARG && !o, "an unknown background is refused");
	r = (struct img_render){.margin = NAN, .crop = 1};
	check(img_render(photo, alpha, &r, &o, NULL) == IMG_ERR_ARG, "a NaN margin is refused");
	check(img_render(photo, photo, NULL, &o, NULL) == IMG_ERR_ARG, "a colour image as alpha is refused");
	check(img_render(alpha, alpha, NULL, &o, NULL) == IMG_ERR_ARG, "a one-band photo is refused");
	vips_black(&black, 10, 10, "bands", 3, NULL);
	tiny = decode_vips(black);
	if (tiny)
		img_cutout(tiny, &one, 1, 1, IMG_CUT_MASK, &tiny_alpha);
	check(tiny_alpha && img_render(photo, tiny_alpha, NULL, &o, NULL) == IMG_ERR_ARG && !o,
	      "an alpha of another size is refused (%s)", img_errmsg());
	img_free(tiny_alpha);
	img_free(tiny);
	g_object_unref(black);
}

static void test_cutout_and_mask(const struct img *photo, const struct img *alpha, VipsImage *ph)
{
	struct img_render r = {0};
	struct img_subject s;
	struct img *o = render(photo, alpha, &r, &s);
	VipsImage *v = pixels(o);

	check(o && img_bands(o) == 4 && img_width(o) == W && img_height(o) == H, "RGBA cut-out at full size");
	check(px(v, CX, CY, 3) == 255 && px(v, CX + R - 2, CY, 3) == 255, "opaque inside the disc");
	check(px(v, 2, 2, 3) == 0 && px(v, CX + R + 2, CY, 3) == 0, "transparent outside");
	check(px(v, CX, CY, 0) == px(ph, CX, CY, 0) && px(v, CX, CY, 2) == px(ph, CX, CY, 2),
	      "the subject keeps the photo's colours");
	check(px(v, 2, 2, 0) == 0 && px(v, 2, 2, 1) == 0, "fully transparent pixels have colour 0");
	check(s.x == CX - R && s.w == 2 * R + 1, "subject box reported with the render");
	img_free(o);
	g_object_unref(v);

	r.kind = IMG_CUT_MASK;
	o = render(photo, alpha, &r, NULL);
	v = pixels(o);
	check(o && img_bands(o) == 1 && px(v, CX, CY, 0) == 255 && px(v, 2, 2, 0) == 0,
	      "mask alone: one band, 255 in the disc, 0 outside");
	img_free(o);
	g_object_unref(v);
}

static void test_color_bg(const struct img *photo, const struct img *alpha, VipsImage *ph)
{
	struct img_render r = {.bg = IMG_BG_COLOR, .color = {0x33, 0x66, 0xcc, 255}};
	struct img *o = render(photo, alpha, &r, NULL);
	VipsImage *v = pixels(o);

	check(o && img_bands(o) == 3, "opaque colour background: 3 bands");
	check(px(v, 0, 0, 0) == 0x33 && px(v, 0, 0, 1) == 0x66 && px(v, 0, 0, 2) == 0xcc &&
		      px(v, W - 1, H - 1, 2) == 0xcc,
	      "corners are the colour (%g,%g,%g)", px(v, 0, 0, 0), px(v, 0, 0, 1), px(v, 0, 0, 2));
	check(px(v, CX, CY, 1) == px(ph, CX, CY, 1), "the subject is on top");
	img_free(o);
	g_object_unref(v);

	r.color[3] = 128;
	o = render(photo, alpha, &r, NULL);
	v = pixels(o);
	check(o && img_bands(o) == 4 && px(v, 0, 0, 3) == 128 && px(v, 0, 0, 2) == 0xcc && px(v, CX, CY, 3) == 255,
	      "half-transparent colour: RGBA, alpha 128 in the corner, 255 on the subject");
	img_free(o);
	g_object_unref(v);
}

static void test_blur_bg(const struct img *photo, const struct img *alpha, VipsImage *ph)
{
	struct img_render r = {.bg = IMG_BG_BLUR};
	struct img *o = render(photo, alpha, &r, NULL);
	VipsImage *v = pixels(o);
	double bgdiff = region_diff(v, ph, 0, 0, 30, 30), subdiff = region_diff(v, ph, CX - 20, CY - 20, 40, 40);

	check(o && img_bands(o) == 3, "blurred background: opaque, 3 bands");
	check(bgdiff > 20, "the background differs from the sharp photo (mean difference %.1f)", bgdiff);
	check(subdiff == 0, "the subject stays sharp (mean difference %.1f)", subdiff);
	img_free(o);
	g_object_unref(v);
}

static void test_image_bg(const struct img *photo, const struct img *alpha)
{
	/* 100 x 50: red left half, blue right half. Covering 200 x 150 takes
	 * it x3 (300 x 150), of which the middle 200 columns are kept: red
	 * on the left third, blue on the right. */
	VipsImage *red, *blue, *both, *u, *t, *v;
	struct img *bg, *o;
	struct img_render r = {.bg = IMG_BG_IMAGE};

	vips_black(&red, 50, 50, "bands", 3, NULL);
	vips_linear(red, &u, (double[]){1, 1, 1}, (double[]){255, 0, 0}, 3, NULL);
	g_object_unref(red);
	red = u;
	vips_black(&blue, 50, 50, "bands", 3, NULL);
	vips_linear(blue, &u, (double[]){1, 1, 1}, (double[]){0, 0, 255}, 3, NULL);
	g_object_unref(blue);
	blue = u;
	vips_join(red, blue, &both, VIPS_DIRECTION_HORIZONTAL, NULL);
	vips_cast(both, &u, VIPS_FORMAT_UCHAR, NULL);
	vips_copy(u, &t, "interpretation", VIPS_INTERPRETATION_sRGB, NULL);
	bg = decode_vips(t);
	r.bg_image = bg;
	o = render(photo, alpha, &r, NULL);
	v = pixels(o);
	check(o && img_bands(o) == 3 && img_width(o) == W && img_height(o) == H,
	      "image background: opaque, the photo's size");
	check(px(v, 0, 0, 0) > 240 && px(v, 0, H - 1, 2) < 15 && px(v, W - 1, 0, 2) > 240 && px(v, W - 1, H - 1, 0) < 15,
	      "it covers: red on the left edge, blue on the right, top to bottom");
	img_free(o);
	r.bg_image = NULL;
	check(img_render(photo, alpha, &r, &o, NULL) == IMG_ERR_ARG && !o, "image background without an image refused");
	img_free(bg);
	g_object_unref(v);
	g_object_unref(t);
	g_object_unref(u);
	g_object_unref(both);
	g_object_unref(red);
	g_object_unref(blue);
}

static void test_crop_fit(const struct img *photo, const struct img *alpha, VipsImage *ph)
{
	struct img_render r = {.crop = 1, .margin = 10};
	struct img_subject s;
	struct img *o = render(photo, alpha, &r, &s);
	VipsImage *v = pixels(o);
	int side = 2 * R + 1;

	check(o && img_width(o) == side + 20 && img_height(o) == side + 20, "crop with a 10 px margin: %dx%d (want %d)",
	      o ? img_width(o) : 0, o ? img_height(o) : 0, side + 20);
	check(s.x == 10 && s.y == 10 && s.w == side && s.h == side, "the subject box is inside, 10 px from each edge");
	check(px(v, 10 + R, 10 + R, 1) == px(ph, CX, CY, 1) && px(v, 10 + R, 10 + R, 3) == 255 && px(v, 0, 0, 3) == 0,
	      "the crop holds the subject at its place");
	img_free(o);
	g_object_unref(v);

	r.margin = 10, r.margin_percent = 1;
	o = render(photo, alpha, &r, NULL);
	check(o && img_width(o) == side + 2 * 8, "margin 10%% of an %d px box is 8 px a side (%d wide)", side,
	      o ? img_width(o) : 0);
	img_free(o);

	r.margin = 100, r.margin_percent = 0;
	o = render(photo, alpha, &r, &s);
	check(o && img_width(o) == W && img_height(o) == H && s.x == CX - R,
	      "a margin past the edges is clamped to the picture");
	img_free(o);

	r = (struct img_render){.crop = 1, .fit_w = 50, .fit_h = 40};
	o = render(photo, alpha, &r, &s);
	check(o && img_width(o) == 40 && img_height(o) == 40 && s.w <= 40 && s.w >= 39,
	      "crop then fit 50x40: %dx%d, aspect kept, subject %d wide", o ? img_width(o) : 0,
	      o ? img_height(o) : 0, s.w);
	img_free(o);

	r = (struct img_render){.fit_w = 100, .fit_h = 100};
	o = render(photo, alpha, &r, NULL);
	check(o && img_width(o) == 100 && img_height(o) == 75, "fit 100x100 without crop: 100x75");
	img_free(o);

	r = (struct img_render){.fit_w = 1000, .fit_h = 1000};
	o = render(photo, alpha, &r, NULL);
	check(o && img_width(o) == W && img_height(o) == H, "fit never enlarges");
	img_free(o);

	r = (struct img_render){.fit_pixels = W * H / 7};
	o = render(photo, alpha, &r, NULL);
	long area = o ? (long)img_width(o) * img_height(o) : 0;
	check(o && area <= W * H / 7 && area > W * H / 7 * 0.95 &&
		      abs(img_width(o) * H - img_height(o) * W) <= W + H,
	      "fit to %d pixels: %dx%d (%ld pixels), aspect kept", W * H / 7, o ? img_width(o) : 0,
	      o ? img_height(o) : 0, area);
	img_free(o);

	r = (struct img_render){.fit_w = 40, .fit_pixels = W * H};
	o = render(photo, alpha, &r, NULL);
	check(o && img_width(o) == 40, "fit by pixels and a side: the tighter wins (%d wide)", o ? img_width(o) : 0);
	img_free(o);
}

static void test_shadow(const struct img *photo, const struct img *alpha)
{
	struct img_render r = {.effect = IMG_EFFECT_SHADOW, .bg = IMG_BG_COLOR, .color = {255, 255, 255, 255}};
	struct img *o = render(photo, alpha, &r, NULL);
	VipsImage *v = pixels(o);

	/* The shadow goes down and right: just below the disc is darker
	 * than the white background, well above it is not. */
	check(o && px(v, CX + 2, CY + R + 1, 0) < 200 && px(v, CX + 2, CY + R + 1, 1) < 200,
	      "below the subject the shadow darkens the background (%g)", px(v, CX + 2, CY + R + 1, 0));
	check(px(v, CX, CY - R - 6, 0) >= 253 && px(v, 1, 1, 0) == 255,
	      "above it and far away, the background is untouched (%g)", px(v, CX, CY - R - 6, 0));
	img_free(o);
	g_object_unref(v);

	r.bg = IMG_BG_NONE;
	o = render(photo, alpha, &r, NULL);
	v = pixels(o);
	check(o && img_bands(o) == 4 && px(v, CX + 2, CY + R + 1, 3) > 0 && px(v, CX + 2, CY + R + 1, 0) < 10 &&
		      px(v, 1, 1, 3) == 0,
	      "without a background: RGBA, a dark translucent shadow on transparent (alpha %g)",
	      px(v, CX + 2, CY + R + 1, 3));
	img_free(o);
	g_object_unref(v);
}

/* Where a shadow falls: the pixels of out darker than bg (the background
 * alone) by more than 4 levels a band on average, outside the subject (the
 * disc in the box s, with a pixel to spare). */
struct shade {
	int n, x0, y0, x1, y1;
	double cx, cy;	/* the centroid, weighted by the darkening */
	int border;	/* the most a pixel on the canvas's border is darkened (sum of bands) */
	int row_peak;	/* the row darkened most in all */
};

static struct shade shade_of(VipsImage *out, VipsImage *bg, struct img_subject s)
{
	struct shade sh = {0, out->Xsize, out->Ysize, -1, -1, 0, 0, 0, -1};
	double ccx = s.x + s.w / 2.0, ccy = s.y + s.h / 2.0, rad = s.w / 2.0 + 1.5, sum = 0, best = 0;

	for (int y = 0; y < out->Ysize; y++) {
		double row = 0;
		for (int x = 0; x < out->Xsize; x++) {
			const VipsPel *a = VIPS_IMAGE_ADDR(out, x, y), *b = VIPS_IMAGE_ADDR(bg, x, y);
			int d = (b[0] - a[0]) + (b[1] - a[1]) + (b[2] - a[2]);
			if ((x - ccx) * (x - ccx) + (y - ccy) * (y - ccy) <= rad * rad)
				continue;
			if ((x == 0 || y == 0 || x == out->Xsize - 1 || y == out->Ysize - 1) && d > sh.border)
				sh.border = d;
			if (d <= 12)
				continue;
			sh.n++;
			sh.x0 = x < sh.x0 ? x : sh.x0, sh.x1 = x > sh.x1 ? x : sh.x1;
			sh.y0 = y < sh.y0 ? y : sh.y0, sh.y1 = y > sh.y1 ? y : sh.y1;
			sh.cx += d * x, sh.cy += d * y, sum += d, row += d;
		}
		if (row > best)
			best = row, sh.row_peak = y;
	}
	if (sum > 0)
		sh.cx /= sum, sh.cy /= sum;
	return sh;
}

static struct img *make_empty_alpha(const struct img *photo)
{
	float *m = calloc((size_t)W * H, sizeof *m);
	struct img *a = NULL;

	img_cutout(photo, m, H, W, IMG_CUT_MASK, &a);
	free(m);
	return a;
}

/* Each kind of shadow on each kind of background: it is there, none of it
 * above the subject's top, below and beside the subject where its kind puts
 * it, and within the canvas. */
static void test_shadow_kinds(const struct img *photo, const struct img *alpha)
{
	static const char *const kinds[] = {"drop", "soft", "hard", "floating"};
	static const char *const bgs[] = {"white", "blurred photo", "image"};
	struct img *empty = make_empty_alpha(photo);

	for (int b = 0; b < 3; b++)
		for (int k = 0; k <= IMG_SHADOW_FLOATING; k++)
			for (int full = 0; full < 2; full++) {
				struct img_render r = {.canvas_w = 400, .canvas_h = 300, .scale = full ? 1 : 0.6,
						       .align_x = 0.5, .align_y = 0.5, .snap = IMG_SNAP_NONE,
						       .bg = b == 0 ? IMG_BG_COLOR : b == 1 ? IMG_BG_BLUR : IMG_BG_IMAGE,
						       .color = {255, 255, 255, 255}, .bg_image = photo, .edges = IMG_EDGES_PHOTO};
				struct img_subject s, dummy;
				struct img *bg = render(photo, empty, &r, &dummy);
				r.effect = IMG_EFFECT_SHADOW;
				r.shadow.kind = k;
				struct img *o = render(photo, alpha, &r, &s);
				VipsImage *vo = pixels(o), *vb = pixels(bg);
				if (!check(vo && vb, "%s shadow on %s: rendered", kinds[k], bgs[b]))
					goto next;
				struct shade sh = shade_of(vo, vb, s);
				double mx = s.x + s.w / 2.0, base = s.y + s.h;
				if (full) {
					/* the subject and its shadow scaled to fill the canvas:
					 * the shadow's tail ends on it, not cut by its edge */
					check(sh.border <= 6, "%s shadow on %s at scale 100%%: within the canvas (border darkened by %d)",
					      kinds[k], bgs[b], sh.border);
					goto next;
				}
				check(sh.n > 30 && sh.y0 >= s.y,
				      "%s shadow on %s: %d pixels, none above the subject (top row %d, subject's %d)", kinds[k],
				      bgs[b], sh.n, sh.y0, s.y);
				switch (k) {
				case IMG_SHADOW_DROP:
					check(sh.cx > mx + 2 && sh.cy > s.y + s.h / 2.0 + 2 && sh.x1 > s.x + s.w && sh.y1 > base,
					      "drop on %s: down and right of the subject (centre %.0f,%.0f; subject's %.0f,%.0f)",
					      bgs[b], sh.cx, sh.cy, mx, s.y + s.h / 2.0);
					break;
				case IMG_SHADOW_SOFT:
					check(sh.y0 > s.y + 0.7 * s.h && fabs(sh.cx - mx) < 0.1 * s.w && sh.y1 > base &&
						      sh.y1 < base + 0.15 * s.h,
					      "soft on %s: around the base (rows %d to %d, base %.0f; centre x %.0f, subject's %.0f)",
					      bgs[b], sh.y0, sh.y1, base, sh.cx, mx);
					break;
				case IMG_SHADOW_HARD:
					check(sh.cx > mx + 0.15 * s.w && sh.cy > s.y + 0.5 * s.h && sh.cy < base &&
						      sh.x1 > s.x + s.w + 0.1 * s.w,
					      "hard on %s: behind, leaning right, beside the subject (centre %.0f,%.0f; subject "
					      "%d,%d %dx%d)", bgs[b], sh.cx, sh.cy, s.x, s.y, s.w, s.h);
					break;
				case IMG_SHADOW_FLOATING:
					check(sh.cy > base && sh.row_peak > base + 0.03 * s.w && fabs(sh.cx - mx) < 0.1 * s.w,
					      "floating on %s: under the subject with a gap (darkest row %d, base %.0f)", bgs[b],
					      sh.row_peak, base);
					break;
				}
				if (k == IMG_SHADOW_HARD && b == 0) { /* leaning the other way */
					struct img_render l = r;
					l.shadow.angle = -45;
					l.shadow.given = IMG_SHADOW_ANGLE;
					struct img *lo = render(photo, alpha, &l, &s);
					VipsImage *vl = pixels(lo);
					struct shade ls = vl ? shade_of(vl, vb, s) : (struct shade){0};
					check(vl && ls.n > 30 && ls.cx < s.x + s.w / 2.0 - 0.15 * s.w && ls.y0 >= s.y,
					      "hard at -45 degrees: leaning left (centre x %.0f, subject's %.0f)", ls.cx,
					      s.x + s.w / 2.0);
					img_free(lo);
					if (vl)
						g_object_unref(vl);
				}
			next:
				img_free(o);
				img_free(bg);
				if (vo)
					g_object_unref(vo);
				if (vb)
					g_object_unref(vb);
			}
	img_free(empty);
}

/* The region of interest: nothing of the subject outside it, in the
 * cut-out and in the mask. */
static void test_roi(const struct img *photo, const struct img *alpha)
{
	struct img_render r = {.roi = {0, 0, 50, 100}, .roi_percent = {1, 1, 1, 1}};
	struct img_subject s;
	struct img *o = render(photo, alpha, &r, &s);
	VipsImage *v = pixels(o);

	check(o && s.x == CX - R && s.x + s.w == CX && s.h >= 2 * R - 2 && px(v, CX + R / 2, CY, 3) == 0 &&
		      px(v, CX - R / 2, CY, 3) == 255,
	      "roi 0%% 0%% 50%% 100%%: the left half of the subject alone (box %d,%d %dx%d)", s.x, s.y, s.w, s.h);
	img_free(o);
	if (v)
		g_object_unref(v);
	r = (struct img_render){.kind = IMG_CUT_MASK, .roi = {CX, 0, W, CY}};
	o = render(photo, alpha, &r, &s);
	v = pixels(o);
	check(o && px(v, CX + R / 2, CY - R / 2, 0) == 255 && px(v, CX - R / 2, CY - R / 2, 0) == 0 &&
		      px(v, CX + R / 2, CY + R / 2, 0) == 0,
	      "roi in pixels on the mask: the top right quarter alone");
	img_free(o);
	if (v)
		g_object_unref(v);
}

static void test_sticker(const struct img *photo, const struct img *alpha, VipsImage *ph)
{
	struct img_render r = {.effect = IMG_EFFECT_STICKER, .outline_px = 6};
	struct img *o = render(photo, alpha, &r, NULL);
	VipsImage *v = pixels(o);
	int ring = 1;

	/* 3 px outside the disc, all round: opaque white. */
	for (int k = 0; k < 8; k++) {
		double t = k * M_PI / 4;
		int x = (int)lround(CX + (R + 3) * cos(t)), y = (int)lround(CY + (R + 3) * sin(t));

		ring &= px(v, x, y, 3) >= 250 && px(v, x, y, 0) >= 250 && px(v, x, y, 1) >= 250;
	}
	check(o && img_bands(o) == 4 && ring, "a white opaque ring 3 px outside the subject, all round");
	check(px(v, CX + R + 12, CY, 3) == 0 && px(v, 1, 1, 3) == 0, "and transparent past the outline");
	check(px(v, CX, CY, 0) == px(ph, CX, CY, 0), "the subject on top of it");
	img_free(o);
	g_object_unref(v);
}

static void test_popart(const struct img *photo, const struct img *alpha)
{
	static const int want[4][3] = {{0xff, 0x3e, 0xa5}, {0x00, 0xc2, 0xff}, {0xff, 0xe6, 0x00}, {0x7c, 0xff, 0x4f}};
	struct img_render r = {.effect = IMG_EFFECT_POPART};
	struct img_subject s;
	struct img *o = render(photo, alpha, &r, &s);
	VipsImage *v = pixels(o);
	int corners[4][2] = {{0, 0}, {W - 1, 0}, {0, H - 1}, {W - 1, H - 1}}, good = 1;

	check(o && img_width(o) == W && img_height(o) == H && img_bands(o) == 3,
	      "pop art keeps the photo's size (2x2 cells of half size), opaque");
	for (int i = 0; i < 4; i++)
		for (int c = 0; c < 3; c++)
			good &= fabs(px(v, corners[i][0], corners[i][1], c) - want[i][c]) <= 2;
	check(good, "four cells on four distinct bright backgrounds");
	good = 1;
	for (int i = 0; i < 4; i++) {
		int x = corners[i][0] ? W * 3 / 4 : W / 4, y = corners[i][1] ? H * 3 / 4 : H / 4;

		good &= fabs(px(v, x, y, 0) - want[i][0]) + fabs(px(v, x, y, 1) - want[i][1]) +
				fabs(px(v, x, y, 2) - want[i][2]) > 30;
	}
	check(good, "each cell's centre holds the printed subject, not the background");
	check(s.w >= R && s.w <= R + 2 && s.x >= W / 4 - R / 2 - 1, "subject reported in the top-left cell (%d,%d %dx%d)",
	      s.x, s.y, s.w, s.h);
	img_free(o);
	g_object_unref(v);
}

/* ===== Encoding ===== */

static VipsImage *load_file(const char *path)
{
	VipsImage *v = vips_image_new_from_file(path, NULL), *m = NULL;

	if (v) {
		m = vips_image_copy_memory(v);
		g_object_unref(v);
	}
	return m;
}

static void test_formats(const struct img *photo, const struct img *alpha)
{
	struct img_render rr = {0}, rc = {.bg = IMG_BG_COLOR, .color = {255, 255, 255, 255}};
	struct img *cut = render(photo, alpha, &rr, NULL), *flat = render(photo, alpha, &rc, NULL), *opaque4;
	struct img *full = make_alpha(photo, 1);
	struct img_save_opts o = {0};
	char path[300];
	VipsImage *v;
	void *buf;
	size_t len;
	img_status st;

	opaque4 = render(photo, full, &rr, NULL);
	static const struct {
		enum img_format f;
		int lossy;
		const char *file;
	} cases[] = {{IMG_FORMAT_PNG, 0, "c.png"}, {IMG_FORMAT_WEBP, 0, "c.webp"}, {IMG_FORMAT_WEBP, 1, "l.webp"},
		     {IMG_FORMAT_AVIF, 0, "c.avif"}};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		o = (struct img_save_opts){.format = cases[i].f, .lossy = cases[i].lossy};
		snprintf(path, sizeof path, "%s/%s", tmpdir, cases[i].file);
		st = img_save_opts(cut, path, &o);
		if (st == IMG_ERR_UNSUPPORTED && cases[i].f == IMG_FORMAT_AVIF) {
			printf("ok - # SKIP %s: %s\n", cases[i].file, img_errmsg());
			continue;
		}
		v = st == IMG_OK ? load_file(path) : NULL;
		check(v && v->Xsize == W && v->Ysize == H && v->Bands == 4 && px(v, CX, CY, 3) > 250 && px(v, 2, 2, 3) < 5,
		      "%s%s saved and read back: RGBA, opaque disc, transparent corner (%s)", cases[i].file,
		      cases[i].lossy ? " (lossy)" : "", st == IMG_OK ? "" : img_errmsg());
		if (v)
			g_object_unref(v);
		unlink(path);
	}

	o = (struct img_save_opts){.format = IMG_FORMAT_JPEG};
	snprintf(path, sizeof path, "%s/t.jpg", tmpdir);
	st = img_save_opts(cut, path, &o);
	check(st == IMG_ERR_ARG && strstr(img_errmsg(), "JPEG has no transparency: choose a background") &&
		      access(path, F_OK) != 0,
	      "JPEG of a transparent cut-out refused, nothing written (%s)", img_errmsg());
	st = img_save_opts(flat, path, &o);
	v = st == IMG_OK ? load_file(path) : NULL;
	check(v && v->Bands == 3 && fabs(px(v, 1, 1, 0) - 255) < 4, "JPEG of the cut-out on white saved and read back");
	if (v)
		g_object_unref(v);
	st = img_save_opts(opaque4, path, &o);
	v = st == IMG_OK ? load_file(path) : NULL;
	check(img_bands(opaque4) == 4 && v && v->Bands == 3, "an opaque RGBA is flattened for JPEG (%s)",
	      st ? img_errmsg() : "");
	if (v)
		g_object_unref(v);
	unlink(path);
	check(img_save(flat, path, IMG_FORMAT_JPEG) == IMG_OK, "img_save writes JPEG too");
	unlink(path);

	o = (struct img_save_opts){.format = IMG_FORMAT_WEBP, .lossy = 1, .quality = 50};
	st = img_encode(cut, &o, &buf, &len);
	check(st == IMG_OK && len > 12 && !memcmp(buf, "RIFF", 4) && !memcmp((char *)buf + 8, "WEBP", 4),
	      "encode to memory: lossy WebP, %zu bytes", len);
	if (st == IMG_OK)
		free(buf);
	if (st == IMG_OK) {
		/* The bytes written by img_write_file read back as the same WebP. */
		snprintf(path, sizeof path, "%s/m.webp", tmpdir);
		st = img_encode(cut, &o, &buf, &len);
		if (st == IMG_OK) {
			st = img_write_file(path, buf, len);
			v = st == IMG_OK ? load_file(path) : NULL;
			check(v && v->Xsize == W && v->Bands == 4, "img_write_file writes encoded bytes (%s)",
			      st ? img_errmsg() : "");
			if (v)
				g_object_unref(v);
			free(buf);
		}
		unlink(path);
		snprintf(path, sizeof path, "%s/missing/m.webp", tmpdir);
		check(img_write_file(path, "x", 1) == IMG_ERR_IO, "img_write_file into a missing folder fails");
	}
	o = (struct img_save_opts){.format = IMG_FORMAT_PNG, .quality = 101};
	check(img_encode(cut, &o, &buf, &len) == IMG_ERR_ARG, "quality over 100 refused");

	enum img_format f;
	check(!img_format_parse("JPEG", &f) && f == IMG_FORMAT_JPEG && !img_format_parse("jpg", &f) &&
		      f == IMG_FORMAT_JPEG && !strcmp(img_format_ext(f), "jpg") && !img_format_parse("avif", &f) &&
		      f == IMG_FORMAT_AVIF && !strcmp(img_format_ext(f), "avif") && img_format_parse("gif", &f) == -1,
	      "format names: jpg, jpeg, avif; gif refused");

	img_free(full);
	img_free(opaque4);
	img_free(cut);
	img_free(flat);
}

/* A photo tagged with Display P3: outputs keep the profile by default,
 * --color srgb converts and drops it. */
static void test_profiles(const struct img *alpha)
{
	VipsImage *flat, *lin, *u, *t, *p3, *v;
	struct img *photo, *cut = NULL;
	struct img_render r = {.bg = IMG_BG_COLOR, .color = {255, 0, 0, 255}};
	struct img_save_opts o = {.format = IMG_FORMAT_PNG};
	void *buf;
	size_t len;

	vips_black(&flat, W, H, "bands", 3, NULL);
	vips_linear(flat, &lin, (double[]){1, 1, 1}, (double[]){30, 160, 90}, 3, NULL);
	vips_cast(lin, &u, VIPS_FORMAT_UCHAR, NULL);
	vips_copy(u, &t, "interpretation", VIPS_INTERPRETATION_sRGB, NULL);
	if (vips_icc_transform(t, &p3, "p3", "input_profile", "srgb", NULL)) {
		printf("ok - # SKIP profiles: libvips has no built-in P3 profile\n");
		vips_error_clear();
		goto out;
	}
	photo = decode_vips(p3);
	if (photo)
		img_render(photo, alpha, &r, &cut, NULL);
	v = NULL;
	if (cut && img_encode(cut, &o, &buf, &len) == IMG_OK) {
		v = vips_image_new_from_buffer(buf, len, "", NULL);
		check(v && vips_image_get_typeof(v, VIPS_META_ICC_NAME), "the photo's P3 profile stays on the output");
		/* sRGB red is not (255, 0, 0) in P3. */
		check(v && px(v, 0, 0, 0) < 250 && px(v, 0, 0, 1) > 20,
		      "a red background is converted into P3 (%g,%g,%g)", px(v, 0, 0, 0), px(v, 0, 0, 1), px(v, 0, 0, 2));
		if (v)
			g_object_unref(v);
		free(buf);
	} else {
		check(0, "render and encode the P3 photo (%s)", img_errmsg());
	}
	o.color = IMG_COLOR_SRGB;
	if (cut && img_encode(cut, &o, &buf, &len) == IMG_OK) {
		v = vips_image_new_from_buffer(buf, len, "", NULL);
		check(v && !vips_image_get_typeof(v, VIPS_META_ICC_NAME) && px(v, 0, 0, 0) > 250 && px(v, 0, 0, 1) < 5,
		      "--color srgb converts back to sRGB red and drops the profile (%g,%g,%g)", px(v, 0, 0, 0),
		      px(v, 0, 0, 1), px(v, 0, 0, 2));
		if (v)
			g_object_unref(v);
		free(buf);
	}
	img_free(cut);
	img_free(photo);
	g_object_unref(p3);
out:
	g_object_unref(t);
	g_object_unref(u);
	g_object_unref(lin);
	g_object_unref(flat);
}

static void test_colors(void)
{
	unsigned char c[4];

	check(!img_color_parse("#fff", c) && c[0] == 255 && c[1] == 255 && c[2] == 255 && c[3] == 255, "#fff");
	check(!img_color_parse("#FF8000", c) && c[0] == 255 && c[1] == 128 && c[2] == 0 && c[3] == 255, "#FF8000");
	check(!img_color_parse("#11223344", c) && c[0] == 0x11 && c[1] == 0x22 && c[2] == 0x33 && c[3] == 0x44,
	      "#11223344 with its alpha");
	check(!img_color_parse("Grey", c) && c[0] == 128 && c[3] == 255, "colour names in any case (Grey)");
	check(!img_color_parse("transparent", c) && c[3] == 0, "transparent");
	check(!img_color_parse("orange", c) && c[0] == 255 && c[1] == 165 && c[2] == 0, "orange");
	check(img_color_parse("#12", c) == -1 && img_color_parse("#ggg", c) == -1 && img_color_parse("bluish", c) == -1 &&
		      img_color_parse("", c) == -1 && img_color_parse("#1234567", c) == -1,
	      "not colours: #12, #ggg, bluish, empty, #1234567");
}

/* The largest difference between two images' pixels (-1 if either is
 * missing or they differ in shape). */
static double max_diff(VipsImage *x, VipsImage *y)
{
	VipsImage *d, *ad;
	double m = -1;

	if (!x || !y || vips_subtract(x, y, &d, NULL))
		return -1;
	if (!vips_abs(d, &ad, NULL)) {
		if (vips_max(ad, &m, NULL))
			m = -1;
		g_object_unref(ad);
	}
	g_object_unref(d);
	return m;
}

/* The subject's own colours at a soft edge: F (green, a little gradient)
 * over a strongly coloured B (magenta) through an alpha ramp 12 px wide;
 * the photo is alpha F + (1 - alpha) B. img_foreground recovers F in the
 * ramp far better than the photo's pixels do, keeps the photo where alpha
 * is 1, and img_render uses it under a background (edges auto or clean),
 * not with edges photo. */
static void test_edges(void)
{
	unsigned char *mix = malloc(W * H * 3), *al = malloc(W * H);
	double f[W][3];
	VipsImage *vm, *va;
	struct img *photo = NULL, *alpha = NULL, *fg = NULL, *a = NULL, *b = NULL, *c = NULL;

	for (int x = 0; x < W; x++) {
		f[x][0] = 40 + x / 4.0, f[x][1] = 160, f[x][2] = 60;
	}
	for (int y = 0; y < H; y++)
		for (int x = 0; x < W; x++) {
			double t = VIPS_CLIP(0.0, (x - 94) / 12.0, 1.0), bk[3] = {255, 0, 255};
			al[y * W + x] = (unsigned char)lround(255 * t);
			t = al[y * W + x] / 255.0;
			for (int k = 0; k < 3; k++)
				mix[(y * W + x) * 3 + k] = (unsigned char)lround(t * f[x][k] + (1 - t) * bk[k]);
		}
	vm = vips_image_new_from_memory_copy(mix, W * H * 3, W, H, 3, VIPS_FORMAT_UCHAR);
	va = vips_image_new_from_memory_copy(al, W * H, W, H, 1, VIPS_FORMAT_UCHAR);
	if (vm && va) {
		VipsImage *t;
		if (!vips_copy(vm, &t, "interpretation", VIPS_INTERPRETATION_sRGB, NULL)) {
			photo = decode_vips(t);
			g_object_unref(t);
		}
	}
	float *m = malloc(sizeof *m * W * H); /* the alpha as the CLI makes it */
	for (int i = 0; m && i < W * H; i++)
		m[i] = al[i] / 255.0f;
	if (photo && m)
		img_cutout(photo, m, H, W, IMG_CUT_MASK, &alpha);
	free(m);
	check(photo && alpha && img_foreground(photo, alpha, &fg) == IMG_OK && img_bands(fg) == 3,
	      "img_foreground runs (%s)", img_errmsg());
	VipsImage *pf = pixels(fg);
	double est = 0, raw = 0, kept = 0;
	int n = 0;
	for (int x = 0; pf && x < W; x++) {
		int y = H / 2, i = y * W + x, alpha8 = al[i];
		for (int k = 0; k < 3; k++) {
			if (alpha8 > 25 && alpha8 < 255) { /* where the subject shows at all */
				est += fabs(px(pf, x, y, k) - f[x][k]);
				raw += fabs(mix[i * 3 + k] - f[x][k]);
			}
			if (alpha8 == 255)
				kept = fmax(kept, fabs(px(pf, x, y, k) - mix[i * 3 + k]));
		}
		n += alpha8 > 25 && alpha8 < 255;
	}
	check(n >= 8 && est < 0.2 * raw, "in the soft edge the subject's colour is recovered: mean error %.1f against "
					   "%.1f for the photo's pixels (%d pixels)",
	      n ? est / n / 3 : 0, n ? raw / n / 3 : 0, n);
	check(kept <= 1, "where alpha is 1 the photo is kept (largest change %.0f)", kept);
	struct img_render auto_r = {.bg = IMG_BG_COLOR, .color = {255, 255, 255, 255}};
	struct img_render clean_r = auto_r, photo_r = auto_r;
	clean_r.edges = IMG_EDGES_CLEAN;
	photo_r.edges = IMG_EDGES_PHOTO;
	a = render(photo, alpha, &auto_r, NULL);
	b = render(photo, alpha, &clean_r, NULL);
	c = render(photo, alpha, &photo_r, NULL);
	VipsImage *va2 = pixels(a), *vb = pixels(b), *vc = pixels(c);
	double diff_ab = max_diff(va2, vb), diff_ac = max_diff(va2, vc);
	/* in the middle of the ramp, on white: magenta would show as pink */
	double green_clean = vb ? px(vb, 100, H / 2, 1) - px(vb, 100, H / 2, 0) : 0;
	double green_photo = vc ? px(vc, 100, H / 2, 1) - px(vc, 100, H / 2, 0) : 0;
	check(diff_ab == 0 && diff_ac > 20 && green_clean > green_photo + 40,
	      "on a background, edges auto is clean (max diff %.0f) and photo differs (%.0f): mid-edge green-red %.0f "
	      "clean, %.0f photo",
	      diff_ab, diff_ac, green_clean, green_photo);
	VIPS_UNREF(pf);
	VIPS_UNREF(va2);
	VIPS_UNREF(vb);
	VIPS_UNREF(vc);
	VIPS_UNREF(vm);
	VIPS_UNREF(va);
	img_free(fg), img_free(a), img_free(b), img_free(c), img_free(photo), img_free(alpha);
	free(mix), free(al);
}

/* ===== Canvas layout ===== */

/* The subject's box in an output (8-bit, in memory), measured on its alpha
 * (RGBA) or, for an opaque one, where it differs from the plain colour c. */
static struct img_subject measured(VipsImage *v, const double *c)
{
	int x0 = v->Xsize, y0 = v->Ysize, x1 = -1, y1 = -1;

	for (int y = 0; y < v->Ysize; y++)
		for (int x = 0; x < v->Xsize; x++) {
			const VipsPel *q = VIPS_IMAGE_ADDR(v, x, y);
			int on = c ? fabs(q[0] - c[0]) + fabs(q[1] - c[1]) > 60 : v->Bands == 4 && q[3] >= 128;
			if (on) {
				x0 = x < x0 ? x : x0, x1 = x > x1 ? x : x1;
				y0 = y < y0 ? y : y0, y1 = y > y1 ? y : y1;
			}
		}
	return x1 < 0 ? (struct img_subject){0} : (struct img_subject){x0, y0, x1 - x0 + 1, y1 - y0 + 1, 0, 0};
}

static int near(double got, double want, double tol)
{
	return fabs(got - want) <= tol;
}

static void test_canvas(const struct img *photo, const struct img *alpha)
{
	enum { CW_ = 1000, CH_ = 800 };
	struct img_render r = {.canvas_w = CW_, .canvas_h = CH_, .scale = 0.5, .align_x = 0.5, .align_y = 0.5};
	struct img_subject s;
	struct img *o = render(photo, alpha, &r, &s);
	VipsImage *v = pixels(o);
	struct img_subject m = v ? measured(v, NULL) : (struct img_subject){0};
	double side = 0.5 * CH_; /* the disc is square: the canvas's height binds */

	check(o && img_width(o) == CW_ && img_height(o) == CH_ && img_bands(o) == 4, "canvas %dx%d, RGBA",
	      o ? img_width(o) : 0, o ? img_height(o) : 0);
	check(near(m.h, side, 0.02 * CH_) && near(m.w, side, 0.02 * CH_),
	      "scale 50%%: the subject is %dx%d, half the canvas's height (%g) within 2 %%", m.w, m.h, side);
	check(near(m.x + m.w / 2.0, CW_ / 2.0, 0.02 * CW_) && near(m.y + m.h / 2.0, CH_ / 2.0, 0.02 * CH_),
	      "centred: its middle at %g,%g", m.x + m.w / 2.0, m.y + m.h / 2.0);
	check(near(s.scale, side / (2 * R + 1), 0.01) && s.scale > 1,
	      "the answer says it was enlarged %.3f times (box %d px to %g)", s.scale, 2 * R + 1, side);
	check(near(s.x, m.x, 2) && near(s.y, m.y, 2) && near(s.w, m.w, 3) && near(s.h, m.h, 3),
	      "the reported box %d,%d %dx%d is the one drawn %d,%d %dx%d", s.x, s.y, s.w, s.h, m.x, m.y, m.w, m.h);
	img_free(o);
	if (v)
		g_object_unref(v);

	/* bottom left, 80 %, with 10 % padding on every side, on a colour */
	r = (struct img_render){.canvas_w = CW_, .canvas_h = CH_, .scale = 0.8, .align_x = 0, .align_y = 1,
				.pad = {10, 10, 10, 10}, .pad_percent = {1, 1, 1, 1}, .bg = IMG_BG_COLOR,
				.color = {20, 40, 200, 255}, .edges = IMG_EDGES_PHOTO};
	o = render(photo, alpha, &r, &s);
	v = pixels(o);
	m = v ? measured(v, (const double[]){20, 40, 200}) : (struct img_subject){0};
	side = 0.8 * 0.8 * CH_;
	check(o && img_bands(o) == 3 && near(m.h, side, 0.02 * CH_),
	      "80%% of the room the padding leaves: %d px high (want %g)", m.h, side);
	check(near(m.x, 0.1 * CW_, 0.02 * CW_) && near(m.y + m.h, 0.9 * CH_, 0.02 * CH_),
	      "at 0%% 100%%: against the padding's bottom left corner (%d, %d)", m.x, m.y + m.h);
	img_free(o);
	if (v)
		g_object_unref(v);

	/* a subject the photo cuts at the bottom stands on the canvas's bottom
	 * edge (snap auto), whatever the alignment says */
	{
		float *mk = malloc(sizeof *mk * W * H);
		struct img *cut_alpha = NULL;
		for (int y = 0; y < H; y++)
			for (int x = 0; x < W; x++)
				mk[y * W + x] = x >= 60 && x < 140 && y >= 50 ? 1.0f : 0.0f;
		img_cutout(photo, mk, H, W, IMG_CUT_MASK, &cut_alpha);
		free(mk);
		r = (struct img_render){.canvas_w = CW_, .canvas_h = CH_, .scale = 0.5, .align_x = 0.5, .align_y = 0.5};
		o = render(photo, cut_alpha, &r, &s);
		v = pixels(o);
		m = v ? measured(v, NULL) : (struct img_subject){0};
		check(o && m.h > 0 && m.y + m.h == CH_ && near(m.x + m.w / 2.0, CW_ / 2.0, 0.02 * CW_),
		      "cut off at the bottom: it stands on the canvas's bottom edge (%d of %d), centred across",
		      m.y + m.h, CH_);
		img_free(o);
		if (v)
			g_object_unref(v);
		r.snap = IMG_SNAP_NONE;
		o = render(photo, cut_alpha, &r, &s);
		v = pixels(o);
		m = v ? measured(v, NULL) : (struct img_subject){0};
		check(o && near(m.y + m.h / 2.0, CH_ / 2.0, 0.02 * CH_), "snap none: centred (middle at %g)",
		      m.y + m.h / 2.0);
		img_free(o);
		if (v)
			g_object_unref(v);
		img_free(cut_alpha);
	}

	/* the shadow stays on the canvas: below and beside the subject */
	r = (struct img_render){.canvas_w = 400, .canvas_h = 400, .scale = 1, .align_x = 0.5, .align_y = 0.5,
				.effect = IMG_EFFECT_SHADOW, .bg = IMG_BG_COLOR, .color = {255, 255, 255, 255}};
	o = render(photo, alpha, &r, &s);
	v = pixels(o);
	check(o && px(v, s.x + s.w / 2, s.y + s.h + 1, 0) < 200 && px(v, s.x + s.w / 2, s.y - 3, 0) >= 253,
	      "with a shadow at scale 100%%: it shows below the subject (%g), not above (%g)",
	      px(v, s.x + s.w / 2, s.y + s.h + 1, 0), px(v, s.x + s.w / 2, s.y - 3, 0));
	check(o && s.y + s.h < 400 && s.x + s.w < 400, "and the subject and its shadow fit the canvas");
	img_free(o);
	if (v)
		g_object_unref(v);

	/* the DPI a print shop reads back, in PNG and JPEG */
	r = (struct img_render){.canvas_w = 300, .canvas_h = 300, .dpi = 300, .bg = IMG_BG_COLOR,
				.color = {255, 255, 255, 255}};
	o = render(photo, alpha, &r, NULL);
	for (int f = 0; o && f < 2; f++) {
		struct img_save_opts so = {.format = f ? IMG_FORMAT_JPEG : IMG_FORMAT_PNG};
		void *buf = NULL;
		size_t len = 0;
		VipsImage *back = NULL;
		if (img_encode(o, &so, &buf, &len) == IMG_OK)
			back = vips_image_new_from_buffer(buf, len, "", NULL);
		check(back && near(back->Xres * 25.4, 300, 0.5) && near(back->Yres * 25.4, 300, 0.5),
		      "%s: 300 dpi reads back (%g)", f ? "JPEG" : "PNG", back ? back->Xres * 25.4 : 0);
		if (back)
			g_object_unref(back);
		free(buf);
	}
	img_free(o);

	/* a canvas that takes the subject smaller: drawn from the photo scaled
	 * down, the same layout */
	r = (struct img_render){.canvas_w = 90, .canvas_h = 60, .scale = 1, .align_x = 0.5, .align_y = 0.5,
				.effect = IMG_EFFECT_SHADOW};
	o = render(photo, alpha, &r, &s);
	v = pixels(o);
	m = v ? measured(v, NULL) : (struct img_subject){0};
	check(o && img_width(o) == 90 && img_height(o) == 60 && s.scale < 0.9 && near(s.h, m.h, 2) &&
		      near(m.x + m.w / 2.0, 45, 3) && m.y >= 0 && m.y + m.h <= 60,
	      "smaller than the photo (scale %.3f): %dx%d at %d,%d on 90x60, as reported (%dx%d)", s.scale, m.w, m.h,
	      m.x, m.y, s.w, s.h);
	img_free(o);
	if (v)
		g_object_unref(v);

	r = (struct img_render){.canvas_w = 100, .canvas_h = 100, .pad = {60, 0, 60, 0}};
	check(img_render(photo, alpha, &r, &o, NULL) == IMG_ERR_ARG, "padding that leaves no room: refused (%s)",
	      img_errmsg());
	r = (struct img_render){.canvas_w = 100, .canvas_h = 100, .effect = IMG_EFFECT_POPART};
	check(img_render(photo, alpha, &r, &o, NULL) == IMG_ERR_ARG, "pop art on a canvas: refused");
}

/* Group portraits: three subjects side by side at one height, bottoms on
 * one line, boxes apart at overlap 0 and overlapping as asked; one shadow
 * for the group; what a group cannot take, refused. */
static void test_group(const struct img *photo, const struct img *alpha)
{
	struct img *small = NULL, *small_a = NULL, *o = NULL;
	struct img_subject sub[3], whole;

	/* the second pet smaller in its photo: a photo half the size */
	img_thumbnail(photo, W / 2, &small);
	img_thumbnail(alpha, W / 2, &small_a);
	const struct img *photos[3] = {photo, small, photo}, *alphas[3] = {alpha, small_a, alpha};
	struct img_render r = {.bg = IMG_BG_COLOR, .color = {255, 255, 255, 255}};
	struct img_group g = {0};

	if (!check(small && small_a, "a smaller photo for the group"))
		goto out;
	img_status st = img_render_group(photos, alphas, 3, &r, &g, &o, sub, &whole);
	if (!check(st == IMG_OK, "a group of 3%s%s", st ? ": " : "", st ? img_errmsg() : ""))
		goto out;
	int apart = sub[0].x + sub[0].w <= sub[1].x && sub[1].x + sub[1].w <= sub[2].x;
	int one_height = abs(sub[0].h - sub[1].h) <= 2 && abs(sub[2].h - sub[1].h) <= 2;
	int one_line = abs(sub[0].y + sub[0].h - sub[1].y - sub[1].h) <= 2 && abs(sub[2].y + sub[2].h - sub[1].y - sub[1].h) <= 2;
	check(apart && one_height && one_line,
	      "overlap 0: three boxes side by side, apart (x %d+%d, %d+%d, %d+%d), one height (%d %d %d), one line",
	      sub[0].x, sub[0].w, sub[1].x, sub[1].w, sub[2].x, sub[2].w, sub[0].h, sub[1].h, sub[2].h);
	/* each box holds its disc: its middle is the subject's colour, not the
	 * white background; between the boxes it is white */
	VipsImage *v = pixels(o);
	int inside = 1;
	for (int i = 0; i < 3; i++)
		inside &= px(v, sub[i].x + sub[i].w / 2, sub[i].y + sub[i].h / 2, 0) < 250 ||
			  px(v, sub[i].x + sub[i].w / 2, sub[i].y + sub[i].h / 2, 1) < 250;
	check(v && inside && px(v, sub[0].x + sub[0].w, sub[0].y + 2, 0) == 255,
	      "the boxes hold the subjects; above where they meet, the background");
	if (v)
		g_object_unref(v);
	img_free(o);
	o = NULL;

	g.overlap = 0.25;
	st = img_render_group(photos, alphas, 3, &r, &g, &o, sub, &whole);
	if (check(st == IMG_OK, "overlap 25%%%s%s", st ? ": " : "", st ? img_errmsg() : ""))
		check(near(sub[0].x + sub[0].w - sub[1].x, 0.25 * sub[1].w, 2.5),
		      "overlap 25%%: the second's box starts a quarter of its width inside the first's (%d of %d)",
		      sub[0].x + sub[0].w - sub[1].x, sub[1].w);
	img_free(o);
	o = NULL;

	/* heights as shares, on a canvas, with one hard shadow for the group */
	g = (struct img_group){.heights = {1, 0.5, 1}};
	r = (struct img_render){.canvas_w = 600, .canvas_h = 300, .scale = 0.8, .align_x = 0.5, .align_y = 0.5,
				.snap = IMG_SNAP_NONE, .bg = IMG_BG_COLOR, .color = {255, 255, 255, 255},
				.effect = IMG_EFFECT_SHADOW, .shadow = {.kind = IMG_SHADOW_SOFT}};
	st = img_render_group(photos, alphas, 3, &r, &g, &o, sub, &whole);
	if (check(st == IMG_OK, "a group on a canvas%s%s", st ? ": " : "", st ? img_errmsg() : "")) {
		check(img_width(o) == 600 && img_height(o) == 300 && near(sub[1].h, 0.5 * sub[0].h, 2) &&
			      abs(sub[0].y + sub[0].h - sub[1].y - sub[1].h) <= 2,
		      "heights 100%%, 50%%, 100%% on a 600x300 canvas (%d, %d, %d), on one line", sub[0].h, sub[1].h,
		      sub[2].h);
		v = pixels(o);
		check(v && px(v, sub[1].x + sub[1].w / 2, sub[1].y + sub[1].h + 2, 0) < 250 &&
			      px(v, sub[1].x + sub[1].w / 2, whole.y - 3, 0) == 255,
		      "the soft shadow under the group's base (%g), none above it",
		      px(v, sub[1].x + sub[1].w / 2, sub[1].y + sub[1].h + 2, 0));
		if (v)
			g_object_unref(v);
	}
	img_free(o);
	o = NULL;

	r = (struct img_render){.bg = IMG_BG_BLUR};
	check(img_render_group(photos, alphas, 3, &r, NULL, &o, NULL, NULL) == IMG_ERR_ARG && !o,
	      "a group on the blurred photo: refused (%s)", img_errmsg());
	r = (struct img_render){.effect = IMG_EFFECT_POPART};
	check(img_render_group(photos, alphas, 3, &r, NULL, &o, NULL, NULL) == IMG_ERR_ARG, "a group in pop art: refused");
out:
	img_free(o);
	img_free(small);
	img_free(small_a);
}

int main(void)
{
	struct img *photo, *alpha;
	VipsImage *ph;

	if (!check(img_init() == IMG_OK, "img_init (%s)", img_errmsg()))
		return 1;
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	photo = make_photo();
	alpha = photo ? make_alpha(photo, 0) : NULL;
	if (!check(photo && alpha && img_bands(alpha) == 1, "synthetic photo and alpha (%s)", img_errmsg()))
		return 1;
	ph = pixels(photo);
	test_subject(alpha);
	test_refusals(photo, alpha);
	test_cutout_and_mask(photo, alpha, ph);
	test_color_bg(photo, alpha, ph);
	test_blur_bg(photo, alpha, ph);
	test_image_bg(photo, alpha);
	test_crop_fit(photo, alpha, ph);
	test_shadow(photo, alpha);
	test_shadow_kinds(photo, alpha);
	test_roi(photo, alpha);
	test_group(photo, alpha);
	test_sticker(photo, alpha, ph);
	test_popart(photo, alpha);
	test_formats(photo, alpha);
	test_profiles(alpha);
	test_colors();
	test_edges();
	test_canvas(photo, alpha);
	g_object_unref(ph);
	img_free(alpha);
	img_free(photo);
	rmdir(tmpdir);
	if (failures)
		printf("# %d check(s) failed\n", failures);
	return failures != 0;
}
