/*
 * matte_quality.c - the tools of the bench's quality part (bench/run.sh):
 * composites whose alpha is known exactly, how far petcut's answers on them
 * are from it, a picture of the worst edge, and a timer.
 *
 *   matte_quality photo IN OUT.png
 *   matte_quality compose CUT.png BG BG2 DIR
 *   matte_quality measure CUT.png DIR REFINE...
 *   matte_quality strip OUT.png CUT.png DIR SIZE REFINE...
 *   matte_quality time FILE CMD [ARG...]
 *
 * photo: IN as 8-bit sRGB, upright, without a profile or alpha, so that
 * every image of the part is plain sRGB numbers and petcut converts none.
 *
 * compose: CUT is petcut's RGBA cut-out of a photo on a plain background:
 * its alpha is alpha0, its colours F0. BG and BG2 are scaled to cover the
 * cut-out's size and cropped to their middle (B and B'); writes DIR/comp.png,
 * I = alpha0 F0 + (1 - alpha0) B rounded to 8 bits, whose alpha is alpha0
 * exactly, and DIR/bg2.png, B' at I's exact size (petcut's --bg FILE then
 * draws it as it is, without scaling).
 *
 * measure: for each REFINE, DIR/mask-REFINE.png (petcut's alpha of I) and
 * DIR/out-REFINE.png (petcut's I on B') against alpha0 and against
 * alpha0 F0 + (1 - alpha0) B' (rounded); prints one line per REFINE:
 *   REFINE mad mad_band grad_band color_band color band_px
 * mad: mean |alpha - alpha0| over the image; mad_band: the same in the band
 * 0.05 < alpha0 < 0.95; grad_band: the mean over the band of
 * | |grad alpha| - |grad alpha0| |, the gradients by first derivatives of a
 * Gaussian of sigma 1.4 px (the filter of alphamatting.com's gradient error,
 * which sums the squared differences instead); color_band and color: the
 * mean |difference| of the composite on B' over R, G and B, in the band and
 * over the image; band_px: the band's pixels; iou: the IoU of alpha and
 * alpha0 thresholded at 0.5 (below 1 by much: the network took something
 * else for the subject). The differences in 1/255 units (the gradient per
 * pixel of distance).
 *
 * strip: the SIZE x SIZE window of DIR with the largest alpha error in the
 * band, summed over the REFINEs; writes OUT.png, a palette PNG: the ground
 * truth on B' and each REFINE's composite on B' side by side, under them
 * alpha0 and each REFINE's alpha, each column named.
 *
 * time: runs CMD with its standard output and error as they are, writes
 * "ms N" (wall) and "rss_kb N" (the child's peak resident set, from
 * wait4's rusage) to FILE, and exits with the command's status.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <vips/vips.h>

#define MAX_REFINES 8
#define GRAD_SIGMA 1.4
/* the band: 0.05 < alpha0 < 0.95, alpha0 in 8 bits */
#define BAND_LO 13
#define BAND_HI 242

static void die(const char *what, const char *why)
{
	fprintf(stderr, "matte_quality: %s: %s\n", what, why);
	exit(1);
}

/* ===== Images as plain 8-bit pixels ===== */

/* in as 8-bit sRGB with `bands` bands (1: its first band; 3: alpha
 * flattened on black; 4: RGBA as it is), upright, without a profile; a new
 * reference. Unrefs in. */
static VipsImage *plain(VipsImage *in, int bands, const char *what)
{
	VipsImage *t;

#define NEXT(call)                                                                                                     \
	do {                                                                                                           \
		if (call)                                                                                              \
			die(what, vips_error_buffer());                                                                \
		g_object_unref(in);                                                                                    \
		in = t;                                                                                                \
	} while (0)

	NEXT(vips_autorot(in, &t, NULL));
	if (bands != 1 && vips_image_get_typeof(in, VIPS_META_ICC_NAME))
		NEXT(vips_icc_transform(in, &t, "srgb", "embedded", TRUE, "depth", 8, NULL));
	if (bands == 1 && in->Bands > 1)
		NEXT(vips_extract_band(in, &t, 0, NULL));
	if (bands != 1 && in->Bands < 3)
		NEXT(vips_colourspace(in, &t, VIPS_INTERPRETATION_sRGB, NULL));
	if (bands == 3 && in->Bands == 4)
		NEXT(vips_flatten(in, &t, NULL));
	if (in->BandFmt != VIPS_FORMAT_UCHAR)
		NEXT(vips_cast(in, &t, VIPS_FORMAT_UCHAR, NULL));
	NEXT(vips_copy(in, &t, NULL));
#undef NEXT
	vips_image_remove(in, VIPS_META_ICC_NAME);
	if (in->Bands != bands)
		die(what, bands == 4 ? "not an RGBA image" : "unexpected bands");
	return in;
}

/* in's pixels as malloc'd bytes (in unreferenced); path names it in errors. */
static unsigned char *to_bytes(VipsImage *in, const char *path)
{
	unsigned char *mem, *px;
	size_t len;

	if (!(mem = vips_image_write_to_memory(in, &len)))
		die(path, vips_error_buffer());
	if (!(px = malloc(len)))
		die(path, "out of memory");
	memcpy(px, mem, len);
	g_free(mem);
	g_object_unref(in);
	return px;
}

/* path's pixels, w x h x bands bytes (malloc'd), as plain() makes them. */
static unsigned char *pixels(const char *path, int bands, int *w, int *h)
{
	VipsImage *in = vips_image_new_from_file(path, NULL);

	if (!in)
		die(path, vips_error_buffer());
	in = plain(in, bands, path);
	*w = in->Xsize;
	*h = in->Ysize;
	return to_bytes(in, path);
}

/* Writes w x h x bands bytes as a PNG (a palette one when palette). */
static void save_png(const unsigned char *px, int w, int h, int bands, const char *path, int palette)
{
	VipsImage *v = vips_image_new_from_memory(px, (size_t)w * h * bands, w, h, bands, VIPS_FORMAT_UCHAR), *t;
	int rc;

	if (!v || vips_copy(v, &t, "interpretation", bands == 1 ? VIPS_INTERPRETATION_B_W : VIPS_INTERPRETATION_sRGB,
			    NULL))
		die(path, vips_error_buffer());
	rc = palette ? vips_pngsave(t, path, "palette", TRUE, "effort", 10, "strip", TRUE, NULL)
		     : vips_pngsave(t, path, "compression", 1, "strip", TRUE, NULL);
	if (rc)
		die(path, vips_error_buffer());
	g_object_unref(t);
	g_object_unref(v);
}

/* path as 8-bit sRGB scaled to cover w x h and cropped to its middle:
 * w x h x 3 bytes, malloc'd. */
static unsigned char *cover(const char *path, int w, int h)
{
	VipsImage *in = vips_image_new_from_file(path, NULL), *t;

	if (!in)
		die(path, vips_error_buffer());
	in = plain(in, 3, path);
	if (vips_thumbnail_image(in, &t, w, "height", h, "crop", VIPS_INTERESTING_CENTRE, "size", VIPS_SIZE_BOTH,
				 NULL))
		die(path, vips_error_buffer());
	g_object_unref(in);
	if (t->Xsize != w || t->Ysize != h || t->Bands != 3)
		die(path, "did not scale to the composite's size");
	return to_bytes(t, path);
}

/* DIR/NAME */
static const char *in_dir(const char *dir, const char *name)
{
	static char buf[4][4096];
	static int next;
	char *b = buf[next++ % 4];

	snprintf(b, sizeof buf[0], "%s/%s", dir, name);
	return b;
}

/* ===== The ground truth ===== */

/* The RGBA cut-out: alpha0 (w x h) and F0 (w x h x 3), malloc'd. */
static void ground_truth(const char *cut_path, unsigned char **alpha0, unsigned char **f0, int *w, int *h)
{
	unsigned char *cut = pixels(cut_path, 4, w, h);
	size_t n = (size_t)*w * *h;

	*alpha0 = malloc(n);
	*f0 = malloc(n * 3);
	if (!*alpha0 || !*f0)
		die(cut_path, "out of memory");
	for (size_t i = 0; i < n; i++) {
		(*alpha0)[i] = cut[i * 4 + 3];
		memcpy(*f0 + i * 3, cut + i * 4, 3);
	}
	free(cut);
}

/* alpha F + (1 - alpha) B, rounded, into out (n pixels). */
static void mix(const unsigned char *a, const unsigned char *f, const unsigned char *b, size_t n, unsigned char *out)
{
	for (size_t i = 0; i < n; i++)
		for (int c = 0; c < 3; c++)
			out[i * 3 + c] =
				(unsigned char)lround((a[i] * f[i * 3 + c] + (255 - a[i]) * b[i * 3 + c]) / 255.0);
}

static int compose(const char *cut_path, const char *bg, const char *bg2, const char *dir)
{
	unsigned char *a0, *f0, *b, *b2, *comp;
	int w, h;

	ground_truth(cut_path, &a0, &f0, &w, &h);
	b = cover(bg, w, h);
	b2 = cover(bg2, w, h);
	comp = malloc((size_t)w * h * 3);
	if (!comp)
		die("compose", "out of memory");
	mix(a0, f0, b, (size_t)w * h, comp);
	save_png(comp, w, h, 3, in_dir(dir, "comp.png"), 0);
	save_png(b2, w, h, 3, in_dir(dir, "bg2.png"), 0);
	printf("%dx%d\n", w, h);
	free(a0), free(f0), free(b), free(b2), free(comp);
	return 0;
}

/* ===== Figures ===== */

/* out[x] = sum over k of in[x + k * step] k[...] along rows (step 1) or
 * columns (step w), the edges repeated. */
static void convolve(const float *in, float *out, int w, int h, const double *k, int r, int along_rows)
{
#pragma omp parallel for schedule(static)
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++) {
			double s = 0;

			for (int j = -r; j <= r; j++) {
				int xx = along_rows ? x + j : x, yy = along_rows ? y : y + j;

				xx = xx < 0 ? 0 : xx >= w ? w - 1 : xx;
				yy = yy < 0 ? 0 : yy >= h ? h - 1 : yy;
				s += k[j + r] * in[(size_t)yy * w + xx];
			}
			out[(size_t)y * w + x] = (float)s;
		}
}

/* |grad a| (w x h floats, malloc'd; a in 8 bits, so 1/255 per pixel):
 * first derivatives of a Gaussian of sigma GRAD_SIGMA, each smoothed across
 * by the Gaussian itself. */
static float *grad_mag(const unsigned char *a, int w, int h)
{
	enum { R = 5 }; /* ceil(3.5 sigma) */
	double g[2 * R + 1], d[2 * R + 1], gs = 0, ds = 0;
	size_t n = (size_t)w * h;
	float *f = malloc(n * sizeof *f), *t = malloc(n * sizeof *t), *gx = malloc(n * sizeof *gx),
	      *gy = malloc(n * sizeof *gy);

	if (!f || !t || !gx || !gy)
		die("gradient", "out of memory");
	for (int j = -R; j <= R; j++) {
		g[j + R] = exp(-j * j / (2 * GRAD_SIGMA * GRAD_SIGMA));
		gs += g[j + R];
	}
	for (int j = -R; j <= R; j++) {
		g[j + R] /= gs;
		ds += (double)j * j * g[j + R];
	}
	/* scaled so that a ramp of slope 1 gives 1 */
	for (int j = -R; j <= R; j++)
		d[j + R] = j * g[j + R] / ds;
	for (size_t i = 0; i < n; i++)
		f[i] = a[i];
	convolve(f, t, w, h, g, R, 0);
	convolve(t, gx, w, h, d, R, 1);
	convolve(f, t, w, h, g, R, 1);
	convolve(t, gy, w, h, d, R, 0);
	for (size_t i = 0; i < n; i++)
		f[i] = hypotf(gx[i], gy[i]);
	free(t), free(gx), free(gy);
	return f;
}

static int in_band(unsigned char a0)
{
	return a0 >= BAND_LO && a0 <= BAND_HI;
}

static int measure(const char *cut_path, const char *dir, int nr, char **refines)
{
	unsigned char *a0, *f0, *b2, *gt;
	int w, h, bw, bh;
	size_t n;
	float *g0;
	long band = 0;

	ground_truth(cut_path, &a0, &f0, &w, &h);
	n = (size_t)w * h;
	b2 = pixels(in_dir(dir, "bg2.png"), 3, &bw, &bh);
	if (bw != w || bh != h)
		die(in_dir(dir, "bg2.png"), "not the cut-out's size");
	gt = malloc(n * 3);
	if (!gt)
		die("measure", "out of memory");
	mix(a0, f0, b2, n, gt);
	g0 = grad_mag(a0, w, h);
	for (size_t i = 0; i < n; i++)
		band += in_band(a0[i]);
	for (int r = 0; r < nr; r++) {
		char name[256];
		unsigned char *m, *out;
		int mw, mh, ow, oh;
		float *g;
		double mad = 0, mad_b = 0, grad_b = 0, col = 0, col_b = 0;
		long inter = 0, uni = 0;

		snprintf(name, sizeof name, "mask-%s.png", refines[r]);
		m = pixels(in_dir(dir, name), 1, &mw, &mh);
		snprintf(name, sizeof name, "out-%s.png", refines[r]);
		out = pixels(in_dir(dir, name), 3, &ow, &oh);
		if (mw != w || mh != h || ow != w || oh != h)
			die(dir, "petcut's outputs are not the composite's size");
		g = grad_mag(m, w, h);
		for (size_t i = 0; i < n; i++) {
			double da = abs(m[i] - a0[i]), dc = 0;

			for (int c = 0; c < 3; c++)
				dc += abs(out[i * 3 + c] - gt[i * 3 + c]) / 3.0;
			mad += da;
			col += dc;
			inter += m[i] >= 128 && a0[i] >= 128;
			uni += m[i] >= 128 || a0[i] >= 128;
			if (in_band(a0[i])) {
				mad_b += da;
				grad_b += fabsf(g[i] - g0[i]);
				col_b += dc;
			}
		}
		printf("%s %.3f %.3f %.3f %.3f %.3f %ld %.4f\n", refines[r], mad / n, band ? mad_b / band : 0,
		       band ? grad_b / band : 0, band ? col_b / band : 0, col / n, band, uni ? (double)inter / uni : 1);
		free(m), free(out), free(g);
	}
	free(a0), free(f0), free(b2), free(gt), free(g0);
	return 0;
}

/* ===== The strip ===== */

/* A column's name, white on dark grey, tw wide: tw x *th x 3 bytes. */
static unsigned char *label(const char *text, int tw, int *th)
{
	VipsImage *t = NULL;
	unsigned char *px, *mem = NULL;
	size_t len;
	int lh = 22;

	*th = lh;
	px = malloc((size_t)tw * lh * 3);
	if (!px)
		die("label", "out of memory");
	memset(px, 48, (size_t)tw * lh * 3);
	/* without fonts the column stays unnamed */
	if (vips_text(&t, text, "font", "sans 11", "dpi", 96, NULL) || t->BandFmt != VIPS_FORMAT_UCHAR ||
	    !(mem = vips_image_write_to_memory(t, &len))) {
		vips_error_clear();
		if (t)
			g_object_unref(t);
		return px;
	}
	for (int y = 0; y < t->Ysize && y + 4 < lh; y++)
		for (int x = 0; x < t->Xsize && x + 6 < tw; x++) {
			int v = mem[(size_t)y * t->Xsize + x];
			unsigned char *d = px + ((size_t)(y + 4) * tw + x + 6) * 3;

			for (int c = 0; c < 3; c++)
				d[c] = (unsigned char)((v * 255 + (255 - v) * 48) / 255);
		}
	g_free(mem);
	g_object_unref(t);
	return px;
}

/* Copies the s x s window at (x0, y0) of src (w wide, bands bands) into dst
 * (dw wide, 3 bands) at (dx, dy). */
static void blit(const unsigned char *src, int w, int bands, int x0, int y0, int s, unsigned char *dst, int dw,
		 int dx, int dy)
{
	for (int y = 0; y < s; y++)
		for (int x = 0; x < s; x++) {
			const unsigned char *p = src + ((size_t)(y0 + y) * w + x0 + x) * bands;
			unsigned char *d = dst + ((size_t)(dy + y) * dw + dx + x) * 3;

			for (int c = 0; c < 3; c++)
				d[c] = p[bands == 1 ? 0 : c];
		}
}

static int strip(const char *out_path, const char *cut_path, const char *dir, int size, int nr, char **refines)
{
	unsigned char *a0, *f0, *b2, *gt, *m[MAX_REFINES], *o[MAX_REFINES], *img;
	int w, h, bw, bh, x0 = 0, y0 = 0, cols = nr + 1, lh = 0, iw, ih;
	double *sat, best = -1;
	size_t n;

	ground_truth(cut_path, &a0, &f0, &w, &h);
	n = (size_t)w * h;
	b2 = pixels(in_dir(dir, "bg2.png"), 3, &bw, &bh);
	gt = malloc(n * 3);
	if (!gt || bw != w || bh != h)
		die(dir, "bad background");
	mix(a0, f0, b2, n, gt);
	for (int r = 0; r < nr; r++) {
		char name[256];
		int mw, mh;

		snprintf(name, sizeof name, "mask-%s.png", refines[r]);
		m[r] = pixels(in_dir(dir, name), 1, &mw, &mh);
		if (mw != w || mh != h)
			die(name, "not the composite's size");
		snprintf(name, sizeof name, "out-%s.png", refines[r]);
		o[r] = pixels(in_dir(dir, name), 3, &mw, &mh);
		if (mw != w || mh != h)
			die(name, "not the composite's size");
	}
	size = size > w ? w : size;
	size = size > h ? h : size;

	/* the window of the largest band error: a summed-area table of it */
	sat = calloc((size_t)(w + 1) * (h + 1), sizeof *sat);
	if (!sat)
		die("strip", "out of memory");
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++) {
			size_t i = (size_t)y * w + x;
			double e = 0;

			if (in_band(a0[i]))
				for (int r = 0; r < nr; r++)
					e += abs(m[r][i] - a0[i]);
			sat[(size_t)(y + 1) * (w + 1) + x + 1] =
				e + sat[(size_t)y * (w + 1) + x + 1] + sat[(size_t)(y + 1) * (w + 1) + x] -
				sat[(size_t)y * (w + 1) + x];
		}
	for (int y = 0; y + size <= h; y += 4)
		for (int x = 0; x + size <= w; x += 4) {
			double s = sat[(size_t)(y + size) * (w + 1) + x + size] - sat[(size_t)y * (w + 1) + x + size] -
				   sat[(size_t)(y + size) * (w + 1) + x] + sat[(size_t)y * (w + 1) + x];

			if (s > best)
				best = s, x0 = x, y0 = y;
		}
	free(sat);

	/* columns: the ground truth, then each refinement; rows: on B', alpha */
	unsigned char *lab = label("ground truth", size, &lh);
	iw = cols * size + (cols - 1) * 4;
	ih = lh + 2 * size + 4;
	img = malloc((size_t)iw * ih * 3);
	if (!img)
		die("strip", "out of memory");
	memset(img, 255, (size_t)iw * ih * 3);
	for (int c = 0; c < cols; c++) {
		int dx = c * (size + 4);

		if (c) {
			char text[128];

			free(lab);
			snprintf(text, sizeof text, "--refine %s", refines[c - 1]);
			lab = label(text, size, &lh);
		}
		for (int y = 0; y < lh; y++)
			memcpy(img + ((size_t)y * iw + dx) * 3, lab + (size_t)y * size * 3, (size_t)size * 3);
		blit(c ? o[c - 1] : gt, w, 3, x0, y0, size, img, iw, dx, lh);
		blit(c ? m[c - 1] : a0, w, 1, x0, y0, size, img, iw, dx, lh + size + 4);
	}
	free(lab);
	save_png(img, iw, ih, 3, out_path, 1);
	printf("window %d %d %d\n", x0, y0, size);
	for (int r = 0; r < nr; r++)
		free(m[r]), free(o[r]);
	free(a0), free(f0), free(b2), free(gt), free(img);
	return 0;
}

/* ===== The timer ===== */

static int timed(const char *file, char **argv)
{
	struct timespec t0, t1;
	struct rusage ru;
	int status;
	pid_t pid;
	FILE *f;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid = fork();
	if (pid < 0)
		die("fork", "failed");
	if (pid == 0) {
		execvp(argv[0], argv);
		perror(argv[0]);
		_exit(127);
	}
	if (wait4(pid, &status, 0, &ru) != pid)
		die("wait4", "failed");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (!(f = fopen(file, "w")))
		die(file, "cannot write");
	fprintf(f, "ms %.0f\nrss_kb %ld\n", (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6,
		ru.ru_maxrss);
	fclose(f);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

/* ===== Main ===== */

/* libvips' warnings on the packages' photos (an EXIF resolution unit it
 * does not know) say nothing about the figures */
static void quiet(const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer data)
{
}

static void usage(void)
{
	fprintf(stderr, "usage: matte_quality photo IN OUT.png\n"
			"       matte_quality compose CUT.png BG BG2 DIR\n"
			"       matte_quality measure CUT.png DIR REFINE...\n"
			"       matte_quality strip OUT.png CUT.png DIR SIZE REFINE...\n"
			"       matte_quality time FILE CMD [ARG...]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";

	if (!strcmp(cmd, "time") && argc >= 4)
		return timed(argv[2], argv + 3);
	if (VIPS_INIT(argv[0]))
		die("vips", vips_error_buffer());
	g_log_set_handler("VIPS", G_LOG_LEVEL_WARNING, quiet, NULL);
	if (!strcmp(cmd, "photo") && argc == 4) {
		int w, h;
		unsigned char *px = pixels(argv[2], 3, &w, &h);

		save_png(px, w, h, 3, argv[3], 0);
		free(px);
		return 0;
	}
	if (!strcmp(cmd, "compose") && argc == 6)
		return compose(argv[2], argv[3], argv[4], argv[5]);
	if (!strcmp(cmd, "measure") && argc >= 5 && argc - 4 <= MAX_REFINES)
		return measure(argv[2], argv[3], argc - 4, argv + 4);
	if (!strcmp(cmd, "strip") && argc >= 7 && argc - 6 <= MAX_REFINES && atoi(argv[5]) > 0)
		return strip(argv[2], argv[3], argv[4], atoi(argv[5]), argc - 6, argv + 6);
	usage();
	return 2;
}
