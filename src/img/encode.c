/*
 * encode.c - writing images: PNG, WebP, JPEG, AVIF, and a zip of a colour
 * JPEG and an alpha PNG, to a file (atomically) or to memory.
 *
 * Before encoding, an image is prepared for the format: converted to sRGB
 * when asked (IMG_COLOR_SRGB), the alpha of an opaque image dropped for
 * JPEG (and a transparent one refused), and a profile that cannot apply to
 * a grey image (the mask) removed. Each format is one entry of a table, in
 * step with enum img_format.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vips/vips.h>
#include <zlib.h>

#include "img/img_int.h"

/* ===== The formats ===== */

/* Writes a prepared image to a target with the options; 0 or -1. */
typedef int (*save_fn)(VipsImage *im, VipsTarget *t, const struct img_save_opts *o);

/* 8-bit PNG by png.c (the rows Paeth-filtered and compressed by igzip on all
 * cores), several times faster than libvips at its level 3 (itself four
 * times faster than its default, level 6 without a filter) for files of
 * about the same size: there is no size below which libvips is worth
 * keeping. libvips still writes what png.c does not take (16 bits).
 * png8 writes an 8-bit image into *buf (malloc'd) when t is NULL, else to
 * t; 0 or -1. */
static int png8(VipsImage *im, const struct img_save_opts *o, VipsTarget *t, void **buf, size_t *len)
{
	VipsImage *mem;
	int r;

	/* a conversion to sRGB may still be pending: run on all cores rather
	 * than row by row through one region */
	if (o->color == IMG_COLOR_SRGB) {
		if (!(mem = img_memory(im)))
			return -1;
	} else {
		mem = im;
		g_object_ref(mem);
	}
	r = t ? img_png_save(mem, t) : img_png_encode(mem, buf, len);
	g_object_unref(mem);
	return r;
}

static int save_png(VipsImage *im, VipsTarget *t, const struct img_save_opts *o)
{
	if (im->BandFmt == VIPS_FORMAT_UCHAR)
		return png8(im, o, t, NULL, NULL);
	return vips_pngsave_target(im, t, "compression", 3, "filter", VIPS_FOREIGN_PNG_FILTER_SUB, NULL);
}

/* Efforts chosen on a 12 MP RGBA cut-out (2 busy cores): lossless effort 1
 * takes 3.3 s for the same size as the default 4's 5.3 s; lossy effort 2,
 * about 1.2 s against 2.0 s. */
static int save_webp(VipsImage *im, VipsTarget *t, const struct img_save_opts *o)
{
	if (!o->lossy)
		return vips_webpsave_target(im, t, "lossless", TRUE, "effort", 1, NULL);
	/* Lossy colours, but the alpha lossless: edges stay where the mask put them. */
	return vips_webpsave_target(im, t, "Q", o->quality ? o->quality : 85, "alpha_q", 100, "effort", 2, NULL);
}

static int save_jpeg(VipsImage *im, VipsTarget *t, const struct img_save_opts *o)
{
	return vips_jpegsave_target(im, t, "Q", o->quality ? o->quality : 90, "optimize_coding", TRUE, NULL);
}

/* AV1 at effort 2 of 9: libvips' default (4) took 17 s on a 12 MP cut-out,
 * effort 2 under 2 s. Effort 0 (fast) encodes a 683 x 512 cut-out in about
 * 20 ms against 90 ms, to the same size within 1 %. */
static int save_avif(VipsImage *im, VipsTarget *t, const struct img_save_opts *o)
{
	return vips_heifsave_target(im, t, "compression", VIPS_FOREIGN_HEIF_COMPRESSION_AV1, "Q",
				    o->quality ? o->quality : 60, "effort", o->fast ? 0 : 2, NULL);
}

/* ===== A zip of two files (stored: they are compressed already) ===== */

#define ZIP_COLOR "color.jpg"
#define ZIP_ALPHA "alpha.png"
#define ZIP_JPEG_QUALITY 95 /* the colours of a print: at 90 an edge shows its blocks */

static void le16(unsigned char *p, unsigned v)
{
	p[0] = v & 0xff, p[1] = (v >> 8) & 0xff;
}

static void le32(unsigned char *p, unsigned long v)
{
	le16(p, v & 0xffff), le16(p + 2, (v >> 16) & 0xffff);
}

/* One entry's header, local (central 0: 30 bytes, then the name) or in the
 * central directory (46 bytes, then the name; at: the local header's
 * offset). The date is 1980-01-01: an output depends on its input only. */
static size_t zip_header(unsigned char *h, int central, const char *name, unsigned long crc, size_t len,
			 unsigned long at)
{
	unsigned char *p = h;
	size_t nl = strlen(name);

	le32(p, central ? 0x02014b50 : 0x04034b50), p += 4;
	if (central)
		le16(p, 20), p += 2; /* made by: zip 2.0 */
	le16(p, 10), p += 2;	     /* needed: 1.0, stored */
	le16(p, 0), p += 2;	     /* flags */
	le16(p, 0), p += 2;	     /* method: stored */
	le16(p, 0), le16(p + 2, (0 << 9) | (1 << 5) | 1), p += 4;
	le32(p, crc), le32(p + 4, len), le32(p + 8, len), p += 12;
	le16(p, (unsigned)nl), le16(p + 2, 0), p += 4; /* name, extra */
	if (central) {
		memset(p, 0, 10), p += 10; /* comment, disk, internal and external attributes */
		le32(p, at), p += 4;
	}
	memcpy(p, name, nl);
	return (size_t)(p - h) + nl;
}

/* Writes the zip of the files (names and bytes) to t, and ends it; 0 or -1. */
static int zip_write(VipsTarget *t, const char *const *names, void *const *bytes, const size_t *lens, int n)
{
	unsigned char h[64 + 64], end[22];
	unsigned long crc[4], at[4], pos = 0, dir_at, dir_len = 0;
	size_t hl;

	for (int i = 0; i < n; i++) {
		crc[i] = crc32(crc32(0L, Z_NULL, 0), bytes[i], (uInt)lens[i]);
		at[i] = pos;
		hl = zip_header(h, 0, names[i], crc[i], lens[i], 0);
		if (vips_target_write(t, h, hl) || vips_target_write(t, bytes[i], lens[i]))
			return -1;
		pos += hl + lens[i];
	}
	dir_at = pos;
	for (int i = 0; i < n; i++) {
		hl = zip_header(h, 1, names[i], crc[i], lens[i], at[i]);
		if (vips_target_write(t, h, hl))
			return -1;
		dir_len += hl;
	}
	le32(end, 0x06054b50), le16(end + 4, 0), le16(end + 6, 0), le16(end + 8, (unsigned)n), le16(end + 10, (unsigned)n);
	le32(end + 12, dir_len), le32(end + 16, dir_at), le16(end + 20, 0);
	return vips_target_write(t, end, sizeof end) || vips_target_end(t) ? -1 : 0;
}

/* color.jpg and alpha.png (255 where the image has no alpha) in a zip. */
static int save_zip(VipsImage *im, VipsTarget *t, const struct img_save_opts *o)
{
	VipsImage *rgb = NULL, *a = NULL, *black = NULL, *grey = NULL;
	void *bytes[2] = {NULL, NULL};
	size_t lens[2];
	int ok, r = -1;

	if (im->Bands != 3 && im->Bands != 4) {
		vips_error("petcut", "a zip holds a colour image");
		return -1;
	}
	ok = !vips_extract_band(im, &rgb, 0, "n", 3, NULL);
	if (ok && im->Bands == 4)
		ok = !vips_extract_band(im, &a, 3, NULL);
	else if (ok)
		ok = !vips_black(&black, im->Xsize, im->Ysize, NULL) &&
		     !vips_linear1(black, &a, 0.0, 255.0, "uchar", TRUE, NULL);
	ok = ok && !vips_copy(a, &grey, "interpretation", VIPS_INTERPRETATION_B_W, NULL) &&
	     !vips_jpegsave_buffer(rgb, &bytes[0], &lens[0], "Q", o->quality ? o->quality : ZIP_JPEG_QUALITY,
				   "optimize_coding", TRUE, NULL) &&
	     !vips_pngsave_buffer(grey, &bytes[1], &lens[1], "compression", 6, NULL);
	if (ok)
		r = zip_write(t, (const char *const[]){ZIP_COLOR, ZIP_ALPHA}, bytes, lens, 2);
	g_free(bytes[0]), g_free(bytes[1]);
	VIPS_UNREF(rgb);
	VIPS_UNREF(a);
	VIPS_UNREF(black);
	VIPS_UNREF(grey);
	return r;
}

static const struct encoder {
	const char *name;  /* as parsed, and the extension */
	const char *title; /* in messages */
	int max_side;	   /* the format's limit on a side; 0: none that matters */
	int alpha;	   /* whether it holds transparency */
	save_fn save;
} encoders[] = {
	[IMG_FORMAT_PNG] = {.name = "png", .title = "PNG", .alpha = 1, .save = save_png},
	[IMG_FORMAT_WEBP] = {.name = "webp", .title = "WebP", .max_side = 16383, .alpha = 1, .save = save_webp},
	[IMG_FORMAT_JPEG] = {.name = "jpg", .title = "JPEG", .max_side = 65535, .alpha = 0, .save = save_jpeg},
	[IMG_FORMAT_AVIF] = {.name = "avif", .title = "AVIF", .max_side = 16384, .alpha = 1, .save = save_avif},
	[IMG_FORMAT_ZIP] = {.name = "zip", .title = "ZIP", .max_side = 65535, .alpha = 1, .save = save_zip},
};
static_assert(sizeof encoders / sizeof encoders[0] == IMG_FORMAT_ZIP + 1, "update the encoder table");

int img_format_parse(const char *name, enum img_format *fmt)
{
	if (!name)
		return -1;
	if (!strcasecmp(name, "jpeg")) {
		*fmt = IMG_FORMAT_JPEG;
		return 0;
	}
	for (size_t i = 0; i < sizeof encoders / sizeof encoders[0]; i++)
		if (!strcasecmp(name, encoders[i].name)) {
			*fmt = (enum img_format)i;
			return 0;
		}
	return -1;
}

const char *img_format_ext(enum img_format fmt)
{
	if ((unsigned)fmt >= sizeof encoders / sizeof encoders[0])
		return "png";
	return encoders[fmt].name;
}

/* Whether this libvips can write AVIF: libheif may be built without an AV1
 * encoder. Found once, by encoding a tiny picture. */
static pthread_once_t avif_once = PTHREAD_ONCE_INIT;
static int avif_ok;

static void avif_probe(void)
{
	VipsImage *px = NULL;
	void *buf = NULL;
	size_t len;

	img_need_heif();
	if (!vips_black(&px, 16, 16, "bands", 3, NULL) &&
	    !vips_heifsave_buffer(px, &buf, &len, "compression", VIPS_FOREIGN_HEIF_COMPRESSION_AV1, NULL))
		avif_ok = 1;
	g_free(buf);
	VIPS_UNREF(px);
	vips_error_clear();
}

int img_format_writable(enum img_format fmt)
{
	if ((unsigned)fmt >= sizeof encoders / sizeof encoders[0])
		return 0;
	if (fmt != IMG_FORMAT_AVIF)
		return 1;
	pthread_once(&avif_once, avif_probe);
	return avif_ok;
}

/* ===== Preparing ===== */

/* Makes *ready, the image as the format and options want it (a new
 * reference). Fails with the message set. */
static img_status prepare(const struct img *im, const struct img_save_opts *o, VipsImage **ready)
{
	const struct encoder *e;
	VipsImage *in, *cur, *next = NULL;
	img_status st;

	*ready = NULL;
	if (!im || !o || (unsigned)o->format >= sizeof encoders / sizeof encoders[0])
		return img_fail(IMG_ERR_ARG, "bad arguments to encode");
	if (o->quality < 0 || o->quality > 100)
		return img_fail(IMG_ERR_ARG, "quality is 1 to 100, not %d", o->quality);
	e = &encoders[o->format];
	in = im->pix;
	if (e->max_side && (in->Xsize > e->max_side || in->Ysize > e->max_side))
		return img_fail(IMG_ERR_UNSUPPORTED, "%s holds at most %d pixels a side (image is %dx%d)", e->title,
				e->max_side, in->Xsize, in->Ysize);
	if (o->format == IMG_FORMAT_AVIF) {
		pthread_once(&avif_once, avif_probe);
		if (!avif_ok)
			return img_fail(IMG_ERR_UNSUPPORTED, "this build of libvips cannot write AVIF (no AV1 encoder)");
	}

	g_object_ref(in);
	cur = in;
	/* JPEG: an opaque alpha is dropped, any transparency refused. */
	if (!e->alpha && (cur->Bands == 4 || cur->Bands == 2)) {
		VipsImage *a = NULL;
		double min = 0;
		int r = vips_extract_band(cur, &a, cur->Bands - 1, NULL) || vips_min(a, &min, NULL);

		VIPS_UNREF(a);
		if (r) {
			st = img_fail_vips(IMG_ERR_VIPS, "cannot read the alpha");
			goto out;
		}
		if (min < 255) {
			st = img_fail(IMG_ERR_ARG, "%s has no transparency: choose a background", e->title);
			goto out;
		}
		if (vips_extract_band(cur, &next, 0, "n", cur->Bands - 1, NULL)) {
			st = img_fail_vips(IMG_ERR_VIPS, "cannot drop the alpha");
			goto out;
		}
		g_object_unref(cur);
		cur = next;
	}
	/* sRGB asked for: through the profile, which then goes (sRGB is what
	 * a viewer assumes without one). */
	if (o->color == IMG_COLOR_SRGB && cur->Bands >= 3 && vips_image_get_typeof(cur, VIPS_META_ICC_NAME)) {
		if (vips_icc_transform(cur, &next, "srgb", "embedded", TRUE, "depth", 8, NULL)) {
			st = img_fail_vips(IMG_ERR_VIPS, "cannot convert the colours to sRGB");
			goto out;
		}
		g_object_unref(cur);
		cur = next;
	}
	/* A copy whose metadata can change without touching im. */
	if (vips_copy(cur, &next, NULL)) {
		st = img_fail_vips(IMG_ERR_VIPS, "cannot prepare the image");
		goto out;
	}
	g_object_unref(cur);
	cur = next;
	if (o->color == IMG_COLOR_SRGB || cur->Bands < 3)
		vips_image_remove(cur, VIPS_META_ICC_NAME);
	*ready = cur;
	return IMG_OK;
out:
	g_object_unref(cur);
	return st;
}

/* ===== Writing ===== */

/* Creates a new hidden file next to path, named after it, with the mode an
 * ordinary new file gets (0666 less the umask). On success *tmp owns its
 * name. Being in the same directory makes the final rename atomic. Where
 * path names something that is not a regular file (/dev/null, /dev/stdout,
 * a pipe), that is opened to be written where it is, never replaced, and
 * *tmp stays NULL. */
static int open_temp(const char *path, char **tmp)
{
	struct stat st;

	*tmp = NULL;
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
		return open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	static atomic_uint counter;
	const char *base = strrchr(path, '/');
	int dirlen = base ? (int)(base - path + 1) : 0;
	int fd = -1;

	base = base ? base + 1 : path;
	for (int tries = 0; fd < 0 && tries < 100; tries++) {
		if (asprintf(tmp, "%.*s.%s.%ld-%u.tmp", dirlen, path, base, (long)getpid(),
			     atomic_fetch_add(&counter, 1)) < 0) {
			*tmp = NULL;
			errno = ENOMEM;
			return -1;
		}
		fd = open(*tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
		if (fd < 0) {
			int e = errno;

			free(*tmp);
			*tmp = NULL;
			errno = e;
			if (e != EEXIST)
				break;
		}
	}
	return fd;
}

/* Publishes a complete temporary file under path: synced first, so a crash
 * cannot leave path naming an empty or partial file, then renamed over it.
 * Closes fd; *tmp is freed and cleared once renamed. Without a temporary
 * file (open_temp wrote where path is), only closes fd. */
static img_status publish_temp(int fd, char **tmp, const char *path)
{
	if (!*tmp)
		return close(fd) ? img_fail(IMG_ERR_IO, "cannot write: %s", strerror(errno)) : IMG_OK;
	int bad = fsync(fd);
	bad |= close(fd);
	if (bad || rename(*tmp, path))
		return img_fail(IMG_ERR_IO, "cannot write: %s", strerror(errno));
	free(*tmp);
	*tmp = NULL;
	return IMG_OK;
}

img_status img_save_opts(const struct img *im, const char *path, const struct img_save_opts *o)
{
	VipsTarget *target = NULL;
	VipsImage *ready = NULL;
	char *tmp = NULL, what[48];
	img_status st;
	int fd = -1;

	if (!path)
		return img_fail(IMG_ERR_ARG, "no path to save to");
	/* Prepared first: a refusal writes nothing. */
	st = prepare(im, o, &ready);
	if (st != IMG_OK)
		return st;
	fd = open_temp(path, &tmp);
	if (fd < 0) {
		st = img_fail(IMG_ERR_IO, "cannot create a temporary file in its folder: %s", strerror(errno));
		goto out;
	}
	target = vips_target_new_to_descriptor(fd);
	if (!target) {
		st = img_fail_vips(IMG_ERR_IO, "cannot write");
		goto out;
	}
	if (encoders[o->format].save(ready, target, o)) {
		snprintf(what, sizeof what, "cannot write %s", encoders[o->format].title);
		st = img_fail_vips(IMG_ERR_IO, what);
		goto out;
	}
	VIPS_UNREF(target);
	st = publish_temp(fd, &tmp, path);
	fd = -1;
out:
	VIPS_UNREF(target);
	VIPS_UNREF(ready);
	if (fd >= 0)
		close(fd);
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	return st;
}

img_status img_write_file(const char *path, const void *buf, size_t len)
{
	const char *p = buf;
	char *tmp = NULL;
	img_status st;
	int fd;

	if (!path || (!buf && len))
		return img_fail(IMG_ERR_ARG, "bad arguments to write");
	fd = open_temp(path, &tmp);
	if (fd < 0)
		return img_fail(IMG_ERR_IO, "cannot create a temporary file in its folder: %s", strerror(errno));
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			st = img_fail(IMG_ERR_IO, "cannot write: %s", strerror(errno));
			goto out;
		}
		p += n;
		len -= (size_t)n;
	}
	st = publish_temp(fd, &tmp, path);
	fd = -1;
out:
	if (fd >= 0)
		close(fd);
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	return st;
}

img_status img_save(const struct img *im, const char *path, enum img_format fmt)
{
	struct img_save_opts o = {.format = fmt};

	return img_save_opts(im, path, &o);
}

img_status img_encode(const struct img *im, const struct img_save_opts *o, void **buf, size_t *len)
{
	VipsTarget *target = NULL;
	VipsImage *ready = NULL;
	VipsBlob *blob = NULL;
	const void *bytes;
	size_t n = 0;
	char what[48];
	img_status st;

	if (!buf || !len)
		return img_fail(IMG_ERR_ARG, "no place for the encoded bytes");
	*buf = NULL;
	*len = 0;
	st = prepare(im, o, &ready);
	if (st != IMG_OK)
		return st;
	/* png.c makes an 8-bit PNG in one buffer, which is the caller's as it is */
	if (o->format == IMG_FORMAT_PNG && ready->BandFmt == VIPS_FORMAT_UCHAR) {
		st = png8(ready, o, NULL, buf, len) ? img_fail_vips(IMG_ERR_VIPS, "cannot encode PNG") : IMG_OK;
		goto out;
	}
	target = vips_target_new_to_memory();
	if (!target) {
		st = img_fail_vips(IMG_ERR_VIPS, "cannot encode");
		goto out;
	}
	if (encoders[o->format].save(ready, target, o)) {
		snprintf(what, sizeof what, "cannot encode %s", encoders[o->format].title);
		st = img_fail_vips(IMG_ERR_VIPS, what);
		goto out;
	}
	/* Once the saver has ended the target, its bytes are its "blob". The
	 * caller frees with free(), so they are copied out. */
	g_object_get(target, "blob", &blob, NULL);
	bytes = blob ? vips_blob_get(blob, &n) : NULL;
	if (!bytes) {
		st = img_fail(IMG_ERR_VIPS, "cannot encode (no output)");
		goto out;
	}
	*buf = malloc(n ? n : 1);
	if (!*buf) {
		st = img_fail(IMG_ERR_NOMEM, "out of memory");
		goto out;
	}
	memcpy(*buf, bytes, n);
	*len = n;
	st = IMG_OK;
out:
	if (blob)
		vips_area_unref(VIPS_AREA(blob));
	VIPS_UNREF(target);
	VIPS_UNREF(ready);
	return st;
}
