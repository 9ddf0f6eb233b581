/*
 * refine_quality.c - how well img_mask_to_alpha brings a coarse mask back to
 * a photo's full resolution, plain (IMG_REFINE_NONE) against guided
 * (IMG_REFINE_GUIDED), on real photos.
 *
 *   refine_quality MODEL.onnx PHOTO... [--sweep] [--time BIG.jpg]
 *
 * There is no hand-made matte for these photos, so the reference is the
 * network's own best: its mask at 1024 x 1024 (ISNet's native input), taken
 * to the photo's size (the photos here are smaller than 1024, so this is a
 * downscale and loses nothing). Two kinds of coarse mask are brought back up
 * with each method and compared with it:
 *
 *  - "net 512": the network run at 512 x 512 (petcut's preview size); this is
 *    what a user gets, but it mixes the network's own changes at a lower
 *    input size with the upscale.
 *  - "ref /4" and "ref /8": the reference itself, area-averaged down to a
 *    quarter (an eighth) of the photo's size: the factor between a 12 MP
 *    phone photo and the network's 1024 (512) mask. This isolates the
 *    upscale.
 *
 * Figures for each: mean |diff| over all pixels and within the edge band (the
 * pixels within 1% of the photo's longer side, at least 2 px, of the
 * reference's 0.5 contour), in 1/255 units; and the IoU of the two masks at
 * 0.5. Prints a Markdown table on stdout. --sweep prints, instead, the mean
 * figures of GUIDED over a grid of radius and eps, to choose the defaults.
 * --time BIG.jpg times both methods on that photo with a 1024 x 1024 mask.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <vips/vips.h>

#include "img/img.h"
#include "nn/nn.h"

#define MAX_PHOTOS 32

static char tmpdir[] = "/tmp/petcut-refine-quality-XXXXXX";

static void die(const char *fmt, const char *arg, const char *why)
{
	fprintf(stderr, "refine_quality: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, ": %s\n", why);
	exit(1);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ===== The network ===== */

/* The network's mask for a photo at size x size (size * size floats,
 * malloc'd). */
static float *net_mask(nn_model *m, const struct img *im, int size)
{
	struct nn_tensor x = {.dtype = NN_DTYPE_F32, .rank = 4, .dims = {1, 3, size, size}};
	struct nn_tensor y = {0};
	float *in = malloc(sizeof *in * 3 * size * size), *out;

	if (!in || img_to_tensor(im, size, size, in) != IMG_OK)
		die("%s", "tensor", img_errmsg());
	x.data = in;
	if (nn_run(m, &x, 1, &y, 1) != NN_OK)
		die("%s", "inference", nn_errmsg());
	out = malloc(sizeof *out * size * size);
	memcpy(out, y.data, sizeof *out * size * size);
	nn_tensor_free(&y);
	free(in);
	return out;
}

/* ===== Masks as floats in 0..1 at the photo's size ===== */

/* The pixels of an alpha (w * h floats in 0..1, malloc'd), through a PNG. */
static float *alpha_pixels(const struct img *a)
{
	char path[256];
	int w = img_width(a), h = img_height(a);
	float *px = malloc(sizeof *px * w * h);
	unsigned char *mem;
	VipsImage *v;
	size_t len;

	snprintf(path, sizeof path, "%s/a.png", tmpdir);
	if (img_save(a, path, IMG_FORMAT_PNG) != IMG_OK)
		die("%s", path, img_errmsg());
	v = vips_image_new_from_file(path, NULL);
	if (!v || !(mem = vips_image_write_to_memory(v, &len)) || len != (size_t)w * h)
		die("%s", path, "cannot read back");
	for (size_t i = 0; i < len; i++)
		px[i] = mem[i] / 255.0f;
	g_free(mem);
	g_object_unref(v);
	unlink(path);
	return px;
}

/* The mask mh x mw brought to the photo by img_mask_to_alpha. */
static float *upscale(const struct img *im, const float *mask, int mh, int mw, enum img_refine r,
		      const struct img_refine_opts *o)
{
	struct img *a = NULL;
	float *px;

	if (img_mask_to_alpha_opts(im, mask, mh, mw, r, o, &a) != IMG_OK)
		die("%s", "img_mask_to_alpha", img_errmsg());
	px = alpha_pixels(a);
	img_free(a);
	return px;
}

/* ref (w x h) area-averaged down by f: *lw x *lh floats, malloc'd. */
static float *shrink(const float *ref, int w, int h, int f, int *lw, int *lh)
{
	VipsImage *v = vips_image_new_from_memory(ref, sizeof *ref * w * h, w, h, 1, VIPS_FORMAT_FLOAT), *s;
	float *out;
	size_t len;

	*lw = (w + f / 2) / f;
	*lh = (h + f / 2) / f;
	if (!v || vips_resize(v, &s, (double)*lw / w, "vscale", (double)*lh / h, NULL) || s->Xsize != *lw ||
	    s->Ysize != *lh)
		die("%s", "shrink", vips_error_buffer());
	out = vips_image_write_to_memory(s, &len);
	g_object_unref(s);
	g_object_unref(v);
	return out; /* g_malloc'd; g_free and free are the same allocator here */
}

/* ===== Figures ===== */

struct figures {
	double mad, edge_mad, iou; /* mean |diff| (0..1), in the edge band, IoU at 0.5 */
};

/* The edge band of ref: pixels whose (2k + 1)^2 window holds both sides of
 * the 0.5 threshold (1 byte each, malloc'd); *n counts them. */
static unsigned char *edge_band(const float *ref, int w, int h, long *n)
{
	int k = (int)lrint(0.01 * (w > h ? w : h));
	double *sat = calloc((size_t)(w + 1) * (h + 1), sizeof *sat); /* summed-area table of ref >= 0.5 */
	unsigned char *band = malloc((size_t)w * h);

	k = k < 2 ? 2 : k;
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++)
			sat[(size_t)(y + 1) * (w + 1) + x + 1] = (ref[(size_t)y * w + x] >= 0.5f) +
								 sat[(size_t)y * (w + 1) + x + 1] +
								 sat[(size_t)(y + 1) * (w + 1) + x] -
								 sat[(size_t)y * (w + 1) + x];
	*n = 0;
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++) {
			int x0 = x - k < 0 ? 0 : x - k, x1 = x + k + 1 > w ? w : x + k + 1;
			int y0 = y - k < 0 ? 0 : y - k, y1 = y + k + 1 > h ? h : y + k + 1;
			double s = sat[(size_t)y1 * (w + 1) + x1] - sat[(size_t)y0 * (w + 1) + x1] -
				   sat[(size_t)y1 * (w + 1) + x0] + sat[(size_t)y0 * (w + 1) + x0];
			int area = (x1 - x0) * (y1 - y0);

			band[(size_t)y * w + x] = s > 0 && s < area;
			*n += band[(size_t)y * w + x];
		}
	free(sat);
	return band;
}

static struct figures compare(const float *t, const float *ref, const unsigned char *band, int w, int h)
{
	double sum = 0, esum = 0;
	long inter = 0, uni = 0, ne = 0;

	for (size_t i = 0; i < (size_t)w * h; i++) {
		double d = fabs((double)t[i] - ref[i]);
		int a = t[i] >= 0.5f, b = ref[i] >= 0.5f;

		sum += d;
		if (band[i]) {
			esum += d;
			ne++;
		}
		inter += a && b;
		uni += a || b;
	}
	return (struct figures){sum / ((double)w * h), ne ? esum / ne : 0, uni ? (double)inter / uni : 1};
}

/* ===== Main ===== */

/* One photo's masks, kept for the sweep. */
struct photo {
	const char *name;
	struct img *im;
	int w, h;
	float *ref, *net512; /* the network's mask at 512 x 512 */
	unsigned char *band;
	float *low[2]; /* ref / 4, ref / 8 */
	int lw[2], lh[2];
};

#define NPROTO 3
static const char *const protocols[NPROTO] = {"net 512", "ref /4", "ref /8"};

/* The coarse mask of protocol k for p and its size. */
static const float *coarse(const struct photo *p, int k, int *mh, int *mw)
{
	if (k == 0) {
		*mh = *mw = 512;
		return p->net512;
	}
	*mh = p->lh[k - 1];
	*mw = p->lw[k - 1];
	return p->low[k - 1];
}

static void time_big(const char *path)
{
	struct img *im = NULL, *a = NULL;
	float *mask = malloc(sizeof *mask * 1024 * 1024);
	double best[2] = {1e30, 1e30};

	if (img_load_file(path, &im) != IMG_OK)
		die("%s", path, img_errmsg());
	/* a disc, as a mask */
	for (int y = 0; y < 1024; y++)
		for (int x = 0; x < 1024; x++)
			mask[y * 1024 + x] = hypot(x - 512, y - 512) < 300 ? 1.0f : 0.0f;
	for (int r = 0; r < 2; r++)
		for (int i = 0; i < 5; i++) {
			double t0 = now_ms();

			if (img_mask_to_alpha(im, mask, 1024, 1024, r ? IMG_REFINE_GUIDED : IMG_REFINE_NONE, &a) !=
			    IMG_OK)
				die("%s", path, img_errmsg());
			t0 = now_ms() - t0;
			best[r] = t0 < best[r] ? t0 : best[r];
			img_free(a);
		}
	printf("\nimg_mask_to_alpha on %s (%dx%d), 1024x1024 mask, best of 5: NONE %.0f ms, GUIDED %.0f ms\n",
	       path, img_width(im), img_height(im), best[0], best[1]);
	img_free(im);
	free(mask);
}

int main(int argc, char **argv)
{
	static struct photo ph[MAX_PHOTOS];
	const char *model_path = NULL, *big = NULL;
	int n = 0, sweep = 0;
	nn_model *m = NULL;
	static const char *const outputs[] = {"output"};

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--sweep"))
			sweep = 1;
		else if (!strcmp(argv[i], "--time") && i + 1 < argc)
			big = argv[++i];
		else if (!model_path)
			model_path = argv[i];
		else if (n < MAX_PHOTOS)
			ph[n++].name = argv[i];
	}
	if (!model_path || (!n && !big)) {
		fprintf(stderr, "usage: refine_quality MODEL.onnx PHOTO... [--sweep] [--time BIG.jpg]\n");
		return 2;
	}
	if (img_init() != IMG_OK || !mkdtemp(tmpdir))
		die("%s", "start", img_errmsg());
	nn_set_threads(0);
	if (n && (nn_model_load_file(model_path, &m) != NN_OK || nn_model_select_outputs(m, outputs, 1) != NN_OK))
		die("%s", model_path, nn_errmsg());

	for (int i = 0; i < n; i++) {
		struct photo *p = &ph[i];
		float *m1024;
		long nb;

		if (img_load_file(p->name, &p->im) != IMG_OK)
			die("%s", p->name, img_errmsg());
		p->w = img_width(p->im);
		p->h = img_height(p->im);
		m1024 = net_mask(m, p->im, 1024);
		p->net512 = net_mask(m, p->im, 512);
		p->ref = upscale(p->im, m1024, 1024, 1024, IMG_REFINE_NONE, NULL);
		p->band = edge_band(p->ref, p->w, p->h, &nb);
		p->low[0] = shrink(p->ref, p->w, p->h, 4, &p->lw[0], &p->lh[0]);
		p->low[1] = shrink(p->ref, p->w, p->h, 8, &p->lw[1], &p->lh[1]);
		free(m1024);
		fprintf(stderr, "refine_quality: %s %dx%d, edge band %ld px\n", p->name, p->w, p->h, nb);
	}

	if (sweep && n) {
		static const int radii[] = {1, 2, 4};
		static const double epss[] = {1e-5, 1e-4, 1e-3};
		static const int clamps[] = {-1, 1};
		const int nr = sizeof radii / sizeof *radii, ne = sizeof epss / sizeof *epss;
		const int nc = sizeof clamps / sizeof *clamps, ng = 2;

		printf("| guide | radius | eps | clamp |");
		for (int q = 0; q < NPROTO; q++)
			printf(" %s mean / edge |", protocols[q]);
		printf("\n|---|---|---|---|---|---|---|\n");
		for (int c = -1; c < nr * ne * nc * ng; c++) {
			struct img_refine_opts o = {0};
			enum img_refine r = c < 0 ? IMG_REFINE_NONE : IMG_REFINE_GUIDED;

			if (c < 0) {
				printf("| NONE | | | | ");
			} else {
				o.guide = c / (nr * ne * nc) ? 3 : 1;
				o.radius = radii[c / (ne * nc) % nr];
				o.eps = epss[c / nc % ne];
				o.clamp = clamps[c % nc];
				printf("| %s | %d | %g | %d | ", o.guide == 3 ? "colour" : "luminance", o.radius, o.eps,
				       o.clamp);
			}
			for (int q = 0; q < NPROTO; q++) {
				double mad = 0, emad = 0;

				for (int i = 0; i < n; i++) {
					int mh, mw;
					const float *cm = coarse(&ph[i], q, &mh, &mw);
					float *t = upscale(ph[i].im, cm, mh, mw, r, &o);
					struct figures f = compare(t, ph[i].ref, ph[i].band, ph[i].w, ph[i].h);

					mad += f.mad / n;
					emad += f.edge_mad / n;
					free(t);
				}
				printf("%.2f / %.2f | ", 255 * mad, 255 * emad);
			}
			printf("\n");
			fflush(stdout);
		}
	} else if (n) {
		double tot[NPROTO][2][3] = {{{0}}};

		printf("| photo | size | coarse mask | mean \\|diff\\| NONE | GUIDED | edge-band \\|diff\\| NONE | GUIDED "
		       "| IoU NONE | GUIDED |\n");
		printf("|---|---|---|---|---|---|---|---|---|\n");
		for (int q = 0; q < NPROTO; q++) {
			for (int i = 0; i < n; i++) {
				struct figures f[2];
				int mh, mw;
				const float *c = coarse(&ph[i], q, &mh, &mw);
				const char *base = strrchr(ph[i].name, '/');

				for (int r = 0; r < 2; r++) {
					float *t = upscale(ph[i].im, c, mh, mw, r ? IMG_REFINE_GUIDED : IMG_REFINE_NONE,
							   NULL);

					f[r] = compare(t, ph[i].ref, ph[i].band, ph[i].w, ph[i].h);
					tot[q][r][0] += f[r].mad / n;
					tot[q][r][1] += f[r].edge_mad / n;
					tot[q][r][2] += f[r].iou / n;
					free(t);
				}
				printf("| %s | %dx%d | %s (%dx%d) | %.2f | %.2f | %.2f | %.2f | %.4f | %.4f |\n",
				       base ? base + 1 : ph[i].name, ph[i].w, ph[i].h, protocols[q], mw, mh,
				       255 * f[0].mad, 255 * f[1].mad, 255 * f[0].edge_mad, 255 * f[1].edge_mad,
				       f[0].iou, f[1].iou);
			}
			printf("| **mean** | | %s | **%.2f** | **%.2f** | **%.2f** | **%.2f** | **%.4f** | **%.4f** |\n",
			       protocols[q], 255 * tot[q][0][0], 255 * tot[q][1][0], 255 * tot[q][0][1],
			       255 * tot[q][1][1], tot[q][0][2], tot[q][1][2]);
		}
	}
	if (big)
		time_big(big);

	for (int i = 0; i < n; i++) {
		img_free(ph[i].im);
		free(ph[i].ref);
		free(ph[i].net512);
		free(ph[i].band);
		g_free(ph[i].low[0]);
		g_free(ph[i].low[1]);
	}
	nn_model_free(m);
	rmdir(tmpdir);
	return 0;
}
