/*
 * test_img_decode.c - checks of src/img/decode.c: probing, the pixel limit,
 * bad input of every kind, colour spaces and profiles, EXIF (orientation,
 * GPS) and thumbnails.
 *
 * Small cases are pictures the test makes itself with libvips, or bytes it
 * writes by hand (a PNG header claiming 50000 x 50000, a BMP). The
 * phone-sized cases use what scripts/test-setup.sh makes under
 * BUILD/testdata/phone/ (found through $PETCUT_TESTDATA, else
 * build/testdata): without them those checks are skipped with the reason
 * printed, and the rest still run.
 *
 * White-box: it includes img_int.h to look at struct img's pixels and
 * metadata. Prints one "ok - ..." / "not ok - ..." line per check; exits 0
 * when all passed, 1 otherwise.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vips/vips.h>

#include "img/img_int.h"

#include "check.h"

static char tmpdir[] = "/tmp/petcut-test-decode-XXXXXX";
static char phone[512]; /* BUILD/testdata/phone, "" when absent */

/* The error message to show beside a check: none when the call succeeded
 * (img_errmsg keeps the last failure's). */
static const char *why(img_status st)
{
	return st == IMG_OK ? "" : img_errmsg();
}

static void skip(const char *what, const char *why)
{
	printf("ok - %s # SKIP %s\n", what, why);
}

/* ===== Helpers ===== */

static char *tmp_path(const char *name)
{
	static char path[4][256];
	static int next;
	char *p = path[next++ % 4];

	snprintf(p, sizeof path[0], "%s/%s", tmpdir, name);
	return p;
}

static void write_file(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");

	fwrite(buf, 1, len, f);
	fclose(f);
}

static unsigned char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc(n > 0 ? (size_t)n : 1);
	*len = fread(buf, 1, (size_t)n, f);
	fclose(f);
	return buf;
}

/* A w x h picture of one colour, interpretation interp. */
static VipsImage *solid(int w, int h, int bands, const double *v, VipsBandFormat fmt, VipsInterpretation interp)
{
	double mul[8] = {0};
	VipsImage *zero, *lin, *cast, *out;

	vips_black(&zero, w, h, "bands", bands, NULL);
	vips_linear(zero, &lin, mul, (double *)v, bands, NULL);
	vips_cast(lin, &cast, fmt, NULL);
	vips_copy(cast, &out, "interpretation", interp, NULL);
	g_object_unref(zero);
	g_object_unref(lin);
	g_object_unref(cast);
	return out;
}

static VipsImage *rgb(int w, int h, double r, double g, double b)
{
	double v[3] = {r, g, b};

	return solid(w, h, 3, v, VIPS_FORMAT_UCHAR, VIPS_INTERPRETATION_sRGB);
}

/* Stored 40 wide, 80 tall: red top half, blue bottom half. */
static VipsImage *red_over_blue(void)
{
	VipsImage *top = rgb(40, 40, 255, 0, 0), *bottom = rgb(40, 40, 0, 0, 255), *out;

	vips_join(top, bottom, &out, VIPS_DIRECTION_VERTICAL, NULL);
	g_object_unref(top);
	g_object_unref(bottom);
	return out;
}

static img_status load(const void *buf, size_t len, struct img **im)
{
	return img_load_buffer(buf, len, im);
}

/* Band b of pixel (x, y) of a decoded image, or -1. */
static int px(const struct img *im, int x, int y, int b)
{
	double *v;
	int n, r;

	if (vips_getpoint(im->pix, &v, &n, x, y, NULL))
		return -1;
	r = b < n ? (int)v[b] : -1;
	g_free(v);
	return r;
}

static long maxrss_kb(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

/* ===== Hand-made files ===== */

static uint32_t crc32_of(const unsigned char *p, size_t n)
{
	uint32_t c = 0xffffffffu;

	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
	}
	return c ^ 0xffffffffu;
}

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = v >> 24, p[1] = v >> 16, p[2] = v >> 8, p[3] = v;
}

/* Appends a PNG chunk to buf at *n. */
static void png_chunk(unsigned char *buf, size_t *n, const char *type, const unsigned char *data, uint32_t len)
{
	put32(buf + *n, len);
	memcpy(buf + *n + 4, type, 4);
	if (len)
		memcpy(buf + *n + 8, data, len);
	put32(buf + *n + 8 + len, crc32_of(buf + *n + 4, 4 + len));
	*n += 12 + len;
}

/* A PNG of 100 kB whose valid IHDR claims w x h (8-bit RGB) and whose one
 * IDAT holds zeros, with no IEND. */
static unsigned char *bomb_png(uint32_t w, uint32_t h, size_t *len)
{
	const size_t idat = 100000;
	unsigned char *buf = calloc(1, idat + 64), ihdr[13] = {0};

	memcpy(buf, "\x89PNG\r\n\x1a\n", 8);
	*len = 8;
	put32(ihdr, w);
	put32(ihdr + 4, h);
	ihdr[8] = 8; /* bit depth */
	ihdr[9] = 2; /* RGB */
	png_chunk(buf, len, "IHDR", ihdr, 13);
	/* The IDAT's data: the zeros calloc left. */
	put32(buf + *len, (uint32_t)idat);
	memcpy(buf + *len + 4, "IDAT", 4);
	put32(buf + *len + 8 + idat, crc32_of(buf + *len + 4, 4 + idat));
	*len += 12 + idat;
	return buf;
}

/* A JPEG whose APP1 segment is the EXIF block blob, so that libvips parses
 * exactly that block. libvips holds EXIF with or without JPEG's "Exif\0\0"
 * prefix (PNG's and HEIF's come without); APP1 needs it. */
static unsigned char *jpeg_with_exif(const void *blob, size_t bloblen, size_t *len)
{
	VipsImage *dot = rgb(8, 8, 128, 128, 128);
	size_t pre = bloblen >= 6 && !memcmp(blob, "Exif\0\0", 6) ? 0 : 6, seg = pre + bloblen + 2;
	unsigned char *plain, *out;
	size_t plen;

	vips_jpegsave_buffer(dot, (void **)&plain, &plen, "strip", TRUE, NULL);
	g_object_unref(dot);
	out = malloc(plen + seg + 2);
	memcpy(out, plain, 2); /* SOI */
	out[2] = 0xff, out[3] = 0xe1, out[4] = seg >> 8, out[5] = seg & 0xff;
	memcpy(out + 6, "Exif\0\0", pre);
	memcpy(out + 6 + pre, blob, bloblen);
	memcpy(out + 4 + seg, plain + 2, plen - 2);
	*len = plen + seg + 2;
	g_free(plain);
	return out;
}

/* Whether the EXIF block an image holds (not the fields libvips parsed from
 * it) has GPS tags, and its orientation tag (0 when absent). */
static void exif_block_of(const struct img *im, int *has_gps, int *orientation)
{
	const void *blob;
	unsigned char *jpg;
	size_t n, len;
	VipsImage *back;
	gchar **fields;

	*has_gps = -1, *orientation = -1;
	if (!vips_image_get_typeof(im->pix, VIPS_META_EXIF_NAME) ||
	    vips_image_get_blob(im->pix, VIPS_META_EXIF_NAME, &blob, &n))
		return;
	jpg = jpeg_with_exif(blob, n, &len);
	back = vips_image_new_from_buffer(jpg, len, "", NULL);
	if (back) {
		*has_gps = 0, *orientation = 0;
		fields = vips_image_get_fields(back);
		for (int i = 0; fields[i]; i++)
			if (!strncmp(fields[i], "exif-ifd3-GPS", 13))
				*has_gps = 1;
		g_strfreev(fields);
		if (vips_image_get_typeof(back, VIPS_META_ORIENTATION))
			vips_image_get_int(back, VIPS_META_ORIENTATION, orientation);
		g_object_unref(back);
	}
	free(jpg);
}

/* The description tag of the image's ICC profile, as lcms' cheap stand-in:
 * whether the bytes hold needle (ASCII, or UTF-16 when wide). */
static int icc_mentions(VipsImage *im, const char *needle)
{
	const unsigned char *p;
	size_t n, k = strlen(needle);

	if (!vips_image_get_typeof(im, VIPS_META_ICC_NAME) ||
	    vips_image_get_blob(im, VIPS_META_ICC_NAME, (const void **)&p, &n))
		return 0;
	for (size_t i = 0; i + 2 * k <= n; i++) {
		size_t j;

		if (!memcmp(p + i, needle, k))
			return 1;
		for (j = 0; j < k && p[i + 2 * j] == 0 && p[i + 2 * j + 1] == (unsigned char)needle[j]; j++)
			;
		if (j == k)
			return 1;
	}
	return 0;
}

/* ===== Probing and the pixel limit ===== */

static void test_bomb(void)
{
	size_t len;
	unsigned char *png = bomb_png(50000, 50000, &len);
	struct img_info info;
	struct img *im = NULL;
	long before = maxrss_kb(), grown;
	img_status st;

	st = img_probe(png, len, NULL, &info);
	check(st == IMG_ERR_TOO_LARGE && strstr(why(st), "50000x50000"),
	      "bomb PNG (%zu bytes claiming 50000x50000) refused by probe (%s)", len, why(st));
	st = load(png, len, &im);
	check(st == IMG_ERR_TOO_LARGE && !im, "bomb PNG refused by load before decoding (%s)", why(st));
	write_file(tmp_path("bomb.png"), png, len);
	st = img_load_file(tmp_path("bomb.png"), &im);
	check(st == IMG_ERR_TOO_LARGE && !im, "bomb PNG file refused too (%s)", why(st));
	grown = maxrss_kb() - before;
	check(grown < 20 * 1024, "peak RSS grew by %ld kB refusing it (7.5 GB of pixels claimed)", grown);

	/* Just under the limit, given as an option: the header passes, the
	 * zeros are no zlib stream, and that is an error, not grey pixels. */
	free(png);
	png = bomb_png(1000, 1000, &len);
	struct img_load_opts o = {.max_pixels = 999999};

	st = img_load_buffer_opts(png, len, &o, &im);
	check(st == IMG_ERR_TOO_LARGE, "max_pixels 999999 refuses 1000x1000 (%s)", why(st));
	o.max_pixels = 1000000;
	st = img_probe(png, len, &o, &info);
	check(st == IMG_OK && info.type == IMG_TYPE_PNG && info.width == 1000 && info.height == 1000,
	      "max_pixels 1000000 lets probe read 1000x1000 (%s)", why(st));
	st = img_load_buffer_opts(png, len, &o, &im);
	check(st == IMG_ERR_CORRUPT && !im, "and its bad pixel data is damage (%s)", why(st));
	free(png);
}

static void test_probe(void)
{
	VipsImage *pic = red_over_blue(), *tagged, *alpha;
	struct img_info info;
	void *buf;
	size_t len;
	img_status st;
	double v[4] = {1, 2, 3, 4};

	vips_copy(pic, &tagged, NULL);
	vips_image_set_int(tagged, VIPS_META_ORIENTATION, 6);
	vips_jpegsave_buffer(tagged, &buf, &len, NULL);
	st = img_probe(buf, len, NULL, &info);
	check(st == IMG_OK && info.type == IMG_TYPE_JPEG && info.orientation == 6 && info.width == 80 &&
		      info.height == 40 && !info.has_alpha,
	      "probe JPEG: type %s, %dx%d upright, orientation %d (want JPEG 80x40, 6)", img_type_name(info.type),
	      info.width, info.height, info.orientation);
	g_free(buf);
	alpha = solid(5, 7, 4, v, VIPS_FORMAT_UCHAR, VIPS_INTERPRETATION_sRGB);
	vips_webpsave_buffer(alpha, &buf, &len, "lossless", TRUE, NULL);
	st = img_probe(buf, len, NULL, &info);
	check(st == IMG_OK && info.type == IMG_TYPE_WEBP && info.width == 5 && info.height == 7 && info.has_alpha &&
		      info.orientation == 1,
	      "probe WebP with alpha: %s %dx%d alpha %d", img_type_name(info.type), info.width, info.height,
	      info.has_alpha);
	check(!strcmp(img_type_mime(info.type), "image/webp") && !strcmp(img_type_name(IMG_TYPE_HEIC), "HEIC") &&
		      !strcmp(img_type_mime(IMG_TYPE_AVIF), "image/avif") &&
		      !strcmp(img_type_name((enum img_type)99), "unknown"),
	      "type names and MIME types");
	st = img_probe("hello", 5, NULL, &info);
	check(st == IMG_ERR_NOT_IMAGE, "probe of text: not an image (%s)", why(st));
	g_free(buf);
	g_object_unref(alpha);
	g_object_unref(tagged);
	g_object_unref(pic);
}

/* ===== Bad input ===== */

/* Bytes of a small real JPEG and PNG to cut. */
static void encoded(VipsImage *pic, const char *suffix, void **buf, size_t *len)
{
	vips_image_write_to_buffer(pic, suffix, buf, len, NULL);
}

static void test_bad_input(void)
{
	VipsImage *photo = NULL, *wide, *one;
	struct img *im = NULL;
	img_status st;
	void *buf;
	size_t len;
	char *p;
	float t[3 * 16];

	/* A photo-like picture: noise compresses as a real photo does. */
	{
		VipsImage *g, *c;

		vips_gaussnoise(&g, 256, 192, "mean", 128.0, "sigma", 40.0, NULL);
		vips_bandjoin_const1(g, &c, 0, NULL);
		vips_bandjoin_const1(c, &wide, 255, NULL);
		vips_cast(wide, &one, VIPS_FORMAT_UCHAR, NULL);
		vips_copy(one, &photo, "interpretation", VIPS_INTERPRETATION_sRGB, NULL);
		g_object_unref(g), g_object_unref(c), g_object_unref(wide), g_object_unref(one);
	}

	st = load("", 0, &im);
	check(st == IMG_ERR_NOT_IMAGE && !im, "zero bytes: not an image (%s)", why(st));
	p = tmp_path("empty.jpg");
	write_file(p, "", 0);
	st = img_load_file(p, &im);
	check(st == IMG_ERR_NOT_IMAGE && !im, "empty file: not an image (%s)", why(st));
	p = tmp_path("notes.png");
	write_file(p, "Dear diary,\nthe cat sat on the mat.\n", 36);
	st = img_load_file(p, &im);
	check(st == IMG_ERR_NOT_IMAGE && !im, "text file named .png: not an image (%s)", why(st));

	encoded(photo, ".jpg[Q=90]", &buf, &len);
	st = load(buf, len / 2, &im);
	check(st == IMG_ERR_CORRUPT && !im && strstr(why(st), "JPEG"), "truncated JPEG: damaged (%s)",
	      why(st));
	/* A valid header, then garbage where the scan should be. */
	for (size_t i = len / 3; i < len; i++)
		((unsigned char *)buf)[i] = (unsigned char)(i * 7919 >> 3);
	st = load(buf, len, &im);
	check((st == IMG_ERR_CORRUPT && !im) || (st == IMG_OK && im), "JPEG with garbage after its header: %s (%s)",
	      img_strerror(st), why(st));
	img_free(im), im = NULL;
	g_free(buf);

	encoded(photo, ".png", &buf, &len);
	st = load(buf, len - 200, &im);
	check(st == IMG_ERR_CORRUPT && !im && strstr(why(st), "PNG"), "truncated PNG: damaged (%s)",
	      why(st));
	img_free(im), im = NULL;
	/* the loader's read error must never be lost on the way (it once was,
	 * about 1 load in 100 under load, with libvips' worker threads) */
	int refused = 0;
	for (int i = 0; i < 300; i++) {
		refused += load(buf, len - 200, &im) == IMG_ERR_CORRUPT;
		img_free(im), im = NULL;
	}
	check(refused == 300, "truncated PNG refused every time (%d of 300)", refused);
	for (size_t i = 60; i < len; i++)
		((unsigned char *)buf)[i] = (unsigned char)(i * 7919 >> 3);
	st = load(buf, len, &im);
	check(st == IMG_ERR_CORRUPT && !im, "PNG with garbage after its header: damaged (%s)", why(st));
	g_free(buf);

	{
		/* BITMAPFILEHEADER + BITMAPINFOHEADER of a 1x1 24-bit BMP. */
		unsigned char bmp[58] = {'B', 'M', 58, 0, 0, 0, 0, 0, 0, 0, 54, 0, 0, 0, 40, 0, 0, 0, 1, 0,
					 0,   0,   1,  0, 0, 0, 1, 0, 24, 0};

		st = load(bmp, sizeof bmp, &im);
		check(st == IMG_ERR_UNSUPPORTED && strstr(why(st), "BMP"), "BMP: unsupported (%s)",
		      why(st));
	}

	one = rgb(1, 1, 10, 20, 30);
	encoded(one, ".png", &buf, &len);
	st = load(buf, len, &im);
	if (check(st == IMG_OK && img_width(im) == 1 && img_height(im) == 1, "1x1 PNG decodes (%s)", why(st)))
		check(img_to_tensor(im, 4, 4, t) == IMG_OK && t[0] == 10 / 255.0f - 0.5f &&
			      t[15] == 10 / 255.0f - 0.5f && t[32] == 30 / 255.0f - 0.5f,
		      "and gives a 4x4 tensor of its colour");
	img_free(im), im = NULL;
	g_free(buf);
	g_object_unref(one);

	wide = rgb(65535, 1, 200, 100, 50);
	encoded(wide, ".png", &buf, &len);
	st = load(buf, len, &im);
	if (check(st == IMG_OK && img_width(im) == 65535 && img_height(im) == 1, "65535x1 PNG decodes (%s)",
		  why(st))) {
		struct img *th = NULL;

		check(img_to_tensor(im, 4, 4, t) == IMG_OK && t[5] == 200 / 255.0f - 0.5f,
		      "and gives a tensor of its colour");
		check(img_thumbnail(im, 512, &th) == IMG_OK && img_width(th) == 512 && img_height(th) == 1,
		      "and a 512x1 thumbnail (%s)", img_errmsg());
		img_free(th);
	}
	img_free(im), im = NULL;
	g_free(buf);
	g_object_unref(wide);

	{
		/* A JPEG whose EXIF block is a TIFF header pointing nowhere,
		 * then noise. */
		unsigned char blob[300] = "Exif\0\0II*\0\xff\xff\x00\x00";
		unsigned char *jpg;
		int gps = -1, o = -1;

		for (size_t i = 16; i < sizeof blob; i++)
			blob[i] = (unsigned char)(i * 2654435761u >> 13);
		jpg = jpeg_with_exif(blob, sizeof blob, &len);
		st = load(jpg, len, &im);
		if (check(st == IMG_OK && img_width(im) == 8, "JPEG with a damaged EXIF block decodes (%s)", why(st)))
			exif_block_of(im, &gps, &o);
		check(gps <= 0, "and holds no GPS from it (%d)", gps);
		img_free(im), im = NULL;
		free(jpg);
	}

	st = img_load_file(tmp_path("absent.jpg"), &im);
	check(st == IMG_ERR_IO && !im, "missing file: i/o error (%s)", why(st));
	st = img_load_file(tmpdir, &im);
	check(st == IMG_ERR_IO && !im, "directory: i/o error (%s)", why(st));
	g_object_unref(photo);
}

/* ===== Colour ===== */

static void test_colour(void)
{
	struct img *im = NULL;
	img_status st;
	void *buf;
	size_t len;

	{
		/* sRGB (180, 120, 60) as CMYK through libvips' CMYK profile. */
		VipsImage *c = rgb(32, 16, 180, 120, 60), *cmyk;

		vips_icc_export(c, &cmyk, "output_profile", "cmyk", NULL);
		vips_jpegsave_buffer(cmyk, &buf, &len, "Q", 95, NULL);
		st = load(buf, len, &im);
		if (check(st == IMG_OK && img_bands(im) == 3, "CMYK JPEG decodes to 3 bands (%s)", why(st)))
			check(abs(px(im, 16, 8, 0) - 180) <= 8 && abs(px(im, 16, 8, 1) - 120) <= 8 &&
				      abs(px(im, 16, 8, 2) - 60) <= 8 &&
				      !vips_image_get_typeof(im->pix, VIPS_META_ICC_NAME),
			      "CMYK converted to sRGB: (%d, %d, %d), want (180, 120, 60) +-8, CMYK profile gone",
			      px(im, 16, 8, 0), px(im, 16, 8, 1), px(im, 16, 8, 2));
		img_free(im), im = NULL;
		g_free(buf);
		g_object_unref(cmyk);
		g_object_unref(c);
	}
	{
		double v[3] = {40000, 0x8080, 65535};
		VipsImage *deep = solid(8, 8, 3, v, VIPS_FORMAT_USHORT, VIPS_INTERPRETATION_RGB16);

		vips_pngsave_buffer(deep, &buf, &len, "bitdepth", 16, NULL);
		st = load(buf, len, &im);
		check(st == IMG_OK && im->pix->BandFmt == VIPS_FORMAT_UCHAR && px(im, 3, 3, 0) == 40000 >> 8 &&
			      px(im, 3, 3, 1) == 0x80 && px(im, 3, 3, 2) == 255,
		      "16-bit PNG to 8 bits: (%d, %d, %d), want (156, 128, 255) (%s)", im ? px(im, 3, 3, 0) : -1,
		      im ? px(im, 3, 3, 1) : -1, im ? px(im, 3, 3, 2) : -1, why(st));
		img_free(im), im = NULL;
		g_free(buf);
		g_object_unref(deep);
	}
	{
		double v[2] = {90, 128};
		VipsImage *ga = solid(6, 6, 2, v, VIPS_FORMAT_UCHAR, VIPS_INTERPRETATION_B_W);

		vips_pngsave_buffer(ga, &buf, &len, NULL);
		st = load(buf, len, &im);
		check(st == IMG_OK && img_bands(im) == 4 && px(im, 1, 1, 0) == 90 && px(im, 1, 1, 1) == 90 &&
			      px(im, 1, 1, 2) == 90 && px(im, 1, 1, 3) == 128,
		      "grey+alpha PNG: RGBA (%d, %d, %d, %d), want (90, 90, 90, 128) (%s)", im ? px(im, 1, 1, 0) : -1,
		      im ? px(im, 1, 1, 1) : -1, im ? px(im, 1, 1, 2) : -1, im ? px(im, 1, 1, 3) : -1, why(st));
		img_free(im), im = NULL;
		g_free(buf);
		g_object_unref(ga);
	}
	{
		/* Lab in a float TIFF: L 50, a 0, b 0 is sRGB grey ~119. */
		double v[3] = {50, 0, 0};
		VipsImage *lab = solid(4, 4, 3, v, VIPS_FORMAT_FLOAT, VIPS_INTERPRETATION_LAB);

		vips_tiffsave_buffer(lab, &buf, &len, NULL);
		st = load(buf, len, &im);
		check(st == IMG_OK && img_bands(im) == 3 && abs(px(im, 0, 0, 0) - 119) <= 2 &&
			      abs(px(im, 0, 0, 2) - 119) <= 2,
		      "Lab float TIFF to sRGB: R %d B %d, want 119 (%s)", im ? px(im, 0, 0, 0) : -1,
		      im ? px(im, 0, 0, 2) : -1, why(st));
		img_free(im), im = NULL;
		g_free(buf);
		g_object_unref(lab);
	}
	{
		/* Two frames, red then blue: the first is the picture. */
		VipsImage *red = rgb(20, 10, 255, 0, 0), *blue = rgb(20, 10, 0, 0, 255), *both, *anim;

		vips_join(red, blue, &both, VIPS_DIRECTION_VERTICAL, NULL);
		vips_copy(both, &anim, NULL);
		vips_image_set_int(anim, VIPS_META_PAGE_HEIGHT, 10);
		if (vips_gifsave_buffer(anim, &buf, &len, NULL)) {
			skip("animated GIF", "libvips cannot write GIF here");
			vips_error_clear();
		} else {
			st = load(buf, len, &im);
			check(st == IMG_OK && img_width(im) == 20 && img_height(im) == 10 && px(im, 5, 5, 0) > 200 &&
				      px(im, 5, 5, 2) < 50,
			      "animated GIF: first frame, %dx%d red (%s)", im ? img_width(im) : 0,
			      im ? img_height(im) : 0, why(st));
			img_free(im), im = NULL;
			g_free(buf);
		}
		g_object_unref(anim), g_object_unref(both), g_object_unref(blue), g_object_unref(red);
	}
	{
		/* The same pixels untagged and with an sRGB profile: kept, and
		 * the tensors are equal (no conversion for sRGB). */
		VipsImage *pic = rgb(16, 16, 200, 30, 90), *tagged;
		struct img *plain = NULL;
		float a[3 * 64], b[3 * 64];

		vips_copy(pic, &tagged, NULL);
		vips_pngsave_buffer(pic, &buf, &len, NULL);
		load(buf, len, &plain);
		g_free(buf);
		vips_icc_transform(pic, &tagged, "srgb", "input_profile", "srgb", "embedded", FALSE, NULL);
		vips_pngsave_buffer(tagged, &buf, &len, NULL);
		st = load(buf, len, &im);
		if (check(st == IMG_OK && plain && vips_image_get_typeof(im->pix, VIPS_META_ICC_NAME),
			  "PNG with an sRGB profile decodes and keeps it (%s)", why(st)))
			check(img_to_tensor(im, 8, 8, a) == IMG_OK && img_to_tensor(plain, 8, 8, b) == IMG_OK &&
				      !memcmp(a, b, sizeof a),
			      "its tensor equals the untagged one's");
		img_free(plain);
		img_free(im), im = NULL;
		g_free(buf);
		g_object_unref(tagged), g_object_unref(pic);
	}
}

/* ===== Orientation and EXIF ===== */

static void test_orientation8(void)
{
	VipsImage *pic = red_over_blue(), *tagged;
	struct img_info info;
	struct img *im = NULL;
	void *buf;
	size_t len;
	img_status st;

	/* EXIF 8: "turn 90 degrees anticlockwise to view": the red top
	 * half goes to the left. */
	vips_copy(pic, &tagged, NULL);
	vips_image_set_int(tagged, VIPS_META_ORIENTATION, 8);
	vips_jpegsave_buffer(tagged, &buf, &len, "Q", 95, NULL);
	st = img_probe(buf, len, NULL, &info);
	check(st == IMG_OK && info.orientation == 8 && info.width == 80 && info.height == 40,
	      "probe orientation 8: %dx%d, orientation %d", info.width, info.height, info.orientation);
	st = load(buf, len, &im);
	if (check(st == IMG_OK && img_width(im) == 80 && img_height(im) == 40, "orientation 8 applied: %dx%d (%s)",
		  im ? img_width(im) : 0, im ? img_height(im) : 0, why(st)))
		check(px(im, 10, 20, 0) > 200 && px(im, 10, 20, 2) < 60 && px(im, 70, 20, 2) > 200 &&
			      px(im, 70, 20, 0) < 60,
		      "red on the left, blue on the right");
	int gps, o;

	exif_block_of(im, &gps, &o);
	check(o == 1, "its EXIF block now says orientation 1 (%d)", o);
	img_free(im), im = NULL;
	g_free(buf);

	/* XMP and IPTC may hold a place or a name: dropped. */
	{
		static const char xmp[] = "<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF "
					  "xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'/></x:xmpmeta>";
		static const unsigned char iptc[] = "8BIM\x04\x04\0\0\0\0\0\x0a\x1c\x02\x5a\0\x05Paris";

		vips_image_set_blob_copy(tagged, VIPS_META_XMP_NAME, xmp, sizeof xmp - 1);
		vips_image_set_blob_copy(tagged, VIPS_META_IPTC_NAME, iptc, sizeof iptc - 1);
		vips_jpegsave_buffer(tagged, &buf, &len, NULL);
		{
			VipsImage *back = vips_image_new_from_buffer(buf, len, "", NULL);

			check(back && vips_image_get_typeof(back, VIPS_META_XMP_NAME),
			      "(the test JPEG carries XMP)");
			VIPS_UNREF(back);
		}
		st = load(buf, len, &im);
		check(st == IMG_OK && !vips_image_get_typeof(im->pix, VIPS_META_XMP_NAME) &&
			      !vips_image_get_typeof(im->pix, VIPS_META_IPTC_NAME),
		      "XMP and IPTC dropped on decode (%s)", why(st));
		img_free(im);
		g_free(buf);
	}
	g_object_unref(tagged), g_object_unref(pic);
}

/* ===== Phone-sized photos ===== */

static struct img *load_phone(const char *name, const struct img_load_opts *o)
{
	char path[640];
	struct img *im = NULL;
	img_status st;

	snprintf(path, sizeof path, "%s/%s", phone, name);
	st = img_load_file_opts(path, o, &im);
	check(st == IMG_OK, "%s decodes (%s)", name, why(st));
	return im;
}

/* Mean absolute difference of two images' pixels (first 3 bands), both
 * scaled to w x h first. -1 if they cannot be compared. */
static double mean_diff(VipsImage *a, VipsImage *b, int w, int h)
{
	VipsImage *sa = NULL, *sb = NULL, *ea = NULL, *eb = NULL, *d = NULL, *ad = NULL;
	double m = -1;

	if (!img_resize_exact(a, &sa, w, h) && !img_resize_exact(b, &sb, w, h) &&
	    !vips_extract_band(sa, &ea, 0, "n", 3, NULL) && !vips_extract_band(sb, &eb, 0, "n", 3, NULL) &&
	    !vips_subtract(ea, eb, &d, NULL) && !vips_abs(d, &ad, NULL) && vips_avg(ad, &m, NULL))
		m = -1;
	VIPS_UNREF(ad);
	VIPS_UNREF(d);
	VIPS_UNREF(ea);
	VIPS_UNREF(eb);
	VIPS_UNREF(sa);
	VIPS_UNREF(sb);
	return m;
}

static double tensor_diff(const float *a, const float *b, size_t n)
{
	double s = 0;

	for (size_t i = 0; i < n; i++)
		s += a[i] > b[i] ? a[i] - b[i] : b[i] - a[i];
	return s / n * 255;
}

static void test_phone(void)
{
	struct img *up, *o6, *heic, *adobe, *kept, *th = NULL;
	struct img_load_opts keep = {.keep_gps = 1};
	const int tw = 378, th_ = 504, side = 256;
	float *ta = malloc(3 * side * side * sizeof *ta), *tb = malloc(3 * side * side * sizeof *tb);
	VipsImage *turned = NULL;
	char path[640];
	double d;
	int gps, o;

	up = load_phone("upright.jpg", NULL);
	o6 = load_phone("o6.jpg", NULL);
	if (up && o6) {
		check(img_width(o6) == 3024 && img_height(o6) == 4032,
		      "o6.jpg (4032x3024 stored, EXIF 6) is %dx%d upright (want 3024x4032)", img_width(o6),
		      img_height(o6));
		d = mean_diff(o6->pix, up->pix, tw, th_);
		vips_rot(up->pix, &turned, VIPS_ANGLE_D180, NULL);
		check(d >= 0 && d < 3, "o6.jpg matches the upright original: mean abs diff %.2f of 255 (< 3; %.1f "
				       "against it turned upside down)",
		      d, mean_diff(o6->pix, turned, tw, th_));
		check(!vips_image_get_typeof(o6->pix, "exif-ifd3-GPSLatitude") &&
			      vips_image_get_typeof(o6->pix, "exif-ifd0-Make"),
		      "GPS fields removed, camera make kept");
		exif_block_of(o6, &gps, &o);
		check(gps == 0 && o == 1, "the EXIF block itself has no GPS (%d) and orientation 1 (%d)", gps, o);

		snprintf(path, sizeof path, "%s/o6-saved.jpg", tmpdir);
		if (check(img_save(o6, tmp_path("o6-saved.png"), IMG_FORMAT_PNG) == IMG_OK, "o6 saves as PNG (%s)",
			  img_errmsg())) {
			char cmd[1024], out[256] = "";
			FILE *f;

			snprintf(cmd, sizeof cmd,
				 "command -v exiftool >/dev/null && exiftool -n -s -s -s -Orientation -GPSLatitude "
				 "-Make '%s' 2>&1 | tr '\\n' ' '",
				 tmp_path("o6-saved.png"));
			f = popen(cmd, "r");
			if (f && fgets(out, sizeof out, f) && out[0])
				check(!strcmp(out, "1 PetcutPhone "),
				      "exiftool on the saved file: orientation 1, make kept, no GPS (\"%s\")", out);
			else
				skip("exiftool on the saved file", "exiftool not installed");
			if (f)
				pclose(f);
		}
		kept = load_phone("o6.jpg", &keep);
		if (kept) {
			exif_block_of(kept, &gps, &o);
			check(vips_image_get_typeof(kept->pix, "exif-ifd3-GPSLatitude") && gps == 1 && o == 1,
			      "keep_gps keeps GPS (block %d), orientation still 1 (%d)", gps, o);
		}
		img_free(kept);

		img_thumbnail(o6, 512, &th);
		check(th && img_width(th) == 384 && img_height(th) == 512 &&
			      !vips_image_get_typeof(th->pix, VIPS_META_EXIF_NAME),
		      "thumbnail 512: %dx%d, no EXIF (%s)", th ? img_width(th) : 0, th ? img_height(th) : 0,
		      img_errmsg());
		img_free(th), th = NULL;
	}
	heic = load_phone("upright.heic", NULL);
	if (up && heic) {
		d = mean_diff(heic->pix, up->pix, tw, th_);
		check(img_width(heic) == 3024 && img_height(heic) == 4032 && d >= 0 && d < 3,
		      "HEIC is the same picture: %dx%d, mean abs diff %.2f (< 3)", img_width(heic), img_height(heic),
		      d);
		check(!vips_image_get_typeof(heic->pix, "exif-ifd3-GPSLatitude"), "HEIC's GPS removed too");
	}
	adobe = load_phone("adobergb.jpg", NULL);
	if (up && adobe) {
		struct img *tup = NULL, *tad = NULL;

		check(icc_mentions(adobe->pix, "Adobe RGB"), "Adobe RGB photo keeps its profile in struct img");
		d = mean_diff(adobe->pix, up->pix, side, side);
		if (check(img_to_tensor(adobe, side, side, ta) == IMG_OK && img_to_tensor(up, side, side, tb) == IMG_OK,
			  "tensors of both (%s)", img_errmsg())) {
			double td = tensor_diff(ta, tb, 3 * (size_t)side * side);

			check(td < 2 && td < d / 2,
			      "Adobe RGB tensor is sRGB: mean abs diff %.2f of 255 from the sRGB original's (raw pixels "
			      "differ by %.2f)",
			      td, d);
		}
		if (check(img_thumbnail(adobe, 512, &tad) == IMG_OK && img_thumbnail(up, 512, &tup) == IMG_OK,
			  "thumbnails of both (%s)", img_errmsg())) {
			d = mean_diff(tad->pix, tup->pix, 384, 512);
			check(!vips_image_get_typeof(tad->pix, VIPS_META_ICC_NAME) && d < 2,
			      "Adobe RGB thumbnail is untagged sRGB: mean abs diff %.2f", d);
		}
		img_free(tad), img_free(tup);
	}
	{
		/* Half an HEIC. */
		size_t len;
		unsigned char *buf;
		struct img *im = NULL;
		img_status st;

		snprintf(path, sizeof path, "%s/upright.heic", phone);
		buf = read_file(path, &len);
		if (buf) {
			st = load(buf, len / 2, &im);
			check(st == IMG_ERR_CORRUPT && !im && strstr(why(st), "HEIC"),
			      "truncated HEIC: damaged (%s)", why(st));
		}
		free(buf);
	}
	VIPS_UNREF(turned);
	img_free(up), img_free(o6), img_free(heic), img_free(adobe);
	free(ta), free(tb);
}

int main(void)
{
	const char *env = getenv("PETCUT_TESTDATA");
	struct stat sb;

	if (!check(img_init() == IMG_OK, "img_init (%s)", img_errmsg()))
		return 1;
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	/* First, while the process is small: the bomb's RSS. */
	test_bomb();
	test_probe();
	test_bad_input();
	test_colour();
	test_orientation8();

	snprintf(phone, sizeof phone, "%s/phone", env && *env ? env : "build/testdata");
	if (stat(phone, &sb) || !S_ISDIR(sb.st_mode)) {
		printf("# no %s (scripts/test-setup.sh makes it): phone-sized checks and the truncated HEIC "
		       "skipped\n",
		       phone);
		skip("phone-sized photos", "no test data");
	} else {
		test_phone();
	}

	{
		char cmd[300];

		snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
		if (system(cmd))
			printf("# could not remove %s\n", tmpdir);
	}
	if (failures) {
		printf("# %d check(s) failed\n", failures);
		return 1;
	}
	return 0;
}
