/*
 * test_wino.c - the bf16 Winograd F(2x2, 3x3) and F(4x4, 3x3) convolutions (src/nn/wino.c)
 * against a direct convolution in double precision over the same bf16
 * inputs: odd and even sizes (partial tiles at the edges), batches, channel
 * counts that use every micro-kernel shape, with and without bias, ReLU and
 * the residual sum, an input in parts (a Concat never made), dilated
 * kernels (run as their interleaved sub-images), and convolutions with one
 * to three output channels (run directly); on a CPU with AMX, each case
 * with the matrix products on AMX tiles and on AVX-512.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/wino.h"

#include "check.h"

static uint32_t seed = 12345;

static float noise(void)
{
	seed = seed * 1664525u + 1013904223u;
	return (float)(seed >> 8) / (float)(1u << 24) - 0.5f;
}

static uint16_t to_bf16(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof u);
	u += 0x7fff + ((u >> 16) & 1);
	return (uint16_t)(u >> 16);
}

static float from_bf16(uint16_t h)
{
	uint32_t u = (uint32_t)h << 16;
	float f;
	memcpy(&f, &u, sizeof f);
	return f;
}

struct cfg {
	int n, cin, cout, h, w;
	int bias, relu, sum, relu_after;
	int parts; /* the input cut into this many parts along its channels (0: 1) */
	int dilation; /* the kernel's (0: 1), padding the same */
	int tile;  /* 2: F(2x2, 3x3), 4: F(4x4, 3x3) */
};

/* Runs one case; returns the largest error in units of the case's bound. */
static double run_case(const struct cfg *k, double *rms)
{
	size_t ni = (size_t)k->n * k->h * k->w * k->cin, no = (size_t)k->n * k->h * k->w * k->cout;
	size_t nw = (size_t)k->cout * k->cin * 9;
	uint16_t *x = malloc(ni * 2), *y = malloc(no * 2), *u = malloc(wino_weights_size(k->cin, k->cout, k->tile));
	float *wt = malloc(nw * 4), *b = malloc((size_t)k->cout * 4), *prev = malloc(no * 4);
	double worst = 0, e2 = 0, r2 = 0;

	if (!x || !y || !u || !wt || !b || !prev)
		abort();
	for (size_t i = 0; i < ni; i++)
		x[i] = to_bf16(noise() * 4);
	for (size_t i = 0; i < nw; i++)
		wt[i] = noise() * 0.2f;
	for (int i = 0; i < k->cout; i++)
		b[i] = noise();
	for (size_t i = 0; i < no; i++) {
		y[i] = to_bf16(noise() * 2); /* what dst holds before: the addend */
		prev[i] = from_bf16(y[i]);
	}
	wino_weights(wt, k->cin, k->cout, k->tile, u);
	struct wino_conv c = {.cin = k->cin, .cout = k->cout, .n_parts = k->parts ? k->parts : 1, .tile = k->tile,
			      .dilation = k->dilation ? k->dilation : 1, .u = u,
			      .bias = k->bias ? b : NULL, .relu = k->relu, .sum = k->sum, .relu_after = k->relu_after};
	/* the parts: equal runs of 16-channel groups, the last taking the rest,
	 * each its own n x h x w x channels tensor */
	const uint16_t *src[WINO_MAX_PARTS];
	uint16_t *part[WINO_MAX_PARTS];
	size_t pix = (size_t)k->n * k->h * k->w;
	for (int p = 0, at = 0; p < c.n_parts; p++) {
		int ch = p < c.n_parts - 1 ? k->cin / 16 / c.n_parts * 16 : k->cin - at;
		c.part_cin[p] = ch;
		if (!(part[p] = malloc(pix * (size_t)ch * 2)))
			abort();
		for (size_t i = 0; i < pix; i++)
			memcpy(part[p] + i * (size_t)ch, x + i * (size_t)k->cin + at, (size_t)ch * 2);
		src[p] = part[p];
		at += ch;
	}
	/* its buffers in a scratch of exactly the size it asks for (so that
	 * ASan sees a byte past it), or, every other run, none: it allocates
	 * them for the call */
	static int runs;
	size_t sz = wino_scratch_size(&c, k->n, k->h, k->w);
	void *scratch = NULL;
	if (runs++ % 2 && posix_memalign(&scratch, 64, sz ? sz : 1))
		abort();
	if (wino_run(&c, src, y, k->n, k->h, k->w, scratch, scratch ? sz : 0))
		abort(); /* a test: no memory is a failure */
	free(scratch);
	for (int p = 0; p < c.n_parts; p++)
		free(part[p]);
	for (int img = 0; img < k->n; img++)
		for (int oy = 0; oy < k->h; oy++)
			for (int ox = 0; ox < k->w; ox++)
				for (int o = 0; o < k->cout; o++) {
					double acc = k->bias ? b[o] : 0, mag = fabs(acc);
					for (int ky = 0; ky < 3; ky++)
						for (int kx = 0; kx < 3; kx++) {
							int d = k->dilation ? k->dilation : 1;
							int iy = oy + (ky - 1) * d, ix = ox + (kx - 1) * d;
							if (iy < 0 || iy >= k->h || ix < 0 || ix >= k->w)
								continue;
							const uint16_t *px = x + (((size_t)img * k->h + iy) * k->w + ix) * k->cin;
							for (int i = 0; i < k->cin; i++) {
								double t = (double)from_bf16(px[i]) *
									   wt[((size_t)o * k->cin + i) * 9 + ky * 3 + kx];
								acc += t;
								mag += fabs(t);
							}
						}
					size_t at = (((size_t)img * k->h + oy) * k->w + ox) * k->cout + o;
					if (k->relu && acc < 0)
						acc = 0;
					if (k->sum)
						acc += prev[at], mag += fabs(prev[at]);
					if (k->relu_after && acc < 0)
						acc = 0;
					/* bf16 transforms and weights: a few units of 2^-8 of the
					 * terms' magnitude (four times as many for F(4x4, 3x3),
					 * whose larger coefficients amplify the rounding), plus
					 * the output's own bf16 rounding */
					double bound = mag * (k->tile == 4 ? 0.016 : 0.004) + fabs(acc) * 0.008 + 1e-6;
					double e = fabs(from_bf16(y[at]) - acc) / bound;
					e2 += (from_bf16(y[at]) - acc) * (from_bf16(y[at]) - acc);
					r2 += acc * acc;
					if (e > worst)
						worst = e;
				}
	free(x);
	free(y);
	free(u);
	free(wt);
	free(b);
	free(prev);
	*rms = sqrt(e2 / (r2 + 1e-30));
	return worst;
}

int main(void)
{
	static const struct cfg cases[] = {
		{1, 32, 16, 8, 8, 1, 0, 0, 0},	  /* one 16-channel group */
		{1, 32, 32, 7, 9, 1, 1, 0, 0},	  /* odd sizes: partial tiles */
		{2, 64, 48, 13, 6, 0, 1, 1, 0},	  /* a batch, three groups, sum after ReLU */
		{1, 64, 64, 16, 16, 1, 0, 1, 1},  /* sum then ReLU */
		{1, 96, 80, 5, 5, 1, 1, 0, 0},	  /* 64 + 16 output channels */
		{3, 32, 128, 9, 11, 1, 1, 1, 0},  /* two 64-channel blocks */
		{1, 32, 128, 48, 40, 1, 1, 0, 0}, /* too many tiles for the wide schedule */
		{1, 256, 64, 12, 12, 1, 1, 0, 0}, /* deep input, several row blocks */
		{1, 32, 16, 1, 1, 1, 1, 0, 0},	  /* a single pixel */
		{1, 1024, 32, 3, 4, 1, 0, 0, 0},  /* few tiles, deep input */
		{2, 64, 64, 10, 7, 1, 1, 1, 0, 2}, /* a Concat of two 32-channel parts */
		{1, 96, 32, 9, 9, 1, 1, 0, 0, 3}, /* of three 32-channel parts */
		{1, 32, 16, 6, 6, 1, 0, 0, 0, 2}, /* of two 16-channel parts */
		{1, 64, 32, 16, 16, 1, 1, 0, 0, 0, 2},	/* dilation 2: four 8x8 sub-images */
		{2, 32, 48, 8, 12, 1, 0, 1, 1, 0, 4},	/* dilation 4, a batch, the sum */
		{1, 64, 64, 16, 16, 1, 1, 1, 0, 2, 8},	/* dilation 8 (2x2 sub-images), in parts */
		{1, 32, 16, 9, 6, 1, 0, 0, 0, 0, 3},	/* dilation 3: 3x2 sub-images */
		{1, 64, 1, 9, 7, 1, 0, 0, 0},		/* one output channel: direct */
		{2, 48, 3, 5, 6, 1, 1, 1, 1, 3},	/* three, in parts of 16, the sum */
		{1, 32, 2, 8, 8, 0, 1, 0, 0, 0, 2},	/* two, dilated */
	};
	int n = (int)(sizeof cases / sizeof cases[0]);

	if (!wino_supported(32, 16)) {
		printf("skip: this CPU has no AVX512_BF16, so petcut runs no Winograd bf16 convolutions here\n");
		return 77;
	}
	CHECK(!wino_supported(16, 16) && !wino_supported(32, 8), "channel counts it cannot take are refused");
	CHECK(wino_supported(32, 1) && wino_supported(32, WINO_NARROW), "a few output channels are taken (directly)");
	/* each case on both schedules where it fits the wide one (few tiles,
	 * many output channels), and on both AMX and AVX-512 where there is AMX */
	int amx = wino_amx();
	printf("AMX tiles for the products: %s\n", amx ? "yes (each case also without)" : "no (this CPU or process has none)");
	for (int on_amx = amx; on_amx >= 0; on_amx--) {
		setenv("PETCUT_NN_WINO_AMX", on_amx ? "1" : "0", 1);
		CHECK(wino_amx() == on_amx, "PETCUT_NN_WINO_AMX=%d is followed", on_amx);
		for (int wide = 1; wide >= 0; wide--) {
			setenv("PETCUT_NN_WINO_WIDE", wide ? "1" : "0", 1);
			for (int tile = 2; tile <= 4; tile += 2)
				for (int i = 0; i < n; i++) {
					struct cfg k = cases[i];
					double rms, e;
					k.tile = tile;
					e = run_case(&k, &rms);
					CHECK(e <= 1.0,
					      "%s%s%s: n %d, %d -> %d channels, %dx%d, bias %d relu %d sum %d relu after %d, "
					      "%d part(s), dilation %d: error %.2f of the bound, relative RMS %.2g",
					      k.cout <= WINO_NARROW ? "direct" : tile == 4 ? "F(4x4, 3x3)" : "F(2x2, 3x3)",
					      on_amx ? " on AMX" : "", wide ? "" : " (wide schedule off)", k.n, k.cin, k.cout, k.h,
					      k.w, k.bias, k.relu, k.sum, k.relu_after, k.parts ? k.parts : 1,
					      k.dilation ? k.dilation : 1, e, rms);
				}
		}
	}
	return failures ? 1 : 0;
}
