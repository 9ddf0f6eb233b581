/*
 * alpha_bytes.h - the unit tests' way to read an alpha back as bytes: saved
 * as a PNG through img_save and read by libvips, so the bytes are what a
 * user's file holds.
 */
#ifndef PETCUT_TEST_ALPHA_BYTES_H
#define PETCUT_TEST_ALPHA_BYTES_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vips/vips.h>

#include "img/img.h"

/* The 8-bit pixels of a one-band w x h image (w * h bytes, malloc'd), read
 * back through a PNG file in dir; NULL if it is not that. */
static unsigned char *alpha_bytes(const struct img *im, int w, int h, const char *dir)
{
	char path[4096];
	unsigned char *px = NULL;
	VipsImage *v;
	size_t len;

	if (!im || img_width(im) != w || img_height(im) != h || img_bands(im) != 1)
		return NULL;
	snprintf(path, sizeof path, "%s/alpha.png", dir);
	if (img_save(im, path, IMG_FORMAT_PNG) != IMG_OK)
		return NULL;
	v = vips_image_new_from_file(path, "access", VIPS_ACCESS_SEQUENTIAL, NULL);
	if (v && v->Bands == 1 && v->BandFmt == VIPS_FORMAT_UCHAR) {
		void *mem = vips_image_write_to_memory(v, &len);

		if (mem && len == (size_t)w * h && (px = malloc(len)))
			memcpy(px, mem, len);
		g_free(mem);
	}
	VIPS_UNREF(v);
	unlink(path);
	return px;
}

#endif
