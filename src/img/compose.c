/*
 * compose.c - from a photo and its alpha to the pictures the customer sees:
 * the cut-out, the mask, backgrounds (a colour, the photo blurred, another
 * image), a crop around the subject, a fit into a box, and the effects
 * (shadow, sticker outline, pop art). Many outputs are rendered from one
 * alpha, so one inference serves them all.
 *
 * Everything is composited in the photo's own colour space: colours given
 * in sRGB ("#ff0000", "red") and background images are converted into it
 * through the photo's ICC profile, and the result carries the photo's
 * metadata (profile included), never a background image's.
 *
 * Each render builds one lazy libvips pipeline whose temporaries belong to
 * a scope object dropped at the end, and computes it once, into memory.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <vips/vips.h>

#include "img/img_int.h"

/* ===== Colours ===== */

static const struct {
	const char *name;
	unsigned char rgba[4];
} color_names[] = {
	{"white", {255, 255, 255, 255}},   {"black", {0, 0, 0, 255}},
	{"red", {255, 0, 0, 255}},	   {"green", {0, 128, 0, 255}},
	{"lime", {0, 255, 0, 255}},	   {"blue", {0, 0, 255, 255}},
	{"yellow", {255, 255, 0, 255}},	   {"cyan", {0, 255, 255, 255}},
	{"aqua", {0, 255, 255, 255}},	   {"magenta", {255, 0, 255, 255}},
	{"fuchsia", {255, 0, 255, 255}},   {"gray", {128, 128, 128, 255}},
	{"grey", {128, 128, 128, 255}},	   {"silver", {192, 192, 192, 255}},
	{"orange", {255, 165, 0, 255}},	   {"pink", {255, 192, 203, 255}},
	{"purple", {128, 0, 128, 255}},	   {"brown", {165, 42, 42, 255}},
	{"navy", {0, 0, 128, 255}},	   {"teal", {0, 128, 128, 255}},
	{"transparent", {0, 0, 0, 0}},
};

static int hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int img_color_parse(const char *s, unsigned char rgba[4])
{
	size_t n;
	int d[8];

	if (!s)
		return -1;
	if (s[0] != '#') {
		for (size_t i = 0; i < sizeof color_names / sizeof color_names[0]; i++)
			if (!strcasecmp(s, color_names[i].name)) {
				memcpy(rgba, color_names[i].rgba, 4);
				return 0;
			}
		return -1;
	}
	s++;
	n = strlen(s);
	if (n != 3 && n != 6 && n != 8)
		return -1;
	for (size_t i = 0; i < n; i++)
		if ((d[i] = hex_digit((unsigned char)s[i])) < 0)
			return -1;
	if (n == 3) {
		for (int i = 0; i < 3; i++)
			rgba[i] = (unsigned char)(d[i] * 17);
		rgba[3] = 255;
		return 0;
	}
	for (size_t i = 0; i < n / 2; i++)
		rgba[i] = (unsigned char)(d[2 * i] * 16 + d[2 * i + 1]);
	if (n == 6)
		rgba[3] = 255;
	return 0;
}

/* ===== Pipeline helpers ===== */

/* Every image made while rendering is handed to a scope object and dropped
 * with it, so each step returns a borrowed image and failures need no
 * ladder of unrefs. */
static VipsImage *keep(VipsObject *scope, VipsImage *im)
{
	VipsImage **slot;

	if (!im)
		return NULL;
	slot = (VipsImage **)vips_object_local_array(scope, 1);
	slot[0] = im;
	return im;
}

/* Runs the libvips call CALL, whose output is &X, and keeps X in scope S.
 * Evaluates to X, or NULL when the call failed. X is cleared first, so it
 * must not also be CALL's input. */
#define STEP(S, X, CALL) ((X) = NULL, (CALL) ? NULL : keep((S), (X)))

/* ===== The cut-out from a mask (the first pipeline) ===== */

img_status img_cutout(const struct img *im, const float *mask, int mh, int mw,
		      enum img_cut kind, struct img **out)
{
	VipsImage *pix = im->pix, *m, *mf, *a, *scaled, *rounded, *alpha, *rgb, *seen, *visible, *res;
	VipsObject *s;
	img_status st;
	int ok;

	*out = NULL;
	if (!mask || mh <= 0 || mw <= 0)
		return img_fail(IMG_ERR_ARG, "bad mask size %dx%d", mw, mh);
	if (pix->Bands != 3 && pix->Bands != 4)
		return img_fail(IMG_ERR_ARG, "not a colour image");
	s = VIPS_OBJECT(vips_image_new());

	/* Wraps the caller's floats without copying: the result is copied to
	 * memory before returning, so mask is not read afterwards. */
	if (!keep(s, m = vips_image_new_from_memory(mask, (size_t)mh * mw * sizeof(float), mw, mh, 1,
						    VIPS_FORMAT_FLOAT)) ||
	    !STEP(s, mf, img_resize_exact(m, &mf, pix->Xsize, pix->Ysize))) {
		st = img_fail_vips(IMG_ERR_VIPS, "cannot scale the mask");
		goto out;
	}
	/* alpha = mask * 255 (times the photo's own alpha / 255, if any),
	 * rounded; the cast clips to 0..255. */
	if (pix->Bands == 4)
		ok = STEP(s, a, vips_extract_band(pix, &a, 3, NULL)) &&
		     STEP(s, scaled, vips_multiply(mf, a, &scaled, NULL));
	else
		ok = STEP(s, scaled, vips_linear1(mf, &scaled, 255.0, 0.0, NULL)) != NULL;
	ok = ok && STEP(s, rounded, vips_linear1(scaled, &rounded, 1.0, 0.5, NULL)) &&
	     STEP(s, alpha, vips_cast(rounded, &alpha, VIPS_FORMAT_UCHAR, NULL));
	if (ok && kind == IMG_CUT_MASK)
		ok = STEP(s, res, vips_copy(alpha, &res, "interpretation", VIPS_INTERPRETATION_B_W, NULL)) != NULL;
	/* Fully transparent pixels get colour 0: nobody sees them, and the
	 * background's detail would otherwise double the size of a PNG
	 * (lossless WebP does the same by itself). */
	else if (ok)
		ok = STEP(s, rgb, vips_extract_band(pix, &rgb, 0, "n", 3, NULL)) &&
		     STEP(s, seen, vips_notequal_const1(alpha, &seen, 0.0, NULL)) &&
		     STEP(s, visible, vips_andimage(rgb, seen, &visible, NULL)) &&
		     STEP(s, res, vips_bandjoin2(visible, alpha, &res, NULL));
	st = ok ? img_adopt(res, "cannot compose the cut-out", out)
		: img_fail_vips(IMG_ERR_VIPS, "cannot compose the cut-out");
out:
	g_object_unref(s);
	return st;
}

/* A constant image the size of like with n bands of values c (uchar,
 * interpretation sRGB). */
static VipsImage *solid(VipsObject *s, VipsImage *like, const double *c, int n)
{
	VipsImage *x, *y;

	if (!keep(s, x = vips_image_new_from_image(like, c, n)))
		return NULL;
	return STEP(s, y, vips_copy(x, &y, "interpretation", VIPS_INTERPRETATION_sRGB, NULL));
}

/* The profile of an image, or NULL. */
static const void *icc_of(VipsImage *im, size_t *len)
{
	const void *data;

	if (!vips_image_get_typeof(im, VIPS_META_ICC_NAME) ||
	    vips_image_get_blob(im, VIPS_META_ICC_NAME, &data, len))
		return NULL;
	return data;
}

/* Converts an sRGB colour (0..255) into the photo's colour space. Colours
 * are named in sRGB, so "#ff0000" stays the same red on a Display P3 photo.
 * Without a profile (or if the conversion fails) the values are kept. */
static void color_to_photo(VipsImage *photo, const unsigned char in[4], double out[4])
{
	VipsObject *s = VIPS_OBJECT(vips_image_new());
	unsigned char px[3] = {in[0], in[1], in[2]};
	VipsImage *m, *t, *lab, *tagged, *back;
	const void *icc;
	double *v = NULL;
	size_t len;
	int n;

	for (int i = 0; i < 4; i++)
		out[i] = in[i];
	icc = icc_of(photo, &len);
	if (icc && keep(s, m = vips_image_new_from_memory_copy(px, 3, 1, 1, 3, VIPS_FORMAT_UCHAR)) &&
	    STEP(s, t, vips_copy(m, &t, "interpretation", VIPS_INTERPRETATION_sRGB, NULL)) &&
	    STEP(s, lab, vips_icc_import(t, &lab, "input_profile", "srgb", "embedded", FALSE, NULL)) &&
	    STEP(s, tagged, vips_copy(lab, &tagged, NULL))) {
		vips_image_set_blob_copy(tagged, VIPS_META_ICC_NAME, icc, len);
		/* Without output_profile, export uses the embedded one. */
		if (STEP(s, back, vips_icc_export(tagged, &back, "depth", 8, NULL)) &&
		    !vips_getpoint(back, &v, &n, 0, 0, NULL) && n >= 3)
			for (int i = 0; i < 3; i++)
				out[i] = VIPS_CLIP(0, v[i], 255);
	}
	g_free(v);
	vips_error_clear();
	g_object_unref(s);
}

/* Brings another image (3 or 4 bands, 8-bit) into the photo's colour
 * space through both profiles; an image without one is taken as sRGB. */
static VipsImage *image_to_photo(VipsObject *s, VipsImage *photo, VipsImage *in)
{
	size_t plen = 0, ilen = 0;
	const void *picc = icc_of(photo, &plen), *iicc = icc_of(in, &ilen);
	VipsImage *lab, *tagged, *out;

	if (picc ? iicc && plen == ilen && !memcmp(picc, iicc, plen) : !iicc)
		return in;
	if (!picc)
		return STEP(s, out, vips_icc_transform(in, &out, "srgb", "input_profile", "srgb", "embedded", TRUE,
						      "depth", 8, NULL));
	if (!STEP(s, lab, vips_icc_import(in, &lab, "input_profile", "srgb", "embedded", TRUE, NULL)) ||
	    !STEP(s, tagged, vips_copy(lab, &tagged, NULL)))
		return NULL;
	vips_image_set_blob_copy(tagged, VIPS_META_ICC_NAME, picc, plen);
	return STEP(s, out, vips_icc_export(tagged, &out, "depth", 8, NULL));
}

VipsImage *img_to_space_of(VipsImage *photo, VipsImage *in)
{
	VipsObject *s = VIPS_OBJECT(vips_image_new());
	VipsImage *out = image_to_photo(s, photo, in);

	if (out)
		g_object_ref(out);
	g_object_unref(s);
	return out;
}

/* A Gaussian blur at a bounded cost: past sigma 4, a copy shrunk so that
 * sigma becomes 4 is blurred, kept in memory (scaled up lazily, each tile
 * would blur and shrink its part again, a tenth of the photo per tile on a
 * 12 MP shadow) and scaled back up (linear). On backgrounds,
 * shadows and outlines it looks the same, and on a 12 MP photo with sigma
 * 80 it is a hundred times faster than the full kernel. float keeps the
 * result in float (for thresholds), else it stays 8-bit. */
static VipsImage *blur(VipsObject *s, VipsImage *in, double sigma, int as_float)
{
	VipsImage *f = in, *small, *b, *up;
	double k;

	if (as_float && !STEP(s, f, vips_cast(in, &f, VIPS_FORMAT_FLOAT, NULL)))
		return NULL;
	if (sigma <= 4.0)
		return STEP(s, b, vips_gaussblur(f, &b, VIPS_MAX(sigma, 0.3), "precision",
						 as_float ? VIPS_PRECISION_FLOAT : VIPS_PRECISION_INTEGER, NULL));
	k = 4.0 / sigma;
	if (!STEP(s, small, vips_resize(f, &small, k, "kernel", VIPS_KERNEL_LINEAR, NULL)) ||
	    !STEP(s, b, vips_gaussblur(small, &b, 4.0, "precision",
				       as_float ? VIPS_PRECISION_FLOAT : VIPS_PRECISION_INTEGER, NULL)) ||
	    !(b = keep(s, img_memory(b))))
		return NULL;
	if (img_resize_exact(b, &up, in->Xsize, in->Ysize))
		return NULL;
	return keep(s, up);
}

/* An RGBA layer: the constant colour c (3 values) under the alpha a. */
static VipsImage *layer(VipsObject *s, VipsImage *a, const double c[3])
{
	VipsImage *ink = solid(s, a, c, 3), *a8, *out;

	if (!ink || !STEP(s, a8, vips_cast(a, &a8, VIPS_FORMAT_UCHAR, NULL)))
		return NULL;
	return STEP(s, out, vips_bandjoin2(ink, a8, &out, NULL));
}

/* overlay (RGBA) over base (same size), back to 8 bits. An opaque base
 * (RGB) takes a plain blend by the overlay's alpha, which is the same
 * result three times faster than a composite. */
static VipsImage *over(VipsObject *s, VipsImage *base, VipsImage *overlay)
{
	VipsImage *c, *u, *rgb, *a;

	if (!base)
		return overlay;
	if (base->Bands == 3)
		return STEP(s, rgb, vips_extract_band(overlay, &rgb, 0, "n", 3, NULL)) &&
				       STEP(s, a, vips_extract_band(overlay, &a, 3, NULL))
			       ? STEP(s, c, vips_ifthenelse(a, rgb, base, &c, "blend", TRUE, NULL))
			       : NULL;
	if (!STEP(s, c, vips_composite2(base, overlay, &c, VIPS_BLEND_MODE_OVER, NULL)))
		return NULL;
	return STEP(s, u, vips_cast(c, &u, VIPS_FORMAT_UCHAR, NULL));
}

/* Resizes an RGBA or RGB image to w x h, the colours premultiplied by
 * alpha so that transparent pixels do not bleed a dark fringe. */
static VipsImage *resize_to(VipsObject *s, VipsImage *in, int w, int h)
{
	VipsImage *p = in, *r, *u, *c;
	double hs = (double)w / in->Xsize, vs = (double)h / in->Ysize;

	if (w == in->Xsize && h == in->Ysize)
		return in;
	if (in->Bands == 4 && !STEP(s, p, vips_premultiply(in, &p, NULL)))
		return NULL;
	if (!STEP(s, r, vips_resize(p, &r, hs, "vscale", vs, NULL)))
		return NULL;
	u = r;
	if (in->Bands == 4 && !STEP(s, u, vips_unpremultiply(r, &u, NULL)))
		return NULL;
	if (!STEP(s, c, vips_cast(u, &c, VIPS_FORMAT_UCHAR, NULL)))
		return NULL;
	if (c->Xsize != w || c->Ysize != h) {
		vips_error("petcut", "resize to %dx%d gave %dx%d", w, h, c->Xsize, c->Ysize);
		return NULL;
	}
	return c;
}

/* Puts the photo's metadata (ICC profile, EXIF, XMP, IPTC, orientation) on
 * a fresh copy of res in place of whatever it inherited: libvips takes a
 * composite's metadata from its base, which may be a background image. A
 * one-band result (the mask) gets no profile: an RGB profile on a grey
 * image is invalid. */
static VipsImage *adopt_meta(VipsObject *s, VipsImage *res, VipsImage *photo)
{
	static const char *const prefixes[] = {VIPS_META_ICC_NAME, "exif-", VIPS_META_XMP_NAME,
					       VIPS_META_IPTC_NAME, VIPS_META_ORIENTATION};
	VipsImage *c;
	gchar **fields;

	if (!STEP(s, c, vips_copy(res, &c, NULL)))
		return NULL;
	for (int pass = 0; pass < 2; pass++) {
		fields = vips_image_get_fields(pass ? photo : c);
		for (int i = 0; fields[i]; i++) {
			int meta = 0;

			for (size_t k = 0; k < sizeof prefixes / sizeof prefixes[0]; k++)
				meta |= !strncmp(fields[i], prefixes[k], strlen(prefixes[k]));
			if (!meta)
				continue;
			if (!pass) {
				vips_image_remove(c, fields[i]);
			} else if (c->Bands >= 3 || strcmp(fields[i], VIPS_META_ICC_NAME)) {
				GValue v = G_VALUE_INIT;

				if (!vips_image_get(photo, fields[i], &v)) {
					vips_image_set(c, fields[i], &v);
					g_value_unset(&v);
				}
			}
		}
		g_strfreev(fields);
	}
	return c;
}

/* ===== The subject ===== */

/* Box and coverage of alpha >= 128; *count receives the number of such
 * pixels. One pass over alpha's pixels (made in memory if they are not),
 * each row's first and last such column and count found on its own, then
 * joined in order. */
static int subject_of(VipsImage *alpha, struct img_subject *out, double *count)
{
	VipsImage *mem;
	int w = alpha->Xsize, h = alpha->Ysize, r = -1;
	int *first = NULL, *last = NULL;
	int64_t *n = NULL;

	*out = (struct img_subject){.scale = 1};
	*count = 0;
	if (alpha->Bands != 1 || alpha->BandFmt != VIPS_FORMAT_UCHAR) {
		vips_error("petcut", "the subject is found in an 8-bit one-band alpha");
		return -1;
	}
	if (!(mem = img_memory(alpha)))
		return -1;
	first = malloc(sizeof *first * (size_t)h), last = malloc(sizeof *last * (size_t)h), n = malloc(sizeof *n * (size_t)h);
	if (!first || !last || !n) {
		vips_error("petcut", "out of memory");
		goto out;
	}
	#pragma omp parallel for schedule(static) if ((int64_t)w * h > (1 << 20))
	for (int y = 0; y < h; y++) {
		const unsigned char *p = VIPS_IMAGE_ADDR(mem, 0, y);
		int c = 0, x0 = 0, x1 = w - 1;
		#pragma omp simd reduction(+ : c)
		for (int x = 0; x < w; x++)
			c += p[x] >= 128;
		if (c) {
			while (p[x0] < 128)
				x0++;
			while (p[x1] < 128)
				x1--;
		}
		n[y] = c, first[y] = x0, last[y] = x1;
	}
	int x0 = w, x1 = -1, y0 = -1, y1 = -1;
	int64_t total = 0;
	for (int y = 0; y < h; y++) {
		if (!n[y])
			continue;
		if (y0 < 0)
			y0 = y;
		y1 = y;
		total += n[y];
		x0 = first[y] < x0 ? first[y] : x0;
		x1 = last[y] > x1 ? last[y] : x1;
	}
	if (y0 >= 0)
		*out = (struct img_subject){x0, y0, x1 - x0 + 1, y1 - y0 + 1, (double)total / ((double)w * h), 1};
	*count = (double)total;
	r = 0;
out:
	free(first);
	free(last);
	free(n);
	g_object_unref(mem);
	return r;
}

img_status img_subject_of(const struct img *alpha, struct img_subject *out)
{
	double n;

	if (!alpha || !out || alpha->pix->Bands != 1)
		return img_fail(IMG_ERR_ARG, "the subject is found in a one-band alpha");
	if (subject_of(alpha->pix, out, &n))
		return img_fail_vips(IMG_ERR_VIPS, "cannot measure the subject");
	return IMG_OK;
}

/* ===== Rendering ===== */

/* Pop art's four backgrounds, and the ink the subject is printed with. */
static const unsigned char popart_bg[4][4] = {
	{0xff, 0x3e, 0xa5, 255}, {0x00, 0xc2, 0xff, 255}, {0xff, 0xe6, 0x00, 255}, {0x7c, 0xff, 0x4f, 255}};
static const unsigned char popart_ink[4] = {0x1d, 0x1b, 0x4b, 255};

/* Defaults relative to the picture, so a thumbnail and a 12 MP photo look
 * alike. */
#define BLUR_SIGMA_SHARE 0.02	  /* of the longer side */
#define OUTLINE_SHARE 0.015	  /* of the shorter side */

struct box {
	int x, y, w, h;
};

/* The 2x2 pop-art grid of the cut-out cut: each cell is the cut-out at
 * half size, its luminance posterised to four levels and printed from a
 * dark ink to the colour of the opposite cell, on one of four bright
 * backgrounds; so the grid has about the size of cut. */
static VipsImage *popart(VipsObject *s, VipsImage *photo, VipsImage *cut)
{
	VipsImage *half, *rgb, *a, *lum, *l8, *q, *cells[4], *grid, *m;
	double ink[4], bg[4][4];
	int w = VIPS_MAX(1, cut->Xsize / 2), h = VIPS_MAX(1, cut->Ysize / 2);

	color_to_photo(photo, popart_ink, ink);
	for (int i = 0; i < 4; i++)
		color_to_photo(photo, popart_bg[i], bg[i]);
	if (!(half = resize_to(s, cut, w, h)) || !STEP(s, rgb, vips_extract_band(half, &rgb, 0, "n", 3, NULL)) ||
	    !STEP(s, a, vips_extract_band(half, &a, 3, NULL)) ||
	    !keep(s, m = vips_image_new_matrixv(3, 1, 0.299, 0.587, 0.114)) ||
	    !STEP(s, lum, vips_recomb(rgb, &lum, m, NULL)) ||
	    !STEP(s, l8, vips_cast(lum, &l8, VIPS_FORMAT_UCHAR, NULL)) ||
	    !STEP(s, q, vips_rshift_const1(l8, &q, 6, NULL)))
		return NULL;
	for (int i = 0; i < 4; i++) {
		const double *light = bg[3 - i];
		double mul[3], add[3];
		VipsImage *duo, *duo8, *tagged, *fg, *back, *flat;

		/* q is 0..3: ink at 0, the light colour at 3. */
		for (int b = 0; b < 3; b++) {
			mul[b] = (light[b] - ink[b]) / 3.0;
			add[b] = ink[b];
		}
		if (!STEP(s, duo, vips_linear(q, &duo, mul, add, 3, NULL)) ||
		    !STEP(s, duo8, vips_cast(duo, &duo8, VIPS_FORMAT_UCHAR, NULL)) ||
		    !STEP(s, tagged, vips_copy(duo8, &tagged, "interpretation", VIPS_INTERPRETATION_sRGB, NULL)) ||
		    !STEP(s, fg, vips_bandjoin2(tagged, a, &fg, NULL)) || !(back = solid(s, half, bg[i], 3)) ||
		    !(flat = over(s, back, fg)) || !STEP(s, cells[i], vips_extract_band(flat, &cells[i], 0, "n", 3, NULL)))
			return NULL;
	}
	return STEP(s, grid, vips_arrayjoin(cells, &grid, 4, "across", 2, NULL));
}

/* im scaled to cover W x H, then its middle. */
static VipsImage *cover(VipsObject *s, VipsImage *im, int W, int H)
{
	double k = VIPS_MAX((double)W / im->Xsize, (double)H / im->Ysize);
	int cw = VIPS_MAX(W, (int)ceil(im->Xsize * k - 1e-6)), ch = VIPS_MAX(H, (int)ceil(im->Ysize * k - 1e-6));
	VipsImage *scaled, *cropped;

	if (!(scaled = resize_to(s, im, cw, ch)))
		return NULL;
	if (cw == W && ch == H)
		return scaled;
	return STEP(s, cropped, vips_extract_area(scaled, &cropped, (cw - W) / 2, (ch - H) / 2, W, H, NULL));
}

/* The background under the cut-out, W x H (the photo's size, or the
 * canvas's); NULL with *bad set on failure, NULL alone for none. */
static VipsImage *background(VipsObject *s, VipsImage *photo, VipsImage *rgb, const struct img_render *r, int W,
			     int H, int *bad)
{
	int PW = photo->Xsize, PH = photo->Ysize;
	VipsImage *res = NULL, *like = photo;

	*bad = 0;
	switch (r->bg) {
	case IMG_BG_NONE:
		return NULL;
	case IMG_BG_COLOR: {
		double c[4];

		color_to_photo(photo, r->color, c);
		if ((W != PW || H != PH) && !STEP(s, like, vips_black(&like, W, H, NULL)))
			break;
		res = solid(s, like, c, r->color[3] == 255 ? 3 : 4);
		break;
	}
	case IMG_BG_BLUR: {
		double sigma = r->blur_sigma > 0 ? r->blur_sigma : VIPS_MAX(1.0, BLUR_SIGMA_SHARE * VIPS_MAX(PW, PH));

		if ((res = blur(s, rgb, sigma, 0)) && (W != PW || H != PH))
			res = cover(s, res, W, H);
		break;
	}
	case IMG_BG_IMAGE: {
		VipsImage *conv = image_to_photo(s, photo, r->bg_image->pix);

		res = conv ? cover(s, conv, W, H) : NULL;
		break;
	}
	}
	*bad = !res;
	return res;
}

/* ===== Shadows ===== */

/* A shadow's shape: the silhouette's rows y0 to base (the subject's bottom)
 * mapped by x' = x + a (base - y) + tx, y' = base - q (base - y) + ty (a
 * lean, a squash towards the base, a move), blurred by sigma, dimmed to
 * opacity, and faded out above row top (the subject's top) over fade
 * rows. */
struct shadow_geo {
	double a, q, tx, ty;
	int y0, base, top;
	double sigma, opacity, fade;
};

/* Each kind's defaults: opacity, and blur and offset in percent of the
 * subject's longer side; the angle in degrees. */
static const struct {
	double opacity, blur, offset, angle;
} shadow_defaults[] = {
	[IMG_SHADOW_DROP] = {0.5, 1.0, 2.0, 45},
	[IMG_SHADOW_SOFT] = {0.6, 2.0, 0, 0},
	[IMG_SHADOW_HARD] = {0.45, 0.5, 0, 45},
	[IMG_SHADOW_FLOATING] = {0.4, 3.0, 6.0, 0},
};
#define SHADOW_FOOT 0.2	 /* soft, floating: the share of the subject's height that makes the pool */
#define SHADOW_POOL 0.06 /* ... squashed to this share of its longer side */
#define SHADOW_CAST 0.5	 /* hard: the cast shadow's height over the subject's */

static void shadow_geo(const struct img_render *r, int W, int H, const struct img_subject *sub,
		       struct shadow_geo *g)
{
	const struct img_shadow *sh = &r->shadow;
	enum img_shadow_kind kind = (unsigned)sh->kind <= IMG_SHADOW_FLOATING ? sh->kind : IMG_SHADOW_DROP;
	int y0 = sub->w > 0 ? sub->y : 0;
	int w = sub->w > 0 ? sub->w : W, h = sub->w > 0 ? sub->h : H;
	double L = VIPS_MAX(w, h), pct = L / 100;
	double blur = sh->given & IMG_SHADOW_BLUR ? sh->blur * (sh->blur_percent ? pct : 1)
						   : shadow_defaults[kind].blur * pct;
	double off = sh->given & IMG_SHADOW_OFFSET ? sh->offset * (sh->offset_percent ? pct : 1)
						    : shadow_defaults[kind].offset * pct;
	double angle = (sh->given & IMG_SHADOW_ANGLE ? sh->angle : shadow_defaults[kind].angle) * M_PI / 180;

	*g = (struct shadow_geo){.q = 1, .y0 = y0, .base = y0 + h, .top = y0};
	g->sigma = VIPS_MAX(0.5, blur);
	g->opacity = sh->given & IMG_SHADOW_OPACITY ? sh->opacity : shadow_defaults[kind].opacity;
	g->fade = VIPS_MAX(1.0, 2 * g->sigma);
	switch (kind) {
	case IMG_SHADOW_DROP:
		g->tx = off * sin(angle);
		g->ty = off * cos(angle);
		break;
	case IMG_SHADOW_HARD:
		g->q = SHADOW_CAST;
		g->a = SHADOW_CAST * tan(angle);
		break;
	case IMG_SHADOW_SOFT:
	case IMG_SHADOW_FLOATING: {
		int band = VIPS_MAX(1, (int)lround(SHADOW_FOOT * h));
		g->y0 = g->base - band;
		g->q = VIPS_MIN(1.0, SHADOW_POOL * L / band);
		/* the pool's middle on the base, or offset below it */
		g->ty = band * g->q / 2 + (kind == IMG_SHADOW_FLOATING ? off : 0);
		break;
	}
	}
}

/* The box a shadow covers: its source rows' box mapped, grown by the blur,
 * cut at its top. */
static struct box shadow_box(const struct shadow_geo *g, const struct img_subject *sub, int W)
{
	double xs[2] = {sub->w > 0 ? sub->x : 0, sub->w > 0 ? sub->x + sub->w : W}, ys[2] = {g->y0, g->base};
	double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY, grow = 3 * g->sigma;

	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2; j++) {
			double x = xs[i] + g->a * (g->base - ys[j]) + g->tx, y = g->base - g->q * (g->base - ys[j]) + g->ty;
			x0 = fmin(x0, x), x1 = fmax(x1, x), y0 = fmin(y0, y), y1 = fmax(y1, y);
		}
	x0 = floor(x0 - grow), x1 = ceil(x1 + grow), y0 = fmax(g->top, floor(y0 - grow)), y1 = ceil(y1 + grow);
	return (struct box){(int)x0, (int)y0, (int)(x1 - x0), (int)fmax(0, y1 - y0)};
}

/* The shadow's alpha over frame (a box in the photo's pixels, which may
 * reach past the photo). Past sigma 4 it is made on a copy shrunk so that
 * sigma becomes 4 (as blur), then scaled back up. */
static VipsImage *shadow_alpha(VipsObject *s, VipsImage *alpha, const struct shadow_geo *g, struct box frame)
{
	int W = alpha->Xsize, H = alpha->Ysize;
	double k = g->sigma > 4 ? 4 / g->sigma : 1;
	VipsImage *src = alpha, *part, *small, *warped, *soft, *out, *up;
	unsigned char *px;
	size_t size;

	/* the rows the shadow comes from */
	if (g->y0 > 0 && g->y0 < H &&
	    (!STEP(s, part, vips_extract_area(alpha, &part, 0, g->y0, W, H - g->y0, NULL)) ||
	     !STEP(s, src, vips_embed(part, &src, 0, g->y0, W, H, NULL))))
		return NULL;
	small = src;
	if (k < 1 && !STEP(s, small, vips_resize(src, &small, k, "kernel", VIPS_KERNEL_LINEAR, NULL)))
		return NULL;
	/* the map in the small copy's pixels (kx and ky its scale each way),
	 * drawn over the frame at that scale */
	double kx = (double)small->Xsize / W, ky = (double)small->Ysize / H;
	int fx = (int)floor(frame.x * kx), fy = (int)floor(frame.y * ky);
	int fw = VIPS_MAX(1, (int)ceil((frame.x + frame.w) * kx) - fx), fh = VIPS_MAX(1, (int)ceil((frame.y + frame.h) * ky) - fy);
	VipsArrayInt *area = vips_array_int_newv(4, fx, fy, fw, fh);
	warped = NULL;
	int bad = vips_affine(small, &warped, 1.0, -g->a * kx / ky, 0.0, g->q, "odx", kx * (g->a * g->base + g->tx),
			      "ody", ky * (g->base * (1 - g->q) + g->ty), "oarea", area, NULL);
	vips_area_unref(VIPS_AREA(area));
	if (bad || !keep(s, warped) ||
	    !STEP(s, soft, vips_gaussblur(warped, &soft, VIPS_MAX(0.3, g->sigma * k), "precision",
					  VIPS_PRECISION_INTEGER, NULL)) ||
	    !(px = img_memory_bytes(soft, &size)))
		return NULL;
	/* dimmed, and nothing above the subject's top: a shadow falls below
	 * and beside what casts it */
	for (int y = 0; y < soft->Ysize; y++) {
		double f = g->opacity * VIPS_CLIP(0.0, ((fy + y + 0.5) / ky - g->top) / g->fade, 1.0);
		unsigned char *row = px + (size_t)y * soft->Xsize;
		for (int x = 0; x < soft->Xsize; x++)
			row[x] = (unsigned char)(row[x] * f + 0.5);
	}
	out = vips_image_new_from_memory_copy(px, size, soft->Xsize, soft->Ysize, 1, VIPS_FORMAT_UCHAR);
	g_free(px);
	if (!keep(s, out))
		return NULL;
	if (out->Xsize == frame.w && out->Ysize == frame.h)
		return out;
	/* back up to the frame's pixels: the small frame's box, scaled, then
	 * the frame within it */
	int bw = (int)lround(fw / kx), bh = (int)lround(fh / ky), ox = frame.x - (int)lround(fx / kx),
	    oy = frame.y - (int)lround(fy / ky);
	if (img_resize_exact(out, &up, VIPS_MAX(bw, ox + frame.w), VIPS_MAX(bh, oy + frame.h)) || !keep(s, up))
		return NULL;
	return STEP(s, out, vips_extract_area(up, &out, VIPS_MAX(0, ox), VIPS_MAX(0, oy), frame.w, frame.h, NULL));
}

/* im (the photo's size) within frame: the same pixels, transparent past the
 * photo. */
static VipsImage *to_frame(VipsObject *s, VipsImage *im, struct box frame)
{
	VipsImage *out;

	if (frame.x == 0 && frame.y == 0 && frame.w == im->Xsize && frame.h == im->Ysize)
		return im;
	return STEP(s, out, vips_embed(im, &out, -frame.x, -frame.y, frame.w, frame.h, "extend", VIPS_EXTEND_BLACK, NULL));
}

/* The subject's box grown by what its effect brings: the shadow, or the
 * outline. */
static struct box reach_of(const struct img_render *r, int W, int H, const struct img_subject *sub)
{
	struct box b = {sub->x, sub->y, sub->w, sub->h};

	if (r->effect == IMG_EFFECT_SHADOW && sub->w > 0) {
		struct shadow_geo g;
		shadow_geo(r, W, H, sub, &g);
		struct box sb = shadow_box(&g, sub, W);
		int x1 = VIPS_MAX(b.x + b.w, sb.x + sb.w), y1 = VIPS_MAX(b.y + b.h, sb.y + sb.h);
		b.x = VIPS_MIN(b.x, sb.x), b.y = VIPS_MIN(b.y, sb.y);
		b.w = x1 - b.x, b.h = y1 - b.y;
	} else if (r->effect == IMG_EFFECT_STICKER) {
		int px = r->outline_px > 0 ? r->outline_px : VIPS_MAX(1, (int)lround(OUTLINE_SHARE * VIPS_MIN(W, H)));
		b.x -= px, b.y -= px, b.w += 2 * px, b.h += 2 * px;
	}
	return b;
}

/* alpha with 0 outside the region of interest (struct img_render's roi). */
static VipsImage *within_roi(VipsObject *s, VipsImage *alpha, const struct img_render *r)
{
	int W = alpha->Xsize, H = alpha->Ysize, b[4];
	VipsImage *part, *out;

	for (int i = 0; i < 4; i++) {
		int side = i % 2 ? H : W;
		double v = r->roi_percent[i] ? r->roi[i] * side / 100 : r->roi[i];
		b[i] = (int)lround(VIPS_CLIP(0, v, side));
	}
	if (b[0] == 0 && b[1] == 0 && b[2] == W && b[3] == H)
		return alpha;
	if (b[2] <= b[0] || b[3] <= b[1]) /* nothing left to find */
		return STEP(s, out, vips_black(&out, W, H, NULL));
	return STEP(s, part, vips_extract_area(alpha, &part, b[0], b[1], b[2] - b[0], b[3] - b[1], NULL))
		       ? STEP(s, out, vips_embed(part, &out, b[0], b[1], W, H, NULL))
		       : NULL;
}

/* ===== Canvas layout ===== */

/* Where the subject goes on the canvas: the box of the photo it comes from
 * (the subject and what it brings), the factor k it is scaled by, and its
 * place (x, y) on the canvas, CW x CH. -1 when the padding leaves no
 * room. */
struct placement {
	struct box from;
	double k;
	int x, y, w, h;
};

static int place(const struct img_render *r, int W, int H, const struct img_subject *sub, struct box reach,
		 struct box frame, int CW, int CH, struct placement *pl)
{
	double pad[4];
	for (int i = 0; i < 4; i++)
		pad[i] = r->pad_percent[i] ? r->pad[i] * (i % 2 ? CW : CH) / 100 : r->pad[i];
	double room_w = CW - pad[1] - pad[3], room_h = CH - pad[0] - pad[2];
	double share = r->scale > 0 && r->scale <= 1 ? r->scale : 1;

	if (room_w < 1 || room_h < 1)
		return -1;
	/* the subject and what it brings, within the frame; the whole photo
	 * where there is no subject */
	int x0 = VIPS_MAX(frame.x, reach.x), y0 = VIPS_MAX(frame.y, reach.y);
	int x1 = VIPS_MIN(frame.x + frame.w, reach.x + reach.w), y1 = VIPS_MIN(frame.y + frame.h, reach.y + reach.h);
	pl->from = sub->w > 0 && x1 > x0 && y1 > y0 ? (struct box){x0, y0, x1 - x0, y1 - y0} : (struct box){0, 0, W, H};
	pl->k = share * VIPS_MIN(room_w / pl->from.w, room_h / pl->from.h);
	pl->w = VIPS_CLIP(1, (int)lround(pl->from.w * pl->k), CW);
	pl->h = VIPS_CLIP(1, (int)lround(pl->from.h * pl->k), CH);
	pl->x = (int)lround(pad[3] + (room_w - pl->w) * VIPS_CLIP(0.0, r->align_x, 1.0));
	pl->y = (int)lround(pad[0] + (room_h - pl->h) * VIPS_CLIP(0.0, r->align_y, 1.0));
	/* a subject the photo cuts off stands on that edge of the canvas, so
	 * the cut does not float in the air */
	int cut_top = sub->w > 0 && sub->y <= 0, cut_bottom = sub->w > 0 && sub->y + sub->h >= H;
	int cut_left = sub->w > 0 && sub->x <= 0, cut_right = sub->w > 0 && sub->x + sub->w >= W;
	switch (r->snap) {
	case IMG_SNAP_AUTO:
		if (cut_bottom != cut_top)
			pl->y = cut_bottom ? CH - pl->h : 0;
		if (cut_left != cut_right)
			pl->x = cut_right ? CW - pl->w : 0;
		break;
	case IMG_SNAP_NONE:
		break;
	case IMG_SNAP_TOP:
		pl->y = 0;
		break;
	case IMG_SNAP_BOTTOM:
		pl->y = CH - pl->h;
		break;
	case IMG_SNAP_LEFT:
		pl->x = 0;
		break;
	case IMG_SNAP_RIGHT:
		pl->x = CW - pl->w;
		break;
	}
	return 0;
}

/* The cut-out (with the layer under it: a shadow or an outline), both over
 * frame, laid out on a CW x CH canvas as pl says, over the background. */
static VipsImage *on_canvas(VipsObject *s, VipsImage *photo, VipsImage *rgb, VipsImage *cut, VipsImage *under,
			    struct box frame, const struct img_render *r, int CW, int CH, const struct placement *pl,
			    int *bad)
{
	VipsImage *layer = cut, *part, *sized, *placed, *base;

	*bad = 1;
	if ((under && !(layer = over(s, under, cut))) ||
	    !STEP(s, part, vips_extract_area(layer, &part, pl->from.x - frame.x, pl->from.y - frame.y, pl->from.w,
					     pl->from.h, NULL)) ||
	    !(sized = resize_to(s, part, pl->w, pl->h)) ||
	    !STEP(s, placed, vips_embed(sized, &placed, pl->x, pl->y, CW, CH, "extend", VIPS_EXTEND_BLACK, NULL)))
		return NULL;
	if (!(base = background(s, photo, rgb, r, CW, CH, bad)) && *bad)
		return NULL;
	*bad = 0;
	return base ? over(s, base, placed) : placed;
}

/* ===== The subject's own colours at its edge ===== */

/* Blur fusion: the local mean colour of the subject (weighted by alpha) and
 * of the background (by 1 - alpha), then each pixel's estimate of F is the
 * subject's mean plus alpha's share of what the pixel leaves unexplained,
 * i - a mf - (1 - a) mb. Repeated, the means lose the old background's
 * tint. The radius, a share of the longer side (about 90 px on a 2000 px
 * photo), reaches past a thick edge of fur; a box of radius r is taken as a
 * Gaussian of sigma 0.58 r, the box's own spread. The passes run on a copy
 * shrunk until that sigma is FG_LEVEL_SIGMA px: the means are smooth at
 * that scale, and the photo's model holds for means too. */
#define FG_LEVELS {{0.18, 3}, {0.09, 3}, {0.045, 3}, {0.012, 3}}
#define FG_SIGMA_PER_RADIUS 0.58
#define FG_LEVEL_SIGMA 2.0
#define FG_EPS 1e-4

/* Where full-size pixel x of n falls in a small image of sn pixels
 * (bilinear: the pixels i0, i1 and the weight of i1). */
struct tap {
	int i0, i1;
	float t;
};

static void taps(struct tap *out, int n, int sn)
{
	for (int x = 0; x < n; x++) {
		float f = VIPS_CLIP(0.0f, (x + 0.5f) * sn / n - 0.5f, sn - 1.0f);
		out[x].i0 = (int)f;
		out[x].i1 = VIPS_MIN(out[x].i0 + 1, sn - 1);
		out[x].t = f - out[x].i0;
	}
}

/* Row ty of a small 3-band float image m (sw wide), between its two
 * nearest rows, into out. */
static void lerp_rows(float *restrict out, const float *restrict m, int sw, const struct tap *ty)
{
	const float *r0 = m + (size_t)ty->i0 * sw * 3, *r1 = m + (size_t)ty->i1 * sw * 3;
	for (int j = 0; j < sw * 3; j++)
		out[j] = r0[j] + (r1[j] - r0[j]) * ty->t;
}

/* Band c of a row of 3-band pixels at tap q, between its two pixels. */
static inline float lerp_at(const float *row, const struct tap *q, int c)
{
	return row[q->i0 * 3 + c] + (row[q->i1 * 3 + c] - row[q->i0 * 3 + c]) * q->t;
}

/* The 3 bands of a small float image m (sw wide) at taps tx, ty. */
static void sample3(const float *m, int sw, const struct tap *tx, const struct tap *ty, float out[3])
{
	const float *r0 = m + (size_t)ty->i0 * sw * 3, *r1 = m + (size_t)ty->i1 * sw * 3;
	for (int c = 0; c < 3; c++) {
		float top = lerp_at(r0, tx, c), bottom = lerp_at(r1, tx, c);
		out[c] = top + (bottom - top) * ty->t;
	}
}

/* A small float image of nb bands, in memory. */
struct fimg {
	float *p;
	int w, h, nb;
};

static int fimg_new(struct fimg *f, int w, int h, int nb)
{
	f->w = w, f->h = h, f->nb = nb;
	return (f->p = calloc((size_t)w * h * nb, sizeof *f->p)) ? 0 : -1;
}

/* A float image of libvips (in memory, float) as an fimg, copied. */
static int fimg_of(struct fimg *f, VipsImage *im)
{
	if (im->BandFmt != VIPS_FORMAT_FLOAT || fimg_new(f, im->Xsize, im->Ysize, im->Bands))
		return -1;
	for (int y = 0; y < im->Ysize; y++)
		memcpy(f->p + (size_t)y * f->w * f->nb, VIPS_IMAGE_ADDR(im, 0, y), sizeof *f->p * f->w * f->nb);
	return 0;
}

/* f resampled (bilinear, as the full-size step samples) to w x h. */
static int fimg_resized(struct fimg *out, const struct fimg *f, int w, int h)
{
	struct tap *tx = malloc(sizeof *tx * (size_t)w), *ty = malloc(sizeof *ty * (size_t)h);
	int bad = !tx || !ty || f->nb != 3 || fimg_new(out, w, h, 3);

	if (!bad) {
		taps(tx, w, f->w);
		taps(ty, h, f->h);
		for (int y = 0; y < h; y++)
			for (int x = 0; x < w; x++)
				sample3(f->p, f->w, &tx[x], &ty[y], out->p + ((size_t)y * w + x) * 3);
	}
	free(tx), free(ty);
	return bad ? -1 : 0;
}

/* The radii of three box filters whose sum approximates a Gaussian of
 * sigma (widths 2r + 1, the two sizes nearest the ideal, so that the
 * variances add up to sigma squared). */
static void box_radii(double sigma, int rad[3])
{
	int lo = (int)floor(sqrt(4 * sigma * sigma + 1)), m;

	if (lo % 2 == 0)
		lo--;
	m = (int)lround((12 * sigma * sigma - 3.0 * lo * lo - 12.0 * lo - 9) / (-4.0 * lo - 4));
	for (int i = 0; i < 3; i++)
		rad[i] = ((i < m ? lo : lo + 2) - 1) / 2;
}

/* One row of w pixels of nb bands, each the mean of the 2r + 1 around it
 * in src (the edge pixels repeat): a running sum per band. */
static void box_across(float *restrict dst, const float *restrict src, int w, int nb, int r)
{
	float inv = 1.0f / (float)(2 * r + 1);

	for (int c = 0; c < nb; c++) {
		const float *p = src + c;
		float acc = (float)(r + 1) * p[0];
		for (int i = 1; i <= r; i++)
			acc += p[(size_t)VIPS_MIN(i, w - 1) * nb];
		for (int x = 0; x < w; x++) {
			dst[(size_t)x * nb + c] = acc * inv;
			acc += p[(size_t)VIPS_MIN(x + r + 1, w - 1) * nb] - p[(size_t)VIPS_MAX(x - r, 0) * nb];
		}
	}
}

/* The same down the h rows of row floats, from src into dst, with acc a
 * row's room: a running sum of whole rows. */
static void box_down(float *restrict dst, const float *restrict src, float *restrict acc, int h, size_t row, int r)
{
	float inv = 1.0f / (float)(2 * r + 1);

	for (size_t j = 0; j < row; j++)
		acc[j] = (float)(r + 1) * src[j];
	for (int i = 1; i <= r; i++) {
		const float *s = src + (size_t)VIPS_MIN(i, h - 1) * row;
		for (size_t j = 0; j < row; j++)
			acc[j] += s[j];
	}
	for (int y = 0; y < h; y++) {
		const float *in = src + (size_t)VIPS_MIN(y + r + 1, h - 1) * row, *out = src + (size_t)VIPS_MAX(y - r, 0) * row;
		float *d = dst + (size_t)y * row;
		for (size_t j = 0; j < row; j++) {
			d[j] = acc[j] * inv;
			acc[j] += in[j] - out[j];
		}
	}
}

/* Gaussian blur of f in place (the edges repeat), as three box filters
 * each way: a few additions per value whatever the radius. */
static int fimg_blur(struct fimg *f, double sigma)
{
	int rad[3], w = f->w, h = f->h, nb = f->nb;
	size_t row = (size_t)w * nb;
	float *t = malloc(sizeof *t * (size_t)h * row), *acc = malloc(sizeof *acc * row);

	if (!t || !acc) {
		free(t), free(acc);
		return -1;
	}
	box_radii(sigma, rad);
	for (int y = 0; y < h; y++) { /* across: f, t, f, into t */
		float *a = f->p + (size_t)y * row, *b = t + (size_t)y * row;
		box_across(b, a, w, nb, rad[0]);
		box_across(a, b, w, nb, rad[1]);
		box_across(b, a, w, nb, rad[2]);
	}
	box_down(f->p, t, acc, h, row, rad[0]); /* down: t, f, t, into f */
	box_down(t, f->p, acc, h, row, rad[1]);
	box_down(f->p, t, acc, h, row, rad[2]);
	free(t), free(acc);
	return 0;
}

/* One pass of blur fusion at one level: from the photo i and alpha a (0..1)
 * of the level's size and the estimates f (the subject's colours) and b
 * (the background's), the means mf = blur(f a) / blur(a) (into m) and mb =
 * blur(b (1 - a)) / blur(1 - a); then f = mf + a (i - a mf - (1 - a) mb)
 * and b = mb. */
static int fusion_pass(const struct fimg *i, const struct fimg *a, struct fimg *f, struct fimg *b, struct fimg *m,
		       double sigma)
{
	size_t n = (size_t)i->w * i->h;
	struct fimg ba = {0}, sf = {0}, sb = {0};
	int bad = fimg_new(&ba, i->w, i->h, 1) || fimg_new(&sf, i->w, i->h, 3) || fimg_new(&sb, i->w, i->h, 3);

	for (size_t k = 0; !bad && k < n; k++) {
		float t = a->p[k];
		ba.p[k] = t;
		for (int c = 0; c < 3; c++) {
			sf.p[k * 3 + c] = f->p[k * 3 + c] * t;
			sb.p[k * 3 + c] = b->p[k * 3 + c] * (1 - t);
		}
	}
	bad = bad || fimg_blur(&ba, sigma) || fimg_blur(&sf, sigma) || fimg_blur(&sb, sigma);
	for (size_t k = 0; !bad && k < n; k++) {
		float t = a->p[k], wf = ba.p[k] + (float)FG_EPS, wb = 1 - ba.p[k] + (float)FG_EPS;
		for (int c = 0; c < 3; c++) {
			float mf = sf.p[k * 3 + c] / wf, mb = sb.p[k * 3 + c] / wb;
			f->p[k * 3 + c] = mf + t * (i->p[k * 3 + c] - t * mf - (1 - t) * mb);
			b->p[k * 3 + c] = mb;
			m->p[k * 3 + c] = mf;
		}
	}
	free(ba.p), free(sf.p), free(sb.p);
	return bad ? -1 : 0;
}

/* The subject's estimated colours (img_foreground) from rgb (3 bands) and
 * alpha (8-bit): 8-bit RGB, or NULL. The passes run small, in plain C (a
 * libvips pipeline per step would cost more than the work on images of a
 * few hundred pixels); at full size only the edge's pixels (0 < alpha <
 * 255) change, each from the means brought up to it. */
static VipsImage *clean_colors(VipsObject *s, VipsImage *rgb, VipsImage *alpha)
{
	static const struct {
		double share; /* the radius, of the longer side */
		int passes;
	} levels[] = FG_LEVELS;
	double side = VIPS_MAX(rgb->Xsize, rgb->Ysize);
	int W = rgb->Xsize, H = rgb->Ysize, bad = 0;
	VipsImage *i, *a, *rgb8, *alpha8, *pix, *out = NULL;
	struct fimg f = {0}, b = {0}, m = {0};

	/* the photo and alpha shrunk once for the finest level (the last);
	 * the coarser ones are shrunk from that */
	size_t nl = sizeof levels / sizeof *levels;
	double k_fine = VIPS_MIN(1.0, FG_LEVEL_SIGMA / (FG_SIGMA_PER_RADIUS * VIPS_MAX(2.0, levels[nl - 1].share * side)));
	VipsImage *i_fine, *a_fine;
	if (!STEP(s, i, vips_resize(rgb, &i, k_fine, "kernel", VIPS_KERNEL_LINEAR, NULL)) ||
	    !STEP(s, i_fine, vips_cast(i, &i_fine, VIPS_FORMAT_FLOAT, NULL)) ||
	    !(i_fine = keep(s, img_memory(i_fine))) ||
	    !STEP(s, a, vips_resize(alpha, &a, k_fine, "kernel", VIPS_KERNEL_LINEAR, NULL)) ||
	    !STEP(s, a_fine, vips_linear1(a, &a_fine, 1.0 / 255, 0.0, NULL)) ||
	    !(a_fine = keep(s, img_memory(a_fine))))
		return NULL;
	/* coarse to fine, each level on a copy shrunk until its sigma is FG_LEVEL_SIGMA px
	 * (the photo itself once the radius is that small), starting from the
	 * level before */
	for (size_t l = 0; !bad && l < nl; l++) {
		double sigma = FG_SIGMA_PER_RADIUS * VIPS_MAX(2.0, levels[l].share * side), k = VIPS_MIN(1.0, FG_LEVEL_SIGMA / sigma);
		VipsImage *is = i_fine, *as = a_fine;
		struct fimg li = {0}, la = {0}, nf, nb;
		if (l < nl - 1 &&
		    (!STEP(s, is, vips_resize(i_fine, &is, k / k_fine, "kernel", VIPS_KERNEL_LINEAR, NULL)) ||
		     !(is = keep(s, img_memory(is))) ||
		     !STEP(s, as, vips_resize(a_fine, &as, k / k_fine, "kernel", VIPS_KERNEL_LINEAR, NULL)) ||
		     !(as = keep(s, img_memory(as))))) {
			bad = 1;
			break;
		}
		bad = fimg_of(&li, is) || fimg_of(&la, as) || li.nb != 3 || la.nb != 1;
		if (!bad && !f.p) { /* the photo itself, for both */
			bad = fimg_of(&f, is) || fimg_of(&b, is);
		} else if (!bad) {
			bad = fimg_resized(&nf, &f, li.w, li.h) || (free(f.p), f = nf, 0) ||
			      fimg_resized(&nb, &b, li.w, li.h) || (free(b.p), b = nb, 0);
		}
		free(m.p);
		m.p = NULL;
		bad = bad || fimg_new(&m, li.w, li.h, 3);
		for (int n = 0; !bad && n < levels[l].passes; n++)
			bad = fusion_pass(&li, &la, &f, &b, &m, sigma * k);
		free(li.p), free(la.p);
	}
	if (bad) {
		vips_error("petcut", "out of memory");
		goto done;
	}
	if (!(rgb8 = keep(s, img_memory(rgb))) || !(alpha8 = keep(s, img_memory(alpha))) ||
	    rgb8->BandFmt != VIPS_FORMAT_UCHAR || alpha8->BandFmt != VIPS_FORMAT_UCHAR ||
	    !(pix = keep(s, vips_image_new_from_memory_copy(VIPS_IMAGE_ADDR(rgb8, 0, 0), VIPS_IMAGE_SIZEOF_IMAGE(rgb8),
							   W, H, 3, VIPS_FORMAT_UCHAR))))
		goto done;
	/* each row's means, brought down to it from the small ones first */
	struct tap *tx = malloc(sizeof *tx * (size_t)W), *ty = malloc(sizeof *ty * (size_t)H);
	float *row_f = malloc(sizeof *row_f * (size_t)m.w * 3), *row_b = malloc(sizeof *row_b * (size_t)m.w * 3);
	if (!tx || !ty || !row_f || !row_b) {
		free(tx), free(ty), free(row_f), free(row_b);
		vips_error("petcut", "out of memory");
		goto done;
	}
	taps(tx, W, m.w);
	taps(ty, H, m.h);
	for (int y = 0; y < H; y++) {
		const VipsPel *al = VIPS_IMAGE_ADDR(alpha8, 0, y), *src = VIPS_IMAGE_ADDR(rgb8, 0, y);
		VipsPel *dst = VIPS_IMAGE_ADDR(pix, 0, y);
		int x = 0;
		while (x < W && (al[x] == 0 || al[x] == 255))
			x++;
		if (x == W)
			continue;
		lerp_rows(row_f, m.p, m.w, &ty[y]);
		lerp_rows(row_b, b.p, b.w, &ty[y]);
		for (; x < W; x++) {
			if (al[x] == 0 || al[x] == 255)
				continue;
			float t = al[x] / 255.0f;
			for (int c = 0; c < 3; c++) {
				float mf = lerp_at(row_f, &tx[x], c), mb = lerp_at(row_b, &tx[x], c);
				float e = mf + t * (src[x * 3 + c] - t * mf - (1 - t) * mb);
				dst[x * 3 + c] = (VipsPel)VIPS_CLIP(0.0f, e + 0.5f, 255.0f);
			}
		}
	}
	free(tx), free(ty), free(row_f), free(row_b);
	STEP(s, out, vips_copy(pix, &out, "interpretation", rgb->Type, NULL));
done:
	free(f.p), free(b.p), free(m.p);
	return out;
}

img_status img_foreground(const struct img *photo_img, const struct img *alpha_img, struct img **fg)
{
	VipsObject *s;
	VipsImage *rgb, *clean, *res;
	img_status st = IMG_OK;

	if (!fg)
		return img_fail(IMG_ERR_ARG, "no place for the result");
	*fg = NULL;
	if (!photo_img || !alpha_img || (photo_img->pix->Bands != 3 && photo_img->pix->Bands != 4) ||
	    alpha_img->pix->Bands != 1 || alpha_img->pix->Xsize != photo_img->pix->Xsize ||
	    alpha_img->pix->Ysize != photo_img->pix->Ysize)
		return img_fail(IMG_ERR_ARG, "the foreground needs a colour photo and a one-band alpha of its size");
	s = VIPS_OBJECT(vips_image_new());
	if (!STEP(s, rgb, vips_extract_band(photo_img->pix, &rgb, 0, "n", 3, NULL)) ||
	    !(clean = clean_colors(s, rgb, alpha_img->pix)) || !(res = adopt_meta(s, clean, photo_img->pix)))
		st = img_fail_vips(IMG_ERR_VIPS, "cannot estimate the foreground");
	else
		st = img_adopt(res, "cannot estimate the foreground", fg);
	g_object_unref(s);
	return st;
}

/* Below this share, a canvas layout is drawn from the photo scaled down. */
#define PRESCALE_BELOW 0.9

/* img_render of the photo and alpha scaled by k on a CW x CH canvas; the
 * subject's scale then counts from the photo as given. */
static img_status render_scaled(const struct img *photo, const struct img *alpha, const struct img_render *r, int CW,
				int CH, double k, struct img **out, struct img_subject *subject)
{
	VipsObject *s = VIPS_OBJECT(vips_image_new());
	struct img *sp = NULL, *sa = NULL;
	struct img_render r2 = *r;
	VipsImage *p, *a;
	img_status st;

	r2.canvas_w = CW, r2.canvas_h = CH; /* "the photo's size" is the photo as given */
	r2.outline_px = r->outline_px > 0 ? VIPS_MAX(1, (int)lround(r->outline_px * k)) : 0;
	r2.blur_sigma = r->blur_sigma * k;
	if (!r->shadow.blur_percent)
		r2.shadow.blur = r->shadow.blur * k;
	if (!r->shadow.offset_percent)
		r2.shadow.offset = r->shadow.offset * k;
	for (int i = 0; i < 4; i++)
		r2.roi[i] = r->roi_percent[i] ? r->roi[i] : r->roi[i] * k;
	if (!STEP(s, p, vips_resize(photo->pix, &p, k, NULL)) || !STEP(s, a, vips_resize(alpha->pix, &a, k, NULL)))
		st = img_fail_vips(IMG_ERR_VIPS, "cannot scale the photo to the canvas");
	else if ((st = img_adopt(p, "cannot scale the photo to the canvas", &sp)) == IMG_OK &&
		 (st = img_adopt(a, "cannot scale the photo to the canvas", &sa)) == IMG_OK &&
		 (st = img_render(sp, sa, &r2, out, subject)) == IMG_OK)
		subject->scale *= k;
	img_free(sp);
	img_free(sa);
	g_object_unref(s);
	return st;
}

/* Gives fully transparent pixels of an 8-bit RGBA image in memory colour
 * 0: nobody sees them, and the photo's detail would otherwise double the
 * size of a PNG. One pass over the made pixels, where a chain of libvips
 * operations (split, compare, mask, join) took several. */
static void clear_hidden(VipsImage *im)
{
	if (im->Bands != 4 || im->BandFmt != VIPS_FORMAT_UCHAR || !im->data)
		return;
	int h = im->Ysize;
	size_t w = (size_t)im->Xsize;

	#pragma omp parallel for schedule(static) if (w * (size_t)h > (1u << 20))
	for (int y = 0; y < h; y++) {
		unsigned char *p = VIPS_IMAGE_ADDR(im, 0, y);
		for (size_t x = 0; x < w; x++, p += 4)
			if (!p[3])
				p[0] = p[1] = p[2] = 0;
	}
}

/* The plain cut-out made in one pass: res (the photo's colours joined with
 * alpha, cropped to crop, with res's header and fields) written straight
 * from the photo's and alpha's pixels in memory, a hidden pixel's colour
 * 0 as clear_hidden makes it. libvips' band join, its copy to memory and
 * clear_hidden's pass made the same bytes in three. */
static img_status plain_cut(VipsImage *res, VipsImage *photo, VipsImage *alpha, struct box crop, struct img **out)
{
	struct img *im = calloc(1, sizeof *im);
	VipsImage *o = img_new_big(crop.w, crop.h, 4, VIPS_FORMAT_UCHAR);
	int bands = photo->Bands;

	if (!im || !o || vips_image_pipelinev(o, VIPS_DEMAND_STYLE_THINSTRIP, res, NULL)) {
		free(im);
		VIPS_UNREF(o);
		return img_fail_vips(IMG_ERR_NOMEM, "cannot render the output");
	}
	#pragma omp parallel for schedule(static) if ((int64_t)crop.w * crop.h > (1 << 20))
	for (int y = 0; y < crop.h; y++) {
		const unsigned char *p = VIPS_IMAGE_ADDR(photo, crop.x, crop.y + y);
		const unsigned char *a = VIPS_IMAGE_ADDR(alpha, crop.x, crop.y + y);
		unsigned char *q = VIPS_IMAGE_ADDR(o, 0, y);

		for (int x = 0; x < crop.w; x++, p += bands, q += 4) {
			unsigned char m = a[x] ? 255 : 0;

			q[0] = p[0] & m;
			q[1] = p[1] & m;
			q[2] = p[2] & m;
			q[3] = a[x];
		}
	}
	im->pix = o;
	*out = im;
	return IMG_OK;
}

img_status img_render(const struct img *photo_img, const struct img *alpha_img, const struct img_render *r,
		      struct img **out, struct img_subject *subject)
{
	static const struct img_render plain;
	VipsObject *s = NULL;
	VipsImage *photo, *alpha, *rgb, *cut, *res, *next, *under = NULL, *base = NULL;
	struct img_subject sub, dummy;
	struct box crop;
	struct placement pl = {0};
	double count, scale = 1, fit_k = 1;
	int W, H, bad, opaque, off_x = 0, off_y = 0, CW = 0, CH = 0, as_cut = 0;
	img_status st;

	if (!out)
		return img_fail(IMG_ERR_ARG, "no place for the result");
	*out = NULL;
	if (!subject)
		subject = &dummy;
	if (!r)
		r = &plain;
	if (!photo_img || !alpha_img || (photo_img->pix->Bands != 3 && photo_img->pix->Bands != 4) ||
	    alpha_img->pix->Bands != 1)
		return img_fail(IMG_ERR_ARG, "rendering needs a colour photo and a one-band alpha");
	photo = photo_img->pix;
	alpha = alpha_img->pix;
	W = photo->Xsize;
	H = photo->Ysize;
	if (alpha->Xsize != W || alpha->Ysize != H)
		return img_fail(IMG_ERR_ARG, "alpha is %dx%d, the photo %dx%d", alpha->Xsize, alpha->Ysize, W, H);
	if (r->bg == IMG_BG_IMAGE && (!r->bg_image || (r->bg_image->pix->Bands != 3 && r->bg_image->pix->Bands != 4)))
		return img_fail(IMG_ERR_ARG, "the background image is missing or not in colour");
	if ((unsigned)r->kind > IMG_CUT_MASK || (unsigned)r->bg > IMG_BG_IMAGE || (unsigned)r->effect > IMG_EFFECT_POPART ||
	    (unsigned)r->edges > IMG_EDGES_PHOTO)
		return img_fail(IMG_ERR_ARG, "unknown output kind, background, effect or edges");
	/* Written so that NaN fails too. */
	if (r->fit_w < 0 || r->fit_h < 0 || r->fit_pixels < 0 || !(r->margin >= 0 && r->margin <= 1e6) || r->outline_px < 0 ||
	    !(r->blur_sigma >= 0 && r->blur_sigma <= 1e4))
		return img_fail(IMG_ERR_ARG, "negative or outlandish size in the render options");
	const struct img_shadow *sh = &r->shadow;
	if ((unsigned)sh->kind > IMG_SHADOW_FLOATING || !(sh->opacity >= 0 && sh->opacity <= 1) ||
	    !(sh->blur >= 0 && sh->blur <= 1e4) || !(sh->offset >= 0 && sh->offset <= 1e5) ||
	    !(sh->angle >= -85 && sh->angle <= 85))
		return img_fail(IMG_ERR_ARG, "unknown shadow, or its opacity, blur, offset or angle out of range");
	for (int i = 0; i < 4; i++)
		if (!(r->roi[i] >= 0 && r->roi[i] <= 1e6))
			return img_fail(IMG_ERR_ARG, "negative or outlandish region of interest");
	int canvas = r->canvas_w != 0 && r->canvas_h != 0;
	if (canvas) {
		CW = r->canvas_w < 0 ? W : r->canvas_w;
		CH = r->canvas_h < 0 ? H : r->canvas_h;
		if (CW < 1 || CH < 1 || CW > 100000 || CH > 100000 || !(r->scale >= 0 && r->scale <= 1) ||
		    (unsigned)r->snap > IMG_SNAP_LEFT || r->effect == IMG_EFFECT_POPART || r->crop)
			return img_fail(IMG_ERR_ARG, "a canvas of %dx%d, scale %g, or with crop or pop art", CW, CH,
					r->scale);
		for (int i = 0; i < 4; i++)
			if (!(r->pad[i] >= 0 && r->pad[i] <= 1e6))
				return img_fail(IMG_ERR_ARG, "negative or outlandish padding");
	}

	s = VIPS_OBJECT(vips_image_new());
	if ((r->roi[2] > 0 || r->roi[3] > 0) && !(alpha = within_roi(s, alpha, r)))
		goto vips_failed;
	if (subject_of(alpha, &sub, &count)) {
		st = img_fail_vips(IMG_ERR_VIPS, "cannot measure the subject");
		goto out;
	}

	/* The mask alone. */
	if (r->kind == IMG_CUT_MASK) {
		VipsImage *bw;

		if (!STEP(s, bw, vips_copy(alpha, &bw, "interpretation", VIPS_INTERPRETATION_B_W, NULL)) ||
		    !(res = adopt_meta(s, bw, photo)))
			goto vips_failed;
		*subject = sub;
		goto done;
	}

	struct box reach = reach_of(r, W, H, &sub);
	/* The frame the layers are drawn over: the photo, and on a canvas past
	 * its edges where the shadow or outline falls beyond them, but not
	 * where the photo cuts the subject off (that edge stays the
	 * subject's, to stand on the canvas's). */
	struct box frame = {0, 0, W, H};
	if (canvas && sub.w > 0) {
		int x0 = sub.x > 0 ? VIPS_MIN(0, reach.x) : 0, y0 = sub.y > 0 ? VIPS_MIN(0, reach.y) : 0;
		int x1 = sub.x + sub.w < W ? VIPS_MAX(W, reach.x + reach.w) : W;
		int y1 = sub.y + sub.h < H ? VIPS_MAX(H, reach.y + reach.h) : H;
		frame = (struct box){x0, y0, x1 - x0, y1 - y0};
	}
	/* A canvas that takes the subject smaller than the photo has it: the
	 * photo and alpha are scaled down first, and everything is drawn at the
	 * canvas's resolution (a print from a 12 MP photo: some 60 % of its
	 * pixels). The effects' sizes are shares of the photo's, so they keep
	 * their look; an outline in pixels is scaled with it. */
	if (canvas) {
		if (place(r, W, H, &sub, reach, frame, CW, CH, &pl)) {
			st = img_fail(IMG_ERR_ARG, "the padding leaves no room on the %dx%d canvas", CW, CH);
			goto out;
		}
		if (pl.k < PRESCALE_BELOW && W * pl.k >= 16 && H * pl.k >= 16) {
			st = render_scaled(photo_img, alpha_img, r, CW, CH, pl.k, out, subject);
			goto out;
		}
	}

	/* the soft edge in the subject's own colours where something is drawn
	 * under it (a background, a shadow or an outline, pop art's colours) */
	int clean = r->edges == IMG_EDGES_CLEAN ||
		    (r->edges == IMG_EDGES_AUTO && (r->bg != IMG_BG_NONE || r->effect != IMG_EFFECT_NONE));
	VipsImage *colors;
	if (!STEP(s, rgb, vips_extract_band(photo, &rgb, 0, "n", 3, NULL)) ||
	    !(colors = clean ? clean_colors(s, rgb, alpha) : rgb) ||
	    !STEP(s, cut, vips_bandjoin2(colors, alpha, &cut, NULL)))
		goto vips_failed;

	/* What the subject brings with it: a shadow or an outline (reach_of:
	 * how far it goes past the subject's box, for the crop). */
	if (r->effect == IMG_EFFECT_SHADOW && sub.w > 0) {
		double black[3] = {0, 0, 0};
		struct shadow_geo g;
		VipsImage *shade;

		shadow_geo(r, W, H, &sub, &g);
		if (!(shade = shadow_alpha(s, alpha, &g, frame)) || !(under = layer(s, shade, black)))
			goto vips_failed;
	} else if (r->effect == IMG_EFFECT_STICKER) {
		int px = r->outline_px > 0 ? r->outline_px : VIPS_MAX(1, (int)lround(OUTLINE_SHARE * VIPS_MIN(W, H)));
		double sigma = px / 2.0, white[3] = {255, 255, 255};
		/* A straight edge blurred with sigma falls to 255 * (1 - Phi(2)),
		 * 5.8, at 2 sigma = px away: the threshold that dilates by px. The
		 * ramp around it is about 1.5 pixels wide, for a smooth edge. */
		double slope = 255.0 / (1.5 * 255 * 0.054 / sigma), thresh = 5.8;
		VipsImage *soft, *ring;

		if (!(soft = blur(s, alpha, sigma, 1)) ||
		    !STEP(s, ring, vips_linear1(soft, &ring, slope, -thresh * slope, "uchar", TRUE, NULL)) ||
		    !(under = layer(s, ring, white)))
			goto vips_failed;
	}

	/* The box to crop to: the subject and what it brings, plus the margin
	 * (pixels, or percent of the box's width and height), within the
	 * picture. With no subject at all the picture stays whole. */
	crop = (struct box){0, 0, W, H};
	if (r->crop && sub.w > 0) {
		int mx = (int)lround(r->margin_percent ? r->margin * sub.w / 100 : r->margin);
		int my = (int)lround(r->margin_percent ? r->margin * sub.h / 100 : r->margin);
		int x0 = VIPS_MAX(0, reach.x - mx), y0 = VIPS_MAX(0, reach.y - my);
		int x1 = VIPS_MIN(W, reach.x + reach.w + mx), y1 = VIPS_MIN(H, reach.y + reach.h + my);

		crop = (struct box){x0, y0, x1 - x0, y1 - y0};
	}

	if (canvas) {
		VipsImage *cutf = to_frame(s, cut, frame), *underf = under && under->Xsize == W && under->Ysize == H
										? to_frame(s, under, frame) : under;
		if (!cutf || (under && !underf) ||
		    (!(res = on_canvas(s, photo, rgb, cutf, underf, frame, r, CW, CH, &pl, &bad)) && bad))
			goto vips_failed;
		crop = pl.from;
		scale = pl.k;
		off_x = pl.x, off_y = pl.y;
		opaque = (r->bg == IMG_BG_COLOR && r->color[3] == 255) || r->bg == IMG_BG_BLUR ||
			 (r->bg == IMG_BG_IMAGE && r->bg_image->pix->Bands == 3);
	} else if (r->effect == IMG_EFFECT_POPART) {
		VipsImage *part = cut;

		if ((crop.w != W || crop.h != H) &&
		    !STEP(s, part, vips_extract_area(cut, &part, crop.x, crop.y, crop.w, crop.h, NULL)))
			goto vips_failed;
		if (!(res = popart(s, photo, part)))
			goto vips_failed;
		/* The subject reported is the top-left cell's. */
		scale = (double)res->Xsize / 2 / crop.w;
		opaque = 1;
	} else {
		if (!(base = background(s, photo, rgb, r, W, H, &bad)) && bad)
			goto vips_failed;
		if (under && !(under = over(s, base, under)))
			goto vips_failed;
		if (!(res = over(s, under ? under : base, cut)))
			goto vips_failed;
		/* the photo's own colours over nothing, in memory: made by
		 * plain_cut unless a fit scales them below */
		as_cut = !clean && !base && !under && photo->BandFmt == VIPS_FORMAT_UCHAR && photo->data &&
			alpha->data;
		if ((crop.w != W || crop.h != H) &&
		    !(res = STEP(s, next, vips_extract_area(res, &next, crop.x, crop.y, crop.w, crop.h, NULL))))
			goto vips_failed;
		opaque = (r->bg == IMG_BG_COLOR && r->color[3] == 255) || r->bg == IMG_BG_BLUR ||
			 (r->bg == IMG_BG_IMAGE && r->bg_image->pix->Bands == 3);
	}

	/* Fit: scaled down to within fit_w x fit_h (0: that side is free) and
	 * fit_pixels in all, aspect kept; never enlarged, which would only blur. */
	if (r->fit_w > 0 || r->fit_h > 0 || r->fit_pixels > 0) {
		double k = 1, area = (double)res->Xsize * res->Ysize;

		if (r->fit_w > 0)
			k = VIPS_MIN(k, (double)r->fit_w / res->Xsize);
		if (r->fit_h > 0)
			k = VIPS_MIN(k, (double)r->fit_h / res->Ysize);
		int by_area = r->fit_pixels > 0 && area * k * k > (double)r->fit_pixels;
		if (by_area)
			k = sqrt((double)r->fit_pixels / area);
		if (k < 1) {
			/* rounded down where the area binds: the pixels stay within it */
			double half = by_area ? 0 : 0.5;
			int fw = VIPS_MAX(1, (int)floor(res->Xsize * k + half)), fh = VIPS_MAX(1, (int)floor(res->Ysize * k + half));

			if (r->fit_w > 0)
				fw = VIPS_MIN(fw, r->fit_w);
			if (r->fit_h > 0)
				fh = VIPS_MIN(fh, r->fit_h);
			fit_k = (double)fw / res->Xsize;
			as_cut = 0;
			if (!(res = resize_to(s, res, fw, fh)))
				goto vips_failed;
		}
	}

	if (opaque && res->Bands == 4) {
		if (!(res = STEP(s, next, vips_extract_band(res, &next, 0, "n", 3, NULL))))
			goto vips_failed;
	}
	if (!(res = adopt_meta(s, res, photo)))
		goto vips_failed;
	/* the resolution a print shop reads: pixels per millimetre in libvips */
	if (r->dpi > 0 && !(res = STEP(s, next, vips_copy(res, &next, "xres", r->dpi / 25.4, "yres", r->dpi / 25.4, NULL))))
		goto vips_failed;

	/* the subject's box: from the photo to the crop or the canvas, then
	 * through the fit */
	if (sub.w > 0) {
		subject->x = (int)floor((off_x + (sub.x - crop.x) * scale) * fit_k);
		subject->y = (int)floor((off_y + (sub.y - crop.y) * scale) * fit_k);
		subject->w = VIPS_MAX(1, (int)ceil((off_x + (sub.x - crop.x + sub.w) * scale) * fit_k) - subject->x);
		subject->h = VIPS_MAX(1, (int)ceil((off_y + (sub.y - crop.y + sub.h) * scale) * fit_k) - subject->y);
	} else {
		*subject = (struct img_subject){0};
	}
	subject->coverage = canvas ? count * scale * scale / ((double)CW * CH) : count / ((double)crop.w * crop.h);
	subject->scale = scale * fit_k;

done:
	if (as_cut && res->Bands == 4) {
		st = plain_cut(res, photo, alpha, crop, out);
		goto out;
	}
	/* res ends in adopt_meta's copy, so the pixels made here are the
	 * output's own: a transparent one's hidden colours are cleared in place */
	st = img_adopt(res, "cannot render the output", out);
	if (st == IMG_OK && res->Bands == 4)
		clear_hidden((*out)->pix);
	goto out;
vips_failed:
	st = img_fail_vips(IMG_ERR_VIPS, "cannot render the output");
out:
	g_object_unref(s);
	return st;
}
