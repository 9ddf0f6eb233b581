/*
 * test_png.c - checks of src/img/png.c, petcut's PNG writer: the pixels it
 * writes come back exactly, read by libvips and by a second decoder written
 * here (chunks and their CRCs walked, the IDAT stream inflated by zlib, every
 * filter type undone), for grey, grey + alpha, RGB and RGBA, odd sizes, one
 * row, one column, images small and large (above 1 MiB of rows the filter runs
 * on all cores; above 2 MiB they are compressed in pieces on all cores and
 * joined; noisy ones take several IDAT chunks); the chunks around the
 * pixels are those libvips writes (pHYs, iCCP, eXIf with the image's own
 * dimensions, once); failures report an error and leak nothing. Under
 * valgrind, count definite leaks only (--errors-for-leak-kinds=definite):
 * libgomp's pool threads, alive at exit, hold a block valgrind calls
 * "possibly lost".
 *
 * White-box: it includes img_int.h to call img_png_save and to make images
 * with img_adopt. Prints one "ok - ..." / "not ok - ..." line per check;
 * exits 0 when all passed, 1 otherwise.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vips/vips.h>
#include <zlib.h>

#include "img/img_int.h"

#include "check.h"

#define ICC_PATH "/usr/share/color/icc/compatibleWithAdobeRGB1998.icc"

/* ===== Test pictures ===== */

/* A w x h picture of noise (or, smooth, a gradient with noise: compresses
 * like a photo) with the given bands, in memory. */
static VipsImage *picture(int w, int h, int bands, int smooth)
{
	VipsImage *noise = NULL, *u8 = NULL, *mem = NULL, *grad = NULL, *sum = NULL;
	VipsImage **bandv = g_new0(VipsImage *, bands);
	int ok = 1;

	for (int b = 0; ok && b < bands; b++) {
		VipsImage *n = NULL;

		ok = !vips_gaussnoise(&n, w, h, "sigma", smooth ? 4.0 : 80.0, "mean", 128.0, "seed", 7 + b, NULL);
		bandv[b] = n;
	}
	ok = ok && !vips_bandjoin(bandv, &noise, bands, NULL);
	if (ok && smooth) {
		ok = !vips_xyz(&grad, w, h, NULL) && !vips_extract_band(grad, &u8, 0, NULL);
		if (ok) {
			g_object_unref(grad);
			grad = u8;
			u8 = NULL;
			ok = !vips_add(noise, grad, &sum, NULL);
		}
	}
	ok = ok && !vips_cast(sum ? sum : noise, &u8, VIPS_FORMAT_UCHAR, NULL);
	if (ok)
		mem = vips_image_copy_memory(u8);
	for (int b = 0; b < bands; b++)
		VIPS_UNREF(bandv[b]);
	g_free(bandv);
	VIPS_UNREF(noise);
	VIPS_UNREF(grad);
	VIPS_UNREF(sum);
	VIPS_UNREF(u8);
	return mem;
}

/* img_png_save's bytes for v (a g_malloc copy in *buf), or -1. */
static int encode(VipsImage *v, unsigned char **buf, size_t *len)
{
	VipsTarget *t = vips_target_new_to_memory();
	VipsBlob *blob = NULL;
	const void *p;
	int r = -1;

	*buf = NULL;
	if (t && !img_png_save(v, t)) {
		g_object_get(t, "blob", &blob, NULL);
		if (blob && (p = vips_blob_get(blob, len))) {
			*buf = g_memdup2(p, *len);
			r = 0;
		}
	}
	if (blob)
		vips_area_unref(VIPS_AREA(blob));
	VIPS_UNREF(t);
	return r;
}

/* Whether two images in memory have the same size, bands and pixels. */
static int same_pixels(VipsImage *a, VipsImage *b)
{
	VipsImage *ma, *mb;
	int same;

	if (a->Xsize != b->Xsize || a->Ysize != b->Ysize || a->Bands != b->Bands || a->BandFmt != b->BandFmt)
		return 0;
	ma = vips_image_copy_memory(a);
	mb = vips_image_copy_memory(b);
	same = ma && mb;
	for (int y = 0; same && y < a->Ysize; y++)
		same = !memcmp(VIPS_IMAGE_ADDR(ma, 0, y), VIPS_IMAGE_ADDR(mb, 0, y), VIPS_IMAGE_SIZEOF_LINE(ma));
	VIPS_UNREF(ma);
	VIPS_UNREF(mb);
	return same;
}

/* ===== A second decoder ===== */

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Counts the chunks of a type (all with a good CRC, else -1); *data and
 * *dlen, if not NULL, get the first one's data. */
static int find_chunk(const unsigned char *png, size_t len, const char *type, const unsigned char **data,
		      size_t *dlen)
{
	int n = 0;

	for (size_t at = 8; at + 12 <= len;) {
		size_t dl = be32(png + at);

		if (dl > len - at - 12 || crc32(0, png + at + 4, (uInt)dl + 4) != be32(png + at + 8 + dl))
			return -1;
		if (!memcmp(png + at + 4, type, 4) && !n++ && data) {
			*data = png + at + 8;
			*dlen = dl;
		}
		at += 12 + dl;
	}
	return n;
}

static int paeth(int a, int b, int c)
{
	int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);

	return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/* Decodes an 8-bit, non-interlaced PNG with zlib alone into *pix (w * h *
 * bands bytes, malloc). Returns 0, or -1 for anything wrong: signature,
 * a CRC, IHDR, the stream, its length, a filter type, or chunks after IEND. */
static int decode2(const unsigned char *png, size_t len, int *w, int *h, int *bands, unsigned char **pix)
{
	static const int bands_of[7] = {1, 0, 3, 0, 2, 0, 4};
	unsigned char *idat = NULL, *raw = NULL, *out = NULL;
	size_t ilen = 0, at = 8, row, rawlen;
	uLongf got;
	int r = -1, ended = 0;

	*pix = NULL;
	if (len < 8 || memcmp(png, "\x89PNG\r\n\x1a\n", 8))
		return -1;
	if (!(idat = malloc(len)))
		return -1;
	*w = *h = *bands = 0;
	while (at + 12 <= len && !ended) {
		size_t dl = be32(png + at);
		const unsigned char *type = png + at + 4, *d = png + at + 8;

		if (dl > len - at - 12 || crc32(0, type, (uInt)dl + 4) != be32(d + dl))
			goto out;
		if (!memcmp(type, "IHDR", 4)) {
			if (dl != 13 || d[8] != 8 || d[9] > 6 || !bands_of[d[9]] || d[10] || d[11] || d[12])
				goto out;
			*w = (int)be32(d), *h = (int)be32(d + 4), *bands = bands_of[d[9]];
		} else if (!memcmp(type, "IDAT", 4)) {
			memcpy(idat + ilen, d, dl);
			ilen += dl;
		} else if (!memcmp(type, "IEND", 4)) {
			ended = 1;
		}
		at += 12 + dl;
	}
	if (!ended || at != len || *w <= 0 || *h <= 0)
		goto out;
	row = (size_t)*w * *bands;
	rawlen = (row + 1) * *h;
	got = rawlen + 1;
	if (!(raw = malloc(rawlen + 1)) || !(out = malloc(row * *h)) ||
	    uncompress(raw, &got, idat, ilen) != Z_OK || got != rawlen)
		goto out;
	for (int y = 0; y < *h; y++) {
		const unsigned char *f = raw + (row + 1) * y + 1;
		unsigned char *o = out + row * y, *up = y ? o - row : NULL;

		for (size_t i = 0; i < row; i++) {
			int a = i >= (size_t)*bands ? o[i - *bands] : 0, b = up ? up[i] : 0;
			int c = up && i >= (size_t)*bands ? up[i - *bands] : 0;

			switch (f[-1]) {
			case 0: o[i] = f[i]; break;
			case 1: o[i] = (unsigned char)(f[i] + a); break;
			case 2: o[i] = (unsigned char)(f[i] + b); break;
			case 3: o[i] = (unsigned char)(f[i] + (a + b) / 2); break;
			case 4: o[i] = (unsigned char)(f[i] + paeth(a, b, c)); break;
			default: goto out;
			}
		}
	}
	*pix = out;
	out = NULL;
	r = 0;
out:
	free(idat);
	free(raw);
	free(out);
	return r;
}

/* ===== Checks ===== */

/* v encoded, then read back by both decoders: the same pixels. */
static void check_roundtrip(VipsImage *v, const char *what)
{
	unsigned char *png = NULL, *pix = NULL;
	VipsImage *back = NULL;
	size_t len = 0;
	int w, h, bands, ok2 = 0;

	if (!check(v && !encode(v, &png, &len), "%s: encoded (%s)", what, vips_error_buffer())) {
		vips_error_clear();
		return;
	}
	back = vips_image_new_from_buffer(png, len, "", NULL);
	check(back && same_pixels(v, back), "%s: libvips reads the same pixels", what);
	if (!decode2(png, len, &w, &h, &bands, &pix) && w == v->Xsize && h == v->Ysize && bands == v->Bands) {
		ok2 = 1;
		for (int y = 0; ok2 && y < h; y++)
			ok2 = !memcmp(pix + (size_t)y * w * bands, VIPS_IMAGE_ADDR(v, 0, y), (size_t)w * bands);
	}
	check(ok2, "%s: zlib and the PNG filters alone read the same pixels", what);
	free(pix);
	VIPS_UNREF(back);
	g_free(png);
}

static void test_pixels(void)
{
	static const struct {
		int w, h, smooth;
	} sizes[] = {
		{1, 1, 0}, {1, 37, 0}, {37, 1, 0}, {33, 17, 0}, {255, 3, 1},
		{1001, 261, 1}, /* just under 1 MiB of RGBA rows: one thread */
		{1001, 262, 1}, /* just over: the filter on all cores */
		{700, 600, 0},	/* noise: several IDAT chunks */
		{1100, 1000, 1}, /* over 2 MiB of rows (but grey): compressed in pieces, joined */
		{1000, 700, 0}, /* noise in pieces: igzip's room for what does not compress */
	};
	char what[96];

	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
		for (int bands = 1; bands <= 4; bands++) {
			VipsImage *v = picture(sizes[i].w, sizes[i].h, bands, sizes[i].smooth);

			snprintf(what, sizeof what, "%dx%d, %d band%s%s", sizes[i].w, sizes[i].h, bands,
				 bands > 1 ? "s" : "", sizes[i].smooth ? ", smooth" : ", noise");
			check_roundtrip(v, what);
			VIPS_UNREF(v);
		}
}

static void test_idat_chunks(void)
{
	VipsImage *v = picture(700, 600, 4, 0);
	unsigned char *png = NULL;
	size_t len = 0;

	check(v && !encode(v, &png, &len) && find_chunk(png, len, "IDAT", NULL, NULL) >= 2 &&
		      find_chunk(png, len, "IEND", NULL, NULL) == 1,
	      "noise over 1 MiB compressed spans several IDAT chunks, all with good CRCs");
	g_free(png);
	VIPS_UNREF(v);
}

/* The data of a chunk equal in both files (first of its type; present in both). */
static int same_chunk(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen, const char *type)
{
	const unsigned char *da, *db;
	size_t la, lb;

	return find_chunk(a, alen, type, &da, &la) > 0 && find_chunk(b, blen, type, &db, &lb) > 0 && la == lb &&
	       !memcmp(da, db, la);
}

static void test_metadata(void)
{
	VipsImage *photo = NULL, *big = NULL, *v = NULL, *back = NULL;
	unsigned char *png = NULL;
	void *ref = NULL;
	size_t len = 0, rlen = 0, icc_len = 0, blen;
	gchar *icc = NULL;
	const void *blob;
	const char *s;

	/* A photo with EXIF (orientation 6), scaled to a size of its own,
	 * with a profile and a resolution: pixels, EXIF fields and all. */
	photo = vips_image_new_from_file("samples/chelsea-orient6.jpg", NULL);
	if (!check(photo && !vips_resize(photo, &big, 1.37, NULL), "the EXIF sample loads (%s)", vips_error_buffer()))
		goto out;
	v = vips_image_copy_memory(big);
	if (!check(g_file_get_contents(ICC_PATH, &icc, &icc_len, NULL), "a profile to embed (%s)", ICC_PATH))
		goto out;
	vips_image_set_blob_copy(v, VIPS_META_ICC_NAME, icc, icc_len);
	v->Xres = v->Yres = 300 / 25.4;
	check_roundtrip(v, "a photo with ICC and EXIF");

	if (!check(!encode(v, &png, &len) && !vips_pngsave_buffer(v, &ref, &rlen, NULL), "both writers ran"))
		goto out;
	check(same_chunk(png, len, ref, rlen, "pHYs"), "pHYs as libvips writes it (300 dpi)");
	check(same_chunk(png, len, ref, rlen, "eXIf"),
	      "eXIf as libvips writes it for the whole image (its dimensions, not the first pixel's)");
	check(find_chunk(png, len, "eXIf", NULL, NULL) == 1, "one eXIf chunk");
	back = vips_image_new_from_buffer(png, len, "", NULL);
	check(back && !vips_image_get_blob(back, VIPS_META_ICC_NAME, &blob, &blen) && blen == icc_len &&
		      !memcmp(blob, icc, icc_len),
	      "the profile comes back whole");
	check(back && !vips_image_get_string(back, "exif-ifd2-PixelXDimension", &s) && atoi(s) == v->Xsize &&
		      !vips_image_get_string(back, "exif-ifd2-PixelYDimension", &s) && atoi(s) == v->Ysize,
	      "EXIF says %dx%d", v->Xsize, v->Ysize);
	VIPS_UNREF(back);
	g_free(png);
	png = NULL;

	/* Without a profile: no iCCP, as libvips. */
	vips_image_remove(v, VIPS_META_ICC_NAME);
	check(!encode(v, &png, &len) && find_chunk(png, len, "iCCP", NULL, NULL) == 0 &&
		      find_chunk(png, len, "pHYs", NULL, NULL) == 1,
	      "without a profile: no iCCP, a pHYs");
	check_roundtrip(v, "a photo without ICC");
out:
	vips_error_clear();
	g_free(png);
	g_free(ref);
	g_free(icc);
	VIPS_UNREF(back);
	VIPS_UNREF(v);
	VIPS_UNREF(big);
	VIPS_UNREF(photo);
}

/* Through the module's own entry points: img_encode and img_save. */
static void test_api(void)
{
	VipsImage *v = picture(301, 203, 4, 1), *back = NULL;
	struct img_save_opts so = {.format = IMG_FORMAT_PNG};
	struct img *im = NULL;
	void *buf = NULL;
	size_t len = 0;

	if (!check(v && img_adopt(v, "test", &im) == IMG_OK, "an RGBA image"))
		goto out;
	check(img_encode(im, &so, &buf, &len) == IMG_OK && (back = vips_image_new_from_buffer(buf, len, "", NULL)) &&
		      same_pixels(v, back),
	      "img_encode writes PNG with the same pixels");
	/* img_encode takes png.c's buffer as it is; a target gets the same bytes */
	unsigned char *via = NULL;
	size_t vlen = 0;
	check(buf && !encode(v, &via, &vlen) && vlen == len && !memcmp(via, buf, len),
	      "img_encode's PNG is byte for byte the one written to a target");
	g_free(via);
	/* A write that fails after the whole image is compressed (the disk
	 * full): an error, no leak. */
	check(img_save(im, "/dev/full", IMG_FORMAT_PNG) == IMG_ERR_IO, "a failed write is reported (%s)",
	      img_errmsg());
out:
	free(buf);
	img_free(im);
	VIPS_UNREF(back);
	VIPS_UNREF(v);
}

static void test_refusals(void)
{
	VipsImage *v = picture(9, 9, 3, 0), *wide = NULL;
	VipsTarget *t = vips_target_new_to_memory();
	const char *e;
	int refused;

	vips_error_clear();
	refused = v && !vips_cast(v, &wide, VIPS_FORMAT_USHORT, NULL) && img_png_save(wide, t) == -1;
	e = vips_error_buffer();
	check(refused, "16-bit images are refused (%.*s)", (int)strcspn(e, "\n"), e);
	vips_error_clear();
	VIPS_UNREF(wide);
	VIPS_UNREF(t);
	VIPS_UNREF(v);
}

int main(void)
{
	if (!check(img_init() == IMG_OK, "img_init (%s)", img_errmsg()))
		return 1;
	test_pixels();
	test_idat_chunks();
	test_metadata();
	test_api();
	test_refusals();
	if (failures)
		printf("# %d check(s) failed\n", failures);
	vips_shutdown();
	return failures != 0;
}
