/*
 * ops_ref.c - the reference kernels of the operators.
 *
 * Reference kernels run on dense row-major tensors. They fold constants at
 * load and plan time (Shape/Slice/Concat chains, casts of initializers) and
 * run the light operators at run time; the heavy ones (Conv, MaxPool,
 * Resize, Concat and eltwise on activations) are planned onto oneDNN by
 * plan_conv.c and plan_lower.c, and the kernels here are their
 * specification in tests.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/ops_int.h"

/* ===== Reference kernels ===== */

/* Visits every element of o's index space with the matching element offsets
 * of the broadcast inputs a and b. */
#define BROADCAST_LOOP(o, a, b, ...)                                                           \
	do {                                                                                    \
		int64_t sa_[NN_MAX_RANK], sb_[NN_MAX_RANK], idx_[NN_MAX_RANK] = {0};            \
		int64_t ea_ = 1, eb_ = 1, total_ = nn_numel((o)->rank, (o)->dims), ia, ib;      \
		for (int d_ = (o)->rank - 1; d_ >= 0; d_--) {                                   \
			int da_ = d_ - ((o)->rank - (a)->rank), db_ = d_ - ((o)->rank - (b)->rank); \
			int64_t na_ = da_ >= 0 ? (a)->dims[da_] : 1, nb_ = db_ >= 0 ? (b)->dims[db_] : 1; \
			sa_[d_] = na_ == 1 ? 0 : ea_;                                           \
			sb_[d_] = nb_ == 1 ? 0 : eb_;                                           \
			ea_ *= na_;                                                             \
			eb_ *= nb_;                                                             \
		}                                                                               \
		ia = ib = 0;                                                                    \
		for (int64_t i = 0; i < total_; i++) {                                          \
			__VA_ARGS__;                                                                \
			for (int d_ = (o)->rank - 1; d_ >= 0; d_--) {                           \
				ia += sa_[d_];                                                  \
				ib += sb_[d_];                                                  \
				if (++idx_[d_] < (o)->dims[d_])                                 \
					break;                                                  \
				ia -= sa_[d_] * idx_[d_];                                       \
				ib -= sb_[d_] * idx_[d_];                                       \
				idx_[d_] = 0;                                                   \
			}                                                                       \
		}                                                                               \
	} while (0)

#define BINARY_CASE(DT, T)                                                                 \
	case DT: {                                                                         \
		const T *pa = a->data, *pb = b->data;                                      \
		T *po = o->data;                                                           \
		if (add)                                                                   \
			BROADCAST_LOOP(o, a, b, po[i] = (T)(pa[ia] + pb[ib]));             \
		else                                                                       \
			BROADCAST_LOOP(o, a, b, po[i] = (T)(pa[ia] * pb[ib]));             \
		return NN_OK;                                                              \
	}

static nn_status ref_binary(const struct nn_node *n, const struct nn_tview *a, const struct nn_tview *b,
			    struct nn_tview *o)
{
	bool add = n->op == NN_OP_ADD;

	switch (o->dtype) {
	BINARY_CASE(NN_DTYPE_F32, float)
	BINARY_CASE(NN_DTYPE_F64, double)
	BINARY_CASE(NN_DTYPE_I64, int64_t)
	BINARY_CASE(NN_DTYPE_I32, int32_t)
	BINARY_CASE(NN_DTYPE_U8, uint8_t)
	BINARY_CASE(NN_DTYPE_I8, int8_t)
	case NN_DTYPE_F16: {
		const uint16_t *pa = a->data, *pb = b->data;
		uint16_t *po = o->data;
		BROADCAST_LOOP(o, a, b, {
			float va = nn_f16_to_f32(pa[ia]), vb = nn_f16_to_f32(pb[ib]);
			po[i] = nn_f32_to_f16(add ? va + vb : va * vb);
		});
		return NN_OK;
	}
	default:
		return FAIL(NN_ERR_UNSUPPORTED, n, "element type %d", NODE(n), o->dtype);
	}
}

static nn_status ref_cast(const struct nn_tview *x, struct nn_tview *o)
{
	int64_t cnt = nn_numel(x->rank, x->dims);
	bool fx = x->dtype == NN_DTYPE_F32 || x->dtype == NN_DTYPE_F64 || x->dtype == NN_DTYPE_F16;

	if (x->dtype == o->dtype) {
		memcpy(o->data, x->data, nn_tview_bytes(x));
		return NN_OK;
	}
	for (int64_t i = 0; i < cnt; i++) {
		double v = 0;
		int64_t iv = 0;
		switch (x->dtype) {
		case NN_DTYPE_U8: iv = ((const uint8_t *)x->data)[i]; break;
		case NN_DTYPE_I8: iv = ((const int8_t *)x->data)[i]; break;
		case NN_DTYPE_BOOL: iv = ((const uint8_t *)x->data)[i] != 0; break;
		case NN_DTYPE_I32: iv = ((const int32_t *)x->data)[i]; break;
		case NN_DTYPE_I64: iv = ((const int64_t *)x->data)[i]; break;
		default: v = ops_get_num(x, i); break;
		}
		if (!fx)
			v = (double)iv;
		else if (o->dtype != NN_DTYPE_F32 && o->dtype != NN_DTYPE_F64 && o->dtype != NN_DTYPE_F16 &&
			 o->dtype != NN_DTYPE_BOOL)
			iv = isfinite(v) && fabs(v) < 9.2e18 ? (int64_t)v : 0; /* truncation toward zero */
		switch (o->dtype) {
		case NN_DTYPE_F32: ((float *)o->data)[i] = (float)v; break;
		case NN_DTYPE_F64: ((double *)o->data)[i] = v; break;
		case NN_DTYPE_F16: ((uint16_t *)o->data)[i] = nn_f32_to_f16((float)v); break;
		case NN_DTYPE_BOOL: ((uint8_t *)o->data)[i] = fx ? v != 0 : iv != 0; break;
		case NN_DTYPE_U8: ((uint8_t *)o->data)[i] = (uint8_t)iv; break;
		case NN_DTYPE_I8: ((int8_t *)o->data)[i] = (int8_t)iv; break;
		case NN_DTYPE_I32: ((int32_t *)o->data)[i] = (int32_t)iv; break;
		case NN_DTYPE_I64: ((int64_t *)o->data)[i] = iv; break;
		default: break;
		}
	}
	return NN_OK;
}

static void ref_concat(const struct nn_node *n, const struct nn_tview *const *in, struct nn_tview *o)
{
	int64_t axis = n->a.axis < 0 ? n->a.axis + o->rank : n->a.axis;
	int64_t outer = nn_numel((int)axis, o->dims), inner = nn_numel(o->rank - (int)axis - 1, o->dims + axis + 1);
	size_t es = nn_dtype_size(o->dtype), orow = (size_t)(o->dims[axis] * inner) * es;
	char *dst = o->data;

	for (int64_t i = 0; i < outer; i++) {
		size_t off = 0;
		for (int k = 0; k < n->n_in; k++) {
			size_t row = (size_t)(in[k]->dims[axis] * inner) * es;
			memcpy(dst + (size_t)i * orow + off, (const char *)in[k]->data + (size_t)i * row, row);
			off += row;
		}
	}
}

/* Geometry of a conv/pool call, with 1-D and 2-D cases as 3-D. */
struct geom {
	int64_t N, C, M, G, id[3], od[3], k[3], s[3], d[3], pb[3];
};

static nn_status geom_of(const struct nn_node *n, const struct nn_tview *x, const struct nn_tview *w,
			 const struct nn_tview *o, struct geom *g)
{
	const struct nn_conv_attr *a = &n->a.conv;
	int nsp = x->rank - 2, pad = 3 - nsp;
	int64_t kernel[NN_MAX_SPATIAL], pb[NN_MAX_SPATIAL], pe[NN_MAX_SPATIAL], osp[NN_MAX_SPATIAL];

	for (int i = 0; i < nsp; i++)
		kernel[i] = w ? w->dims[2 + i] : a->kernel[i];
	nn_status st = nn_conv_out_dims(n, nsp, x->dims + 2, kernel, osp, pb, pe);
	if (st)
		return st;
	g->N = x->dims[0];
	g->C = x->dims[1];
	g->M = o->dims[1];
	g->G = w ? a->group : 1;
	for (int i = 0; i < 3; i++) {
		int j = i - pad;
		g->id[i] = j >= 0 ? x->dims[2 + j] : 1;
		g->od[i] = j >= 0 ? o->dims[2 + j] : 1;
		g->k[i] = j >= 0 ? kernel[j] : 1;
		g->s[i] = j >= 0 ? a->strides[j] : 1;
		g->d[i] = j >= 0 ? a->dilations[j] : 1;
		g->pb[i] = j >= 0 ? pb[j] : 0;
	}
	return NN_OK;
}

/* Direct convolution; ConvInteger when xz/wz are given (int32 result). */
static nn_status ref_conv(const struct nn_node *n, const struct nn_tview *const *in, struct nn_tview *o)
{
	const struct nn_tview *x = in[0], *w = in[1];
	bool integer = n->op == NN_OP_CONVINTEGER;
	struct geom g;
	nn_status st = geom_of(n, x, w, o, &g);
	int64_t cg, mg;

	if (st)
		return st;
	cg = g.C / g.G;
	mg = g.M / g.G;
#define XV(i) (integer ? (x->dtype == NN_DTYPE_U8 ? (double)((const uint8_t *)x->data)[i] : (double)((const int8_t *)x->data)[i]) - xz \
		       : (double)((const float *)x->data)[i])
#define WV(i, m) (integer ? (w->dtype == NN_DTYPE_U8 ? (double)((const uint8_t *)w->data)[i] : (double)((const int8_t *)w->data)[i]) - wz[(m)] \
			  : w->dtype == NN_DTYPE_F16 ? (double)nn_f16_to_f32(((const uint16_t *)w->data)[i]) \
			  : (double)((const float *)w->data)[i])
	double xz = 0, *wz = calloc((size_t)g.M, sizeof *wz);
	if (!wz)
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	if (integer) {
		if (n->n_in > 2 && in[2])
			xz = ops_get_num(in[2], 0);
		if (n->n_in > 3 && in[3])
			for (int64_t m = 0; m < g.M; m++)
				wz[m] = ops_get_num(in[3], nn_numel(in[3]->rank, in[3]->dims) == 1 ? 0 : m);
	}
	for (int64_t b = 0; b < g.N; b++)
	for (int64_t m = 0; m < g.M; m++)
	for (int64_t od = 0; od < g.od[0]; od++)
	for (int64_t oh = 0; oh < g.od[1]; oh++)
	for (int64_t ow = 0; ow < g.od[2]; ow++) {
		double acc = 0;
		int64_t grp = m / mg;
		for (int64_t c = 0; c < cg; c++)
		for (int64_t kd = 0; kd < g.k[0]; kd++)
		for (int64_t kh = 0; kh < g.k[1]; kh++)
		for (int64_t kw = 0; kw < g.k[2]; kw++) {
			int64_t id = od * g.s[0] - g.pb[0] + kd * g.d[0];
			int64_t ih = oh * g.s[1] - g.pb[1] + kh * g.d[1];
			int64_t iw = ow * g.s[2] - g.pb[2] + kw * g.d[2];
			if (id < 0 || id >= g.id[0] || ih < 0 || ih >= g.id[1] || iw < 0 || iw >= g.id[2])
				continue;
			int64_t xi = (((b * g.C + grp * cg + c) * g.id[0] + id) * g.id[1] + ih) * g.id[2] + iw;
			int64_t wi = (((m * cg + c) * g.k[0] + kd) * g.k[1] + kh) * g.k[2] + kw;
			acc += XV(xi) * WV(wi, m);
		}
		int64_t oi = (((b * g.M + m) * g.od[0] + od) * g.od[1] + oh) * g.od[2] + ow;
		if (integer && !n->float_out) {
			((int32_t *)o->data)[oi] = (int32_t)acc;
		} else if (integer) {
			((float *)o->data)[oi] = (float)acc;
		} else {
			if (n->n_in > 2 && in[2])
				acc += ((const float *)in[2]->data)[m];
			((float *)o->data)[oi] = (float)acc;
		}
	}
#undef XV
#undef WV
	free(wz);
	return NN_OK;
}

#define MAXPOOL_LOOP(T, LOWEST)                                                                  \
	do {                                                                                    \
		const T *src = x->data;                                                         \
		T *dst = o->data;                                                               \
		for (int64_t bc = 0; bc < g.N * g.C; bc++)                                      \
		for (int64_t od = 0; od < g.od[0]; od++)                                        \
		for (int64_t oh = 0; oh < g.od[1]; oh++)                                        \
		for (int64_t ow = 0; ow < g.od[2]; ow++) {                                      \
			T m = LOWEST;                                                           \
			for (int64_t kd = 0; kd < g.k[0]; kd++)                                 \
			for (int64_t kh = 0; kh < g.k[1]; kh++)                                 \
			for (int64_t kw = 0; kw < g.k[2]; kw++) {                               \
				int64_t id = od * g.s[0] - g.pb[0] + kd * g.d[0];               \
				int64_t ih = oh * g.s[1] - g.pb[1] + kh * g.d[1];               \
				int64_t iw = ow * g.s[2] - g.pb[2] + kw * g.d[2];               \
				if (id < 0 || id >= g.id[0] || ih < 0 || ih >= g.id[1] || iw < 0 || iw >= g.id[2]) \
					continue;                                               \
				T v = src[((bc * g.id[0] + id) * g.id[1] + ih) * g.id[2] + iw]; \
				if (v > m || v != v)                                            \
					m = v;                                                  \
			}                                                                       \
			dst[((bc * g.od[0] + od) * g.od[1] + oh) * g.od[2] + ow] = m;           \
		}                                                                               \
	} while (0)

static nn_status ref_maxpool(const struct nn_node *n, const struct nn_tview *x, struct nn_tview *o)
{
	struct geom g;
	nn_status st = geom_of(n, x, NULL, o, &g);

	if (st)
		return st;
	if (x->dtype == NN_DTYPE_U8)
		MAXPOOL_LOOP(uint8_t, 0);
	else if (x->dtype == NN_DTYPE_I8)
		MAXPOOL_LOOP(int8_t, INT8_MIN);
	else
		MAXPOOL_LOOP(float, -INFINITY);
	return NN_OK;
}

/* Source coordinate of output index i along an axis (ONNX Resize rules). */
static double resize_coord(int coord, int64_t i, double scale, int64_t in_len, int64_t out_len)
{
	switch (coord) {
	case NN_COORD_HALF_PIXEL: return ((double)i + 0.5) / scale - 0.5;
	case NN_COORD_PYTORCH_HALF_PIXEL: return out_len > 1 ? ((double)i + 0.5) / scale - 0.5 : 0.0;
	case NN_COORD_ALIGN_CORNERS: {
		/* ONNX divides by the unrounded resized length, in_len * scale */
		double len = (double)in_len * scale;
		return out_len > 1 ? (double)i * (double)(in_len - 1) / (len - 1.0) : 0.0;
	}
	default: return (double)i / scale;
	}
}

static int64_t resize_nearest(int mode, double c, int64_t in_len)
{
	int64_t r;
	switch (mode) {
	case NN_NEAREST_ROUND_PREFER_CEIL: r = (int64_t)floor(c + 0.5); break;
	case NN_NEAREST_FLOOR: r = (int64_t)floor(c); break;
	case NN_NEAREST_CEIL: r = (int64_t)ceil(c); break;
	default: r = c - floor(c) == 0.5 ? (int64_t)floor(c) : (int64_t)floor(c + 0.5); break;
	}
	return r < 0 ? 0 : r >= in_len ? in_len - 1 : r;
}

/* Per output index along one axis: the two source indices and the weight of
 * the second (nearest: both the same). */
struct taps {
	int64_t i0, i1;
	float w1;
};

static void resize_taps(const struct nn_resize_attr *a, double scale, int64_t in_len, int64_t out_len, struct taps *t)
{
	for (int64_t i = 0; i < out_len; i++) {
		double c = resize_coord(a->coord, i, scale, in_len, out_len);
		if (a->mode == NN_RESIZE_NEAREST) {
			t[i].i0 = t[i].i1 = resize_nearest(a->nearest, c, in_len);
			t[i].w1 = 0;
			continue;
		}
		if (c < 0)
			c = 0;
		if (c > (double)(in_len - 1))
			c = (double)(in_len - 1);
		t[i].i0 = (int64_t)floor(c);
		t[i].i1 = t[i].i0 + 1 < in_len ? t[i].i0 + 1 : t[i].i0;
		t[i].w1 = (float)(c - (double)t[i].i0);
	}
}

static nn_status ref_resize(const struct nn_node *n, const struct nn_tview *const *in, struct nn_tview *o)
{
	const struct nn_tview *x = in[0];
	double scales[NN_MAX_RANK];
	int64_t odims[NN_MAX_RANK];
	int r = x->rank;
	nn_status st = ops_resize_params(n, in, n->n_in, n->a.resize.v10 ? 10 : 11, scales, odims);

	if (st)
		return st;
	int64_t IH = x->dims[r - 2], IW = x->dims[r - 1], OH = o->dims[r - 2], OW = o->dims[r - 1];
	int64_t planes = nn_numel(r - 2, x->dims);
	struct taps *th = malloc(sizeof *th * (size_t)OH), *tw = malloc(sizeof *tw * (size_t)OW);
	if (!th || !tw) {
		free(th);
		free(tw);
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	}
	resize_taps(&n->a.resize, scales[r - 2], IH, OH, th);
	resize_taps(&n->a.resize, scales[r - 1], IW, OW, tw);
	for (int64_t p = 0; p < planes; p++) {
		const float *src = (const float *)x->data + p * IH * IW;
		float *dst = (float *)o->data + p * OH * OW;
		for (int64_t y = 0; y < OH; y++) {
			const float *r0 = src + th[y].i0 * IW, *r1 = src + th[y].i1 * IW;
			float wy = th[y].w1;
			for (int64_t xx = 0; xx < OW; xx++) {
				float a = r0[tw[xx].i0] + tw[xx].w1 * (r0[tw[xx].i1] - r0[tw[xx].i0]);
				float b = r1[tw[xx].i0] + tw[xx].w1 * (r1[tw[xx].i1] - r1[tw[xx].i0]);
				dst[y * OW + xx] = a + wy * (b - a);
			}
		}
	}
	free(th);
	free(tw);
	return NN_OK;
}

static nn_status ref_slice(const struct nn_node *n, const struct nn_tview *const *in, struct nn_tview *o)
{
	const struct nn_tview *x = in[0];
	int64_t start[NN_MAX_RANK], step[NN_MAX_RANK], odims[NN_MAX_RANK], idx[NN_MAX_RANK] = {0}, xs[NN_MAX_RANK];
	size_t es = nn_dtype_size(x->dtype);
	int64_t total = nn_numel(o->rank, o->dims), stride = 1;
	nn_status st = ops_slice_params(n, in, n->n_in, start, step, odims);

	if (st)
		return st;
	for (int d = x->rank - 1; d >= 0; d--) {
		xs[d] = stride;
		stride *= x->dims[d];
	}
	for (int64_t i = 0; i < total; i++) {
		int64_t off = 0;
		for (int d = 0; d < x->rank; d++)
			off += (start[d] + idx[d] * step[d]) * xs[d];
		memcpy((char *)o->data + (size_t)i * es, (const char *)x->data + (size_t)off * es, es);
		for (int d = o->rank - 1; d >= 0; d--) {
			if (++idx[d] < o->dims[d])
				break;
			idx[d] = 0;
		}
	}
	return NN_OK;
}

/* Round half to even for |v| < 2^22, without a library call. */
static inline float round_even(float v)
{
	const float magic = 12582912.0f; /* 1.5 * 2^23 */
	return v >= 0 ? (v + magic) - magic : -((-v + magic) - magic);
}

/* Elementwise but for one global range, so it runs on any dense layout. */
static void ref_dql(const struct nn_tview *x, struct nn_tview *out)
{
	int64_t cnt = nn_numel(x->rank, x->dims);
	const float *src = x->data;
	uint8_t *q = out[0].data;
	float lo = 0, hi = 0, scale, zp;

	#pragma omp parallel for reduction(min : lo) reduction(max : hi) if (cnt > 65536)
	for (int64_t i = 0; i < cnt; i++) {
		lo = src[i] < lo ? src[i] : lo;
		hi = src[i] > hi ? src[i] : hi;
	}
	scale = (hi - lo) / 255.0f;
	zp = 0;
	if (scale > 0) {
		zp = round_even(0.0f - lo / scale);
		zp = zp < 0 ? 0 : zp > 255 ? 255 : zp;
	}
	#pragma omp parallel for if (cnt > 65536)
	for (int64_t i = 0; i < cnt; i++) {
		float v = scale > 0 ? round_even(src[i] / scale) + zp : zp;
		q[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
	}
	*(float *)out[1].data = scale;
	*(uint8_t *)out[2].data = (uint8_t)zp;
}

nn_status nn_op_ref(const struct nn_node *n, const struct nn_tview *const *in, struct nn_tview *out)
{
	const struct nn_tview *x = in[0];
	int64_t cnt = nn_numel(x->rank, x->dims);

	switch (n->op) {
	case NN_OP_ADD:
	case NN_OP_MUL:
		return ref_binary(n, in[0], in[1], &out[0]);
	case NN_OP_CAST:
		return ref_cast(x, &out[0]);
	case NN_OP_IDENTITY:
	case NN_OP_RESHAPE:
		memcpy(out[0].data, x->data, nn_tview_bytes(x));
		return NN_OK;
	case NN_OP_RELU: {
		const float *s = x->data;
		float *d = out[0].data;
		for (int64_t i = 0; i < cnt; i++)
			d[i] = s[i] > 0 ? s[i] : 0.0f;
		return NN_OK;
	}
	case NN_OP_SIGMOID: {
		const float *s = x->data;
		float *d = out[0].data;
		for (int64_t i = 0; i < cnt; i++)
			d[i] = 1.0f / (1.0f + expf(-s[i]));
		return NN_OK;
	}
	case NN_OP_CONCAT:
		ref_concat(n, in, &out[0]);
		return NN_OK;
	case NN_OP_CONV:
	case NN_OP_CONVINTEGER:
		return ref_conv(n, in, &out[0]);
	case NN_OP_MAXPOOL:
		return ref_maxpool(n, x, &out[0]);
	case NN_OP_DQL:
		ref_dql(x, out);
		return NN_OK;
	case NN_OP_RESIZE:
		return ref_resize(n, in, &out[0]);
	case NN_OP_SHAPE:
		for (int64_t i = 0; i < out[0].dims[0]; i++) {
			int64_t s = n->a.shape.start < 0 ? n->a.shape.start + x->rank : n->a.shape.start;
			if (s < 0)
				s = 0;
			((int64_t *)out[0].data)[i] = x->dims[s + i];
		}
		return NN_OK;
	case NN_OP_SLICE:
		return ref_slice(n, in, &out[0]);
	case NN_OP_COUNT:
		break;
	}
	return FAIL(NN_ERR_UNSUPPORTED, n, "no reference kernel", NODE(n));
}
