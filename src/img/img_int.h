/*
 * img_int.h - internals shared by the img module's source files only.
 */
#ifndef PETCUT_IMG_INT_H
#define PETCUT_IMG_INT_H

#include <vips/vips.h>

#include "img/img.h"
#include "util/util.h"

struct img {
	/* In memory, uchar: a photo (3 or 4 bands) in its own RGB colour space,
	 * described by its ICC profile ("icc-profile-data") when it has one,
	 * else sRGB; or a B_W mask (1 band). */
	VipsImage *pix;
};

/* Records a message for img_errmsg() and returns st. */
extern _Thread_local struct util_err img_err;
#define img_fail(st, ...) ((img_status)util_fail(&img_err, (st), __VA_ARGS__))

/* Fails with what, followed by the gist of libvips' last error. */
img_status img_fail_vips(img_status st, const char *what);

/* A new image in memory, its pixels on huge pages (util_alloc_big: a 12 MP
 * photo is some 9000 small pages to fault in one by one) and not yet
 * written; NULL on failure (a libvips error). */
VipsImage *img_new_big(int w, int h, int bands, VipsBandFormat fmt);

/* v written into a new img_new_big image *out, by v's own pool; 0, or -1
 * (a libvips error). */
int img_write_big(VipsImage *v, VipsImage **out);

/* v's pixels in memory (a new reference: v itself where they are there
 * already), made on all cores; v is never a loader's output, whose errors
 * libvips' worker threads could lose. NULL on a libvips error. */
VipsImage *img_memory(VipsImage *v);

/* v's pixels as one malloc'd block (g_free it), made on all cores as by
 * img_memory; NULL on a libvips error. */
void *img_memory_bytes(VipsImage *v, size_t *len);

/* A new image holding v in memory (copied unless it is there already); the
 * caller keeps its reference to v. A failure's message starts with what. */
img_status img_adopt(VipsImage *v, const char *what, struct img **out);

/* in (3 or 4 bands, 8-bit) brought into photo's colour space through both
 * profiles (none: sRGB); a new reference, or NULL. */
VipsImage *img_to_space_of(VipsImage *photo, VipsImage *in);

/* Resizes in to exactly w x h with a linear filter; 0 or -1 (libvips error). */
int img_resize_exact(VipsImage *in, VipsImage **out, int w, int h);

/* ===== Mask to full resolution (refine.c, matting.c) ===== */

/* Bilinear sampling along one axis from m source pixels to n: output i reads
 * source position (i + 0.5) * m / n - 0.5 (pixel centres aligned), clamped
 * to the edge pixels, as i0[i] + wt[i] towards i1[i]. */
struct img_axis {
	int *i0, *i1;
	float *wt;
};

/* Fills a for n outputs from m sources: 0, or -1 when memory ran out (then
 * img_axis_free it all the same). */
int img_axis_init(struct img_axis *a, int n, int m);
void img_axis_free(struct img_axis *a);

/* IMG_REFINE_MATTING over out, the alpha IMG_REFINE_NONE made from the mask
 * p (lw x lh floats, lw <= the photo's width, lh <= its height) for the
 * photo pix (decoded, 3 or 4 bands): the pixels of the unknown band are
 * solved again, the others stay as they are. info, if not NULL, receives
 * what the solve did. 0, or -1 when memory ran out. */
int img_matting_refine(VipsImage *pix, const float *p, int lw, int lh, VipsImage *out, struct img_matting_info *info);

/* The trimap img_matting_refine works with, at the photo's size, into out (a
 * prepared one-band 8-bit image of the photo's size). 0, or -1 when memory
 * ran out. */
int img_matting_trimap_of(VipsImage *pix, const float *p, int lw, int lh, VipsImage *out);

/* ===== PNG (png.c) ===== */

/* im (8-bit, 1 to 4 bands; its pixels are read through one region, so best
 * in memory) as a PNG file in *buf (malloc'd, *len bytes): the same pixels
 * and ancillary chunks as libvips' writer, compressed faster. 0, or -1 with
 * a libvips error. */
int img_png_encode(VipsImage *im, void **buf, size_t *len);

/* The same file written to t, which is then ended; 0 or -1. */
int img_png_save(VipsImage *im, VipsTarget *t);

#endif
