/*
 * test_img.c - checks of the image module (src/img) on pictures the test
 * makes itself with libvips: orientation, refusal of bad input, tensor
 * values, mask scaling and composition, and atomic saving.
 * Prints one "ok - ..." / "not ok - ..." line per check; exits non-zero if
 * any check failed.
 */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vips/vips.h>

#include "img/img.h"

#include "check.h"

static char tmpdir[] = "/tmp/petcut-test-img-XXXXXX";


/* ===== Test pictures ===== */

/* A w x h sRGB picture of one colour; bands 4 adds an alpha of value a. */
static VipsImage *solid(int w, int h, int bands, double r, double g, double b, double a)
{
	double mul[4] = {0, 0, 0, 0}, add[4] = {r, g, b, a};
	VipsImage *zero, *lin, *u8, *out;

	if (vips_black(&zero, w, h, "bands", bands, NULL))
		return NULL;
	vips_linear(zero, &lin, mul, add, bands, NULL);
	vips_cast(lin, &u8, VIPS_FORMAT_UCHAR, NULL);
	vips_copy(u8, &out, "interpretation", VIPS_INTERPRETATION_sRGB, NULL);
	g_object_unref(zero);
	g_object_unref(lin);
	g_object_unref(u8);
	return out;
}

/* Stacks top over bottom (same width). */
static VipsImage *stack(VipsImage *top, VipsImage *bottom)
{
	VipsImage *out;

	vips_join(top, bottom, &out, VIPS_DIRECTION_VERTICAL, NULL);
	return out;
}

static struct img *decode(const void *buf, size_t len, img_status *st)
{
	struct img *im = NULL;

	*st = img_load_buffer(buf, len, &im);
	return im;
}

static struct img *decode_png(VipsImage *pic)
{
	struct img *im = NULL;
	img_status st;
	void *buf;
	size_t len;

	if (vips_pngsave_buffer(pic, &buf, &len, NULL))
		return NULL;
	im = decode(buf, len, &st);
	g_free(buf);
	return im;
}

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

/* Number of entries in tmpdir, so a stray temporary file shows. */
static int count_entries(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;
	int n = 0;

	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void empty_tmpdir(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;

	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			const char *p = tmp_path(e->d_name);

			if (unlink(p))
				rmdir(p);
		}
	closedir(d);
}

/* Pixel (x, y) band b of a saved file, read back with libvips directly. */
static double pixel_of_file(const char *path, int x, int y, int b)
{
	VipsImage *im = vips_image_new_from_file(path, NULL);
	double *v = NULL, out = -1;
	int n;

	if (im && !vips_getpoint(im, &v, &n, x, y, NULL) && b < n)
		out = v[b];
	g_free(v);
	if (im)
		g_object_unref(im);
	return out;
}

/* ===== Checks ===== */

static void test_orientation(void)
{
	/* Stored 40 wide, 80 tall: red top half, blue bottom half. EXIF 6
	 * says "turn 90 degrees clockwise to view", so the upright picture is
	 * 80 x 40 with the blue half on the left and the red half on the right. */
	VipsImage *top = solid(40, 40, 3, 255, 0, 0, 0), *bottom = solid(40, 40, 3, 0, 0, 255, 0);
	VipsImage *pic = stack(top, bottom), *tagged;
	struct img *im, *cut = NULL;
	float *t = calloc(3 * 40 * 80, sizeof *t);
	const char *out = tmp_path("upright.png");
	img_status st;
	void *buf;
	size_t len;

	vips_copy(pic, &tagged, NULL);
	vips_image_set_int(tagged, VIPS_META_ORIENTATION, 6);
	vips_jpegsave_buffer(tagged, &buf, &len, "Q", 95, NULL);
	im = decode(buf, len, &st);
	if (check(st == IMG_OK, "orientation-6 JPEG decodes (%s)", img_errmsg())) {
		check(img_width(im) == 80 && img_height(im) == 40,
		      "orientation 6 applied: 40x80 stored becomes %dx%d (want 80x40)", img_width(im),
		      img_height(im));
		img_to_tensor(im, 40, 80, t);
		/* Planar: R plane then G then B; (x, y) at y * 80 + x. */
		check(t[20 * 80 + 10] < -0.4f && t[2 * 3200 + 20 * 80 + 10] > 0.4f,
		      "upright picture is blue on the left");
		check(t[20 * 80 + 70] > 0.4f && t[2 * 3200 + 20 * 80 + 70] < -0.4f,
		      "upright picture is red on the right");

		float one = 1.0f;
		img_cutout(im, &one, 1, 1, IMG_CUT_RGBA, &cut);
		if (cut && img_save(cut, out, IMG_FORMAT_PNG) == IMG_OK) {
			VipsImage *back = vips_image_new_from_file(out, NULL);

			/* EXIF is kept (decode.c), with its orientation reset. */
			check(back && vips_image_get_orientation(back) == 1,
			      "cut-out's orientation is 1, so viewers do not turn it again");
			if (back)
				g_object_unref(back);
		} else {
			check(0, "cut-out of the oriented picture saves (%s)", img_errmsg());
		}
	}
	img_free(cut);
	img_free(im);
	g_free(buf);
	free(t);
	g_object_unref(tagged);
	g_object_unref(pic);
	g_object_unref(top);
	g_object_unref(bottom);
}

static void test_refusals(void)
{
	/* Busy content, so the compressed data is long enough to cut. */
	VipsImage *noise, *pic;
	struct img *im;
	img_status st;
	void *buf;
	size_t len;
	const char *p;

	vips_gaussnoise(&noise, 200, 150, "mean", 128.0, "sigma", 40.0, NULL);
	vips_cast(noise, &pic, VIPS_FORMAT_UCHAR, NULL);

	vips_jpegsave_buffer(pic, &buf, &len, NULL);
	im = decode(buf, len / 2, &st);
	check(st == IMG_ERR_CORRUPT && !im, "truncated JPEG refused as damaged (%s)", img_errmsg());
	check(!strchr(img_errmsg(), '\n') && strstr(img_errmsg(), "JPEG"),
	      "its message is one line naming the format");
	p = tmp_path("cut.jpg");
	write_file(p, buf, len / 2);
	st = img_load_file(p, &im);
	check(st == IMG_ERR_CORRUPT && !im, "truncated JPEG file refused as damaged");
	img_free(im);
	g_free(buf);

	vips_pngsave_buffer(pic, &buf, &len, NULL);
	im = decode(buf, len - len / 3, &st);
	check(st == IMG_ERR_CORRUPT && !im, "truncated PNG refused as damaged (%s)", img_errmsg());
	g_free(buf);

	p = tmp_path("notes.jpg");
	write_file(p, "just some text, named like a photo\n", 35);
	st = img_load_file(p, &im);
	check(st == IMG_ERR_NOT_IMAGE && !im, "text file refused as not an image (%s)", img_errmsg());

	p = tmp_path("numbers.png");
	write_file(p, "2 2\n1 2\n3 4\n", 12);
	st = img_load_file(p, &im);
	check(st == IMG_ERR_NOT_IMAGE, "a list of numbers is not an image either (%s)", img_errmsg());

	p = tmp_path("empty.png");
	write_file(p, "", 0);
	st = img_load_file(p, &im);
	check(st == IMG_ERR_NOT_IMAGE, "empty file refused as not an image (%s)", img_errmsg());

	static const unsigned char bmp[30] = {'B', 'M', 30, 0, 0, 0, 0, 0, 0, 0, 26};
	im = decode(bmp, sizeof bmp, &st);
	check(st == IMG_ERR_UNSUPPORTED, "BMP refused as unsupported (%s)", img_errmsg());

	st = img_load_file(tmp_path("absent.jpg"), &im);
	check(st == IMG_ERR_IO, "missing file is an i/o error (%s)", img_errmsg());
	st = img_load_file(tmpdir, &im);
	check(st == IMG_ERR_IO, "directory is an i/o error (%s)", img_errmsg());

	g_object_unref(pic);
	g_object_unref(noise);
	empty_tmpdir();
}

static void test_tensor(void)
{
	VipsImage *pic = solid(30, 20, 3, 0, 255, 51, 0);
	VipsImage *clear = solid(30, 20, 4, 0, 0, 0, 0);
	VipsImage *left = solid(20, 40, 3, 0, 0, 0, 0), *right = solid(20, 40, 3, 255, 255, 255, 0);
	VipsImage *halves;
	struct img *im;
	float t[3 * 8 * 16];
	int good = 1;

	im = decode_png(pic);
	check(im && img_to_tensor(im, 8, 16, t) == IMG_OK, "tensor of a flat colour");
	for (int i = 0; i < 8 * 16; i++)
		good &= t[i] == -0.5f && t[128 + i] == 0.5f && t[256 + i] > -0.3f - 1e-6f &&
			t[256 + i] < -0.3f + 1e-6f;
	check(good, "values are v/255 - 0.5, planar RGB: R %g G %g B %g", t[0], t[128], t[256]);
	img_free(im);

	im = decode_png(clear);
	check(im && img_bands(im) == 4, "alpha is kept on decode");
	good = im && img_to_tensor(im, 8, 16, t) == IMG_OK;
	for (int i = 0; good && i < 3 * 8 * 16; i++)
		good &= t[i] == 0.5f;
	check(good, "transparent pixels are flattened over white");
	img_free(im);

	vips_join(left, right, &halves, VIPS_DIRECTION_HORIZONTAL, NULL);
	im = decode_png(halves);
	check(im && img_to_tensor(im, 4, 4, t) == IMG_OK && t[0] == -0.5f && t[3] == 0.5f &&
		      t[12] == -0.5f && t[15] == 0.5f,
	      "rows run left to right: dark left half, light right half");
	img_free(im);

	g_object_unref(halves);
	g_object_unref(left);
	g_object_unref(right);
	g_object_unref(clear);
	g_object_unref(pic);
}

static void test_cutout(void)
{
	/* A 4 x 4 mask, transparent on the left half, opaque on the right. */
	static const float mask[16] = {0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1};
	VipsImage *pic = solid(300, 200, 3, 10, 20, 30, 0), *half = solid(300, 200, 4, 10, 20, 30, 128);
	struct img *im = decode_png(pic), *cut = NULL;
	const char *p = tmp_path("cut.png");
	double mid;

	check(img_cutout(im, mask, 4, 4, IMG_CUT_RGBA, &cut) == IMG_OK, "cut-out composes");
	check(cut && img_width(cut) == 300 && img_height(cut) == 200 && img_bands(cut) == 4,
	      "4x4 mask scaled to the picture's 300x200, RGBA");
	check(img_save(cut, p, IMG_FORMAT_PNG) == IMG_OK, "cut-out saves as PNG (%s)", img_errmsg());
	mid = pixel_of_file(p, 150, 100, 3);
	check(pixel_of_file(p, 5, 100, 3) == 0 && pixel_of_file(p, 294, 100, 3) == 255 && mid > 0 &&
		      mid < 255,
	      "alpha is 0 on the left, 255 on the right, in between at the centre (%g)", mid);
	check(pixel_of_file(p, 294, 100, 0) == 10 && pixel_of_file(p, 294, 100, 2) == 30,
	      "colours are the photo's");
	check(pixel_of_file(p, 5, 100, 0) == 0 && pixel_of_file(p, 5, 100, 2) == 0,
	      "fully transparent pixels have colour 0");
	img_free(cut);

	check(img_cutout(im, mask, 4, 4, IMG_CUT_MASK, &cut) == IMG_OK && img_bands(cut) == 1 &&
		      img_width(cut) == 300,
	      "mask alone is one band at the picture's size");
	check(img_save(cut, p, IMG_FORMAT_PNG) == IMG_OK && pixel_of_file(p, 5, 5, 0) == 0 &&
		      pixel_of_file(p, 294, 5, 0) == 255,
	      "mask PNG holds the mask");
	img_free(cut);
	img_free(im);

	im = decode_png(half);
	check(im && img_cutout(im, mask, 4, 4, IMG_CUT_RGBA, &cut) == IMG_OK &&
		      img_save(cut, p, IMG_FORMAT_WEBP) == IMG_OK && pixel_of_file(p, 294, 100, 3) == 128,
	      "a photo's own alpha multiplies the mask (lossless WebP keeps 128 exactly)");
	img_free(cut);
	img_free(im);

	g_object_unref(half);
	g_object_unref(pic);
	empty_tmpdir();
}

static void test_atomic_save(void)
{
	VipsImage *pic = solid(64, 48, 3, 1, 2, 3, 0), *wide = solid(17000, 2, 3, 1, 2, 3, 0);
	struct img *im = decode_png(pic), *big = decode_png(wide);
	const char *p = tmp_path("out.png");
	struct stat sb;
	FILE *f;
	char old[8] = "";

	check(img_save(im, p, IMG_FORMAT_PNG) == IMG_OK && stat(p, &sb) == 0 && count_entries() == 1,
	      "save writes the file and leaves nothing else");
	unlink(p);

	/* A directory in the way: the rename fails after the whole image
	 * has been written, so the temporary file must be cleaned away. */
	mkdir(p, 0755);
	check(img_save(im, p, IMG_FORMAT_PNG) == IMG_ERR_IO, "save over a directory fails (%s)",
	      img_errmsg());
	check(count_entries() == 1, "and leaves no temporary file behind");
	rmdir(p);

	write_file(p, "old", 3);
	check(img_save(big, p, IMG_FORMAT_WEBP) == IMG_ERR_UNSUPPORTED, "too wide for WebP fails (%s)",
	      img_errmsg());
	f = fopen(p, "rb");
	fread(old, 1, sizeof old - 1, f);
	fclose(f);
	check(!strcmp(old, "old") && count_entries() == 1, "a failed save leaves the old file as it was");
	unlink(p);

	check(img_save(im, tmp_path("missing/out.png"), IMG_FORMAT_PNG) == IMG_ERR_IO &&
		      count_entries() == 0,
	      "save into a missing folder fails and creates nothing (%s)", img_errmsg());

	img_free(big);
	img_free(im);
	g_object_unref(wide);
	g_object_unref(pic);
	empty_tmpdir();
}

static void test_formats(void)
{
	enum img_format f = IMG_FORMAT_PNG;

	check(!img_format_parse("WebP", &f) && f == IMG_FORMAT_WEBP && !strcmp(img_format_ext(f), "webp"),
	      "format names parse in any case");
	check(img_format_parse("gif", &f) == -1, "formats img_save cannot write are refused");
}

int main(void)
{
	if (!check(img_init() == IMG_OK, "img_init (%s)", img_errmsg()))
		return 1;
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	test_orientation();
	test_refusals();
	test_tensor();
	test_cutout();
	test_atomic_save();
	test_formats();
	empty_tmpdir();
	rmdir(tmpdir);
	if (failures)
		printf("# %d check(s) failed\n", failures);
	return failures != 0;
}
