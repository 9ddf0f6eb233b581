/*
 * decode.c - from bytes to an upright image, and from an image to the
 * network's input tensor and to a web thumbnail.
 *
 * Every read starts with the header alone (open_header): the format is
 * recognised from the bytes, and the pixel limit is checked before a single
 * pixel is decoded. A decoded photo keeps its own RGB colour space and ICC
 * profile, so that outputs can keep them; what must be sRGB (the network's
 * input, thumbnails) is converted through the profile on the way out.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vips/vips.h>

#include "img/img_int.h"

/* ===== Formats ===== */

/* Loaders petcut accepts, by the prefix of their libvips nickname: the
 * formats phones, cameras and browsers produce. heifload reads HEIC and
 * AVIF alike; which one a file is comes from its header. */
static const struct {
	const char *loader;
	enum img_type type;
} loaders[] = {
	{"jpegload", IMG_TYPE_JPEG}, {"pngload", IMG_TYPE_PNG}, {"webpload", IMG_TYPE_WEBP},
	{"tiffload", IMG_TYPE_TIFF}, {"gifload", IMG_TYPE_GIF}, {"heifload", IMG_TYPE_HEIC},
};

static const struct {
	const char *name, *mime;
} types[] = {
	[IMG_TYPE_JPEG] = {"JPEG", "image/jpeg"}, [IMG_TYPE_PNG] = {"PNG", "image/png"},
	[IMG_TYPE_WEBP] = {"WebP", "image/webp"}, [IMG_TYPE_HEIC] = {"HEIC", "image/heic"},
	[IMG_TYPE_AVIF] = {"AVIF", "image/avif"}, [IMG_TYPE_TIFF] = {"TIFF", "image/tiff"},
	[IMG_TYPE_GIF] = {"GIF", "image/gif"},
};
_Static_assert(sizeof types / sizeof types[0] == IMG_TYPE_GIF + 1, "update the type table");

const char *img_type_name(enum img_type t)
{
	return (unsigned)t < sizeof types / sizeof types[0] ? types[t].name : "unknown";
}

const char *img_type_mime(enum img_type t)
{
	return (unsigned)t < sizeof types / sizeof types[0] ? types[t].mime : "application/octet-stream";
}

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

/* HEIC or AVIF, for a file heifload takes: the codec libvips reports once
 * the header is read, else the ftyp box's major brand. */
static enum img_type heif_type(VipsImage *in, const unsigned char *head, size_t n)
{
	const char *codec = NULL;

	if (in && vips_image_get_typeof(in, "heif-compression") && !vips_image_get_string(in, "heif-compression", &codec))
		return !strcmp(codec, "av1") ? IMG_TYPE_AVIF : IMG_TYPE_HEIC;
	if (n >= 12 && !memcmp(head + 4, "ftyp", 4) && (!memcmp(head + 8, "avif", 4) || !memcmp(head + 8, "avis", 4)))
		return IMG_TYPE_AVIF;
	return IMG_TYPE_HEIC;
}

/* ===== Headers and limits ===== */

static long long max_pixels(const struct img_load_opts *o)
{
	return o && o->max_pixels > 0 ? o->max_pixels : IMG_DEFAULT_MAX_PIXELS;
}

/* EXIF orientation of a header, 1..8 (1 when absent or out of range). */
static int orientation_of(VipsImage *in)
{
	int v;

	if (!vips_image_get_typeof(in, VIPS_META_ORIENTATION) || vips_image_get_int(in, VIPS_META_ORIENTATION, &v))
		return 1;
	return v >= 1 && v <= 8 ? v : 1;
}

/* Recognises the source's format and reads its header only: *in is a lazy
 * image whose pixels are decoded on first use, sequentially, failing on
 * any decoding error. The pixel limit is checked here, so no caller can
 * decode pixels before it. what receives "truncated or damaged X image" for
 * the caller's later errors. */
static img_status open_header(VipsSource *src, const struct img_load_opts *o, VipsImage **in,
			      enum img_type *type, char *what, size_t whatlen)
{
	const char *loader, *nick;
	unsigned char *sniffed, head[16];
	long long limit = max_pixels(o);
	gint64 headlen;
	size_t i;

	*in = NULL;
	/* Copied: later sniffing may move the source's buffer. */
	headlen = vips_source_sniff_at_most(src, &sniffed, sizeof head);
	if (headlen < 0)
		return img_fail_vips(IMG_ERR_IO, "cannot read");
	if (headlen == 0)
		return img_fail(IMG_ERR_NOT_IMAGE, "not an image (empty file)");
	memcpy(head, sniffed, (size_t)headlen);
	if (headlen >= 12 && !memcmp(head + 4, "ftyp", 4)) /* an ISO media file: HEIF's kind */
		img_need_heif();
	loader = vips_foreign_find_load_source(src);
	vips_error_clear();
	nick = loader ? vips_nickname_find(g_type_from_name(loader)) : NULL;
	for (i = 0; nick && i < sizeof loaders / sizeof loaders[0]; i++)
		if (!strncmp(nick, loaders[i].loader, strlen(loaders[i].loader)))
			break;
	if (!nick || i == sizeof loaders / sizeof loaders[0]) {
		/* libvips' text formats (matrix, CSV) would take any list of
		 * numbers: only a known image signature makes it an image. */
		const char *other = sniff_other_image(head, (size_t)headlen);

		if (other)
			return img_fail(IMG_ERR_UNSUPPORTED,
					"unsupported image format (%s); petcut reads JPEG, PNG, WebP, TIFF, GIF, HEIC and AVIF",
					other);
		return img_fail(IMG_ERR_NOT_IMAGE, "not an image");
	}
	*type = loaders[i].type;
	if (*type == IMG_TYPE_HEIC)
		*type = heif_type(NULL, head, (size_t)headlen);
	snprintf(what, whatlen, "truncated or damaged %s image", img_type_name(*type));

	*in = vips_image_new_from_source(src, "", "access", VIPS_ACCESS_SEQUENTIAL, "fail_on", VIPS_FAIL_ON_ERROR,
					 NULL);
	if (!*in)
		return img_fail_vips(IMG_ERR_CORRUPT, what);
	if (*type == IMG_TYPE_HEIC)
		*type = heif_type(*in, head, (size_t)headlen);
	if ((long long)(*in)->Xsize * (*in)->Ysize > limit) {
		img_status st = img_fail(IMG_ERR_TOO_LARGE, "image too large (%dx%d; at most %lld pixels)",
					 (*in)->Xsize, (*in)->Ysize, limit);

		VIPS_UNREF(*in);
		return st;
	}
	return IMG_OK;
}

img_status img_probe(const void *buf, size_t len, const struct img_load_opts *o, struct img_info *out)
{
	VipsSource *src;
	VipsImage *in = NULL;
	img_status st;
	char what[64];

	if ((!buf && len) || !out)
		return img_fail(IMG_ERR_ARG, "no buffer");
	memset(out, 0, sizeof *out);
	src = vips_source_new_from_memory(buf, len);
	if (!src)
		return img_fail_vips(IMG_ERR_NOMEM, "cannot wrap the buffer");
	st = open_header(src, o, &in, &out->type, what, sizeof what);
	if (st == IMG_OK) {
		out->orientation = orientation_of(in);
		/* 5..8 turn the picture a quarter. */
		out->width = out->orientation >= 5 ? in->Ysize : in->Xsize;
		out->height = out->orientation >= 5 ? in->Xsize : in->Ysize;
		out->has_alpha = vips_image_hasalpha(in);
		out->has_icc = vips_image_get_typeof(in, VIPS_META_ICC_NAME) != 0;
	}
	VIPS_UNREF(in);
	g_object_unref(src);
	return st;
}

/* ===== Colour and metadata ===== */

/* Whether an image is already what struct img holds: 8-bit RGB, with or
 * without alpha. */
static int is_rgb8(VipsImage *im)
{
	VipsInterpretation t = vips_image_guess_interpretation(im);

	return (t == VIPS_INTERPRETATION_sRGB || t == VIPS_INTERPRETATION_RGB) && im->BandFmt == VIPS_FORMAT_UCHAR &&
	       (im->Bands == 3 || im->Bands == 4);
}

/* Makes in 8-bit RGB. RGB stays in its own colour space with its profile
 * (16-bit RGB only loses its low bits: the profile still describes it).
 * Anything else (CMYK, grey, Lab, float) becomes sRGB: through the embedded
 * profile where there is one (libvips' CMYK profile for untagged CMYK),
 * else by libvips' own formulae; the old profile no longer describes the
 * pixels, so it goes, and untagged means sRGB. */
static img_status to_rgb8(VipsImage *in, VipsImage **out)
{
	VipsInterpretation t = vips_image_guess_interpretation(in);
	VipsImage *conv = NULL, *u8 = NULL;
	int r = -1;

	*out = NULL;
	if (is_rgb8(in)) {
		*out = in;
		g_object_ref(in);
		return IMG_OK;
	}
	if ((t == VIPS_INTERPRETATION_RGB16 || t == VIPS_INTERPRETATION_sRGB || t == VIPS_INTERPRETATION_RGB) &&
	    in->BandFmt == VIPS_FORMAT_USHORT && (in->Bands == 3 || in->Bands == 4)) {
		if (vips_colourspace(in, out, VIPS_INTERPRETATION_sRGB, "source_space", VIPS_INTERPRETATION_RGB16,
				     NULL))
			return img_fail_vips(IMG_ERR_VIPS, "cannot convert the image to 8 bits");
		return IMG_OK;
	}
	if (t == VIPS_INTERPRETATION_CMYK || vips_image_get_typeof(in, VIPS_META_ICC_NAME)) {
		/* A profile that does not fit the pixels (an RGB profile on a
		 * grey image) fails here; libvips' formulae then do. */
		r = vips_icc_transform(in, &conv, "srgb", "embedded", TRUE, "input_profile",
				       t == VIPS_INTERPRETATION_CMYK ? "cmyk" : "srgb", "depth", 8, NULL);
		if (r)
			vips_error_clear();
	}
	if (r && vips_colourspace(in, &conv, VIPS_INTERPRETATION_sRGB, NULL))
		return img_fail_vips(IMG_ERR_UNSUPPORTED, "cannot convert the image's colours to sRGB");
	if (conv->BandFmt != VIPS_FORMAT_UCHAR) {
		r = vips_cast(conv, &u8, VIPS_FORMAT_UCHAR, NULL);
		g_object_unref(conv);
		if (r)
			return img_fail_vips(IMG_ERR_VIPS, "cannot convert the image to 8 bits");
		conv = u8;
	}
	vips_image_remove(conv, VIPS_META_ICC_NAME);
	*out = conv;
	return IMG_OK;
}

/* Removes from im every metadata field for which drop(name) is true. */
static void remove_fields(VipsImage *im, int (*drop)(const char *name, int keep_gps), int keep_gps)
{
	gchar **fields = vips_image_get_fields(im);

	for (int i = 0; fields[i]; i++)
		if (drop(fields[i], keep_gps))
			vips_image_remove(im, fields[i]);
	g_strfreev(fields);
}

/* What a decoded photo does not keep: XMP, IPTC and Photoshop blocks and
 * text comments (any may hold a location or a name), the orientation once
 * applied, and EXIF's GPS directory (libvips' "exif-ifd3-") unless kept. */
static int drop_on_load(const char *name, int keep_gps)
{
	return !strcmp(name, VIPS_META_XMP_NAME) || !strcmp(name, VIPS_META_IPTC_NAME) ||
	       !strcmp(name, VIPS_META_PHOTOSHOP_NAME) || !strcmp(name, VIPS_META_ORIENTATION) ||
	       !strncmp(name, "png-comment-", 12) ||
	       !strcmp(name, "gif-comment") || (!keep_gps && !strncmp(name, "exif-ifd3-", 10));
}

static int drop_exif(const char *name, int keep_gps)
{
	(void)keep_gps;
	return !strncmp(name, "exif-", 5);
}

/* Rewrites im's EXIF block from its parsed fields, so that the block itself
 * (not only what a later save writes) says orientation 1 and holds no field
 * that was removed. libvips rebuilds EXIF this way in every saver, from the
 * old block and the "exif-*" fields (8.14 drops the tags whose field is
 * gone); a 1x1 PNG of im runs that code and its block is read back. */
static img_status rebuild_exif(VipsImage *im)
{
	VipsImage *dot = NULL, *back = NULL;
	const void *data;
	void *png = NULL;
	size_t len, n;
	img_status st;

	if (!vips_image_get_typeof(im, VIPS_META_EXIF_NAME))
		return IMG_OK;
	/* The saver writes the EXIF orientation from this field. */
	vips_image_set_int(im, VIPS_META_ORIENTATION, 1);
	if (vips_crop(im, &dot, 0, 0, 1, 1, NULL) ||
	    vips_pngsave_buffer(dot, &png, &len, "compression", 0, "strip", FALSE, NULL) ||
	    !(back = vips_image_new_from_buffer(png, len, "", NULL))) {
		/* A block libvips cannot rewrite is dropped whole: the
		 * photo is still good, and nothing unchecked is published. */
		vips_error_clear();
		remove_fields(im, drop_exif, 0);
		st = IMG_OK;
		goto out;
	}
	if (vips_image_get_typeof(back, VIPS_META_EXIF_NAME) &&
	    !vips_image_get_blob(back, VIPS_META_EXIF_NAME, &data, &n))
		vips_image_set_blob_copy(im, VIPS_META_EXIF_NAME, data, n);
	else
		vips_image_remove(im, VIPS_META_EXIF_NAME);
	st = IMG_OK;
out:
	g_free(png);
	VIPS_UNREF(back);
	VIPS_UNREF(dot);
	return st;
}

/* ===== Decoding ===== */

/* Decodes the source whole, then makes it upright 8-bit RGB. The decode is
 * sequential straight into memory: that is the one pass over the compressed
 * data, and where truncation surfaces as an error. */
static img_status load_source(VipsSource *src, const struct img_load_opts *o, struct img **out)
{
	VipsImage *in = NULL, *mem = NULL, *up = NULL, *rgb = NULL, *bare = NULL;
	enum img_type type;
	img_status st;
	char what[64];

	st = open_header(src, o, &in, &type, what, sizeof what);
	if (st != IMG_OK)
		goto out;
	if (img_write_big(in, &mem)) {
		st = img_fail_vips(IMG_ERR_CORRUPT, what);
		goto out;
	}
	/* an upright photo is not copied: autorot would make a lazy copy,
	 * which adopting it would then write out again */
	if (vips_image_get_orientation(mem) == 1) {
		up = mem;
		g_object_ref(up);
	} else if (vips_autorot(mem, &up, NULL)) {
		st = img_fail_vips(IMG_ERR_VIPS, "cannot apply the EXIF orientation");
		goto out;
	}
	st = to_rgb8(up, &rgb);
	if (st != IMG_OK)
		goto out;
	if (rgb->Bands != 3 && rgb->Bands != 4) {
		st = img_fail(IMG_ERR_UNSUPPORTED, "unsupported image layout (%d bands)", rgb->Bands);
		goto out;
	}
	/* the fields below are edited on an image of this function's own: the
	 * decoded pixels themselves where nothing converted them (mem is new,
	 * or the loader's own output), else a copy */
	if (rgb == mem) {
		bare = mem;
		g_object_ref(bare);
	} else if (vips_copy(rgb, &bare, NULL)) {
		st = img_fail_vips(IMG_ERR_VIPS, "cannot convert the image");
		goto out;
	}
	remove_fields(bare, drop_on_load, o && o->keep_gps);
	st = rebuild_exif(bare);
	if (st != IMG_OK)
		goto out;

	st = img_adopt(bare, "cannot convert the image", out);
out:
	VIPS_UNREF(bare);
	VIPS_UNREF(rgb);
	VIPS_UNREF(up);
	VIPS_UNREF(mem);
	VIPS_UNREF(in);
	return st;
}

img_status img_load_file_opts(const char *path, const struct img_load_opts *o, struct img **out)
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
	st = load_source(src, o, out);
out:
	VIPS_UNREF(src);
	close(fd);
	return st;
}

img_status img_load_buffer_opts(const void *buf, size_t len, const struct img_load_opts *o, struct img **out)
{
	VipsSource *src;
	img_status st;

	*out = NULL;
	if (!buf && len)
		return img_fail(IMG_ERR_ARG, "no buffer");
	src = vips_source_new_from_memory(buf, len);
	if (!src)
		return img_fail_vips(IMG_ERR_NOMEM, "cannot wrap the buffer");
	st = load_source(src, o, out);
	g_object_unref(src);
	return st;
}

img_status img_load_file(const char *path, struct img **out)
{
	return img_load_file_opts(path, NULL, out);
}

img_status img_load_buffer(const void *buf, size_t len, struct img **out)
{
	return img_load_buffer_opts(buf, len, NULL, out);
}

/* ===== sRGB for the network and the web ===== */

/* Whether an ICC profile is an sRGB one, from its description tag: "sRGB
 * IEC61966-2.1" and its variants ("sRGB built-in", "sRGB v4 ...") all say
 * so, and other RGB spaces (Display P3, Adobe RGB) do not. ASCII 'desc'
 * (ICC v2) and UTF-16 'mluc' (v4, first record) are read. */
static int icc_is_srgb(const unsigned char *p, size_t n)
{
	uint32_t count, i;

#define BE32(q) ((uint32_t)(q)[0] << 24 | (uint32_t)(q)[1] << 16 | (uint32_t)(q)[2] << 8 | (q)[3])
	if (n < 132 || memcmp(p + 16, "RGB ", 4))
		return 0;
	count = BE32(p + 128);
	for (i = 0; i < count && 132 + 12 * (size_t)(i + 1) <= n; i++) {
		const unsigned char *e = p + 132 + 12 * i;
		uint32_t off = BE32(e + 4), len = BE32(e + 8);
		char text[128];
		size_t k = 0;

		if (memcmp(e, "desc", 4) || off > n || len > n - off || len < 12)
			continue;
		if (!memcmp(p + off, "desc", 4)) {
			uint32_t m = BE32(p + off + 8);

			for (k = 0; k < m && k < sizeof text - 1 && 12 + k < len; k++)
				text[k] = (char)p[off + 12 + k];
		} else if (!memcmp(p + off, "mluc", 4) && len >= 28) {
			uint32_t slen = BE32(p + off + 20), soff = BE32(p + off + 24);

			for (uint32_t j = 0; j + 1 < slen && soff + j + 1 < len && k < sizeof text - 1; j += 2)
				text[k++] = p[off + soff + j] ? '?' : (char)p[off + soff + j + 1];
		}
		text[k] = 0;
		return strstr(text, "sRGB") != NULL;
	}
	return 0;
#undef BE32
}

/* A new reference to in's pixels in sRGB: in itself when it has no profile
 * or an sRGB one, else converted through its profile (alpha is kept). The
 * result carries no profile only when converted. */
static int to_srgb(VipsImage *in, VipsImage **out)
{
	const void *icc;
	size_t n;

	if (!vips_image_get_typeof(in, VIPS_META_ICC_NAME) || vips_image_get_blob(in, VIPS_META_ICC_NAME, &icc, &n) ||
	    icc_is_srgb(icc, n)) {
		*out = in;
		g_object_ref(in);
		return 0;
	}
	if (vips_icc_transform(in, out, "srgb", "embedded", TRUE, "depth", 8, NULL))
		return -1;
	vips_image_remove(*out, VIPS_META_ICC_NAME);
	return 0;
}

/* What a thumbnail does not keep: all but the pixels (an sRGB thumbnail is
 * read as sRGB untagged, and is small). */
static int drop_on_thumbnail(const char *name, int keep_gps)
{
	(void)keep_gps;
	return !strncmp(name, "exif-", 5) || !strcmp(name, VIPS_META_ORIENTATION) ||
	       !strcmp(name, VIPS_META_ICC_NAME) || !strcmp(name, VIPS_META_XMP_NAME) ||
	       !strcmp(name, VIPS_META_IPTC_NAME) || !strcmp(name, VIPS_META_PHOTOSHOP_NAME);
}

img_status img_thumbnail(const struct img *im, int max_side, struct img **out)
{
	VipsImage *small = NULL, *srgb = NULL, *bare = NULL;
	img_status st;

	if (!im || !out || max_side <= 0)
		return img_fail(IMG_ERR_ARG, "bad thumbnail size %d", max_side);
	*out = NULL;
	/* Resized before the colour conversion: a twentieth of the work on
	 * a phone photo, for a difference no thumbnail shows. */
	if (vips_thumbnail_image(im->pix, &small, max_side, "height", max_side, "size", VIPS_SIZE_DOWN, "no_rotate",
				 TRUE, NULL)) {
		st = img_fail_vips(IMG_ERR_VIPS, "cannot resize the image");
		goto out;
	}
	if (to_srgb(small, &srgb) || vips_copy(srgb, &bare, NULL)) {
		st = img_fail_vips(IMG_ERR_VIPS, "cannot convert the image's colours to sRGB");
		goto out;
	}
	remove_fields(bare, drop_on_thumbnail, 0);
	st = img_adopt(bare, "cannot make the thumbnail", out);
out:
	VIPS_UNREF(bare);
	VIPS_UNREF(srgb);
	VIPS_UNREF(small);
	return st;
}

img_status img_flatten(const struct img *im, const unsigned char rgb[3], struct img **out)
{
	VipsArrayDouble *bg = NULL;
	VipsImage *flat = NULL;
	img_status st;

	if (!im || !rgb || !out)
		return img_fail(IMG_ERR_ARG, "bad arguments to flatten");
	*out = NULL;
	if (im->pix->Bands == 4 || im->pix->Bands == 2) {
		bg = vips_array_double_newv(3, (double)rgb[0], (double)rgb[1], (double)rgb[2]);
		if (vips_flatten(im->pix, &flat, "background", bg, NULL)) {
			st = img_fail_vips(IMG_ERR_VIPS, "cannot flatten the image");
			goto out;
		}
	} else {
		flat = im->pix;
		g_object_ref(flat);
	}
	st = img_adopt(flat, "cannot flatten the image", out);
out:
	VIPS_UNREF(flat);
	if (bg)
		vips_area_unref(VIPS_AREA(bg));
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
	VipsImage *srgb = NULL, *flat = NULL, *sized = NULL;
	unsigned char *px = NULL;
	float lut[256];
	size_t len, plane;
	img_status st;

	if (h <= 0 || w <= 0 || !dst)
		return img_fail(IMG_ERR_ARG, "bad tensor size %dx%d", w, h);
	if (im->pix->Bands != 3 && im->pix->Bands != 4)
		return img_fail(IMG_ERR_ARG, "not a colour image");
	/* The network was trained on sRGB: a photo in another space (Adobe
	 * RGB, Display P3) goes through its profile first, at full size. */
	if (to_srgb(im->pix, &srgb)) {
		st = img_fail_vips(IMG_ERR_VIPS, "cannot convert the image's colours to sRGB");
		goto out;
	}
	/* Flatten over white, as a viewer shows a transparent photo. */
	white = vips_array_double_newv(3, 255.0, 255.0, 255.0);
	if (srgb->Bands == 4 ? vips_flatten(srgb, &flat, "background", white, NULL) : vips_copy(srgb, &flat, NULL)) {
		st = img_fail_vips(IMG_ERR_VIPS, "cannot flatten the image");
		goto out;
	}
	if (img_resize_exact(flat, &sized, w, h)) {
		st = img_fail_vips(IMG_ERR_VIPS, "cannot resize the image");
		goto out;
	}
	px = img_memory_bytes(sized, &len);
	if (!px) {
		st = img_fail_vips(IMG_ERR_NOMEM, "cannot resize the image");
		goto out;
	}
	for (int v = 0; v < 256; v++)
		lut[v] = v / 255.0f - 0.5f;
	plane = (size_t)h * w;
	#pragma omp parallel for schedule(static) if (plane >= (1u << 16))
	for (int y = 0; y < h; y++)
		for (size_t i = (size_t)y * w; i < (size_t)(y + 1) * w; i++) {
			dst[i] = lut[px[3 * i]];
			dst[plane + i] = lut[px[3 * i + 1]];
			dst[2 * plane + i] = lut[px[3 * i + 2]];
		}
	st = IMG_OK;
out:
	g_free(px);
	VIPS_UNREF(sized);
	VIPS_UNREF(flat);
	VIPS_UNREF(srgb);
	if (white)
		vips_area_unref(VIPS_AREA(white));
	return st;
}
