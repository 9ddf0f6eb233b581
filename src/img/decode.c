/*
 * decode.c - from bytes to an upright image, and from an image to the
 * network's input tensor.
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

/* ===== Decoding ===== */

/* Loaders petcut accepts, by the prefix of their libvips nickname: the
 * formats phones, cameras and browsers produce. */
static const struct {
	const char *loader;
	const char *name;
} formats[] = {
	{"jpegload", "JPEG"}, {"pngload", "PNG"}, {"webpload", "WebP"},
	{"tiffload", "TIFF"}, {"gifload", "GIF"}, {"heifload", "HEIF"},
};

/* Signatures of image formats petcut does not read, so that such a file is
 * reported as unsupported rather than as not an image. */
static const char *sniff_other_image(const unsigned char *b, size_t n)
{
	if (n >= 14 && b[0] == 'B' && b[1] == 'M' && !b[6] && !b[7] && !b[8] && !b[9])
		return "BMP";
	if (n >= 4 && !memcmp(b, "\0\0\1\0", 4))
		return "ICO";
	if (n >= 4 && !memcmp(b, "8BPS", 4))
		return "PSD";
	if ((n >= 12 && !memcmp(b, "\0\0\0\x0cjP  \r\n\x87\n", 12)) ||
	    (n >= 4 && !memcmp(b, "\xff\x4f\xff\x51", 4)))
		return "JPEG 2000";
	if ((n >= 2 && !memcmp(b, "\xff\x0a", 2)) || (n >= 8 && !memcmp(b, "\0\0\0\x0cJXL ", 8)))
		return "JPEG XL";
	if (n >= 3 && b[0] == 'P' && b[1] >= '1' && b[1] <= '7' && strchr(" \t\r\n", b[2]))
		return "PNM";
	return NULL;
}

/* Decodes the source whole, then makes it upright 8-bit sRGB. The first
 * decode is sequential straight into memory: that is the one pass over the
 * compressed data, and where truncation surfaces as an error. */
static img_status load_source(VipsSource *src, struct img **out)
{
	VipsImage *in = NULL, *mem = NULL, *up = NULL, *srgb = NULL, *u8 = NULL, *bare = NULL;
	struct img *im = NULL;
	gchar **fields = NULL;
	const char *type, *nick, *name = NULL;
	unsigned char *sniffed, head[16];
	gint64 headlen;
	img_status st;
	char what[64];

	/* Copied: later sniffing may move the source's buffer. */
	headlen = vips_source_sniff_at_most(src, &sniffed, sizeof head);
	if (headlen < 0) {
		st = img_fail_vips(IMG_ERR_IO, "cannot read");
		goto out;
	}
	if (headlen == 0) {
		st = img_fail(IMG_ERR_NOT_IMAGE, "not an image (empty file)");
		goto out;
	}
	memcpy(head, sniffed, (size_t)headlen);
	type = vips_foreign_find_load_source(src);
	vips_error_clear();
	nick = type ? vips_nickname_find(g_type_from_name(type)) : NULL;
	for (size_t i = 0; nick && i < sizeof formats / sizeof formats[0]; i++)
		if (!strncmp(nick, formats[i].loader, strlen(formats[i].loader)))
			name = formats[i].name;
	if (!name) {
		/* libvips' text formats (matrix, CSV) would take any list of
		 * numbers: only a known image signature makes it an image. */
		const char *other = sniff_other_image(head, (size_t)headlen);

		if (other)
			st = img_fail(IMG_ERR_UNSUPPORTED,
				  "unsupported image format (%s); petcut reads JPEG, PNG, WebP, TIFF, GIF, HEIC and AVIF",
				  other);
		else
			st = img_fail(IMG_ERR_NOT_IMAGE, "not an image");
		goto out;
	}

	snprintf(what, sizeof what, "truncated or damaged %s image", name);
	in = vips_image_new_from_source(src, "", "access", VIPS_ACCESS_SEQUENTIAL,
					"fail_on", VIPS_FAIL_ON_ERROR, NULL);
	if (!in) {
		st = img_fail_vips(IMG_ERR_CORRUPT, what);
		goto out;
	}
	if ((long long)in->Xsize * in->Ysize > IMG_MAX_PIXELS) {
		st = img_fail(IMG_ERR_UNSUPPORTED, "image too large (%dx%d; at most %lld pixels)",
			  in->Xsize, in->Ysize, IMG_MAX_PIXELS);
		goto out;
	}
	mem = vips_image_copy_memory(in);
	if (!mem) {
		st = img_fail_vips(IMG_ERR_CORRUPT, what);
		goto out;
	}

	if (vips_autorot(mem, &up, NULL)) {
		st = img_fail_vips(IMG_ERR_VIPS, "cannot apply the EXIF orientation");
		goto out;
	}
	if (vips_colourspace(up, &srgb, VIPS_INTERPRETATION_sRGB, NULL)) {
		st = img_fail_vips(IMG_ERR_UNSUPPORTED, "cannot convert the image's colours to sRGB");
		goto out;
	}
	if (srgb->Bands != 3 && srgb->Bands != 4) {
		st = img_fail(IMG_ERR_UNSUPPORTED, "unsupported image layout (%d bands)", srgb->Bands);
		goto out;
	}
	/* Outputs are published: drop EXIF (camera, place), XMP and IPTC, and
	 * keep the ICC profile, which the colours still need. */
	if (vips_cast(srgb, &u8, VIPS_FORMAT_UCHAR, NULL) || vips_copy(u8, &bare, NULL)) {
		st = img_fail_vips(IMG_ERR_VIPS, "cannot convert the image to 8 bits");
		goto out;
	}
	fields = vips_image_get_fields(bare);
	for (int i = 0; fields[i]; i++)
		if (!strncmp(fields[i], "exif-", 5) || !strcmp(fields[i], VIPS_META_XMP_NAME) ||
		    !strcmp(fields[i], VIPS_META_IPTC_NAME) || !strcmp(fields[i], VIPS_META_ORIENTATION))
			vips_image_remove(bare, fields[i]);

	im = calloc(1, sizeof *im);
	if (!im) {
		st = img_fail(IMG_ERR_NOMEM, "out of memory");
		goto out;
	}
	im->pix = vips_image_copy_memory(bare);
	if (!im->pix) {
		st = img_fail_vips(IMG_ERR_VIPS, "cannot convert the image");
		goto out;
	}
	*out = im;
	im = NULL;
	st = IMG_OK;
out:
	g_strfreev(fields);
	img_free(im);
	VIPS_UNREF(bare);
	VIPS_UNREF(u8);
	VIPS_UNREF(srgb);
	VIPS_UNREF(up);
	VIPS_UNREF(mem);
	VIPS_UNREF(in);
	return st;
}

img_status img_load_file(const char *path, struct img **out)
{
	VipsSource *src = NULL;
	struct stat sb;
	img_status st;
	int fd;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return img_fail(IMG_ERR_IO, "%s", strerror(errno));
	if (fstat(fd, &sb)) {
		st = img_fail(IMG_ERR_IO, "%s", strerror(errno));
		goto out;
	}
	if (S_ISDIR(sb.st_mode)) {
		st = img_fail(IMG_ERR_IO, "%s", strerror(EISDIR));
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		st = img_fail(IMG_ERR_IO, "not a regular file");
		goto out;
	}
	src = vips_source_new_from_descriptor(fd);
	if (!src) {
		st = img_fail_vips(IMG_ERR_IO, "cannot read the file");
		goto out;
	}
	st = load_source(src, out);
out:
	VIPS_UNREF(src);
	close(fd);
	return st;
}

img_status img_load_buffer(const void *buf, size_t len, struct img **out)
{
	VipsSource *src;
	img_status st;

	*out = NULL;
	if (!buf && len)
		return img_fail(IMG_ERR_ARG, "no buffer");
	src = vips_source_new_from_memory(buf, len);
	if (!src)
		return img_fail_vips(IMG_ERR_NOMEM, "cannot wrap the buffer");
	st = load_source(src, out);
	g_object_unref(src);
	return st;
}

/* ===== Network input ===== */

/* Resizes in to exactly w x h. vips_resize rounds its output size, which for
 * scales computed as target / size lands on the target; the check keeps a
 * silent off-by-one from ever reaching a tensor. */
int img_resize_exact(VipsImage *in, VipsImage **out, int w, int h)
{
	if (vips_resize(in, out, (double)w / in->Xsize, "vscale", (double)h / in->Ysize,
			"kernel", VIPS_KERNEL_LINEAR, NULL))
		return -1;
	if ((*out)->Xsize != w || (*out)->Ysize != h) {
		vips_error("petcut", "resize to %dx%d gave %dx%d", w, h, (*out)->Xsize, (*out)->Ysize);
		VIPS_UNREF(*out);
		return -1;
	}
	return 0;
}

img_status img_to_tensor(const struct img *im, int h, int w, float *dst)
{
	VipsArrayDouble *white = NULL;
	VipsImage *flat = NULL, *sized = NULL;
	unsigned char *px = NULL;
	float lut[256];
	size_t len, plane;
	img_status st;

	if (h <= 0 || w <= 0 || !dst)
		return img_fail(IMG_ERR_ARG, "bad tensor size %dx%d", w, h);
	if (im->pix->Bands != 3 && im->pix->Bands != 4)
		return img_fail(IMG_ERR_ARG, "not a colour image");
	/* Flatten over white, as a viewer shows a transparent photo. */
	white = vips_array_double_newv(3, 255.0, 255.0, 255.0);
	if (im->pix->Bands == 4 ? vips_flatten(im->pix, &flat, "background", white, NULL)
				: vips_copy(im->pix, &flat, NULL)) {
		st = img_fail_vips(IMG_ERR_VIPS, "cannot flatten the image");
		goto out;
	}
	if (img_resize_exact(flat, &sized, w, h)) {
		st = img_fail_vips(IMG_ERR_VIPS, "cannot resize the image");
		goto out;
	}
	px = vips_image_write_to_memory(sized, &len);
	if (!px) {
		st = img_fail_vips(IMG_ERR_NOMEM, "cannot resize the image");
		goto out;
	}
	for (int v = 0; v < 256; v++)
		lut[v] = v / 255.0f - 0.5f;
	plane = (size_t)h * w;
	for (size_t i = 0; i < plane; i++) {
		dst[i] = lut[px[3 * i]];
		dst[plane + i] = lut[px[3 * i + 1]];
		dst[2 * plane + i] = lut[px[3 * i + 2]];
	}
	st = IMG_OK;
out:
	g_free(px);
	VIPS_UNREF(sized);
	VIPS_UNREF(flat);
	if (white)
		vips_area_unref(VIPS_AREA(white));
	return st;
}

