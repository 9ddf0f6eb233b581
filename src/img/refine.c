/*
 * refine.c - the network's mask to an alpha channel at the photo's size.
 *
 * The network sees the photo at 1024 x 1024 (or 512 x 512) whatever its size,
 * so a 12 MP phone photo gets a mask four to eight times coarser than itself.
 * Two ways back to full resolution:
 *
 *  - IMG_REFINE_NONE: bilinear interpolation of the mask, pixel centres
 *    aligned. Edges come out as soft as the mask is coarse.
 *  - IMG_REFINE_GUIDED: the fast guided filter (He, Sun and Tang, "Guided
 *    Image Filtering", TPAMI 2013; He and Sun, "Fast Guided Filter", 2015).
 *    At the mask's resolution, every window of the photo I explains the
 *    mask p as a linear function a . I + b (least squares, regularised by
 *    eps); the coefficients, averaged over the windows that cover a pixel,
 *    are interpolated bilinearly to full resolution and applied to the
 *    full-resolution pixel there. Where the photo has an edge inside a
 *    window, the mask follows the photo's own sharp edge instead of its
 *    blurry upscale; where the photo is flat, the result is the smoothed
 *    mask. The guide is the photo's colour (R, G, B: the 3 x 3 form of the
 *    filter), which tells fur from a background of the same brightness;
 *    luminance alone is an option, and measured clearly worse. The result is
 *    then held within the mask's own range over a small window (where the
 *    mask is sure, near 0 or 1 all around, so is the alpha), so that a model
 *    fitted across an edge cannot spread the subject into background of a
 *    similar colour. All the filtering happens at the low resolution, so a
 *    12 MP photo costs one pass over its pixels.
 *
 *  - IMG_REFINE_MATTING ("fine edges"): NONE's alpha, except in a band
 *    around the mask's edge where the alpha is solved from the photo's
 *    colours by closed-form matting (matting.c).
 *
 * NONE and GUIDED work on float planes in C: the low-resolution grid is the
 * mask's own (never more than the photo's size; libvips resamples the mask
 * and the photo to it), box means are running sums, and the full-resolution
 * pass runs over rows in parallel with OpenMP, writing the 8-bit alpha
 * directly.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <vips/vips.h>

#include "img/img_int.h"

/* Defaults of the guided filter, chosen on real photos (BENCHMARKS.md, "Mask
 * refinement"): the window radius in pixels of the low-resolution grid, and
 * the regulariser added to the guide's variance (colours in 0..1). */
#define REFINE_RADIUS 1
#define REFINE_EPS 1e-4
/* and the radius of the clamp to the mask's local range */
#define REFINE_CLAMP 1
/* and whether the guide is the photo's colour (else its luminance) */
#define REFINE_COLOR 1
/* a mask value this close to 0 or 1 over the whole clamp window is certain */
#define REFINE_SURE 0.1f

/* Luminance weights (Rec. 601) over 255, so that I is in 0..1. */
#define LUM_R (0.299f / 255.0f)
#define LUM_G (0.587f / 255.0f)
#define LUM_B (0.114f / 255.0f)

/* ===== Float planes ===== */

/* dst = the mean of src over the (2r + 1) x (2r + 1) window around each
 * pixel; windows are cut at the borders and average what is inside. tmp holds
 * w * h floats, col w doubles. src and dst may not overlap. */
static void box_mean(const float *src, float *dst, int w, int h, int r, float *tmp, double *col)
{
	/* Rows: running sum over [x - r, x + r]. */
	for (int y = 0; y < h; y++) {
		const float *s = src + (size_t)y * w;
		float *t = tmp + (size_t)y * w;
		double sum = 0;

		for (int x = 0; x <= r && x < w; x++)
			sum += s[x];
		for (int x = 0; x < w; x++) {
			int lo = x - r < 0 ? 0 : x - r, hi = x + r >= w ? w - 1 : x + r;

			t[x] = (float)(sum / (hi - lo + 1));
			if (x + r + 1 < w)
				sum += s[x + r + 1];
			if (x - r >= 0)
				sum -= s[x - r];
		}
	}
	/* Columns: running sums of whole rows of tmp. */
	for (int x = 0; x < w; x++)
		col[x] = 0;
	for (int y = 0; y <= r && y < h; y++)
		for (int x = 0; x < w; x++)
			col[x] += tmp[(size_t)y * w + x];
	for (int y = 0; y < h; y++) {
		int lo = y - r < 0 ? 0 : y - r, hi = y + r >= h ? h - 1 : y + r;
		double inv = 1.0 / (hi - lo + 1);
		float *d = dst + (size_t)y * w;

		for (int x = 0; x < w; x++)
			d[x] = (float)(col[x] * inv);
		if (y + r + 1 < h) {
			const float *add = tmp + (size_t)(y + r + 1) * w;

			for (int x = 0; x < w; x++)
				col[x] += add[x];
		}
		if (y - r >= 0) {
			const float *sub = tmp + (size_t)(y - r) * w;

			for (int x = 0; x < w; x++)
				col[x] -= sub[x];
		}
	}
}

/* lo and hi = the least and greatest value of src over the (2r + 1) x
 * (2r + 1) window around each pixel (cut at the borders). tmp holds 2 * w * h
 * floats. */
static void box_range(const float *src, float *lo, float *hi, int w, int h, int r, float *tmp)
{
	float *tlo = tmp, *thi = tmp + (size_t)w * h;

	for (int y = 0; y < h; y++) {
		const float *s = src + (size_t)y * w;

		for (int x = 0; x < w; x++) {
			int x0 = x - r < 0 ? 0 : x - r, x1 = x + r >= w ? w - 1 : x + r;
			float mn = s[x0], mx = s[x0];

			for (int k = x0 + 1; k <= x1; k++) {
				mn = s[k] < mn ? s[k] : mn;
				mx = s[k] > mx ? s[k] : mx;
			}
			tlo[(size_t)y * w + x] = mn;
			thi[(size_t)y * w + x] = mx;
		}
	}
	for (int y = 0; y < h; y++) {
		int y0 = y - r < 0 ? 0 : y - r, y1 = y + r >= h ? h - 1 : y + r;

		for (int x = 0; x < w; x++) {
			float mn = tlo[(size_t)y0 * w + x], mx = thi[(size_t)y0 * w + x];

			for (int k = y0 + 1; k <= y1; k++) {
				mn = tlo[(size_t)k * w + x] < mn ? tlo[(size_t)k * w + x] : mn;
				mx = thi[(size_t)k * w + x] > mx ? thi[(size_t)k * w + x] : mx;
			}
			lo[(size_t)y * w + x] = mn;
			hi[(size_t)y * w + x] = mx;
		}
	}
}

int img_axis_init(struct img_axis *a, int n, int m)
{
	double scale = (double)m / n;

	a->i0 = malloc(sizeof *a->i0 * n);
	a->i1 = malloc(sizeof *a->i1 * n);
	a->wt = malloc(sizeof *a->wt * n);
	if (!a->i0 || !a->i1 || !a->wt)
		return -1;
	for (int i = 0; i < n; i++) {
		double s = (i + 0.5) * scale - 0.5;
		int k;

		if (s < 0)
			s = 0;
		if (s > m - 1)
			s = m - 1;
		k = (int)s;
		a->i0[i] = k;
		a->i1[i] = k + 1 < m ? k + 1 : k;
		a->wt[i] = (float)(s - k);
	}
	return 0;
}

void img_axis_free(struct img_axis *a)
{
	free(a->i0);
	free(a->i1);
	free(a->wt);
}

/* ===== The full-resolution pass ===== */

/* The low-resolution planes the full-resolution pass interpolates. */
struct planes {
	const float *a[3];    /* alpha = a . guide + b; no a[0]: alpha = b */
	const float *b;
	const float *lo, *hi; /* then clamped to lo..hi (NULL: 0..1) */
	int color;	      /* the guide is R, G, B (a[0..2]), else luminance (a[0]) */
};

enum { PL_A0, PL_A1, PL_A2, PL_B, PL_LO, PL_HI, PL_COUNT };

/* apply_full's row where alpha is b alone (a cut-out without refinement):
 * the same arithmetic in a loop of its own, which the compiler keeps tight,
 * the step from each low-resolution column to the next (d, lw floats: the
 * same for every pixel between them) taken once. */
static void row_of_b(const float *rb, float *d, int lw, const struct img_axis *ax, const unsigned char *px, int bands,
		     int W, unsigned char *o)
{
	for (int k = 0; k < lw; k++)
		d[k] = rb[k + 1 < lw ? k + 1 : k] - rb[k]; /* img_axis_init's i1 of i0 = k */
	for (int x = 0; x < W; x++) {
		int k0 = ax->i0[x];
		float q = rb[k0] + ax->wt[x] * d[k0];

		q = q < 0 ? 0 : q > 1 ? 1 : q;
		q *= bands == 4 ? (float)px[(size_t)x * 4 + 3] : 255.0f;
		o[x] = (unsigned char)(q + 0.5f);
	}
}

/* Writes alpha = round(255 * clamp(a . I + b, lo, hi)) (times the photo's
 * alpha / 255 when it has one) into out, the planes being lw x lh and
 * interpolated bilinearly to the photo's size, I the photo's luminance or its
 * colour in 0..1.
 * Returns -1 if memory ran out. */
static int apply_full(VipsImage *pix, const struct planes *pl, int lw, int lh, VipsImage *out)
{
	const float *src[PL_COUNT] = {pl->a[0], pl->a[1], pl->a[2], pl->b, pl->lo, pl->hi};
	int W = pix->Xsize, H = pix->Ysize, bands = pix->Bands;
	struct img_axis ax = {0}, ay = {0};
	int failed = 0;

	if (img_axis_init(&ax, W, lw) || img_axis_init(&ay, H, lh)) {
		img_axis_free(&ax);
		img_axis_free(&ay);
		return -1;
	}
#pragma omp parallel
	{
		float *rows = malloc(sizeof *rows * lw * PL_COUNT);
		float *ra = rows, *rg = rows + lw, *rbl = rows + 2 * lw, *rb = rows + 3 * lw;
		float *rlo = rows + 4 * lw, *rhi = rows + 5 * lw;

		if (!rows) {
#pragma omp atomic write
			failed = 1;
		}
#pragma omp for schedule(static)
		for (int y = 0; y < H; y++) {
			const unsigned char *px = VIPS_IMAGE_ADDR(pix, 0, y);
			unsigned char *o = VIPS_IMAGE_ADDR(out, 0, y);
			float wy = ay.wt[y];

			if (!rows)
				continue;
			/* The rows of the low-resolution planes at this y, then
			 * along x for each output pixel. */
			for (int k = 0; k < PL_COUNT; k++) {
				const float *s0, *s1;
				float *r = rows + (size_t)k * lw;

				if (!src[k])
					continue;
				s0 = src[k] + (size_t)ay.i0[y] * lw;
				s1 = src[k] + (size_t)ay.i1[y] * lw;
				for (int x = 0; x < lw; x++)
					r[x] = s0[x] + wy * (s1[x] - s0[x]);
			}
			if (!src[PL_A0] && !src[PL_LO]) { /* alpha = b: no guide, no bounds */
				row_of_b(rb, ra, lw, &ax, px, bands, W, o);
				continue;
			}
			for (int x = 0; x < W; x++) {
				const unsigned char *p = px + (size_t)x * bands;
				int k0 = ax.i0[x], k1 = ax.i1[x];
				float wx = ax.wt[x], lo = 0, hi = 1;
				float q = rb[k0] + wx * (rb[k1] - rb[k0]);

				if (pl->color) {
					q += (ra[k0] + wx * (ra[k1] - ra[k0])) * (p[0] * (1.0f / 255)) +
					     (rg[k0] + wx * (rg[k1] - rg[k0])) * (p[1] * (1.0f / 255)) +
					     (rbl[k0] + wx * (rbl[k1] - rbl[k0])) * (p[2] * (1.0f / 255));
				} else if (src[PL_A0]) {
					float lum = LUM_R * p[0] + LUM_G * p[1] + LUM_B * p[2];

					q += (ra[k0] + wx * (ra[k1] - ra[k0])) * lum;
				}
				if (src[PL_LO]) {
					lo = rlo[k0] + wx * (rlo[k1] - rlo[k0]);
					hi = rhi[k0] + wx * (rhi[k1] - rhi[k0]);
				}
				q = q < lo ? lo : q > hi ? hi : q;
				q *= bands == 4 ? (float)p[3] : 255.0f;
				o[x] = (unsigned char)(q + 0.5f);
			}
		}
		free(rows);
	}
	img_axis_free(&ax);
	img_axis_free(&ay);
	return failed ? -1 : 0;
}

/* ===== The guided filter at low resolution ===== */

/* From the guide I and the mask p (n = lw * lh floats each), computes the
 * averaged coefficients into A and B. Returns -1 if memory ran out. */
static int guided_coeffs(const float *I, const float *p, int lw, int lh, int r, double eps, float *A, float *B)
{
	size_t n = (size_t)lw * lh;
	float *buf = malloc(sizeof *buf * n * 5);
	double *col = malloc(sizeof *col * lw);
	float *mI, *mp, *prod, *m2, *tmp;

	if (!buf || !col) {
		free(buf);
		free(col);
		return -1;
	}
	mI = buf;
	mp = buf + n;
	prod = buf + 2 * n;
	m2 = buf + 3 * n;
	tmp = buf + 4 * n;
	box_mean(I, mI, lw, lh, r, tmp, col);
	box_mean(p, mp, lw, lh, r, tmp, col);
	for (size_t i = 0; i < n; i++)
		prod[i] = I[i] * I[i];
	box_mean(prod, m2, lw, lh, r, tmp, col); /* mean of I^2 */
	for (size_t i = 0; i < n; i++)
		prod[i] = I[i] * p[i];
	box_mean(prod, A, lw, lh, r, tmp, col); /* mean of I * p, for now */
	/* a = cov(I, p) / (var(I) + eps), b = mean(p) - a * mean(I); a goes to
	 * prod, b to m2. */
	for (size_t i = 0; i < n; i++) {
		float var = m2[i] - mI[i] * mI[i], cov = A[i] - mI[i] * mp[i];
		float a = cov / (var + (float)eps);

		prod[i] = a;
		m2[i] = mp[i] - a * mI[i];
	}
	box_mean(prod, A, lw, lh, r, tmp, col);
	box_mean(m2, B, lw, lh, r, tmp, col);
	free(buf);
	free(col);
	return 0;
}

/* The same with the colour guide I (three planes R, G, B in 0..1, n floats
 * each, one after the other): the window's model is a . (R, G, B) + b, a
 * from the 3 x 3 covariance of the colours plus eps on its diagonal. A holds
 * three planes. Returns -1 if memory ran out. */
static int guided_coeffs_color(const float *I, const float *p, int lw, int lh, int r, double eps, float *A,
			       float *B)
{
	size_t n = (size_t)lw * lh;
	/* means of R, G, B, p; of RR, RG, RB, GG, GB, BB; of Rp, Gp, Bp; work */
	float *buf = malloc(sizeof *buf * n * 15);
	double *col = malloc(sizeof *col * lw);
	float *mI[3], *mp, *m2[6], *mIp[3], *tmp, *prod;
	static const int pair[6][2] = {{0, 0}, {0, 1}, {0, 2}, {1, 1}, {1, 2}, {2, 2}};

	if (!buf || !col) {
		free(buf);
		free(col);
		return -1;
	}
	for (int c = 0; c < 3; c++) {
		mI[c] = buf + c * n;
		mIp[c] = buf + (10 + c) * n;
	}
	mp = buf + 3 * n;
	for (int k = 0; k < 6; k++)
		m2[k] = buf + (4 + k) * n;
	prod = buf + 13 * n;
	tmp = buf + 14 * n;
	for (int c = 0; c < 3; c++)
		box_mean(I + c * n, mI[c], lw, lh, r, tmp, col);
	box_mean(p, mp, lw, lh, r, tmp, col);
	for (int k = 0; k < 6; k++) {
		const float *u = I + pair[k][0] * n, *v = I + pair[k][1] * n;

		for (size_t i = 0; i < n; i++)
			prod[i] = u[i] * v[i];
		box_mean(prod, m2[k], lw, lh, r, tmp, col);
	}
	for (int c = 0; c < 3; c++) {
		const float *u = I + c * n;

		for (size_t i = 0; i < n; i++)
			prod[i] = u[i] * p[i];
		box_mean(prod, mIp[c], lw, lh, r, tmp, col);
	}
	/* a = (cov(I) + eps U)^-1 cov(I, p) by the adjugate (the matrix is
	 * symmetric positive definite), b = mean(p) - a . mean(I); a goes to
	 * mIp, b to mp. */
	for (size_t i = 0; i < n; i++) {
		double rr = m2[0][i] - (double)mI[0][i] * mI[0][i] + eps, rg = m2[1][i] - (double)mI[0][i] * mI[1][i];
		double rb = m2[2][i] - (double)mI[0][i] * mI[2][i], gg = m2[3][i] - (double)mI[1][i] * mI[1][i] + eps;
		double gb = m2[4][i] - (double)mI[1][i] * mI[2][i], bb = m2[5][i] - (double)mI[2][i] * mI[2][i] + eps;
		double cr = mIp[0][i] - (double)mI[0][i] * mp[i], cg = mIp[1][i] - (double)mI[1][i] * mp[i];
		double cb = mIp[2][i] - (double)mI[2][i] * mp[i];
		double i00 = gg * bb - gb * gb, i01 = gb * rb - rg * bb, i02 = rg * gb - gg * rb;
		double i11 = rr * bb - rb * rb, i12 = rb * rg - rr * gb, i22 = rr * gg - rg * rg;
		double det = rr * i00 + rg * i01 + rb * i02;
		double ar = (i00 * cr + i01 * cg + i02 * cb) / det, ag = (i01 * cr + i11 * cg + i12 * cb) / det;
		double ab = (i02 * cr + i12 * cg + i22 * cb) / det;

		mIp[0][i] = (float)ar;
		mIp[1][i] = (float)ag;
		mIp[2][i] = (float)ab;
		mp[i] = (float)(mp[i] - ar * mI[0][i] - ag * mI[1][i] - ab * mI[2][i]);
	}
	for (int c = 0; c < 3; c++)
		box_mean(mIp[c], A + c * n, lw, lh, r, tmp, col);
	box_mean(mp, B, lw, lh, r, tmp, col);
	free(buf);
	free(col);
	return 0;
}

/* ===== Entry points ===== */

img_status img_mask_to_alpha(const struct img *photo, const float *mask, int mh, int mw, enum img_refine refine,
			     struct img **alpha)
{
	return img_mask_to_alpha_opts(photo, mask, mh, mw, refine, NULL, alpha);
}

/* The checks every entry point makes of the photo and the mask. */
static img_status check_args(const struct img *photo, const float *mask, int mh, int mw)
{
	VipsImage *pix;

	if (!photo || !photo->pix)
		return img_fail(IMG_ERR_ARG, "no photo");
	if (!mask || mh <= 0 || mw <= 0 || (long long)mh * mw > IMG_MAX_PIXELS)
		return img_fail(IMG_ERR_ARG, "bad mask size %dx%d", mw, mh);
	pix = photo->pix;
	if ((pix->Bands != 3 && pix->Bands != 4) || pix->BandFmt != VIPS_FORMAT_UCHAR || !pix->data)
		return img_fail(IMG_ERR_ARG, "not a decoded colour image");
	return IMG_OK;
}

/* The low-resolution grid: the mask's own, but never finer than the photo
 * (a mask larger than the photo is brought down to it first). *p is the
 * mask, or *own, a copy scaled to *lw x *lh (g_free it). */
static img_status mask_grid(VipsImage *pix, const float *mask, int mh, int mw, const float **p, float **own, int *lw,
			    int *lh)
{
	VipsImage *m, *ms = NULL;
	size_t len;

	*lw = mw < pix->Xsize ? mw : pix->Xsize;
	*lh = mh < pix->Ysize ? mh : pix->Ysize;
	*p = mask;
	*own = NULL;
	if (*lw == mw && *lh == mh)
		return IMG_OK;
	/* Wraps the caller's floats without copying; the resized copy is
	 * written to memory at once. */
	m = vips_image_new_from_memory(mask, (size_t)mh * mw * sizeof(float), mw, mh, 1, VIPS_FORMAT_FLOAT);
	if (m && !img_resize_exact(m, &ms, *lw, *lh))
		*own = img_memory_bytes(ms, &len);
	VIPS_UNREF(ms);
	VIPS_UNREF(m);
	if (!*own)
		return img_fail_vips(IMG_ERR_VIPS, "cannot scale the mask");
	*p = *own;
	return IMG_OK;
}

/* A new one-band 8-bit image of pix's size in memory, or NULL. */
static VipsImage *new_band(VipsImage *pix)
{
	VipsImage *out = img_new_big(pix->Xsize, pix->Ysize, 1, VIPS_FORMAT_UCHAR);

	if (out)
		vips_image_init_fields(out, pix->Xsize, pix->Ysize, 1, VIPS_FORMAT_UCHAR, VIPS_CODING_NONE,
				       VIPS_INTERPRETATION_B_W, pix->Xres, pix->Yres);
	return out;
}

img_status img_mask_to_alpha_opts(const struct img *photo, const float *mask, int mh, int mw,
				  enum img_refine refine, const struct img_refine_opts *o, struct img **alpha)
{
	VipsImage *pix, *rgb = NULL, *small = NULL, *out = NULL;
	float *p_own = NULL, *buf = NULL;
	struct planes pl = {0};
	const float *p;
	unsigned char *g = NULL;
	int W, H, lw, lh, radius, clamp, color;
	double eps;
	size_t len;
	img_status st;

	if (!alpha)
		return img_fail(IMG_ERR_ARG, "no place for the alpha");
	*alpha = NULL;
	if (o && o->matting)
		memset(o->matting, 0, sizeof *o->matting);
	if ((st = check_args(photo, mask, mh, mw)) != IMG_OK)
		return st;
	if (refine != IMG_REFINE_NONE && refine != IMG_REFINE_GUIDED && refine != IMG_REFINE_MATTING)
		return img_fail(IMG_ERR_ARG, "unknown refinement %d", (int)refine);
	radius = o && o->radius > 0 ? o->radius : REFINE_RADIUS;
	eps = o && o->eps > 0 ? o->eps : REFINE_EPS;
	clamp = o && o->clamp ? o->clamp : REFINE_CLAMP;
	color = o && o->guide ? o->guide == 3 : REFINE_COLOR;
	if (o && o->guide && o->guide != 1 && o->guide != 3)
		return img_fail(IMG_ERR_ARG, "a guide has 1 or 3 bands, not %d", o->guide);
	if (radius > 1000 || clamp > 1000)
		return img_fail(IMG_ERR_ARG, "refinement radius %d is too large", radius);
	pix = photo->pix;
	W = pix->Xsize;
	H = pix->Ysize;
	if ((st = mask_grid(pix, mask, mh, mw, &p, &p_own, &lw, &lh)) != IMG_OK)
		return st;

	if (refine == IMG_REFINE_GUIDED) {
		size_t n = (size_t)lw * lh;
		float *I, *A, *B;

		/* The guide at the low resolution: the photo's colours
		 * resampled as the network's input was, then luminance. */
		if (vips_extract_band(pix, &rgb, 0, "n", 3, NULL) ||
		    (lw == W && lh == H ? vips_copy(rgb, &small, NULL) : img_resize_exact(rgb, &small, lw, lh)) ||
		    !(g = img_memory_bytes(small, &len))) {
			st = img_fail_vips(IMG_ERR_VIPS, "cannot scale the photo");
			goto out;
		}
		/* I (1 or 3 planes), A (as many), B, and the range's lo, hi
		 * and two planes of work */
		buf = malloc(sizeof *buf * n * (color ? 11 : 7));
		if (!buf) {
			st = img_fail(IMG_ERR_NOMEM, "out of memory");
			goto out;
		}
		I = buf;
		A = buf + (color ? 3 : 1) * n;
		B = buf + (color ? 6 : 2) * n;
		if (color)
			for (size_t i = 0; i < n; i++) {
				I[i] = g[3 * i] * (1.0f / 255);
				I[n + i] = g[3 * i + 1] * (1.0f / 255);
				I[2 * n + i] = g[3 * i + 2] * (1.0f / 255);
			}
		else
			for (size_t i = 0; i < n; i++)
				I[i] = LUM_R * g[3 * i] + LUM_G * g[3 * i + 1] + LUM_B * g[3 * i + 2];
		if (color ? guided_coeffs_color(I, p, lw, lh, radius, eps, A, B)
			  : guided_coeffs(I, p, lw, lh, radius, eps, A, B)) {
			st = img_fail(IMG_ERR_NOMEM, "out of memory");
			goto out;
		}
		pl.color = color;
		for (int c = 0; c < (color ? 3 : 1); c++)
			pl.a[c] = A + c * n;
		pl.b = B;
		/* The guide decides the alpha only where the mask itself is
		 * undecided: within clamp mask pixels of its transitions.
		 * Elsewhere a linear model that fits a window straddling an
		 * edge would carry the edge's decision out into the
		 * background (halos, and shadows or branches of the subject's
		 * tone taken in). */
		if (clamp > 0) {
			float *lo = B + n, *hi = B + 2 * n;

			box_range(p, lo, hi, lw, lh, clamp, B + 3 * n);
			for (size_t i = 0; i < n; i++) {
				lo[i] = lo[i] >= 1 - REFINE_SURE ? lo[i] : 0;
				hi[i] = hi[i] <= REFINE_SURE ? hi[i] : 1;
			}
			pl.lo = lo;
			pl.hi = hi;
		}
	} else {
		/* NONE, and MATTING outside its band */
		pl.b = p;
	}

	if (!(out = new_band(pix))) {
		st = img_fail_vips(IMG_ERR_NOMEM, "cannot make the alpha");
		goto out;
	}
	if (apply_full(pix, &pl, lw, lh, out) ||
	    (refine == IMG_REFINE_MATTING && img_matting_refine(pix, p, lw, lh, out, o ? o->matting : NULL))) {
		st = img_fail(IMG_ERR_NOMEM, "out of memory");
		goto out;
	}
	st = img_adopt(out, "cannot make the alpha", alpha);
out:
	VIPS_UNREF(out);
	free(buf);
	g_free(g);
	g_free(p_own);
	VIPS_UNREF(small);
	VIPS_UNREF(rgb);
	return st;
}

img_status img_matting_trimap(const struct img *photo, const float *mask, int mh, int mw, struct img **trimap)
{
	VipsImage *out = NULL;
	float *p_own = NULL;
	const float *p;
	int lw, lh;
	img_status st;

	if (!trimap)
		return img_fail(IMG_ERR_ARG, "no place for the trimap");
	*trimap = NULL;
	if ((st = check_args(photo, mask, mh, mw)) != IMG_OK ||
	    (st = mask_grid(photo->pix, mask, mh, mw, &p, &p_own, &lw, &lh)) != IMG_OK)
		return st;
	if (!(out = new_band(photo->pix)))
		st = img_fail_vips(IMG_ERR_NOMEM, "cannot make the trimap");
	else if (img_matting_trimap_of(photo->pix, p, lw, lh, out))
		st = img_fail(IMG_ERR_NOMEM, "out of memory");
	else
		st = img_adopt(out, "cannot make the trimap", trimap);
	VIPS_UNREF(out);
	g_free(p_own);
	return st;
}
