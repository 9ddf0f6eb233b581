/*
 * compose.c - from a photo and the network's mask to the pictures the
 * customer sees.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vips/vips.h>

#include "img/img_int.h"

/* ===== Composition ===== */

img_status img_cutout(const struct img *im, const float *mask, int mh, int mw,
		      enum img_cut kind, struct img **out)
{
	VipsImage *m = NULL, *mf = NULL, *a = NULL, *scaled = NULL, *rounded = NULL;
	VipsImage *alpha = NULL, *rgb = NULL, *seen = NULL, *visible = NULL, *res = NULL;
	VipsImage *pix = im->pix;
	struct img *cut = NULL;
	img_status st;
	int bad = 0;

	*out = NULL;
	if (!mask || mh <= 0 || mw <= 0)
		return img_fail(IMG_ERR_ARG, "bad mask size %dx%d", mw, mh);
	if (pix->Bands != 3 && pix->Bands != 4)
		return img_fail(IMG_ERR_ARG, "not a colour image");

	/* Wraps the caller's floats without copying: the result is copied to
	 * memory before returning, so mask is not read afterwards. */
	m = vips_image_new_from_memory(mask, (size_t)mh * mw * sizeof(float), mw, mh, 1, VIPS_FORMAT_FLOAT);
	if (!m || img_resize_exact(m, &mf, pix->Xsize, pix->Ysize)) {
		st = img_fail_vips(IMG_ERR_VIPS, "cannot scale the mask");
		goto out;
	}
	/* alpha = mask * 255 (times the photo's own alpha / 255, if any),
	 * rounded; the cast clips to 0..255. */
	if (pix->Bands == 4)
		bad = vips_extract_band(pix, &a, 3, NULL) || vips_multiply(mf, a, &scaled, NULL);
	else
		bad = vips_linear1(mf, &scaled, 255.0, 0.0, NULL);
	bad = bad || vips_linear1(scaled, &rounded, 1.0, 0.5, NULL) ||
		vips_cast(rounded, &alpha, VIPS_FORMAT_UCHAR, NULL);
	if (!bad && kind == IMG_CUT_MASK)
		bad = vips_copy(alpha, &res, "interpretation", VIPS_INTERPRETATION_B_W, NULL);
	/* Fully transparent pixels get colour 0: nobody sees them, and the
	 * background's detail would otherwise double the size of a PNG
	 * (lossless WebP does the same by itself). */
	else if (!bad)
		bad = vips_extract_band(pix, &rgb, 0, "n", 3, NULL) ||
		      vips_notequal_const1(alpha, &seen, 0.0, NULL) || vips_andimage(rgb, seen, &visible, NULL) ||
		      vips_bandjoin2(visible, alpha, &res, NULL);
	if (bad) {
		st = img_fail_vips(IMG_ERR_VIPS, "cannot compose the cut-out");
		goto out;
	}

	cut = calloc(1, sizeof *cut);
	if (!cut) {
		st = img_fail(IMG_ERR_NOMEM, "out of memory");
		goto out;
	}
	cut->pix = vips_image_copy_memory(res);
	if (!cut->pix) {
		st = img_fail_vips(IMG_ERR_VIPS, "cannot compose the cut-out");
		goto out;
	}
	*out = cut;
	cut = NULL;
	st = IMG_OK;
out:
	img_free(cut);
	VIPS_UNREF(res);
	VIPS_UNREF(visible);
	VIPS_UNREF(seen);
	VIPS_UNREF(rgb);
	VIPS_UNREF(alpha);
	VIPS_UNREF(rounded);
	VIPS_UNREF(scaled);
	VIPS_UNREF(a);
	VIPS_UNREF(mf);
	VIPS_UNREF(m);
	return st;
}

