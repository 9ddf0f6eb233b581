/*
 * wino.c - bf16 3x3 convolutions as Winograd F(2x2, 3x3) or F(4x4, 3x3)
 * (see wino.h).
 *
 * F(2x2, 3x3): with d a 4x4 input patch, g a 3x3 kernel and
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],
 *   G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1],
 *   A^T = [1 1 1 0; 0 1 -1 -1],
 * the 2x2 outputs are A^T [(G g G^T) . (B^T d B)] A, summed over the input
 * channels inside the bracket: for each of the 16 positions xi of the 4x4
 * products, a matrix product M_xi = V_xi U_xi with V_xi (tiles x cin) the
 * transformed inputs and U_xi (cin x cout) the transformed weights.
 *
 * F(4x4, 3x3) is the same on 6x6 patches and 36 products per 4x4 outputs
 * (2.25 multiplications an output instead of 4), its matrices those of the
 * points 0, 1, -1, 1/2, -2 and infinity, which of the usual choices rounds
 * least in bf16 (simulated: 1.3 % relative RMS error a convolution against
 * 2.0 % for 0, +-1, +-2, and 0.33 % for F(2x2, 3x3)).
 *
 * Layouts: V is [xi][tile][cin] bf16, so a tile's two neighbouring channels
 * are one 32-bit broadcast; U is [xi][cin / 2][cout][2] bf16, so 16 output
 * channels times two input channels are one 64-byte load, the operands of
 * vdpbf16ps. M is [xi][tile][64] fp32 for one block of 64 output channels.
 * The same layouts are AMX's operands as they are: 16 tiles' V (16 rows of
 * 32 channels) and U's 16 pairs of rows for 16 output channels are one tile
 * each, and TDPBF16PS accumulates their product into a tile of M.
 */
#include <immintrin.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "nn/wino.h"

#include <dnnl.h>

#define TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16")))
#define AMX_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,amx-tile,amx-bf16")))
#define ALWAYS_INLINE inline __attribute__((always_inline))
#define NO_ASAN __attribute__((no_sanitize("address")))

/* most rows (tiles) and output channels of a micro-kernel call; AMX_ROWS
 * the rows of an AMX call, which reads and writes whole 16-row tiles */
enum { R_MAX = 12, OCB = 64, AMX_ROWS = 32 };

/* ===== AMX ===== */

/* Whether the matrix products run on AMX tiles: the CPU has them (as
 * oneDNN sees it, so ONEDNN_MAX_CPU_ISA limits both), Linux lets this
 * process use them (arch_prctl ARCH_REQ_XCOMP_PERM for the tile data), and
 * PETCUT_NN_WINO_AMX is not 0. */
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

static int amx_cpu, amx_ok; /* the CPU has AMX; and this process may use it */
static pthread_once_t amx_once = PTHREAD_ONCE_INIT;

static void amx_probe(void)
{
	amx_cpu = (dnnl_get_effective_cpu_isa() & dnnl_cpu_isa_avx512_core_amx) == dnnl_cpu_isa_avx512_core_amx;
	amx_ok = amx_cpu && syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}

int wino_amx(void)
{
	pthread_once(&amx_once, amx_probe);
	const char *env = getenv("PETCUT_NN_WINO_AMX");
	return amx_ok && !(env && !strcmp(env, "0"));
}

/* The tile configuration (palette 1): eight 16-row tiles of 64 bytes a row:
 * 0-3 accumulate M (16 tiles x 16 output channels, fp32), 4-5 hold V (16
 * tiles x 16 pairs of input channels), 6-7 U (16 pairs x 16 output
 * channels, each a pair). Loaded by each thread before its products. */
struct amx_cfg {
	uint8_t palette, start_row, reserved[14];
	uint16_t colsb[16];
	uint8_t rows[16];
};

static const struct amx_cfg amx_cfg __attribute__((aligned(64))) = {
	.palette = 1,
	.colsb = {64, 64, 64, 64, 64, 64, 64, 64},
	.rows = {16, 16, 16, 16, 16, 16, 16, 16},
};

/* (A constant table: GCC 12 drops stores to a local one that only
 * ldtilecfg reads.) */
AMX_TARGET static void amx_begin(void)
{
	_tile_loadconfig(&amx_cfg);
}

AMX_TARGET static void amx_end(void)
{
	_tile_release();
}

/* As micro below on AMX, for 16 (TWO_A 0) or 32 rows and 16 (TWO_B 0) or
 * 32 columns of M at m: whole tiles, so rows past the caller's R are read
 * from a and written to m (the callers' buffers hold them). */
NO_ASAN AMX_TARGET static ALWAYS_INLINE void amx_block(int two_a, int two_b, const uint16_t *a, int lda,
							 const uint16_t *b, int ldb, int kp, float *m, size_t ldm)
{
	size_t sa = (size_t)lda * 2, sb = (size_t)ldb * 2, sm = ldm * 4;
	const uint16_t *a1 = a + (size_t)16 * (size_t)lda;
	_tile_zero(0);
	_tile_zero(1);
	_tile_zero(2);
	_tile_zero(3);
	for (int k = 0; k < kp; k += 16) {
		const uint16_t *bk = b + (size_t)k * (size_t)ldb;
		_tile_loadd(4, a + 2 * k, sa);
		_tile_loadd(6, bk, sb);
		_tile_dpbf16ps(0, 4, 6);
		if (two_b) {
			_tile_loadd(7, bk + 32, sb);
			_tile_dpbf16ps(1, 4, 7);
		}
		if (two_a) {
			_tile_loadd(5, a1 + 2 * k, sa);
			_tile_dpbf16ps(2, 5, 6);
			if (two_b)
				_tile_dpbf16ps(3, 5, 7);
		}
	}
	_tile_stored(0, m, sm);
	if (two_b)
		_tile_stored(1, m + 16, sm);
	if (two_a) {
		_tile_stored(2, m + 16 * ldm, sm);
		if (two_b)
			_tile_stored(3, m + 16 * ldm + 16, sm);
	}
}

/* m[r][0..16*C) as micro computes it, r < R <= AMX_ROWS, on AMX; rows up
 * to R rounded up to 16 are read from a and written to m. */
NO_ASAN AMX_TARGET static void micro_amx(int R, int C, const uint16_t *a, int lda, const uint16_t *b, int ldb,
					 int kp, float *m)
{
	size_t ldm = (size_t)(16 * C);
	for (int j = 0; j < C; j += 2) {
		const uint16_t *bj = b + 32 * j;
		float *mj = m + 16 * j;
		if (R > 16 && j + 1 < C)
			amx_block(1, 1, a, lda, bj, ldb, kp, mj, ldm);
		else if (R > 16)
			amx_block(1, 0, a, lda, bj, ldb, kp, mj, ldm);
		else if (j + 1 < C)
			amx_block(0, 1, a, lda, bj, ldb, kp, mj, ldm);
		else
			amx_block(0, 0, a, lda, bj, ldb, kp, mj, ldm);
	}
}

int wino_supported(int cin, int cout)
{
	static int isa = -1;
	if (isa < 0)
		isa = (dnnl_get_effective_cpu_isa() & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16;
	return isa && cin > 0 && cout > 0 && cin % 32 == 0 && (cout % 16 == 0 || cout <= WINO_NARROW);
}

static int wide_fits(int tile, int cout, int n, int h, int w);

int wino_worth(int cin, int cout, int h, int w)
{
	/* Where the CPU has AMX tiles, oneDNN's direct kernels use them too:
	 * these win only with their products on AMX (ISNet medium, bf16
	 * 1024x1024, 2-core Xeon with AMX, 8 rounds interleaved: median 328 ms
	 * a pass, 241-393, against 531 ms, 283-652, with oneDNN's direct kernels
	 * on AMX). */
	if (!wino_amx() && amx_cpu) /* (wino_amx probes amx_cpu first) */
		return 0;
	/* oneDNN's bf16 kernels take one output channel at 23 GFLOP/s (ISNet's
	 * side output, 64 -> 1 at 512 x 512: 13.8 ms against 5.1 ms direct) */
	if (cout <= WINO_NARROW)
		return 1;
	/* Where the wide schedule takes them, few tiles do not matter */
	if (wide_fits(wino_tile(h, w), cout, 1, h, w))
		return 1;
	/* Each block of tiles streams the transformed weights (32 cin cout
	 * bytes) once: with fewer tiles per image than cin cout / 1024, oneDNN's
	 * direct kernels were faster here (ISNet: 1024 -> 512 channels at 32x32,
	 * 11.6 against 9.3 ms; 512 -> 512 at 16x16, 2.8 against 2.3 ms) */
	return (int64_t)((h + 1) / 2) * ((w + 1) / 2) * 1024 >= (int64_t)cin * cout;
}

int wino_tile(int h, int w)
{
	const char *env = getenv("PETCUT_NN_WINO_TILE");
	if (env && (!strcmp(env, "2") || !strcmp(env, "4")))
		return *env - '0';
	return (int64_t)h * w >= (int64_t)WINO_F4_PIXELS ? 4 : 2;
}

/* Positions of the products: (tile + 2) squared. */
static int positions(int tile)
{
	return (tile + 2) * (tile + 2);
}

size_t wino_weights_size(int cin, int cout, int tile)
{
	if (cout <= WINO_NARROW)
		return (size_t)9 * (size_t)cin * (size_t)cout * sizeof(uint16_t);
	return (size_t)positions(tile) * (size_t)cin * (size_t)cout * sizeof(uint16_t);
}

static uint16_t to_bf16(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof u);
	u += 0x7fff + ((u >> 16) & 1); /* round to nearest even */
	return (uint16_t)(u >> 16);
}

/* G of F(4x4, 3x3) */
static const double G4[6][3] = {
	{1, 0, 0},
	{1.0 / 3, 1.0 / 3, 1.0 / 3},
	{-1.0 / 3, 1.0 / 3, -1.0 / 3},
	{-16.0 / 15, -8.0 / 15, -4.0 / 15},
	{1.0 / 15, -2.0 / 15, 4.0 / 15},
	{0, 0, 1},
};

static void weights4(const float *w, int cin, int cout, uint16_t *u)
{
	for (int o = 0; o < cout; o++)
		for (int i = 0; i < cin; i++) {
			const float *g = w + ((size_t)o * (size_t)cin + (size_t)i) * 9;
			double t[6][3];
			for (int a = 0; a < 6; a++) /* G g */
				for (int c = 0; c < 3; c++)
					t[a][c] = G4[a][0] * g[c] + G4[a][1] * g[3 + c] + G4[a][2] * g[6 + c];
			for (int a = 0; a < 6; a++) /* (G g) G^T */
				for (int b = 0; b < 6; b++) {
					double r = t[a][0] * G4[b][0] + t[a][1] * G4[b][1] + t[a][2] * G4[b][2];
					u[(((size_t)(6 * a + b) * (size_t)(cin / 2) + (size_t)(i / 2)) * (size_t)cout + (size_t)o) * 2 +
					  (size_t)(i & 1)] = to_bf16((float)r);
				}
		}
}

void wino_weights(const float *w, int cin, int cout, int tile, uint16_t *u)
{
	if (cout <= WINO_NARROW) { /* [o][tap][cin], for run_narrow */
		for (int o = 0; o < cout; o++)
			for (int t = 0; t < 9; t++)
				for (int i = 0; i < cin; i++)
					u[((size_t)o * 9 + (size_t)t) * (size_t)cin + (size_t)i] =
						to_bf16(w[((size_t)o * (size_t)cin + (size_t)i) * 9 + (size_t)t]);
		return;
	}
	if (tile == 4) {
		weights4(w, cin, cout, u);
		return;
	}
	for (int o = 0; o < cout; o++)
		for (int i = 0; i < cin; i++) {
			const float *g = w + ((size_t)o * (size_t)cin + (size_t)i) * 9;
			float t[4][3], r[4][4];
			for (int c = 0; c < 3; c++) { /* G g */
				t[0][c] = g[c];
				t[1][c] = 0.5f * (g[c] + g[3 + c] + g[6 + c]);
				t[2][c] = 0.5f * (g[c] - g[3 + c] + g[6 + c]);
				t[3][c] = g[6 + c];
			}
			for (int k = 0; k < 4; k++) { /* (G g) G^T */
				r[k][0] = t[k][0];
				r[k][1] = 0.5f * (t[k][0] + t[k][1] + t[k][2]);
				r[k][2] = 0.5f * (t[k][0] - t[k][1] + t[k][2]);
				r[k][3] = t[k][2];
			}
			for (int xi = 0; xi < 16; xi++)
				u[(((size_t)xi * (size_t)(cin / 2) + (size_t)(i / 2)) * (size_t)cout + (size_t)o) * 2 +
				  (size_t)(i & 1)] = to_bf16(r[xi / 4][xi % 4]);
		}
}

TARGET static ALWAYS_INLINE __m512 load_bf16(const uint16_t *p)
{
	__m256i h = _mm256_loadu_si256((const __m256i *)p);
	return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

TARGET static ALWAYS_INLINE void store_bf16(uint16_t *p, __m512 x)
{
	_mm256_storeu_si256((__m256i *)p, (__m256i)_mm512_cvtneps_pbh(x));
}

TARGET static ALWAYS_INLINE void store2_bf16(uint16_t *p, __m512 lo, __m512 hi)
{
	_mm512_storeu_si512((void *)p, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
}

/* B^T of F(4x4, 3x3) applied to d[0..5] */
#define BT4(d, r)                                                                                              \
	do {                                                                                                   \
		__m512 h_ = _mm512_set1_ps(0.5f), t_ = _mm512_set1_ps(1.5f), f_ = _mm512_set1_ps(2.5f),        \
		       two_ = _mm512_set1_ps(2.0f);                                                            \
		r[0] = _mm512_add_ps(_mm512_fmadd_ps(t_, _mm512_sub_ps(d[3], d[1]), d[0]),                      \
				     _mm512_fnmadd_ps(two_, d[2], d[4]));                                       \
		r[1] = _mm512_add_ps(_mm512_fmadd_ps(f_, d[3], d[4]), _mm512_fmsub_ps(h_, d[2], d[1]));         \
		r[2] = _mm512_add_ps(_mm512_fmadd_ps(h_, d[3], d[4]), _mm512_fnmadd_ps(f_, d[2], d[1]));        \
		r[3] = _mm512_add_ps(_mm512_fmadd_ps(two_, _mm512_sub_ps(d[3], d[1]), d[4]), _mm512_sub_ps(_mm512_setzero_ps(), d[2])); \
		r[4] = _mm512_add_ps(_mm512_fmadd_ps(h_, _mm512_sub_ps(d[1], d[3]), d[4]), _mm512_sub_ps(_mm512_setzero_ps(), d[2])); \
		r[5] = _mm512_add_ps(_mm512_fmadd_ps(t_, _mm512_sub_ps(d[4], d[2]), d[1]),                      \
				     _mm512_fnmadd_ps(two_, d[3], d[5]));                                       \
	} while (0)

/* The vertical half of B^T d B for input column x of the n rows from y0
 * (n = 4: F(2x2, 3x3); 6: F(4x4, 3x3), with BT4) of image img, all
 * channels (part after part): ring[i][c] fp32 (zero outside the image). */
TARGET static ALWAYS_INLINE void column(const struct wino_conv *cv, const uint16_t *const *src, int img, int h, int w,
					int y0, int x, float *ring, int n)
{
	size_t cin = (size_t)cv->cin;
	int at = 0;
	for (int p = 0; p < cv->n_parts; p++) {
		size_t cp = (size_t)cv->part_cin[p];
		const uint16_t *row[6];
		for (int i = 0; i < n; i++) {
			int y = y0 + i;
			row[i] = y >= 0 && y < h && x >= 0 && x < w
					 ? src[p] + (((size_t)img * (size_t)h + (size_t)y) * (size_t)w + (size_t)x) * cp
					 : NULL;
		}
		for (size_t c = 0; c < cp; c += 16) {
			__m512 d[6], r[6];
			float *o = ring + at + c;
			for (int i = 0; i < n; i++)
				d[i] = row[i] ? load_bf16(row[i] + c) : _mm512_setzero_ps();
			if (n == 6) {
				BT4(d, r);
			} else {
				r[0] = _mm512_sub_ps(d[0], d[2]);
				r[1] = _mm512_add_ps(d[1], d[2]);
				r[2] = _mm512_sub_ps(d[2], d[1]);
				r[3] = _mm512_sub_ps(d[1], d[3]);
			}
			for (int i = 0; i < n; i++)
				_mm512_store_ps(o + (size_t)i * cin, r[i]);
		}
		at += (int)cp;
	}
}

/* V for tiles [t0, t0 + nt) of the n x th x tw tiles of src (cin a
 * multiple of 32). The vertical transforms of input columns go to a ring
 * of four (ring: 16 x cin floats), so neighbouring tiles of a row, which
 * share two columns, transform them once. */
TARGET static void input_transform(const struct wino_conv *cv, const uint16_t *const *src, int h, int w, int tw,
				   int tiles, int t0, int nt, uint16_t *v, int stride_xi, float *ring)
{
	int cin = cv->cin;
	int prev = -2; /* the previous tile's index in its row, -2: none */
	size_t cs = 4 * (size_t)cin; /* one column of the ring */
	for (int k = 0; k < nt; k++) {
		int t = t0 + k, img = t / tiles, ty = t % tiles / tw, tx = t % tiles % tw;
		int y0 = 2 * ty - 1, x0 = 2 * tx - 1;
		/* column x lives in ring slot (x + 1) % 4 */
		if (tx != prev + 1 || k == 0) {
			column(cv, src, img, h, w, y0, x0, ring + (size_t)((x0 + 1) & 3) * cs, 4);
			column(cv, src, img, h, w, y0, x0 + 1, ring + (size_t)((x0 + 2) & 3) * cs, 4);
		}
		column(cv, src, img, h, w, y0, x0 + 2, ring + (size_t)((x0 + 3) & 3) * cs, 4);
		column(cv, src, img, h, w, y0, x0 + 3, ring + (size_t)((x0 + 4) & 3) * cs, 4);
		prev = tx;
		const float *c0 = ring + (size_t)((x0 + 1) & 3) * cs, *c1 = ring + (size_t)((x0 + 2) & 3) * cs,
			    *c2 = ring + (size_t)((x0 + 3) & 3) * cs, *c3 = ring + (size_t)((x0 + 4) & 3) * cs;
		uint16_t *o = v + (size_t)k * (size_t)cin;
		for (int i = 0; i < 4; i++) { /* (B^T d) B, row i */
			size_t ri = (size_t)i * (size_t)cin;
			uint16_t *oi = o + (size_t)(4 * i) * (size_t)stride_xi;
			for (int c = 0; c < cin; c += 32) {
				__m512 a0 = _mm512_load_ps(c0 + ri + c), a1 = _mm512_load_ps(c1 + ri + c),
				       a2 = _mm512_load_ps(c2 + ri + c), a3 = _mm512_load_ps(c3 + ri + c);
				__m512 b0 = _mm512_load_ps(c0 + ri + c + 16), b1 = _mm512_load_ps(c1 + ri + c + 16),
				       b2 = _mm512_load_ps(c2 + ri + c + 16), b3 = _mm512_load_ps(c3 + ri + c + 16);
				store2_bf16(oi + c, _mm512_sub_ps(a0, a2), _mm512_sub_ps(b0, b2));
				store2_bf16(oi + stride_xi + c, _mm512_add_ps(a1, a2), _mm512_add_ps(b1, b2));
				store2_bf16(oi + 2 * (size_t)stride_xi + c, _mm512_sub_ps(a2, a1), _mm512_sub_ps(b2, b1));
				store2_bf16(oi + 3 * (size_t)stride_xi + c, _mm512_sub_ps(a1, a3), _mm512_sub_ps(b1, b3));
			}
		}
	}
}


/* V for tiles [t0, t0 + nt) of F(4x4, 3x3): as input_transform, with a
 * ring of six columns (ring: 36 x cin floats), two shared by neighbouring
 * tiles. */
TARGET static void input_transform4(const struct wino_conv *cv, const uint16_t *const *src, int h, int w, int tw,
				    int tiles, int t0, int nt, uint16_t *v, int stride_xi, float *ring)
{
	int cin = cv->cin;
	int prev = -2;
	size_t cs = 6 * (size_t)cin;
	for (int k = 0; k < nt; k++) {
		int t = t0 + k, img = t / tiles, ty = t % tiles / tw, tx = t % tiles % tw;
		int y0 = 4 * ty - 1, x0 = 4 * tx - 1;
		/* column x lives in ring slot (x + 1) % 6 */
		const float *col[6];
		for (int j = 0; j < 6; j++) {
			float *slot = ring + (size_t)((x0 + 1 + j) % 6) * cs;
			if (j >= 2 || tx != prev + 1 || k == 0)
				column(cv, src, img, h, w, y0, x0 + j, slot, 6);
			col[j] = slot;
		}
		prev = tx;
		uint16_t *o = v + (size_t)k * (size_t)cin;
		for (int i = 0; i < 6; i++) { /* (B^T d) B, row i */
			size_t ri = (size_t)i * (size_t)cin;
			uint16_t *oi = o + (size_t)(6 * i) * (size_t)stride_xi;
			for (int c = 0; c < cin; c += 32) {
				__m512 d[6], r[6], e[6], q[6];
				for (int j = 0; j < 6; j++) {
					d[j] = _mm512_load_ps(col[j] + ri + c);
					e[j] = _mm512_load_ps(col[j] + ri + c + 16);
				}
				BT4(d, r);
				BT4(e, q);
				for (int j = 0; j < 6; j++)
					store2_bf16(oi + (size_t)j * (size_t)stride_xi + c, r[j], q[j]);
			}
		}
	}
}

/* A^T of F(4x4, 3x3) applied to m[0..5] */
#define AT4(m, y)                                                                                              \
	do {                                                                                                   \
		__m512 s12_ = _mm512_add_ps(m[1], m[2]), d12_ = _mm512_sub_ps(m[1], m[2]);                        \
		y[0] = _mm512_add_ps(_mm512_add_ps(s12_, m[0]), _mm512_add_ps(m[3], m[4]));                       \
		y[1] = _mm512_fmadd_ps(_mm512_set1_ps(0.5f), m[3], _mm512_fnmadd_ps(_mm512_set1_ps(2.0f), m[4], d12_)); \
		y[2] = _mm512_fmadd_ps(_mm512_set1_ps(0.25f), m[3], _mm512_fmadd_ps(_mm512_set1_ps(4.0f), m[4], s12_)); \
		y[3] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(0.125f), m[3],                                \
						     _mm512_fnmadd_ps(_mm512_set1_ps(8.0f), m[4], d12_)), m[5]);  \
	} while (0)

/* m[r][0..16*C) = sum over k < kp of a[r] pair k times b pair k, for R rows
 * of a (stride lda bf16) and C groups of 16 columns of b (row of pairs:
 * ldb bf16); m's rows are 16 * C floats apart.
 *
 * The micro-kernel reads only V and U and writes only M, within the sizes
 * wino_run gives them (rows r + R <= T, pairs k < cin / 2, columns
 * oc0 + 16 C <= cout); AddressSanitizer leaves it alone, as checking each of
 * its loads made sanitizer builds' inference 3 x slower than the rest of
 * the suite allows. The transforms, which touch the caller's tensors, stay
 * checked. */
NO_ASAN TARGET static ALWAYS_INLINE void micro(int R, int C, const uint16_t *a, int lda, const uint16_t *b, int ldb, int kp,
				       float *m)
{
	__m512 acc[R_MAX][4];
#pragma GCC unroll 12
	for (int r = 0; r < R; r++)
#pragma GCC unroll 4
		for (int j = 0; j < C; j++)
			acc[r][j] = _mm512_setzero_ps();
	for (int k = 0; k < kp; k++) {
		__m512i bj[4];
#pragma GCC unroll 4
		for (int j = 0; j < C; j++)
			bj[j] = _mm512_loadu_si512((const void *)(b + (size_t)k * (size_t)ldb + 32 * j));
#pragma GCC unroll 12
		for (int r = 0; r < R; r++) {
			int32_t pair;
			memcpy(&pair, a + (size_t)r * (size_t)lda + 2 * k, sizeof pair);
			__m512i ar = _mm512_set1_epi32(pair);
#pragma GCC unroll 4
			for (int j = 0; j < C; j++)
				acc[r][j] = _mm512_dpbf16_ps(acc[r][j], (__m512bh)ar, (__m512bh)bj[j]);
		}
	}
#pragma GCC unroll 12
	for (int r = 0; r < R; r++)
#pragma GCC unroll 4
		for (int j = 0; j < C; j++)
			_mm512_store_ps(m + (size_t)r * (size_t)(16 * C) + 16 * j, acc[r][j]);
}

#define MICRO_R6(C)                                                                 \
	switch (R) {                                                                \
	case 1: micro(1, C, a, lda, b, ldb, kp, m); break;                          \
	case 2: micro(2, C, a, lda, b, ldb, kp, m); break;                          \
	case 3: micro(3, C, a, lda, b, ldb, kp, m); break;                          \
	case 4: micro(4, C, a, lda, b, ldb, kp, m); break;                          \
	case 5: micro(5, C, a, lda, b, ldb, kp, m); break;                          \
	default: micro(6, C, a, lda, b, ldb, kp, m); break;                         \
	}
#define MICRO_R12(C)                                                                \
	switch (R) {                                                                \
	case 1: case 2: case 3: case 4: case 5: case 6: MICRO_R6(C); break;         \
	case 7: micro(7, C, a, lda, b, ldb, kp, m); break;                          \
	case 8: micro(8, C, a, lda, b, ldb, kp, m); break;                          \
	case 9: micro(9, C, a, lda, b, ldb, kp, m); break;                          \
	case 10: micro(10, C, a, lda, b, ldb, kp, m); break;                        \
	case 11: micro(11, C, a, lda, b, ldb, kp, m); break;                        \
	default: micro(12, C, a, lda, b, ldb, kp, m); break;                        \
	}

/* The rows a call takes: 6 x 64 or 12 x 32 accumulators at most, or
 * two tiles' on AMX. */
static int rows_for(int C, int amx)
{
	return amx ? AMX_ROWS : C <= 2 ? R_MAX : R_MAX / 2;
}

/* Rows a buffer of V or M gives a call of R rows: R, or on AMX R rounded
 * up to whole tiles. */
static int rows_held(int R, int amx)
{
	return amx ? (R + 15) / 16 * 16 : R;
}

NO_ASAN TARGET static void micro_any(int amx, int R, int C, const uint16_t *a, int lda, const uint16_t *b, int ldb,
				     int kp, float *m)
{
	if (amx) {
		micro_amx(R, C, a, lda, b, ldb, kp, m);
		return;
	}
	switch (C) {
	case 1: MICRO_R12(1); break;
	case 2: MICRO_R12(2); break;
	case 3: MICRO_R6(3); break;
	default: MICRO_R6(4); break;
	}
}

/* Stores output v (bias added) at o: ReLU, the sum with what o held, ReLU,
 * as c asks. */
TARGET static ALWAYS_INLINE void finish(const struct wino_conv *c, uint16_t *o, __m512 v)
{
	if (c->relu)
		v = _mm512_max_ps(v, _mm512_setzero_ps());
	if (c->sum)
		v = _mm512_add_ps(v, load_bf16(o));
	if (c->relu_after)
		v = _mm512_max_ps(v, _mm512_setzero_ps());
	store_bf16(o, v);
}

/* dst for tiles [t0, t0 + nt), output channels [oc0, oc0 + 16 * C), from
 * M ([xi][tile][16 * C], xs floats from one xi to the next). */
TARGET static void output_transform(const struct wino_conv *c, const float *mb, size_t xs, uint16_t *dst, int h, int w,
				    int tw, int tiles, int t0, int nt, int oc0, int C)
{
	for (int k = 0; k < nt; k++) {
		int t = t0 + k, img = t / tiles, ty = t % tiles / tw, tx = t % tiles % tw;
		uint16_t *base = dst + (size_t)img * (size_t)h * (size_t)w * (size_t)c->cout;
		for (int j = 0; j < C; j++) {
			const float *mp = mb + (size_t)k * (size_t)(16 * C) + 16 * j;
			__m512 z[2][4], y[4];
#pragma GCC unroll 4
			for (int col = 0; col < 4; col++) { /* A^T m */
				__m512 m0 = _mm512_load_ps(mp + (size_t)col * xs), m1 = _mm512_load_ps(mp + (size_t)(4 + col) * xs),
				       m2 = _mm512_load_ps(mp + (size_t)(8 + col) * xs), m3 = _mm512_load_ps(mp + (size_t)(12 + col) * xs);
				z[0][col] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
				z[1][col] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
			}
			int oc = oc0 + 16 * j;
			__m512 bias = c->bias ? _mm512_loadu_ps(c->bias + oc) : _mm512_setzero_ps();
#pragma GCC unroll 2
			for (int i = 0; i < 2; i++) { /* (A^T m) A */
				y[2 * i] = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(z[i][0], z[i][1]), z[i][2]), bias);
				y[2 * i + 1] = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(z[i][1], z[i][2]), z[i][3]), bias);
			}
			for (int q = 0; q < 4; q++) {
				int yy = 2 * ty + q / 2, xx = 2 * tx + q % 2;
				if (yy >= h || xx >= w)
					continue;
				finish(c, base + ((size_t)yy * (size_t)w + (size_t)xx) * (size_t)c->cout + oc, y[q]);
			}
		}
	}
}

/* F(4x4, 3x3)'s output_transform (xi < 36; one function each: a tile
 * size chosen inside cost 10-15 ms a pass). */
TARGET static void output_transform4(const struct wino_conv *c, const float *mb, size_t xs, uint16_t *dst, int h, int w,
				     int tw, int tiles, int t0, int nt, int oc0, int C)
{
	for (int k = 0; k < nt; k++) {
		int t = t0 + k, img = t / tiles, ty = t % tiles / tw, tx = t % tiles % tw;
		uint16_t *base = dst + (size_t)img * (size_t)h * (size_t)w * (size_t)c->cout;
		for (int j = 0; j < C; j++) {
			const float *mp = mb + (size_t)k * (size_t)(16 * C) + 16 * j;
			__m512 z[4][6];
			for (int col = 0; col < 6; col++) { /* A^T m */
				__m512 v[6], y[4];
				for (int i = 0; i < 6; i++)
					v[i] = _mm512_load_ps(mp + (size_t)(6 * i + col) * xs);
				AT4(v, y);
				for (int i = 0; i < 4; i++)
					z[i][col] = y[i];
			}
			int oc = oc0 + 16 * j;
			__m512 bias = c->bias ? _mm512_loadu_ps(c->bias + oc) : _mm512_setzero_ps();
			for (int i = 0; i < 4; i++) { /* (A^T m) A */
				int yy = 4 * ty + i;
				if (yy >= h)
					break;
				__m512 y[4];
				AT4(z[i], y);
				for (int q = 0; q < 4; q++) {
					int xx = 4 * tx + q;
					if (xx >= w)
						break;
					finish(c, base + ((size_t)yy * (size_t)w + (size_t)xx) * (size_t)c->cout + oc,
					       _mm512_add_ps(y[q], bias));
				}
			}
		}
	}
}

/* Bytes rounded up to a cache line, for carving a scratch buffer. */
static size_t line_up(size_t b)
{
	return (b + 63) & ~(size_t)63;
}

/* run_tiles' schedule: blocks of T tiles; each thread's buffers (V of a
 * block, M of a micro-kernel's tiles, a ring of input rows) at thread
 * index x per_thread in its scratch. */
struct tiles_geom {
	int m, np, tw, tiles, total, nthr, step, T, blocks;
	size_t v, mb, per_thread;
};

static void tiles_geom(const struct wino_conv *c, int n, int h, int w, struct tiles_geom *g)
{
	int amx = wino_amx();
	g->m = c->tile == 4 ? 4 : 2;
	g->np = positions(g->m);
	g->tw = (w + g->m - 1) / g->m;
	g->tiles = ((h + g->m - 1) / g->m) * g->tw;
	g->total = n * g->tiles;
	g->nthr = omp_get_max_threads();
	g->step = amx ? AMX_ROWS : R_MAX;
	/* tiles per block: V (np x T x cin bf16) near 512 kB, at least two
	 * blocks per thread where there are enough tiles; a multiple of the
	 * rows of a micro-kernel call */
	int T = 262144 / (g->np * c->cin);
	if (T > 240)
		T = 240;
	T = T / g->step * g->step;
	if (T < g->step)
		T = g->step;
	while (T > g->step && (g->total + T - 1) / T < 2 * g->nthr)
		T -= g->step;
	g->T = T;
	g->blocks = (g->total + T - 1) / T;
	/* mb: M of a micro-kernel's tiles (48 or 108 kB; 288 kB on AMX) */
	g->v = line_up((size_t)g->np * (size_t)T * (size_t)c->cin * sizeof(uint16_t));
	g->mb = line_up((size_t)g->np * (size_t)g->step * OCB * sizeof(float));
	g->per_thread = g->v + g->mb + line_up((size_t)g->np * (size_t)c->cin * sizeof(float));
}

static void run_tiles(const struct wino_conv *c, const uint16_t *const *src, uint16_t *dst, int n, int h, int w,
		      unsigned char *scratch)
{
	int amx = wino_amx();
	struct tiles_geom g;

	tiles_geom(c, n, h, w, &g);
	int m = g.m, np = g.np, tw = g.tw, tiles = g.tiles, total = g.total, T = g.T;
#pragma omp parallel num_threads(g.nthr)
	{
		unsigned char *mine = scratch + (size_t)omp_get_thread_num() * g.per_thread;
		uint16_t *v = (uint16_t *)mine;
		float *mb = (float *)(mine + g.v), *ring = (float *)(mine + g.v + g.mb);
		if (amx)
			amx_begin();
#pragma omp for schedule(dynamic, 1)
		for (int bl = 0; bl < g.blocks; bl++) {
			int t0 = bl * T, nt = total - t0 < T ? total - t0 : T;
			if (m == 4)
				input_transform4(c, src, h, w, tw, tiles, t0, nt, v, T * c->cin, ring);
			else
				input_transform(c, src, h, w, tw, tiles, t0, nt, v, T * c->cin, ring);
			/* the rows AMX reads past the last tile: zeros */
			for (int xi = 0; xi < np && rows_held(nt, amx) > nt; xi++)
				memset(v + ((size_t)xi * (size_t)T + (size_t)nt) * (size_t)c->cin, 0,
				       (size_t)(rows_held(nt, amx) - nt) * (size_t)c->cin * sizeof *v);
			for (int oc0 = 0; oc0 < c->cout; oc0 += OCB) {
				int C = (c->cout - oc0 >= OCB ? OCB : c->cout - oc0) / 16;
				const uint16_t *uo = c->u + (size_t)oc0 * 2;
				int rows = rows_for(C, amx);
				for (int r = 0; r < nt; r += rows) {
					int R = nt - r < rows ? nt - r : rows;
					for (int xi = 0; xi < np; xi++)
						micro_any(amx, R, C, v + ((size_t)xi * (size_t)T + (size_t)r) * (size_t)c->cin,
							  c->cin, uo + (size_t)xi * (size_t)(c->cin / 2) * (size_t)c->cout * 2,
							  2 * c->cout, c->cin / 2, mb + (size_t)xi * (size_t)rows * (size_t)(16 * C));
					size_t xs = (size_t)rows * (size_t)(16 * C);
					if (m == 4)
						output_transform4(c, mb, xs, dst, h, w, tw, tiles, t0 + r, R, oc0, C);
					else
						output_transform(c, mb, xs, dst, h, w, tw, tiles, t0 + r, R, oc0, C);
				}
			}
		}
		if (amx)
			amx_end();
	}
}

/* The schedule for few tiles and many channels (the deep layers), where
 * run_tiles would stream all of U once per block of tiles: every tile's V
 * first, into one buffer; then each thread takes blocks of 64 output
 * channels and for one position xi after another multiplies all the tiles
 * (U's slice for the block and xi, cin x 64 bf16, stays in L2), M for
 * all tiles ([xi][tile][64] fp32) transformed back at the end. */
/* run_wide's buffers: V of every tile, shared, at the start of its scratch;
 * then each thread's M of every tile and ring of input rows. */
struct wide_geom {
	int m, np, tw, tiles, total, held, nthr;
	size_t v, ring, per_thread;
};

static void wide_geom(const struct wino_conv *c, int n, int h, int w, struct wide_geom *g)
{
	g->m = c->tile == 4 ? 4 : 2;
	g->np = positions(g->m);
	g->tw = (w + g->m - 1) / g->m;
	g->tiles = ((h + g->m - 1) / g->m) * g->tw;
	g->total = n * g->tiles;
	g->held = rows_held(g->total, wino_amx()); /* rows of V and M per position */
	g->nthr = omp_get_max_threads();
	g->v = line_up((size_t)g->np * (size_t)g->held * (size_t)c->cin * sizeof(uint16_t));
	g->ring = line_up((size_t)g->np * (size_t)c->cin * sizeof(float));
	g->per_thread = g->ring + line_up((size_t)g->np * (size_t)g->held * OCB * sizeof(float));
}

static void run_wide(const struct wino_conv *c, const uint16_t *const *src, uint16_t *dst, int n, int h, int w,
		     unsigned char *scratch)
{
	int amx = wino_amx();
	struct wide_geom g;

	wide_geom(c, n, h, w, &g);
	int m = g.m, np = g.np, tw = g.tw, tiles = g.tiles, total = g.total, held = g.held;
	size_t cin = (size_t)c->cin;
	uint16_t *v = (uint16_t *)scratch;

	for (int xi = 0; xi < np && held > total; xi++) /* read by AMX past the last tile */
		memset(v + ((size_t)xi * (size_t)held + (size_t)total) * cin, 0, (size_t)(held - total) * cin * sizeof *v);
#pragma omp parallel num_threads(g.nthr)
	{
		unsigned char *mine = scratch + g.v + (size_t)omp_get_thread_num() * g.per_thread;
		float *ring = (float *)mine, *mb = (float *)(mine + g.ring);
		if (amx)
			amx_begin();
#pragma omp for schedule(dynamic, 1)
		for (int t0 = 0; t0 < total; t0 += R_MAX) {
			int nt = total - t0 < R_MAX ? total - t0 : R_MAX;
			if (m == 4)
				input_transform4(c, src, h, w, tw, tiles, t0, nt, v + (size_t)t0 * cin, held * c->cin, ring);
			else
				input_transform(c, src, h, w, tw, tiles, t0, nt, v + (size_t)t0 * cin, held * c->cin, ring);
		}
		/* every V is made: the loop's end waited for all threads */
#pragma omp for schedule(dynamic, 1)
		for (int oc0 = 0; oc0 < c->cout; oc0 += OCB) {
			int C = (c->cout - oc0 >= OCB ? OCB : c->cout - oc0) / 16, rows = rows_for(C, amx);
			size_t xs = (size_t)held * (size_t)(16 * C);
			for (int xi = 0; xi < np; xi++) {
				const uint16_t *uo = c->u + (size_t)xi * (cin / 2) * (size_t)c->cout * 2 + (size_t)oc0 * 2;
				for (int r = 0; r < total; r += rows)
					micro_any(amx, total - r < rows ? total - r : rows, C,
						  v + ((size_t)xi * (size_t)held + (size_t)r) * cin, c->cin, uo, 2 * c->cout,
						  c->cin / 2, mb + (size_t)xi * xs + (size_t)r * (size_t)(16 * C));
			}
			if (m == 4)
				output_transform4(c, mb, xs, dst, h, w, tw, tiles, 0, total, oc0, C);
			else
				output_transform(c, mb, xs, dst, h, w, tw, tiles, 0, total, oc0, C);
		}
		if (amx)
			amx_end();
	}
}

/* True if run_wide suits: M for all tiles within 2 MiB a thread, and at
 * least two blocks of output channels. */
static int wide_fits(int tile, int cout, int n, int h, int w)
{
	int m = tile == 4 ? 4 : 2;
	int64_t total = (int64_t)n * ((h + m - 1) / m) * ((w + m - 1) / m);
	const char *env = getenv("PETCUT_NN_WINO_WIDE");
	if (env && !strcmp(env, "0"))
		return 0;
	return cout >= 2 * OCB && total * positions(m) * OCB * (int64_t)sizeof(float) <= (2 << 20);
}

/* Pixel (y, x) of image img of an n x h x w tensor in the dilation d
 * sub-images' order: sub-image (img d + y % d) d + x % d, at (y / d, x / d). */
static size_t sub_pixel(int img, int y, int x, int h, int w, int d)
{
	size_t sub = ((size_t)img * (size_t)d + (size_t)(y % d)) * (size_t)d + (size_t)(x % d);
	return (sub * (size_t)(h / d) + (size_t)(y / d)) * (size_t)(w / d) + (size_t)(x / d);
}

/* A dilated convolution as the ordinary one of its n d^2 sub-images: the
 * input (its parts joined) and, for the sum, dst gathered into that order,
 * the result scattered back. */

/* The undilated convolution run_dilated makes of c. */
static struct wino_conv undilated(const struct wino_conv *c)
{
	struct wino_conv whole = *c;
	whole.dilation = 1;
	whole.n_parts = 1;
	whole.part_cin[0] = c->cin;
	return whole;
}

/* run_dilated's scratch: the input and output in the sub-images' order,
 * then what the undilated convolution's run wants. */
static size_t dilated_size(const struct wino_conv *c, int n, int h, int w, size_t *x_bytes, size_t *y_bytes)
{
	int d = c->dilation;
	size_t pix = (size_t)n * (size_t)h * (size_t)w;
	struct wino_conv whole = undilated(c);

	*x_bytes = line_up(pix * (size_t)c->cin * sizeof(uint16_t));
	*y_bytes = line_up(pix * (size_t)c->cout * sizeof(uint16_t));
	return *x_bytes + *y_bytes + wino_scratch_size(&whole, n * d * d, h / d, w / d);
}

static void run_wino(const struct wino_conv *c, const uint16_t *const *src, uint16_t *dst, int n, int h, int w,
		     unsigned char *scratch);

static void run_dilated(const struct wino_conv *c, const uint16_t *const *src, uint16_t *dst, int n, int h, int w,
			unsigned char *scratch)
{
	int d = c->dilation;
	size_t cin = (size_t)c->cin, cout = (size_t)c->cout, xb, yb;
	uint16_t *x = (uint16_t *)scratch, *y;

	dilated_size(c, n, h, w, &xb, &yb);
	y = (uint16_t *)(scratch + xb);
#pragma omp parallel for
	for (int row = 0; row < n * h; row++) {
		int img = row / h, yy = row % h;
		for (int xx = 0; xx < w; xx++) {
			size_t from = ((size_t)row * (size_t)w + (size_t)xx), to = sub_pixel(img, yy, xx, h, w, d);
			for (int p = 0, at = 0; p < c->n_parts; at += c->part_cin[p], p++)
				memcpy(x + to * cin + at, src[p] + from * (size_t)c->part_cin[p],
				       (size_t)c->part_cin[p] * sizeof *x);
			if (c->sum)
				memcpy(y + to * cout, dst + from * cout, cout * sizeof *y);
		}
	}
	struct wino_conv whole = undilated(c);
	const uint16_t *xs[1] = {x};
	run_wino(&whole, xs, y, n * d * d, h / d, w / d, scratch + xb + yb);
#pragma omp parallel for
	for (int row = 0; row < n * h; row++) {
		int img = row / h, yy = row % h;
		for (int xx = 0; xx < w; xx++)
			memcpy(dst + ((size_t)row * (size_t)w + (size_t)xx) * cout, y + sub_pixel(img, yy, xx, h, w, d) * cout,
			       cout * sizeof *y);
	}
}

/* The sum of x[0..n) times u[0..n) (n a multiple of 16), pairs at once. */
TARGET static ALWAYS_INLINE __m512 dot_bf16(__m512 acc, const uint16_t *x, const uint16_t *u, size_t n)
{
	size_t i = 0;
	for (; i + 32 <= n; i += 32)
		acc = _mm512_dpbf16_ps(acc, (__m512bh)_mm512_loadu_si512((const void *)(x + i)),
				       (__m512bh)_mm512_loadu_si512((const void *)(u + i)));
	if (i < n) /* 16 left */
		acc = _mm512_dpbf16_ps(acc, (__m512bh)_mm512_maskz_loadu_epi16(0xffff, x + i),
				       (__m512bh)_mm512_maskz_loadu_epi16(0xffff, u + i));
	return acc;
}

/* A convolution with at most WINO_NARROW output channels, directly: each
 * output a dot product of its 3 x 3 x cin inputs with the weights, on
 * vdpbf16ps across the channels, NARROW_RUN neighbouring pixels of a row at
 * once (independent sums: one alone waits on each product's latency). */
#define NARROW_RUN 8
TARGET static void run_narrow(const struct wino_conv *c, const uint16_t *const *src, uint16_t *dst, int n, int h, int w)
{
	int d = c->dilation > 1 ? c->dilation : 1;
	size_t cin = (size_t)c->cin, cout = (size_t)c->cout;

#pragma omp parallel for schedule(static)
	for (int row = 0; row < n * h; row++) {
		int img = row / h, y = row % h;
		for (int x0 = 0; x0 < w; x0 += NARROW_RUN) {
			int run = w - x0 < NARROW_RUN ? w - x0 : NARROW_RUN;
			for (size_t oc = 0; oc < cout; oc++) {
				__m512 acc[NARROW_RUN];
				for (int j = 0; j < NARROW_RUN; j++)
					acc[j] = _mm512_setzero_ps();
				for (int t = 0; t < 9; t++) {
					int yy = y + (t / 3 - 1) * d;
					if (yy < 0 || yy >= h)
						continue;
					const uint16_t *uk = c->u + (oc * 9 + (size_t)t) * cin;
					size_t line = ((size_t)img * (size_t)h + (size_t)yy) * (size_t)w;
					int off = (t % 3 - 1) * d;
					if (run == NARROW_RUN && x0 + off >= 0 && x0 + NARROW_RUN - 1 + off < w) {
						/* inside the row: a weight vector for the whole run */
						for (int p = 0, at = 0; p < c->n_parts; at += c->part_cin[p], p++) {
							size_t cp = (size_t)c->part_cin[p];
							const uint16_t *xp = src[p] + (line + (size_t)(x0 + off)) * cp;
							for (size_t i = 0; i < cp; i += 32) {
								__mmask32 m = cp - i >= 32 ? 0xffffffffu : 0xffffu;
								__m512bh wv = (__m512bh)_mm512_maskz_loadu_epi16(m, uk + at + i);
#pragma GCC unroll 8
								for (int j = 0; j < NARROW_RUN; j++)
									acc[j] = _mm512_dpbf16_ps(
										acc[j], (__m512bh)_mm512_maskz_loadu_epi16(m, xp + (size_t)j * cp + i), wv);
							}
						}
						continue;
					}
					for (int j = 0; j < run; j++) {
						int xx = x0 + j + (t % 3 - 1) * d;
						if (xx < 0 || xx >= w)
							continue;
						for (int p = 0, at = 0; p < c->n_parts; at += c->part_cin[p], p++)
							acc[j] = dot_bf16(acc[j], src[p] + (line + (size_t)xx) * (size_t)c->part_cin[p],
									  uk + at, (size_t)c->part_cin[p]);
					}
				}
				for (int j = 0; j < run; j++) {
					uint16_t *o = dst + ((size_t)row * (size_t)w + (size_t)(x0 + j)) * cout + oc;
					float v = _mm512_reduce_add_ps(acc[j]) + (c->bias ? c->bias[oc] : 0.0f);
					if (c->relu && v < 0)
						v = 0;
					if (c->sum) {
						uint32_t b = (uint32_t)*o << 16;
						float prev;
						memcpy(&prev, &b, sizeof prev);
						v += prev;
					}
					if (c->relu_after && v < 0)
						v = 0;
					*o = to_bf16(v);
				}
			}
		}
	}
}

/* How c runs on n images of h x w: run_wino and its scratch's size follow
 * the one choice. */
enum schedule { NARROW, DILATED, WIDE, TILES };

static enum schedule schedule_of(const struct wino_conv *c, int n, int h, int w)
{
	return c->cout <= WINO_NARROW ? NARROW
	       : c->dilation > 1      ? DILATED
	       : wide_fits(c->tile, c->cout, n, h, w) ? WIDE
						      : TILES;
}

size_t wino_scratch_size(const struct wino_conv *c, int n, int h, int w)
{
	size_t xb, yb;

	switch (schedule_of(c, n, h, w)) {
	case NARROW:
		return 0;
	case DILATED:
		return dilated_size(c, n, h, w, &xb, &yb);
	case WIDE: {
		struct wide_geom g;
		wide_geom(c, n, h, w, &g);
		return g.v + (size_t)g.nthr * g.per_thread;
	}
	default: {
		struct tiles_geom g;
		tiles_geom(c, n, h, w, &g);
		return (size_t)g.nthr * g.per_thread;
	}
	}
}

static void run_wino(const struct wino_conv *c, const uint16_t *const *src, uint16_t *dst, int n, int h, int w,
		     unsigned char *scratch)
{
	switch (schedule_of(c, n, h, w)) {
	case NARROW: run_narrow(c, src, dst, n, h, w); break;
	case DILATED: run_dilated(c, src, dst, n, h, w, scratch); break;
	case WIDE: run_wide(c, src, dst, n, h, w, scratch); break;
	default: run_tiles(c, src, dst, n, h, w, scratch); break;
	}
}

int wino_run(const struct wino_conv *c, const uint16_t *const *src, uint16_t *dst, int n, int h, int w,
	     void *scratch, size_t scratch_bytes)
{
	size_t need = wino_scratch_size(c, n, h, w);
	void *own = NULL;

	if (need > scratch_bytes || ((uintptr_t)scratch & 63)) {
		if (posix_memalign(&own, 64, need ? need : 1))
			return -1;
		scratch = own;
	}
	run_wino(c, src, dst, n, h, w, scratch);
	free(own);
	return 0;
}
