/*
 * img_int.h - internals shared by the img module's source files only.
 */
#ifndef PETCUT_IMG_INT_H
#define PETCUT_IMG_INT_H

#include <vips/vips.h>

#include "img/img.h"

struct img {
	/* In memory, uchar: a photo (3 or 4 bands) in its own RGB colour space,
	 * described by its ICC profile ("icc-profile-data") when it has one,
	 * else sRGB; or a B_W mask (1 band). */
	VipsImage *pix;
};

/* Records a message for img_errmsg() and returns st. */
img_status img_fail(img_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Fails with what, followed by the gist of libvips' last error. */
img_status img_fail_vips(img_status st, const char *what);

/* Resizes in to exactly w x h with a linear filter; 0 or -1 (libvips error). */
int img_resize_exact(VipsImage *in, VipsImage **out, int w, int h);

#endif
