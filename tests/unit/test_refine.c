/*
 * test_refine.c - checks of img_mask_to_alpha (src/img/refine.c) on a
 * synthetic photo with one sharp vertical edge and a coarse, blurry mask of
 * it, as the network gives for a photo many times its input size: sizes and
 * ranges, the plain upscale against libvips' own, the guided upscale's and
 * matting's sharper edge in the right place, the photo's alpha multiplied in,
 * bad arguments.
 * Prints one "ok - ..." / "not ok - ..." line per check; exits 1 if any check
 * failed, 77 if libvips cannot start.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vips/vips.h>

#include "img/img.h"

#include "alpha_bytes.h"
#include "check.h"

/* The photo: W x H, dark left of EDGE_X, bright from it on. */
#define W 400
#define H 300
#define EDGE_X 203
/* The mask: MW x MH (a factor of 8), a ramp RAMP mask pixels wide. */
#define MW 50
#define MH 38
#define RAMP 3.0

static char tmpdir[] = "/tmp/petcut-test-refine-XXXXXX";

static const enum img_refine modes[3] = {IMG_REFINE_NONE, IMG_REFINE_GUIDED, IMG_REFINE_MATTING};
static const char *const names[3] = {"NONE", "GUIDED", "MATTING"};


/* ===== Test pictures ===== */

/* The photo as an img: a textured dark area left of the edge, a bright one
 * right of it (not grey: the guide is luminance), alpha a if bands is 4. */
static struct img *make_photo(int bands, int a)
{
	unsigned char *px = malloc((size_t)W * H * bands);
	struct img *im = NULL;
	VipsImage *v;
	void *buf;
	size_t len;

	for (int y = 0; y < H; y++)
		for (int x = 0; x < W; x++) {
			unsigned char *p = px + ((size_t)y * W + x) * bands;
			int n = (x * 7 + y * 13) % 9; /* a little texture */

			if (x < EDGE_X) {
				p[0] = 40 + n;
				p[1] = 60 + n;
				p[2] = 30 + n;
			} else {
				p[0] = 230 - n;
				p[1] = 200 - n;
				p[2] = 170 - n;
			}
			if (bands == 4)
				p[3] = a;
		}
	v = vips_image_new_from_memory(px, (size_t)W * H * bands, W, H, bands, VIPS_FORMAT_UCHAR);
	if (v && !vips_pngsave_buffer(v, &buf, &len, "compression", 1, NULL)) {
		if (img_load_buffer(buf, len, &im) != IMG_OK)
			im = NULL;
		g_free(buf);
	}
	VIPS_UNREF(v);
	free(px);
	return im;
}

/* The coarse mask: 0 left of the edge, 1 right, a linear ramp RAMP mask
 * pixels wide centred on the edge (mask pixel centres map to the photo with
 * pixel centres aligned). */
static float *make_mask(int mw, int mh)
{
	float *m = malloc(sizeof *m * mw * mh);
	double edge = (EDGE_X) * (double)mw / W - 0.5; /* the edge in mask pixels */

	for (int y = 0; y < mh; y++)
		for (int x = 0; x < mw; x++) {
			double t = (x - edge) / RAMP + 0.5;

			m[y * mw + x] = (float)(t < 0 ? 0 : t > 1 ? 1 : t);
		}
	return m;
}

/* The 8-bit pixels of an alpha (w * h bytes, malloc'd), read back through a
 * PNG file; NULL if it is not one band of the photo's size. */
static unsigned char *pixels(const struct img *alpha)
{
	return alpha_bytes(alpha, W, H, tmpdir);
}

/* The edge's width along row y: pixels with alpha strictly between 10% and
 * 90%; and where alpha crosses one half (the first x with alpha >= 128). */
static int edge_width(const unsigned char *a, int y, int *cross)
{
	int n = 0;

	*cross = -1;
	for (int x = 0; x < W; x++) {
		unsigned char v = a[y * W + x];

		if (v > 25 && v < 230)
			n++;
		if (*cross < 0 && v >= 128)
			*cross = x;
	}
	return n;
}

/* ===== Checks ===== */

/* The plain upscale is libvips' linear resize of the mask, rounded. */
static void check_none_matches_vips(const unsigned char *none, const float *mask)
{
	VipsImage *m, *big = NULL;
	float *ref = NULL;
	size_t len;
	int worst = 0;
	double sum = 0;

	m = vips_image_new_from_memory(mask, sizeof *mask * MW * MH, MW, MH, 1, VIPS_FORMAT_FLOAT);
	if (m && !vips_resize(m, &big, (double)W / MW, "vscale", (double)H / MH, "kernel", VIPS_KERNEL_LINEAR,
			      NULL) &&
	    big->Xsize == W && big->Ysize == H)
		ref = vips_image_write_to_memory(big, &len);
	if (check(ref != NULL, "libvips resizes the mask for comparison")) {
		for (int i = 0; i < W * H; i++) {
			int d = abs((int)none[i] - (int)lrint(ref[i] * 255.0));

			sum += d;
			if (d > worst)
				worst = d;
		}
		/* libvips 8.14 places its upscaled grid a fraction of a pixel
		 * away from pixel centres aligned: a few levels on the ramp. */
		check(worst <= 8 && sum / (W * H) < 0.5,
		      "NONE is a bilinear upscale like libvips' (max |diff| %d of 255, mean %.3f)", worst,
		      sum / (W * H));
	}
	g_free(ref);
	VIPS_UNREF(big);
	VIPS_UNREF(m);
}

static void check_edges(const struct img *photo, const float *mask)
{
	struct img *a_none = NULL, *a_guided = NULL;
	unsigned char *none = NULL, *guided = NULL;
	int wn, wg, cn, cg, lo = 255, hi = 0;

	check(img_mask_to_alpha(photo, mask, MH, MW, IMG_REFINE_NONE, &a_none) == IMG_OK, "NONE succeeds (%s)",
	      img_errmsg());
	check(img_mask_to_alpha(photo, mask, MH, MW, IMG_REFINE_GUIDED, &a_guided) == IMG_OK,
	      "GUIDED succeeds (%s)", img_errmsg());
	none = pixels(a_none);
	guided = pixels(a_guided);
	if (!check(none && guided, "both alphas are one 8-bit band of the photo's size (%dx%d)", W, H))
		goto out;
	check_none_matches_vips(none, mask);
	for (int i = 0; i < W * H; i++) {
		lo = guided[i] < lo ? guided[i] : lo;
		hi = guided[i] > hi ? guided[i] : hi;
	}
	check(lo == 0 && hi == 255, "GUIDED spans the whole range 0..255 (%d..%d)", lo, hi);
	wn = edge_width(none, H / 2, &cn);
	wg = edge_width(guided, H / 2, &cg);
	check(wn >= 16, "NONE's edge is as blurry as the mask: %d px from 10%% to 90%%", wn);
	check(wg * 3 <= wn, "GUIDED's edge is sharper: %d px from 10%% to 90%% (NONE: %d)", wg, wn);
	check(abs(cg - EDGE_X) <= 1, "GUIDED's edge is on the photo's (alpha >= 128 from x = %d; edge at %d)", cg,
	      EDGE_X);
	check(abs(cn - EDGE_X) <= 4, "NONE's edge is about there too (x = %d)", cn);
	check(guided[(H / 2) * W + 20] <= 2 && guided[(H / 2) * W + W - 20] >= 253,
	      "GUIDED keeps the background out (%d) and the subject in (%d)", guided[(H / 2) * W + 20],
	      guided[(H / 2) * W + W - 20]);
out:
	free(none);
	free(guided);
	img_free(a_none);
	img_free(a_guided);
}

/* MATTING solves the edge from the photo's colours: as sharp as the
 * photo's, in its place (tests/unit/test_matting.c checks it further). */
static void check_edges_matting(const struct img *photo, const float *mask)
{
	struct img *a_none = NULL, *a_mat = NULL;
	unsigned char *none = NULL, *mat = NULL;
	int wn, wm, cn, cm;

	if (img_mask_to_alpha(photo, mask, MH, MW, IMG_REFINE_NONE, &a_none) == IMG_OK &&
	    img_mask_to_alpha(photo, mask, MH, MW, IMG_REFINE_MATTING, &a_mat) == IMG_OK) {
		none = pixels(a_none);
		mat = pixels(a_mat);
	}
	if (check(none && mat, "MATTING succeeds (%s)", img_errmsg())) {
		wn = edge_width(none, H / 2, &cn);
		wm = edge_width(mat, H / 2, &cm);
		check(wm * 3 <= wn && abs(cm - EDGE_X) <= 1,
		      "MATTING's edge is sharper: %d px from 10%% to 90%% (NONE: %d), at x = %d (the photo's: %d)", wm,
		      wn, cm, EDGE_X);
		check(mat[(H / 2) * W + 20] == none[(H / 2) * W + 20] &&
			      mat[(H / 2) * W + W - 20] == none[(H / 2) * W + W - 20],
		      "MATTING is NONE away from the edge (%d, %d)", mat[(H / 2) * W + 20], mat[(H / 2) * W + W - 20]);
	}
	free(none);
	free(mat);
	img_free(a_none);
	img_free(a_mat);
}

/* A photo with alpha 128 halves the result. */
static void check_photo_alpha(const float *mask)
{
	struct img *p3 = make_photo(3, 255), *p4 = make_photo(4, 128);

	if (!check(p3 && p4 && img_bands(p4) == 4, "photos with and without alpha decode"))
		goto out;
	for (int k = 0; k < 3; k++) {
		struct img *a3 = NULL, *a4 = NULL;
		unsigned char *x3 = NULL, *x4 = NULL;
		int worst = 0;

		if (img_mask_to_alpha(p3, mask, MH, MW, modes[k], &a3) == IMG_OK &&
		    img_mask_to_alpha(p4, mask, MH, MW, modes[k], &a4) == IMG_OK) {
			x3 = pixels(a3);
			x4 = pixels(a4);
		}
		if (check(x3 && x4, "%s on a photo with alpha succeeds", names[k])) {
			for (int i = 0; i < W * H; i++) {
				int d = abs((int)x4[i] - (int)lrint(x3[i] * 128.0 / 255.0));

				worst = d > worst ? d : worst;
			}
			check(worst <= 1, "%s multiplies in the photo's alpha of 128 (max |diff| %d)", names[k], worst);
		}
		free(x3);
		free(x4);
		img_free(a3);
		img_free(a4);
	}
out:
	img_free(p3);
	img_free(p4);
}

/* A mask larger than the photo (the network's 1024 x 1024 on a small photo)
 * is brought down to it. */
static void check_large_mask(const struct img *photo)
{
	float *big = make_mask(1024, 1024);
	struct img *a = NULL;
	unsigned char *px = NULL;
	int w, cross;

	for (int k = 0; k < 3; k++) {
		a = NULL;
		px = NULL;
		if (img_mask_to_alpha(photo, big, 1024, 1024, modes[k], &a) == IMG_OK)
			px = pixels(a);
		if (check(px != NULL, "%s takes a mask larger than the photo", names[k])) {
			w = edge_width(px, H / 2, &cross);
			check(abs(cross - EDGE_X) <= 2 && w <= 4, "... and its edge is at x = %d, %d px wide", cross,
			      w);
		}
		free(px);
		img_free(a);
	}
	free(big);
}

/* A window as wide as the mask's ramp makes the edge as sharp as the
 * photo's, with either guide. */
static void check_tuning(const struct img *photo, const float *mask)
{
	for (int guide = 1; guide <= 3; guide += 2) {
		struct img_refine_opts o = {.radius = 3, .guide = guide};
		struct img *a = NULL;
		unsigned char *px = NULL;
		int w, cross;

		if (img_mask_to_alpha_opts(photo, mask, MH, MW, IMG_REFINE_GUIDED, &o, &a) == IMG_OK)
			px = pixels(a);
		if (check(px != NULL, "radius 3, %s guide: succeeds", guide == 3 ? "colour" : "luminance")) {
			w = edge_width(px, H / 2, &cross);
			check(w <= 3 && abs(cross - EDGE_X) <= 1, "... with an edge %d px wide at x = %d", w, cross);
		}
		free(px);
		img_free(a);
	}
}

static void check_bad_args(const struct img *photo, const float *mask)
{
	struct img *a = (struct img *)1;

	check(img_mask_to_alpha(NULL, mask, MH, MW, IMG_REFINE_NONE, &a) == IMG_ERR_ARG && a == NULL,
	      "no photo: IMG_ERR_ARG, *alpha cleared");
	check(img_mask_to_alpha(photo, NULL, MH, MW, IMG_REFINE_NONE, &a) == IMG_ERR_ARG, "no mask: IMG_ERR_ARG");
	check(img_mask_to_alpha(photo, mask, 0, MW, IMG_REFINE_GUIDED, &a) == IMG_ERR_ARG,
	      "mask height 0: IMG_ERR_ARG");
	check(img_mask_to_alpha(photo, mask, MH, -1, IMG_REFINE_GUIDED, &a) == IMG_ERR_ARG,
	      "mask width -1: IMG_ERR_ARG");
	check(img_mask_to_alpha(photo, mask, MH, MW, (enum img_refine)99, &a) == IMG_ERR_ARG,
	      "unknown refine: IMG_ERR_ARG (%s)", img_errmsg());
	check(img_mask_to_alpha(photo, mask, MH, MW, IMG_REFINE_NONE, NULL) == IMG_ERR_ARG,
	      "no out-parameter: IMG_ERR_ARG");
	check(img_mask_to_alpha_opts(photo, mask, MH, MW, IMG_REFINE_GUIDED, &(struct img_refine_opts){.radius = 5000},
				     &a) == IMG_ERR_ARG,
	      "a radius of 5000: IMG_ERR_ARG");
	check(img_mask_to_alpha_opts(photo, mask, MH, MW, IMG_REFINE_GUIDED, &(struct img_refine_opts){.guide = 2},
				     &a) == IMG_ERR_ARG,
	      "a guide of 2 bands: IMG_ERR_ARG");
}

int main(void)
{
	struct img *photo;
	float *mask;

	if (img_init() != IMG_OK) {
		printf("# libvips cannot start: %s\n", img_errmsg());
		return 77;
	}
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	photo = make_photo(3, 255);
	mask = make_mask(MW, MH);
	if (check(photo != NULL, "the synthetic photo decodes (%s)", img_errmsg())) {
		check_edges(photo, mask);
		check_edges_matting(photo, mask);
		check_photo_alpha(mask);
		check_large_mask(photo);
		check_tuning(photo, mask);
		check_bad_args(photo, mask);
	}
	img_free(photo);
	free(mask);
	rmdir(tmpdir);
	return failures ? 1 : 0;
}
