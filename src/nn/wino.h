/*
 * wino.h - bf16 3x3 convolutions (stride 1, padding 1) as Winograd
 * F(2x2, 3x3) or F(4x4, 3x3) on AVX512_BF16.
 *
 * oneDNN runs bf16 convolutions directly only; Winograd F(2x2, 3x3) does the
 * same work with 16 multiplications per 2x2 outputs instead of 36, F(4x4,
 * 3x3) with 36 per 4x4 outputs instead of 144, at four times F(2x2)'s
 * rounding error (about 1.5 % of an output against 0.4 %). Each image is
 * cut into output tiles; a block of tiles has its input patches (4x4 or
 * 6x6) transformed (B^T d B, in fp32, kept as bf16), multiplied with the
 * transformed weights (G g G^T, bf16) as 16 or 36 matrix products that
 * accumulate in fp32 (vdpbf16ps, or AMX tiles where the CPU has them), and
 * transformed back (A^T m A) with the bias, ReLU and residual sum applied
 * before the bf16 result is stored.
 * Tensors are channels-last (N, H, W, C) bf16.
 */
#ifndef PETCUT_NN_WINO_H
#define PETCUT_NN_WINO_H

#include <stddef.h>
#include <stdint.h>

#define WINO_MAX_PARTS 8

/* Convolutions with at most this many output channels are not Winograd's:
 * they run directly (the same bf16 operands, fp32 sums) */
#define WINO_NARROW 3

struct wino_conv {
	int cin, cout; /* cin % 32 == 0, cout % 16 == 0 or cout <= WINO_NARROW */
	/* the input in parts along the channels (a concatenation never made),
	 * each a multiple of 16 channels, summing to cin */
	int n_parts;
	int part_cin[WINO_MAX_PARTS];
	int tile;	   /* outputs a tile's side: 2, F(2x2, 3x3), or 4, F(4x4, 3x3) */
	/* the kernel's dilation (padding the same): each of the dilation^2
	 * interleaved sub-images (rows and columns taken every dilation-th)
	 * is then an ordinary 3x3 convolution; h and w are its multiples */
	int dilation;
	const uint16_t *u; /* wino_weights' output for that tile */
	const float *bias; /* cout, or NULL */
	/* then, in this order: ReLU, adding what dst held before, ReLU */
	int relu, sum, relu_after;
};

/* True if the matrix products run on AMX tiles: the CPU has AMX-BF16, the
 * process may use it, and PETCUT_NN_WINO_AMX is not 0. */
int wino_amx(void);

/* True if this CPU runs them (AVX512_BF16) and the shape suits. */
int wino_supported(int cin, int cout);

/* True if they beat oneDNN's direct bf16 kernels at this size, measured
 * (on a CPU with AMX, only with the products on its tiles, as oneDNN's
 * direct kernels use them too). Convolutions with
 * few tiles and at least 128 output channels (the deep layers) are run
 * output channels first, all tiles at once, so that the transformed
 * weights are read once (PETCUT_NN_WINO_WIDE=0 turns that off). */
int wino_worth(int cin, int cout, int h, int w);

/* The tile side for a convolution of h x w images: 4 where
 * there are at least WINO_F4_PIXELS pixels, else 2 (PETCUT_NN_WINO_TILE=2
 * or 4 chooses). Large images are where the time goes and their layers'
 * weights are small; ISNet medium at 1024 x 1024, bf16: 442-448 ms a pass
 * against 500-516 ms with F(2x2) alone and 431-456 ms with F(4x4) alone
 * (whose weights take more than twice the memory), masks within IoU
 * 0.996 of fp32's on the test photos. */
#define WINO_F4_PIXELS (128 * 128)
int wino_tile(int h, int w);

/* Bytes of the transformed weights of a cin -> cout convolution. */
size_t wino_weights_size(int cin, int cout, int tile);

/* Transforms w (cout x cin x 3 x 3, fp32) into u (wino_weights_size bytes). */
void wino_weights(const float *w, int cin, int cout, int tile, uint16_t *u);

/* Bytes of scratch wino_run wants for c on n images of h x w with as many
 * threads as OpenMP has now: a plan keeps them beside oneDNN's scratchpads,
 * so that a pass allocates nothing (and a first pass touches no new page). */
size_t wino_scratch_size(const struct wino_conv *c, int n, int h, int w);

/* Runs c on n images of h x w: part p of the input src[p], n x h x w x
 * part_cin[p]; dst n x h x w x cout; its buffers in scratch (64-byte
 * aligned, scratch_bytes long), or allocated for the call when that is too
 * small. 0, or -1 when they could not be (dst is then untouched). With a
 * dilation, h and w must be its multiples. */
int wino_run(const struct wino_conv *c, const uint16_t *const *src, uint16_t *dst, int n, int h, int w,
	     void *scratch, size_t scratch_bytes);

#endif
