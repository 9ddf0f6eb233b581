/*
 * matting.c - IMG_REFINE_MATTING, "fine edges": the alpha of the subject's
 * edge solved from the photo's colours, in a band around the network's edge.
 *
 * The network's mask is one 1024 x 1024 guess for a photo of up to 50 MP, so
 * its edge is several photo pixels of blur, wider where the network was
 * unsure (fur). Scaled up as it is, that blur leaves the subject's edge
 * partly transparent over the old background (a light halo of sky or wall
 * around fur) and partly opaque over the gaps between hairs (the old
 * foliage showing through). Matting decides the edge from the photo:
 *
 *  1. A trimap, on the grid of the solve (3). Pixels where the mask is
 *     unsure, strictly between MAT_LO and MAT_HI, or on its 0.5 contour, are
 *     widened by at least MAT_BAND of the photo's longer side into the
 *     unknown band; the rest is sure foreground or background. A soft mask
 *     (an unsure network) makes a wide band, a crisp one a narrow band. The
 *     band then keeps only the pixels near some variation of the photo's
 *     colours (MAT_EVIDENCE): where the photo is flat there is nothing to
 *     follow, and the mask stays as it is.
 *  2. Closed-form matting (Levin, Lischinski and Weiss, "A Closed-Form
 *     Solution to Natural Image Matting", TPAMI 2008). In a small window the
 *     alpha is close to a linear function of the colour, which makes the
 *     cost alpha^T L alpha with the matting Laplacian L over 3 x 3 windows
 *     (eps MAT_EPS). It is minimised over the band, the pixels outside held
 *     at the mask's values (so the band joins the rest without a seam), plus
 *     a weak term gamma (alpha - mask)^2 that keeps the alpha near the
 *     network's where the colours say little (MAT_DATA). The system
 *     (L_uu + Gamma) alpha_u = Gamma mask_u - L_uk mask_k is symmetric
 *     positive definite: conjugate gradients with the diagonal as
 *     preconditioner, from the mask, until the residual is MAT_TOL of the
 *     mask's own or after MAT_ITER steps. L is never formed: L p comes
 *     window by window from box sums (He, Sun and Tang, "Fast Matting Using
 *     Large Kernel Matting Laplacian Matrices", CVPR 2010), as a . I + b
 *     per window.
 *  3. The grid of the solve has at most MAT_PIXELS pixels: the photo, or it
 *     area-averaged down (noise averages out too). It is cut into TILE x
 *     TILE tiles, and only those within a pixel of the band are kept in
 *     memory: their colours, their windows' statistics and the solver's
 *     vectors, so memory and time follow the band, not the photo. A band
 *     that would keep more than MAT_TILES tiles (a photo that is mostly
 *     edge) makes the grid coarser.
 *  4. Back to the photo's size as the fast guided filter does: in every
 *     window of the grid the solved alpha is fitted as a . I + b (eps
 *     MAT_UP_EPS), a and b are averaged over the windows of each pixel,
 *     interpolated bilinearly to each photo pixel of the band and applied
 *     to its own colour, so a hair one photo pixel wide keeps its alpha.
 *     Clamped to 0..1, times the photo's own alpha, rounded as
 *     IMG_REFINE_NONE rounds. Outside the band the alpha is
 *     IMG_REFINE_NONE's, byte for byte.
 *
 * Deterministic: each step works tile by tile, every tile's result
 * depending on the previous step only; the sums conjugate gradients needs
 * are summed within each tile, then over the tiles in order, whatever the
 * number of threads.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>
#include <vips/vips.h>

#include "img/img_int.h"

/* The solve's grid: at most this many pixels, and at most this many tiles
 * kept (107 KB each: some 65 MB, for 0.6 MP of tiles). */
#define MAT_PIXELS 2000000
#define MAT_TILES 600
/* The mask is unsure strictly between these. */
#define MAT_LO 0.05f
#define MAT_HI 0.95f
/* The unsure pixels are widened by at least this share of the longer side
 * (16 pixels of a 4032 x 3024 photo) into the band. */
#define MAT_BAND 0.004
/* The band keeps only the pixels near a window whose colours vary by more
 * than MAT_EVIDENCE (a standard deviation, colours in 0..1, some 5 levels of
 * 255): an edge or texture to follow. Near: within this share of the longer
 * side, or farther where the band itself reaches farther. Where the photo
 * is flat all along the mask's edge, the Laplacian could only smooth, and a
 * band there would blur the mask's edge; the mask is kept instead. */
#define MAT_EVIDENCE_NEAR 0.01
#define MAT_EVIDENCE 0.02
/* The matting Laplacian's regulariser (colours in 0..1): small, so that a
 * window's alpha may follow a faint colour difference; 1e-4 and more blur
 * the synthetic composites of tests/unit/test_matting.c measurably. */
#define MAT_EPS 1e-5
/* The pull towards the mask, against the Laplacian's 9 windows a pixel:
 * MAT_DATA (MAT_DATA_MIN + (2 mask - 1)^2), least where the mask is least
 * sure, over the square of the mask's pixel in the grid's (at least 1). The
 * image then moves the alpha from the mask over a distance that grows with
 * the mask's coarseness: a mask as fine as the grid (a small photo) keeps
 * its hairs, one four times coarser gives way to the photo's edges. */
#define MAT_DATA 0.2
#define MAT_DATA_MIN 0.05
/* Conjugate gradients stop after this many steps, or once the residual is
 * this share of the mask's own. Going on to 1e-4 changes the 8-bit alpha of
 * a 12 MP photo by at most 3 levels (0.06 on average in the band), for
 * half as many steps again. */
#define MAT_ITER 200
#define MAT_TOL 1e-3
/* The guided filter that brings the solved alpha to full size; as
 * IMG_REFINE_GUIDED's. */
#define MAT_UP_EPS 1e-4

/* The loops conjugate gradients spends its time in are built twice, for
 * AVX2 and for any x86-64, and the loader picks one: the same operations in
 * the same order either way (AVX2 without FMA), so the same results. */
#ifndef MAT_HOT
#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define MAT_HOT __attribute__((target_clones("avx2", "default")))
#endif
#endif
#endif
#ifndef MAT_HOT
#define MAT_HOT
#endif

/* Tiles: TILE x TILE pixels, read with an apron of AP pixels (a window's
 * sums reach two pixels from the pixels whose L p they make); window
 * centres over the tile and one pixel around. */
#define TILE 32
#define AP 2
#define P (TILE + 2 * AP)
#define Q (TILE + 2)
#define TT (TILE * TILE)

/* Per window centre: the colours' mean, the inverse of their covariance
 * plus eps (symmetric: six values) and whether the window lies inside the
 * photo (1 or 0). */
enum { S_MR, S_MG, S_MB, S_RR, S_RG, S_RB, S_GG, S_GB, S_BB, S_OK, S_COUNT };

/* Per tile pixel: the mask; 1 in the band, else 0; the number of windows
 * inside the photo that hold the pixel; gamma; the inverse of the diagonal
 * of L + Gamma (0 outside the band); and the solver's vectors. Outside the
 * photo all are 0. After the solve, V_R, V_Z, V_P and V_Q hold the guided
 * filter's b, a_r, a_g and a_b. */
enum { V_M, V_U, V_N, V_G, V_D, V_X, V_R, V_Z, V_P, V_P2, V_Q, V_COUNT };

struct mat {
	int W, H;	    /* the photo */
	int ww, wh;	    /* the grid */
	float *m;	    /* the mask on the grid, ww * wh */
	unsigned char *tri; /* the trimap on the grid, IMG_TRIMAP_* */
	unsigned char *ev;  /* ww * wh: 1 where the colours vary near the pixel */
	long unknown;	    /* pixels in the band */
	double scale;	    /* a mask pixel in the grid's (at least 1) */
	double data;	    /* the data term's weight on this grid */
	int band_r;	    /* how far the unsure pixels are widened */
	int tw, th;	    /* tiles across and down */
	int *tmap;	    /* tw * th: a tile's index among those kept, or -1 */
	int n;		    /* tiles kept: those within a pixel of the band */
	int *tile;	    /* n of them: ty * tw + tx */
	unsigned char *has_u; /* n: whether the tile holds pixels of the band */
	float *I;	    /* n * 3 * P * P: the grid's colours in 0..1, planar, 0 outside the photo */
	float *st;	    /* n * S_COUNT * Q * Q */
	float *v;	    /* n * V_COUNT * TT */
	double *dot;	    /* 3 * n: sums per tile */
};

/* One thread's room for a tile's box sums. */
struct ws {
	float lp[P * P];      /* a vector over the tile and its apron */
	float prod[3][P * P]; /* times each colour */
	float h[4][Q * P];    /* partial sums */
	float s[4][Q * Q];    /* per window centre */
	float hs[4][TT];      /* per pixel */
};

static float *tile_I(const struct mat *t, int k)
{
	return t->I + (size_t)k * 3 * P * P;
}

static float *tile_st(const struct mat *t, int k)
{
	return t->st + (size_t)k * S_COUNT * Q * Q;
}

static float *tile_v(const struct mat *t, int k, int plane)
{
	return t->v + ((size_t)k * V_COUNT + plane) * TT;
}

static void mat_free(struct mat *t)
{
	free(t->m);
	free(t->tri);
	free(t->ev);
	free(t->tmap);
	free(t->tile);
	free(t->has_u);
	free(t->I);
	free(t->st);
	free(t->v);
	free(t->dot);
	memset(t, 0, sizeof *t);
}

/* ===== The trimap ===== */

/* dst = 1 where src is not 0 within r pixels, along rows (with
 * dilate_cols: within a square of 2 r + 1). */
static void dilate_rows(const unsigned char *src, unsigned char *dst, int w, int h, int r)
{
#pragma omp parallel for schedule(static)
	for (int y = 0; y < h; y++) {
		const unsigned char *s = src + (size_t)y * w;
		unsigned char *d = dst + (size_t)y * w;
		int c = 0;

		for (int x = 0; x < r && x < w; x++)
			c += s[x] != 0;
		for (int x = 0; x < w; x++) {
			if (x + r < w)
				c += s[x + r] != 0;
			d[x] = c > 0;
			if (x - r >= 0)
				c -= s[x - r] != 0;
		}
	}
}

/* The same along columns, in strips of STRIP columns. */
#define STRIP 64
static void dilate_cols(const unsigned char *src, unsigned char *dst, int w, int h, int r)
{
#pragma omp parallel for schedule(static)
	for (int x0 = 0; x0 < w; x0 += STRIP) {
		int n = w - x0 < STRIP ? w - x0 : STRIP, col[STRIP] = {0};

		for (int y = 0; y < r && y < h; y++)
			for (int x = 0; x < n; x++)
				col[x] += src[(size_t)y * w + x0 + x] != 0;
		for (int y = 0; y < h; y++) {
			if (y + r < h)
				for (int x = 0; x < n; x++)
					col[x] += src[(size_t)(y + r) * w + x0 + x] != 0;
			for (int x = 0; x < n; x++)
				dst[(size_t)y * w + x0 + x] = col[x] > 0;
			if (y - r >= 0)
				for (int x = 0; x < n; x++)
					col[x] -= src[(size_t)(y - r) * w + x0 + x] != 0;
		}
	}
}

/* The mask and trimap on a grid of ww x wh, and the tiles to keep. 0, or -1
 * when memory ran out. */
static int plan_grid(struct mat *t, const float *p, int lw, int lh)
{
	size_t n = (size_t)t->ww * t->wh;
	int ww = t->ww, wh = t->wh, r;
	double scale;
	unsigned char *uns = NULL, *tmp = NULL;
	struct img_axis ax = {0}, ay = {0};
	long unknown;
	int ok = -1;

	t->m = malloc(sizeof *t->m * n);
	t->tri = malloc(n);
	uns = calloc(n, 1);
	tmp = calloc(n, 1);
	if (!t->m || !t->tri || !uns || !tmp || img_axis_init(&ax, ww, lw) || img_axis_init(&ay, wh, lh))
		goto out;
	/* the mask's pixels in the grid's */
	scale = (double)ww / lw > (double)wh / lh ? (double)ww / lw : (double)wh / lh;
	t->scale = scale < 1 ? 1 : scale;
	t->data = MAT_DATA / (t->scale * t->scale);
	/* the mask bilinearly on the grid, as IMG_REFINE_NONE samples it for
	 * the photo (the same surface at the grid's pixel centres) */
#pragma omp parallel for schedule(static)
	for (int y = 0; y < wh; y++) {
		const float *s0 = p + (size_t)ay.i0[y] * lw, *s1 = p + (size_t)ay.i1[y] * lw;
		float wy = ay.wt[y], *d = t->m + (size_t)y * ww;

		for (int x = 0; x < ww; x++) {
			int k0 = ax.i0[x], k1 = ax.i1[x];
			float a = s0[k0] + wy * (s1[k0] - s0[k0]), b = s0[k1] + wy * (s1[k1] - s0[k1]);
			float q = a + ax.wt[x] * (b - a);

			d[x] = q < 0 ? 0 : q > 1 ? 1 : q;
		}
	}
	/* unsure: between MAT_LO and MAT_HI, or across 0.5 from a neighbour
	 * (a mask as sharp as the grid) */
#pragma omp parallel for schedule(static)
	for (int y = 0; y < wh; y++)
		for (int x = 0; x < ww; x++) {
			size_t i = (size_t)y * ww + x;
			float v = t->m[i];
			int in = v >= 0.5f;

			tmp[i] = (v > MAT_LO && v < MAT_HI) || (x > 0 && (t->m[i - 1] >= 0.5f) != in) ||
				 (x + 1 < ww && (t->m[i + 1] >= 0.5f) != in) || (y > 0 && (t->m[i - ww] >= 0.5f) != in) ||
				 (y + 1 < wh && (t->m[i + ww] >= 0.5f) != in);
		}
	r = (int)ceil(MAT_BAND * (ww > wh ? ww : wh));
	if (r < 1)
		r = 1;
	t->band_r = r;
	dilate_rows(tmp, uns, ww, wh, r);
	dilate_cols(uns, tmp, ww, wh, r);
	/* (a grid without a window inside it has nothing to solve) */
	unknown = 0;
#pragma omp parallel for schedule(static) reduction(+ : unknown)
	for (size_t i = 0; i < n; i++) {
		uns[i] = tmp[i] && ww >= 3 && wh >= 3;
		t->tri[i] = uns[i] ? IMG_TRIMAP_UNKNOWN : t->m[i] >= 0.5f ? IMG_TRIMAP_FG : IMG_TRIMAP_BG;
		unknown += uns[i];
	}
	t->unknown = unknown;

	/* the tiles within a pixel of the band: the band's pixels and every
	 * pixel the upscale reads around them; numbered in order */
	t->tw = (ww + TILE - 1) / TILE;
	t->th = (wh + TILE - 1) / TILE;
	t->tmap = malloc(sizeof *t->tmap * t->tw * t->th);
	t->tile = malloc(sizeof *t->tile * t->tw * t->th);
	t->has_u = malloc((size_t)t->tw * t->th);
	if (!t->tmap || !t->tile || !t->has_u)
		goto out;
#pragma omp parallel for schedule(dynamic, 1)
	for (int ty = 0; ty < t->th; ty++)
		for (int tx = 0; tx < t->tw; tx++) {
			int x0 = tx * TILE - 1, y0 = ty * TILE - 1, x1 = tx * TILE + TILE, y1 = ty * TILE + TILE;
			int near = 0, inside = 0;

			x0 = x0 < 0 ? 0 : x0;
			y0 = y0 < 0 ? 0 : y0;
			x1 = x1 >= ww ? ww - 1 : x1;
			y1 = y1 >= wh ? wh - 1 : y1;
			for (int y = y0; y <= y1; y++)
				for (int x = x0; x <= x1; x++)
					if (uns[(size_t)y * ww + x]) {
						near = 1;
						inside |= x >= tx * TILE && x < tx * TILE + TILE && y >= ty * TILE &&
							  y < ty * TILE + TILE;
					}
			/* 0 far, 1 near, 2 holding band pixels */
			t->tmap[ty * t->tw + tx] = near + inside;
		}
	t->n = 0;
	for (int i = 0; i < t->tw * t->th; i++) {
		int kind = t->tmap[i];

		t->tmap[i] = kind ? t->n : -1;
		if (kind) {
			t->has_u[t->n] = kind == 2;
			t->tile[t->n++] = i;
		}
	}
	ok = 0;
out:
	img_axis_free(&ax);
	img_axis_free(&ay);
	free(uns);
	free(tmp);
	return ok;
}

/* Chooses the grid for a W x H photo and makes its trimap (t zeroed
 * first). 0, or -1 when memory ran out. */
static int plan(struct mat *t, int W, int H, const float *p, int lw, int lh)
{
	double s = sqrt(MAT_PIXELS / ((double)W * H));

	if (s > 1)
		s = 1;
	for (int tries = 0;; tries++) {
		t->W = W;
		t->H = H;
		t->ww = (int)lround(W * s);
		t->wh = (int)lround(H * s);
		t->ww = t->ww < 1 ? 1 : t->ww > W ? W : t->ww;
		t->wh = t->wh < 1 ? 1 : t->wh > H ? H : t->wh;
		if (plan_grid(t, p, lw, lh))
			return -1;
		if (t->n <= MAT_TILES || tries == 8)
			return 0;
		/* the band's tiles grow between linearly (a thin edge) and
		 * quadratically (an unsure area) with the scale */
		s *= 0.95 * sqrt((double)MAT_TILES / t->n);
		mat_free(t);
	}
}

/* ===== Tiles ===== */

/* Tile k's colours on the grid, area-averaged from the photo, with the
 * apron; 0 outside the photo. x0 and x1 (y0, y1) are the photo's columns
 * (rows) that make each of the grid's. */
static void tile_colors(const struct mat *t, int k, VipsImage *pix, const int *x0, const int *x1, const int *y0,
			const int *y1)
{
	int tx = t->tile[k] % t->tw, ty = t->tile[k] / t->tw, bands = pix->Bands;
	float *I = tile_I(t, k);

	for (int ly = 0; ly < P; ly++)
		for (int lx = 0; lx < P; lx++) {
			int gx = tx * TILE + lx - AP, gy = ty * TILE + ly - AP;
			unsigned sum[3] = {0, 0, 0};
			float inv;

			if (gx < 0 || gy < 0 || gx >= t->ww || gy >= t->wh) {
				for (int c = 0; c < 3; c++)
					I[c * P * P + ly * P + lx] = 0;
				continue;
			}
			for (int Y = y0[gy]; Y < y1[gy]; Y++) {
				const unsigned char *px = VIPS_IMAGE_ADDR(pix, 0, Y);

				for (int X = x0[gx]; X < x1[gx]; X++)
					for (int c = 0; c < 3; c++)
						sum[c] += px[(size_t)X * bands + c];
			}
			inv = 1.0f / (255.0f * (float)((x1[gx] - x0[gx]) * (y1[gy] - y0[gy])));
			for (int c = 0; c < 3; c++)
				I[c * P * P + ly * P + lx] = (float)sum[c] * inv;
		}
}

/* Whether the window centred on grid pixel (gx, gy) lies inside the grid. */
static int window_ok(const struct mat *t, int gx, int gy)
{
	return gx >= 1 && gy >= 1 && gx <= t->ww - 2 && gy <= t->wh - 2;
}

/* The mean (mu) and covariance (cov: rr rg rb gg gb bb) of the colours in
 * the 3 x 3 window centred on local pixel (lx, ly) of I. */
static void window_stats(const float *I, int lx, int ly, double mu[3], double cov[6])
{
	static const int pair[6][2] = {{0, 0}, {0, 1}, {0, 2}, {1, 1}, {1, 2}, {2, 2}};
	double s[3] = {0, 0, 0}, s2[6] = {0, 0, 0, 0, 0, 0};

	for (int dy = -1; dy <= 1; dy++)
		for (int dx = -1; dx <= 1; dx++) {
			int o = (ly + dy) * P + lx + dx;
			double c[3] = {I[o], I[P * P + o], I[2 * P * P + o]};

			for (int j = 0; j < 3; j++)
				s[j] += c[j];
			for (int j = 0; j < 6; j++)
				s2[j] += c[pair[j][0]] * c[pair[j][1]];
		}
	for (int j = 0; j < 3; j++)
		mu[j] = s[j] / 9;
	for (int j = 0; j < 6; j++)
		cov[j] = s2[j] / 9 - mu[pair[j][0]] * mu[pair[j][1]];
}

/* inv = (cov + e U)^-1, symmetric (rr rg rb gg gb bb), by the adjugate. */
static void inverse3(const double cov[6], double e, double inv[6])
{
	double rr = cov[0] + e, rg = cov[1], rb = cov[2], gg = cov[3] + e, gb = cov[4], bb = cov[5] + e;
	double i00 = gg * bb - gb * gb, i01 = gb * rb - rg * bb, i02 = rg * gb - gg * rb;
	double i11 = rr * bb - rb * rb, i12 = rb * rg - rr * gb, i22 = rr * gg - rg * rg;
	double det = rr * i00 + rg * i01 + rb * i02;

	inv[0] = i00 / det;
	inv[1] = i01 / det;
	inv[2] = i02 / det;
	inv[3] = i11 / det;
	inv[4] = i12 / det;
	inv[5] = i22 / det;
}

/* Tile k's window statistics; and into t->ev, for the tile's pixels,
 * whether the colours vary in the window centred on each (an edge, or
 * texture). */
static void tile_stats(const struct mat *t, int k)
{
	int tx = t->tile[k] % t->tw, ty = t->tile[k] / t->tw;
	const float *I = tile_I(t, k);
	float *st = tile_st(t, k);

	for (int cy = 0; cy < Q; cy++)
		for (int cx = 0; cx < Q; cx++) {
			int lx = cx + 1, ly = cy + 1, c = cy * Q + cx;
			int gx = tx * TILE + lx - AP, gy = ty * TILE + ly - AP;
			double mu[3], cov[6], inv[6];

			if (!window_ok(t, gx, gy)) {
				for (int j = 0; j < S_COUNT; j++)
					st[j * Q * Q + c] = 0;
				continue;
			}
			window_stats(I, lx, ly, mu, cov);
			inverse3(cov, MAT_EPS / 9, inv);
			for (int j = 0; j < 3; j++)
				st[(S_MR + j) * Q * Q + c] = (float)mu[j];
			for (int j = 0; j < 6; j++)
				st[(S_RR + j) * Q * Q + c] = (float)inv[j];
			st[S_OK * Q * Q + c] = 1;
			if (lx >= AP && lx < AP + TILE && ly >= AP && ly < AP + TILE)
				t->ev[(size_t)gy * t->ww + gx] = (cov[0] + cov[3] + cov[5]) / 3 > MAT_EVIDENCE * MAT_EVIDENCE;
		}
}

/* Per window centre, what L's diagonal sums over a pixel's windows: the
 * inverse (six values), it times the mean (three), the mean's quadratic
 * form (one), and 1 for a window inside the photo. */
enum { D_RR, D_RG, D_RB, D_GG, D_GB, D_BB, D_AR, D_AG, D_AB, D_MAM, D_OK, D_COUNT };

/* Tile k's vectors' starting values: the mask, the band, the window
 * counts, gamma, the preconditioner, x = the mask. sc holds 2 * D_COUNT *
 * Q * Q doubles. */
static void tile_setup(const struct mat *t, int k, double *sc)
{
	int tx = t->tile[k] % t->tw, ty = t->tile[k] / t->tw;
	const float *I = tile_I(t, k), *st = tile_st(t, k);
	float *m = tile_v(t, k, V_M), *u = tile_v(t, k, V_U), *nw = tile_v(t, k, V_N);
	float *g = tile_v(t, k, V_G), *d = tile_v(t, k, V_D), *x = tile_v(t, k, V_X);
	double *c = sc, *hs = sc + D_COUNT * Q * Q;

	/* L_ii = sum over the windows w holding pixel i of 1 - (1 + (I - mu_w)^T
	 * inv_w (I - mu_w)) / 9, and the quadratic form is I^T inv_w I - 2 I^T
	 * inv_w mu_w + mu_w^T inv_w mu_w: sums over 3 x 3 window centres of
	 * inv_w, inv_w mu_w and mu_w^T inv_w mu_w (in double: the terms are as
	 * large as 1 / eps and cancel) */
	for (int i = 0; i < Q * Q; i++) {
		double mu[3] = {st[S_MR * Q * Q + i], st[S_MG * Q * Q + i], st[S_MB * Q * Q + i]};
		double a[6];

		for (int j = 0; j < 6; j++)
			a[j] = st[(S_RR + j) * Q * Q + i];
		for (int j = 0; j < 6; j++)
			c[(D_RR + j) * Q * Q + i] = a[j];
		c[D_AR * Q * Q + i] = a[0] * mu[0] + a[1] * mu[1] + a[2] * mu[2];
		c[D_AG * Q * Q + i] = a[1] * mu[0] + a[3] * mu[1] + a[4] * mu[2];
		c[D_AB * Q * Q + i] = a[2] * mu[0] + a[4] * mu[1] + a[5] * mu[2];
		c[D_MAM * Q * Q + i] = mu[0] * c[D_AR * Q * Q + i] + mu[1] * c[D_AG * Q * Q + i] +
				       mu[2] * c[D_AB * Q * Q + i];
		c[D_OK * Q * Q + i] = st[S_OK * Q * Q + i];
	}
	/* down the centres' columns, then along: hs ends as the sums per tile
	 * pixel (TILE x TILE, rows Q apart) */
	for (int j = 0; j < D_COUNT; j++) {
		const double *cj = c + j * Q * Q;
		double *hj = hs + j * Q * Q;

		for (int y = 0; y < TILE; y++)
			for (int cx = 0; cx < Q; cx++)
				hj[y * Q + cx] = cj[y * Q + cx] + cj[(y + 1) * Q + cx] + cj[(y + 2) * Q + cx];
		for (int y = 0; y < TILE; y++)
			for (int bx = 0; bx < TILE; bx++)
				hj[y * Q + bx] += hj[y * Q + bx + 1] + hj[y * Q + bx + 2];
	}
	memset(tile_v(t, k, V_R), 0, sizeof(float) * TT * (V_COUNT - V_R));
	for (int by = 0; by < TILE; by++)
		for (int bx = 0; bx < TILE; bx++) {
			int gx = tx * TILE + bx, gy = ty * TILE + by, b = by * TILE + bx, q = by * Q + bx;
			int o = (by + AP) * P + bx + AP;
			double e[3] = {I[o], I[P * P + o], I[2 * P * P + o]}, quad, diag, mv;

			if (gx >= t->ww || gy >= t->wh) {
				m[b] = u[b] = nw[b] = g[b] = d[b] = x[b] = 0;
				continue;
			}
			quad = hs[D_RR * Q * Q + q] * e[0] * e[0] + hs[D_GG * Q * Q + q] * e[1] * e[1] +
			       hs[D_BB * Q * Q + q] * e[2] * e[2] +
			       2 * (hs[D_RG * Q * Q + q] * e[0] * e[1] + hs[D_RB * Q * Q + q] * e[0] * e[2] +
				    hs[D_GB * Q * Q + q] * e[1] * e[2]) -
			       2 * (hs[D_AR * Q * Q + q] * e[0] + hs[D_AG * Q * Q + q] * e[1] + hs[D_AB * Q * Q + q] * e[2]) +
			       hs[D_MAM * Q * Q + q];
			diag = hs[D_OK * Q * Q + q] * 8 / 9 - quad / 9;
			mv = t->m[(size_t)gy * t->ww + gx];
			m[b] = (float)mv;
			x[b] = (float)mv;
			nw[b] = (float)hs[D_OK * Q * Q + q];
			u[b] = t->tri[(size_t)gy * t->ww + gx] == IMG_TRIMAP_UNKNOWN;
			g[b] = u[b] * (float)(t->data * (MAT_DATA_MIN + (2 * mv - 1) * (2 * mv - 1)));
			d[b] = u[b] ? (float)(1 / (diag + g[b])) : 0;
		}
}

/* The values of plane `plane` over tile k and its apron into lp, from the
 * kept tiles; where a tile is not kept, from fb (the grid's mask) or 0
 * when fb is NULL; 0 outside the grid. */
static void gather(const struct mat *t, int k, int plane, const float *fb, float *lp)
{
	int tx = t->tile[k] % t->tw, ty = t->tile[k] / t->tw;

	for (int ly = 0; ly < P; ly++) {
		int gy = ty * TILE + ly - AP;
		float *d = lp + ly * P;

		if (gy < 0 || gy >= t->wh) {
			memset(d, 0, sizeof *d * P);
			continue;
		}
		for (int lx = 0; lx < P;) {
			int gx = tx * TILE + lx - AP, ntx, kk, end;

			if (gx < 0 || gx >= t->ww) {
				d[lx++] = 0;
				continue;
			}
			/* a run within one tile */
			ntx = gx / TILE;
			end = (ntx + 1) * TILE - (tx * TILE - AP);
			end = end > P ? P : end;
			if (end > t->ww - (tx * TILE - AP))
				end = t->ww - (tx * TILE - AP);
			kk = t->tmap[(gy / TILE) * t->tw + ntx];
			if (kk >= 0)
				memcpy(d + lx, tile_v(t, kk, plane) + (gy % TILE) * TILE + gx - ntx * TILE,
				       sizeof *d * (end - lx));
			else if (fb)
				memcpy(d + lx, fb + (size_t)gy * t->ww + gx, sizeof *d * (end - lx));
			else
				memset(d + lx, 0, sizeof *d * (end - lx));
			lx = end;
		}
	}
}

/* Sums over each window of v (in w->lp) and of I v: s[0..3] over the
 * window centres, Q x Q. */
MAT_HOT static void window_sums(const float *I, struct ws *w)
{
	const float *src[4] = {w->lp, w->prod[0], w->prod[1], w->prod[2]};

	for (int c = 0; c < 3; c++) {
		const float *Ic = I + c * P * P;
		float *pr = w->prod[c];

#pragma omp simd
		for (int i = 0; i < P * P; i++)
			pr[i] = Ic[i] * w->lp[i];
	}
	/* down the columns first (whole rows at a time), then along rows */
	for (int j = 0; j < 4; j++)
		for (int cy = 0; cy < Q; cy++) {
			const float *a = src[j] + cy * P;
			float *h = w->h[j] + cy * P;

#pragma omp simd
			for (int x = 0; x < P; x++)
				h[x] = a[x] + a[P + x] + a[2 * P + x];
		}
	for (int j = 0; j < 4; j++)
		for (int cy = 0; cy < Q; cy++) {
			const float *h = w->h[j] + cy * P;
			float *o = w->s[j] + cy * Q;

#pragma omp simd
			for (int cx = 0; cx < Q; cx++)
				o[cx] = h[cx] + h[cx + 1] + h[cx + 2];
		}
}

/* The sums of w->s[0..3] over the 3 x 3 centres around each tile pixel,
 * into w->hs[j][0 .. TT). */
MAT_HOT static void pixel_sums(struct ws *w)
{
	for (int j = 0; j < 4; j++) {
		float *h = w->hs[j];

		for (int by = 0; by < TILE; by++) {
			const float *s = w->s[j] + by * Q;
			float *d = w->h[j] + by * Q;

#pragma omp simd
			for (int x = 0; x < Q; x++)
				d[x] = s[x] + s[Q + x] + s[2 * Q + x];
		}
		for (int by = 0; by < TILE; by++) {
			const float *d = w->h[j] + by * Q;

#pragma omp simd
			for (int bx = 0; bx < TILE; bx++)
				h[by * TILE + bx] = d[bx] + d[bx + 1] + d[bx + 2];
		}
	}
}

/* q = (L + Gamma) v over tile k's band pixels, 0 elsewhere; v gathered into
 * w->lp. Without data, L v alone. */
MAT_HOT static void tile_apply(const struct mat *t, int k, struct ws *w, float *q, int data)
{
	const float *I = tile_I(t, k), *st = tile_st(t, k);
	const float *u = tile_v(t, k, V_U), *nw = tile_v(t, k, V_N), *g = tile_v(t, k, V_G);
	const float *mr = st + S_MR * Q * Q, *mg = st + S_MG * Q * Q, *mb = st + S_MB * Q * Q;
	const float *irr = st + S_RR * Q * Q, *irg = st + S_RG * Q * Q, *irb = st + S_RB * Q * Q;
	const float *igg = st + S_GG * Q * Q, *igb = st + S_GB * Q * Q, *ibb = st + S_BB * Q * Q;
	const float *ok = st + S_OK * Q * Q;
	float *s0 = w->s[0], *s1 = w->s[1], *s2 = w->s[2], *s3 = w->s[3], gd = data ? 1.0f : 0.0f;

	window_sums(I, w);
	/* per window: a = inv (mean(I v) - mu mean(v)), b = mean(v) - a . mu;
	 * L v at a pixel is (windows) v - sum over its windows of a . I + b */
#pragma omp simd
	for (int c = 0; c < Q * Q; c++) {
		float sm = s0[c] * (1.0f / 9);
		float cr = s1[c] * (1.0f / 9) - mr[c] * sm, cg = s2[c] * (1.0f / 9) - mg[c] * sm;
		float cb = s3[c] * (1.0f / 9) - mb[c] * sm;
		float ar = irr[c] * cr + irg[c] * cg + irb[c] * cb;
		float ag = irg[c] * cr + igg[c] * cg + igb[c] * cb;
		float ab = irb[c] * cr + igb[c] * cg + ibb[c] * cb;

		s0[c] = ok[c] * (sm - ar * mr[c] - ag * mg[c] - ab * mb[c]);
		s1[c] = ar;
		s2[c] = ag;
		s3[c] = ab;
	}
	pixel_sums(w);
	for (int by = 0; by < TILE; by++) {
		const float *v = w->lp + (by + AP) * P + AP, *Ir = I + (by + AP) * P + AP;
		const float *Ig = Ir + P * P, *Ib = Ir + 2 * P * P;
		const float *hb = w->hs[0] + by * TILE, *hr = w->hs[1] + by * TILE, *hg = w->hs[2] + by * TILE;
		const float *hbl = w->hs[3] + by * TILE, *ub = u + by * TILE, *nb = nw + by * TILE, *gb = g + by * TILE;
		float *qb = q + by * TILE;

#pragma omp simd
		for (int bx = 0; bx < TILE; bx++) {
			float lv = nb[bx] * v[bx] - hb[bx] - hr[bx] * Ir[bx] - hg[bx] * Ig[bx] - hbl[bx] * Ib[bx];

			qb[bx] = ub[bx] * (lv + gd * gb[bx] * v[bx]);
		}
	}
}

/* The sums of a b and of a a over a tile, in one fixed order whatever the
 * vector width: eight running sums each (pixels i mod 8), added pairwise at
 * the end. */
static void tile_dots(const float *a, const float *b, double *ab, double *aa)
{
	double s[8] = {0, 0, 0, 0, 0, 0, 0, 0}, q[8] = {0, 0, 0, 0, 0, 0, 0, 0};

	for (int i = 0; i < TT; i += 8)
		for (int j = 0; j < 8; j++) {
			s[j] += (double)a[i + j] * b[i + j];
			q[j] += (double)a[i + j] * a[i + j];
		}
	*ab = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
	*aa = ((q[0] + q[1]) + (q[2] + q[3])) + ((q[4] + q[5]) + (q[6] + q[7]));
}

/* After the solve: the guided filter of the solved alpha (gathered into
 * w->lp) over tile k: per pixel the mean over its windows of a and b, into
 * V_Z, V_P, V_Q (a) and V_R (b). */
static void tile_upscale(const struct mat *t, int k, struct ws *w)
{
	const float *I = tile_I(t, k), *st = tile_st(t, k), *nw = tile_v(t, k, V_N);
	float *b = tile_v(t, k, V_R), *ar = tile_v(t, k, V_Z), *ag = tile_v(t, k, V_P), *ab = tile_v(t, k, V_Q);

	window_sums(I, w);
	for (int cy = 0; cy < Q; cy++)
		for (int cx = 0; cx < Q; cx++) {
			int c = cy * Q + cx;
			double mu[3], cov[6], inv[6], sm, cv[3], a[3];

			/* the same windows as the solve's, with a larger eps */
			if (st[S_OK * Q * Q + c] == 0) {
				for (int j = 0; j < 4; j++)
					w->s[j][c] = 0;
				continue;
			}
			window_stats(I, cx + 1, cy + 1, mu, cov);
			inverse3(cov, MAT_UP_EPS, inv);
			sm = w->s[0][c] / 9;
			for (int j = 0; j < 3; j++)
				cv[j] = w->s[1 + j][c] / 9 - mu[j] * sm;
			a[0] = inv[0] * cv[0] + inv[1] * cv[1] + inv[2] * cv[2];
			a[1] = inv[1] * cv[0] + inv[3] * cv[1] + inv[4] * cv[2];
			a[2] = inv[2] * cv[0] + inv[4] * cv[1] + inv[5] * cv[2];
			w->s[0][c] = (float)(sm - a[0] * mu[0] - a[1] * mu[1] - a[2] * mu[2]);
			for (int j = 0; j < 3; j++)
				w->s[1 + j][c] = (float)a[j];
		}
	pixel_sums(w);
	for (int i = 0; i < TT; i++) {
		float inv = nw[i] > 0 ? 1 / nw[i] : 0;

		b[i] = w->hs[0][i] * inv;
		ar[i] = w->hs[1][i] * inv;
		ag[i] = w->hs[2][i] * inv;
		ab[i] = w->hs[3][i] * inv;
	}
}

/* ===== The solve ===== */

/* Room for each thread's box sums: n of them, or NULL. */
static struct ws *ws_new(int *n)
{
	*n = omp_get_max_threads();
	return malloc(sizeof(struct ws) * *n);
}

/* Conjugate gradients over the band, preconditioned by the diagonal; x
 * ends as the solved alpha clamped to 0..1 in the band, the mask
 * elsewhere. Two passes over the tiles a step: the search direction p = z +
 * beta p (into the other of V_P and V_P2, as neighbours still read the
 * last) with q = A p; then x, r and z. */
static void solve(struct mat *t, struct ws *ws, struct img_matting_info *info)
{
	double rz = 0, rr0 = 0, rr = 0, beta = 0;
	int it = 0, last = V_P, next = V_P2;

	/* the reference: the residual for x = the mask, - L m over the band
	 * (the data term is 0 there); then r = b - A x = Gamma m - (L + Gamma)
	 * x from where x starts, z = D r */
#pragma omp parallel for schedule(dynamic, 1)
	for (int k = 0; k < t->n; k++) {
		struct ws *w = ws + omp_get_thread_num();
		float *r = tile_v(t, k, V_R), *z = tile_v(t, k, V_Z);
		const float *d = tile_v(t, k, V_D), *m = tile_v(t, k, V_M), *g = tile_v(t, k, V_G);
		double a = 0, b = 0, c = 0;

		if (t->has_u[k]) {
			gather(t, k, V_M, t->m, w->lp);
			tile_apply(t, k, w, r, 0);
			tile_dots(r, r, &c, &c);
			gather(t, k, V_X, t->m, w->lp);
			tile_apply(t, k, w, r, 1);
#pragma omp simd
			for (int i = 0; i < TT; i++) {
				r[i] = g[i] * m[i] - r[i];
				z[i] = d[i] * r[i];
			}
			tile_dots(r, z, &a, &b);
		}
		t->dot[3 * k] = a;
		t->dot[3 * k + 1] = b;
		t->dot[3 * k + 2] = c;
	}
	for (int k = 0; k < t->n; k++) {
		rz += t->dot[3 * k];
		rr += t->dot[3 * k + 1];
		rr0 += t->dot[3 * k + 2];
	}
	while (rr > 0 && rr > MAT_TOL * MAT_TOL * rr0 && it < MAT_ITER) {
		double pq = 0, rz_new = 0, alpha;
		int swap;

#pragma omp parallel for schedule(dynamic, 1)
		for (int k = 0; k < t->n; k++) {
			struct ws *w = ws + omp_get_thread_num();
			float *lp = w->lp, *old = w->prod[0], *pn = tile_v(t, k, next);

			t->dot[2 * k] = 0;
			if (!t->has_u[k])
				continue;
			gather(t, k, V_Z, NULL, lp);
			gather(t, k, last, NULL, old);
#pragma omp simd
			for (int i = 0; i < P * P; i++)
				lp[i] += (float)beta * old[i];
			for (int by = 0; by < TILE; by++)
				memcpy(pn + by * TILE, lp + (by + AP) * P + AP, sizeof *pn * TILE);
			tile_apply(t, k, w, tile_v(t, k, V_Q), 1);
			tile_dots(tile_v(t, k, V_Q), pn, &t->dot[2 * k], &t->dot[2 * k + 1]);
		}
		for (int k = 0; k < t->n; k++)
			pq += t->dot[2 * k];
		if (!(pq > 0))
			break;
		alpha = rz / pq;
#pragma omp parallel for schedule(static)
		for (int k = 0; k < t->n; k++) {
			float *x = tile_v(t, k, V_X), *r = tile_v(t, k, V_R), *z = tile_v(t, k, V_Z);
			const float *p = tile_v(t, k, next), *q = tile_v(t, k, V_Q), *d = tile_v(t, k, V_D);
			float al = (float)alpha;
			double a = 0, b = 0;

			if (t->has_u[k]) {
#pragma omp simd
				for (int i = 0; i < TT; i++) {
					x[i] += al * p[i];
					r[i] -= al * q[i];
					z[i] = d[i] * r[i];
				}
				tile_dots(r, z, &a, &b);
			}
			t->dot[2 * k] = a;
			t->dot[2 * k + 1] = b;
		}
		rr = 0;
		for (int k = 0; k < t->n; k++) {
			rz_new += t->dot[2 * k];
			rr += t->dot[2 * k + 1];
		}
		it++;
		beta = rz_new / rz;
		rz = rz_new;
		swap = last;
		last = next;
		next = swap;
	}
	for (int k = 0; k < t->n; k++) {
		float *x = tile_v(t, k, V_X);

		for (int i = 0; i < TT; i++)
			x[i] = x[i] < 0 ? 0 : x[i] > 1 ? 1 : x[i];
	}
	if (info) {
		info->iterations = it;
		info->residual = rr0 > 0 ? sqrt(rr / rr0) : 0;
	}
}

/* ===== Entry points ===== */

/* The photo's pixels nearest to, and interpolated around, the grid's: per
 * photo column (row), the grid's column it falls in (near), and its
 * bilinear taps (i0, i1, wt), as img_axis with the grid as the source. */
struct taps {
	struct img_axis a;
	int *near;
};

static int taps_init(struct taps *tp, int n, int m)
{
	tp->near = malloc(sizeof *tp->near * n);
	if (img_axis_init(&tp->a, n, m) || !tp->near)
		return -1;
	for (int i = 0; i < n; i++) {
		int j = (int)((i + 0.5) * m / n);

		tp->near[i] = j < m ? j : m - 1;
	}
	return 0;
}

static void taps_free(struct taps *tp)
{
	img_axis_free(&tp->a);
	free(tp->near);
}

/* One plane's value at grid pixel (x, y), a pixel of a kept tile. */
static float at(const struct mat *t, int plane, int x, int y)
{
	int k = t->tmap[(y / TILE) * t->tw + x / TILE];

	return tile_v(t, k, plane)[(y % TILE) * TILE + x % TILE];
}

/* Allocates the kept tiles of t (planned), fills their colours from the
 * photo and their windows' statistics, narrows the band to where the colours
 * vary (t->tri, t->unknown) and sets the solver's starting values. 0, or -1
 * when memory ran out. */
static int tiles_setup(struct mat *t, VipsImage *pix)
{
	int *x0 = malloc(sizeof *x0 * t->ww), *x1 = malloc(sizeof *x1 * t->ww);
	int *y0 = malloc(sizeof *y0 * t->wh), *y1 = malloc(sizeof *y1 * t->wh);
	unsigned char *tmp = NULL;
	long unknown;
	int ok = -1, r, failed = 0;

	t->I = malloc(sizeof *t->I * 3 * P * P * t->n);
	t->st = malloc(sizeof *t->st * S_COUNT * Q * Q * t->n);
	t->v = malloc(sizeof *t->v * V_COUNT * TT * t->n);
	t->dot = malloc(sizeof *t->dot * 3 * t->n);
	if (!t->I || !t->st || !t->v || !t->dot || !x0 || !x1 || !y0 || !y1)
		goto out;
	/* the photo's columns and rows each of the grid's averages */
	for (int i = 0; i < t->ww; i++) {
		x0[i] = (int)((long long)i * t->W / t->ww);
		x1[i] = (int)((long long)(i + 1) * t->W / t->ww);
		x1[i] = x1[i] > x0[i] ? x1[i] : x0[i] + 1;
	}
	for (int i = 0; i < t->wh; i++) {
		y0[i] = (int)((long long)i * t->H / t->wh);
		y1[i] = (int)((long long)(i + 1) * t->H / t->wh);
		y1[i] = y1[i] > y0[i] ? y1[i] : y0[i] + 1;
	}
	t->ev = calloc((size_t)t->ww * t->wh, 1);
	tmp = malloc((size_t)t->ww * t->wh);
	if (!t->ev || !tmp)
		goto out;
#pragma omp parallel for schedule(dynamic, 1)
	for (int k = 0; k < t->n; k++) {
		tile_colors(t, k, pix, x0, x1, y0, y1);
		tile_stats(t, k);
	}
	/* the band keeps the pixels with some variation of colour near
	 * them: elsewhere the photo says nothing the mask does not. Near: as
	 * far as the band reaches past a sharp edge of the mask (three of its
	 * pixels), or MAT_EVIDENCE_NEAR if more */
	r = (int)ceil(MAT_EVIDENCE_NEAR * (t->ww > t->wh ? t->ww : t->wh));
	if (r < t->band_r + (int)ceil(3 * t->scale))
		r = t->band_r + (int)ceil(3 * t->scale);
	dilate_rows(t->ev, tmp, t->ww, t->wh, r);
	dilate_cols(tmp, t->ev, t->ww, t->wh, r);
	unknown = 0;
#pragma omp parallel for schedule(static) reduction(+ : unknown)
	for (size_t i = 0; i < (size_t)t->ww * t->wh; i++) {
		if (t->tri[i] == IMG_TRIMAP_UNKNOWN && !t->ev[i])
			t->tri[i] = t->m[i] >= 0.5f ? IMG_TRIMAP_FG : IMG_TRIMAP_BG;
		unknown += t->tri[i] == IMG_TRIMAP_UNKNOWN;
	}
	t->unknown = unknown;
#pragma omp parallel
	{
		double *sc = malloc(sizeof *sc * 2 * D_COUNT * Q * Q);

		if (!sc) {
#pragma omp atomic write
			failed = 1;
		}
#pragma omp for schedule(dynamic, 1)
		for (int k = 0; k < t->n; k++) {
			const float *u;

			if (!sc)
				continue;
			tile_setup(t, k, sc);
			u = tile_v(t, k, V_U);
			t->has_u[k] = 0;
			for (int i = 0; i < TT; i++)
				t->has_u[k] |= u[i] != 0;
		}
		free(sc);
	}
	ok = failed ? -1 : 0;
out:
	free(x0);
	free(x1);
	free(y0);
	free(y1);
	free(tmp);
	return ok;
}

int img_matting_refine(VipsImage *pix, const float *p, int lw, int lh, VipsImage *out, struct img_matting_info *info)
{
	struct mat t = {0};
	struct taps tx = {0}, ty = {0};
	struct ws *ws = NULL;
	int W = pix->Xsize, H = pix->Ysize, bands = pix->Bands, nws, ok = -1;

	if (info)
		memset(info, 0, sizeof *info);
	if (plan(&t, W, H, p, lw, lh))
		goto out;
	if (info) {
		info->width = t.ww;
		info->height = t.wh;
		info->unknown = t.unknown;
		info->tiles = t.n;
	}
	/* no band: the alpha stays NONE's */
	if (!t.unknown) {
		ok = 0;
		goto out;
	}
	ws = ws_new(&nws);
	if (!ws || taps_init(&tx, W, t.ww) || taps_init(&ty, H, t.wh))
		goto out;
	if (tiles_setup(&t, pix))
		goto out;
	solve(&t, ws, info);
	if (info)
		info->unknown = t.unknown;
#pragma omp parallel for schedule(dynamic, 1)
	for (int k = 0; k < t.n; k++) {
		struct ws *w = ws + omp_get_thread_num();

		gather(&t, k, V_X, t.m, w->lp);
		tile_upscale(&t, k, w);
	}
	/* the photo's pixels whose grid pixel is in the band: a . I + b, a
	 * and b interpolated from the grid (their taps are within a pixel of
	 * the band, in kept tiles) */
#pragma omp parallel for schedule(static)
	for (int Y = 0; Y < H; Y++) {
		const unsigned char *px = VIPS_IMAGE_ADDR(pix, 0, Y);
		const unsigned char *tri = t.tri + (size_t)ty.near[Y] * t.ww;
		unsigned char *o = VIPS_IMAGE_ADDR(out, 0, Y);
		int r0 = ty.a.i0[Y], r1 = ty.a.i1[Y];
		float wy = ty.a.wt[Y];

		for (int X = 0; X < W; X++) {
			const unsigned char *c = px + (size_t)X * bands;
			int c0 = tx.a.i0[X], c1 = tx.a.i1[X];
			float wx = tx.a.wt[X], q = 0;

			if (tri[tx.near[X]] != IMG_TRIMAP_UNKNOWN)
				continue;
			for (int j = 0; j < 4; j++) {
				static const int plane[4] = {V_R, V_Z, V_P, V_Q};
				float a00 = at(&t, plane[j], c0, r0), a01 = at(&t, plane[j], c1, r0);
				float a10 = at(&t, plane[j], c0, r1), a11 = at(&t, plane[j], c1, r1);
				float top = a00 + wx * (a01 - a00), bot = a10 + wx * (a11 - a10);
				float v = top + wy * (bot - top);

				q += j ? v * (c[j - 1] * (1.0f / 255)) : v;
			}
			q = q < 0 ? 0 : q > 1 ? 1 : q;
			q *= bands == 4 ? (float)c[3] : 255.0f;
			o[X] = (unsigned char)(q + 0.5f);
		}
	}
	ok = 0;
out:
	taps_free(&tx);
	taps_free(&ty);
	free(ws);
	mat_free(&t);
	return ok;
}

int img_matting_trimap_of(VipsImage *pix, const float *p, int lw, int lh, VipsImage *out)
{
	struct mat t = {0};
	struct taps tx = {0}, ty = {0};
	int W = pix->Xsize, H = pix->Ysize, ok = -1;

	if (plan(&t, W, H, p, lw, lh) || taps_init(&tx, W, t.ww) || taps_init(&ty, H, t.wh) ||
	    (t.unknown && tiles_setup(&t, pix)))
		goto out;
	for (int Y = 0; Y < H; Y++) {
		const unsigned char *tri = t.tri + (size_t)ty.near[Y] * t.ww;
		unsigned char *o = VIPS_IMAGE_ADDR(out, 0, Y);

		for (int X = 0; X < W; X++)
			o[X] = tri[tx.near[X]];
	}
	ok = 0;
out:
	taps_free(&tx);
	taps_free(&ty);
	mat_free(&t);
	return ok;
}
