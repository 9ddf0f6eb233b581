/*
 * fg_quality.c - how well img_foreground recovers a subject's own colours at
 * its soft edge, on composites made from real photos.
 *
 *   fg_quality MODEL.onnx PHOTO...
 *
 * Each photo is a known foreground F and the network's alpha of it (its mask
 * at 1024 x 1024 brought to the photo's size) a known alpha; each is put on
 * a strongly coloured background B, I = alpha F + (1 - alpha) B (8-bit,
 * rounded): a solid magenta, and the next photo of the list with its
 * channels turned (R, G, B -> B, R, G: textured and off-colour). Then F is
 * estimated from I and alpha alone, and compared with the true F over the
 * edge, the pixels with 0 < alpha < 1: the mean |F' - F| over the three
 * channels, in 1/255 units, for the estimate and for I itself (what a new
 * background shows without the estimation); and the same weighted by
 * alpha, the share of each pixel that shows on a new background. Prints a
 * Markdown table on stdout.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <vips/vips.h>

#include "img/img.h"
#include "nn/nn.h"

#define MAX_PHOTOS 16

static void die(const char *what, const char *why)
{
	fprintf(stderr, "fg_quality: %s: %s\n", what, why);
	exit(1);
}

/* An image's pixels (w x h x bands bytes, malloc'd), through a PNG. */
static unsigned char *pixels(const struct img *im, int bands)
{
	struct img_save_opts o = {.format = IMG_FORMAT_PNG};
	void *buf;
	size_t len;
	VipsImage *v, *mem;
	unsigned char *px;

	if (img_encode(im, &o, &buf, &len) != IMG_OK)
		die("encode", img_errmsg());
	if (!(v = vips_image_new_from_buffer(buf, len, "", NULL)) || !(mem = vips_image_copy_memory(v)) ||
	    mem->Bands != bands || mem->BandFmt != VIPS_FORMAT_UCHAR)
		die("decode", "not the expected pixels");
	px = malloc(VIPS_IMAGE_SIZEOF_IMAGE(mem));
	memcpy(px, VIPS_IMAGE_ADDR(mem, 0, 0), VIPS_IMAGE_SIZEOF_IMAGE(mem));
	g_object_unref(mem);
	g_object_unref(v);
	free(buf);
	return px;
}

/* An 8-bit RGB image of w x h pixels px, as a struct img (through a PNG). */
static struct img *from_pixels(const unsigned char *px, int w, int h)
{
	VipsImage *v = vips_image_new_from_memory_copy(px, (size_t)w * h * 3, w, h, 3, VIPS_FORMAT_UCHAR), *t;
	struct img *im = NULL;
	void *buf;
	size_t len;

	if (!v || vips_copy(v, &t, "interpretation", VIPS_INTERPRETATION_sRGB, NULL) ||
	    vips_pngsave_buffer(t, &buf, &len, "compression", 1, NULL))
		die("pixels", "cannot make the image");
	if (img_load_buffer(buf, len, &im) != IMG_OK)
		die("pixels", img_errmsg());
	g_free(buf);
	g_object_unref(t);
	g_object_unref(v);
	return im;
}

/* The photo's alpha: the network's mask at 1024 x 1024 at the photo's size. */
static struct img *alpha_of(nn_model *m, const struct img *im)
{
	enum { S = 1024 };
	struct nn_tensor x = {.dtype = NN_DTYPE_F32, .rank = 4, .dims = {1, 3, S, S}}, y = {0};
	float *in = malloc(sizeof *in * 3 * S * S);
	struct img *a = NULL;

	if (!in || img_to_tensor(im, S, S, in) != IMG_OK)
		die("tensor", img_errmsg());
	x.data = in;
	if (nn_run(m, &x, 1, &y, 1) != NN_OK)
		die("inference", nn_errmsg());
	if (img_mask_to_alpha(im, y.data, S, S, IMG_REFINE_NONE, &a) != IMG_OK)
		die("alpha", img_errmsg());
	nn_tensor_free(&y);
	free(in);
	return a;
}

struct errs {
	double est, raw, est_w, raw_w; /* mean |diff| in 1/255: plain, then weighted by alpha */
	long n;			       /* edge pixels */
};

/* F on background bg through alpha a (all w x h), then F estimated back. */
static struct errs measure(const unsigned char *f, const unsigned char *a, const unsigned char *bg, int w, int h)
{
	size_t n = (size_t)w * h;
	unsigned char *mix = malloc(n * 3), *est;
	struct img *im, *alpha8, *fg;
	struct errs e = {0};
	double wsum = 0;

	for (size_t i = 0; i < n; i++)
		for (int c = 0; c < 3; c++)
			mix[i * 3 + c] = (unsigned char)lround((a[i] * f[i * 3 + c] + (255 - a[i]) * bg[i * 3 + c]) / 255.0);
	im = from_pixels(mix, w, h);
	/* the alpha as an img: the mask of the same pixels */
	float *m = malloc(sizeof *m * n);
	for (size_t i = 0; i < n; i++)
		m[i] = a[i] / 255.0f;
	if (img_cutout(im, m, h, w, IMG_CUT_MASK, &alpha8) != IMG_OK)
		die("alpha", img_errmsg());
	free(m);
	if (img_foreground(im, alpha8, &fg) != IMG_OK)
		die("foreground", img_errmsg());
	est = pixels(fg, 3);
	for (size_t i = 0; i < n; i++) {
		if (a[i] == 0 || a[i] == 255)
			continue;
		double de = 0, dr = 0, t = a[i] / 255.0;
		for (int c = 0; c < 3; c++) {
			de += fabs((double)est[i * 3 + c] - f[i * 3 + c]) / 3;
			dr += fabs((double)mix[i * 3 + c] - f[i * 3 + c]) / 3;
		}
		e.est += de, e.raw += dr, e.est_w += t * de, e.raw_w += t * dr, wsum += t;
		e.n++;
	}
	if (e.n) {
		e.est /= e.n, e.raw /= e.n, e.est_w /= wsum, e.raw_w /= wsum;
	}
	free(mix), free(est);
	img_free(im), img_free(alpha8), img_free(fg);
	return e;
}

int main(int argc, char **argv)
{
	const char *outputs[] = {"output"};
	struct img *ph[MAX_PHOTOS];
	const char *names[MAX_PHOTOS];
	nn_model *model = NULL;
	int n = 0;

	if (argc < 3)
		die("usage", "fg_quality MODEL.onnx PHOTO...");
	if (img_init() != IMG_OK)
		die("img_init", img_errmsg());
	for (int i = 2; i < argc && n < MAX_PHOTOS; i++, n++) {
		if (img_load_file(argv[i], &ph[n]) != IMG_OK)
			die(argv[i], img_errmsg());
		names[n] = strrchr(argv[i], '/') ? strrchr(argv[i], '/') + 1 : argv[i];
	}
	nn_set_threads(0);
	if (nn_model_load_file(argv[1], &model) != NN_OK || nn_model_select_outputs(model, outputs, 1) != NN_OK)
		die(argv[1], nn_errmsg());

	printf("| photo | background | edge pixels | without: mean \\|I - F\\| | with: mean \\|F' - F\\| | "
	       "weighted by alpha: without | with |\n|---|---|---|---|---|---|---|\n");
	double sum[4] = {0};
	int rows = 0;
	for (int p = 0; p < n; p++) {
		int w = img_width(ph[p]), h = img_height(ph[p]);
		struct img *a_img = alpha_of(model, ph[p]);
		unsigned char *f = pixels(ph[p], 3), *a = pixels(a_img, 1), *bg = malloc((size_t)w * h * 3);

		for (int kind = 0; kind < 2; kind++) {
			if (kind == 0) {
				for (size_t i = 0; i < (size_t)w * h; i++)
					bg[i * 3] = 255, bg[i * 3 + 1] = 0, bg[i * 3 + 2] = 255;
			} else {
				/* the next photo at this one's longer side (repeated
				 * where it is shorter), channels turned */
				struct img *other = NULL, *src = ph[(p + 1) % n];
				unsigned char *op;
				if (img_thumbnail(src, VIPS_MAX(w, h), &other) != IMG_OK)
					die("background", img_errmsg());
				op = pixels(other, 3);
				int ow = img_width(other), oh = img_height(other);
				for (int y = 0; y < h; y++)
					for (int x = 0; x < w; x++) {
						const unsigned char *q = op + ((size_t)(y % oh) * ow + (x % ow)) * 3;
						unsigned char *d = bg + ((size_t)y * w + x) * 3;
						d[0] = q[2], d[1] = q[0], d[2] = q[1];
					}
				free(op);
				img_free(other);
			}
			struct errs e = measure(f, a, bg, w, h);
			printf("| %s | %s | %ld | %.1f | %.1f | %.1f | %.1f |\n", names[p],
			       kind ? "the next photo, channels turned" : "magenta", e.n, e.raw, e.est, e.raw_w, e.est_w);
			sum[0] += e.raw, sum[1] += e.est, sum[2] += e.raw_w, sum[3] += e.est_w;
			rows++;
		}
		free(f), free(a), free(bg);
		img_free(a_img);
	}
	for (int p = 0; p < n; p++)
		img_free(ph[p]);
	printf("| **mean** | | | %.1f | %.1f (%.0f %% lower) | %.1f | %.1f (%.0f %% lower) |\n", sum[0] / rows,
	       sum[1] / rows, 100 * (1 - sum[1] / sum[0]), sum[2] / rows, sum[3] / rows, 100 * (1 - sum[3] / sum[2]));
	nn_model_free(model);
	return 0;
}
