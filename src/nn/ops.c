/*
 * ops.c - the operator table: load-time checks and shape inference (the
 * reference kernels are in ops_ref.c).
 */
#include <cpuid.h>
#include <immintrin.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "nn/ops_int.h"

const char *const nn_op_names[NN_OP_COUNT] = {
	[NN_OP_ADD] = "Add",
	[NN_OP_CAST] = "Cast",
	[NN_OP_CONCAT] = "Concat",
	[NN_OP_CONV] = "Conv",
	[NN_OP_CONVINTEGER] = "ConvInteger",
	[NN_OP_DQL] = "DynamicQuantizeLinear",
	[NN_OP_IDENTITY] = "Identity",
	[NN_OP_MAXPOOL] = "MaxPool",
	[NN_OP_MUL] = "Mul",
	[NN_OP_RELU] = "Relu",
	[NN_OP_RESHAPE] = "Reshape",
	[NN_OP_RESIZE] = "Resize",
	[NN_OP_SHAPE] = "Shape",
	[NN_OP_SIGMOID] = "Sigmoid",
	[NN_OP_SLICE] = "Slice",
};
_Static_assert(NN_OP_COUNT == 15, "update nn_op_names and the switches in ops.c and ops_ref.c");

/* ===== Numbers ===== */

float nn_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
	float f;

	if (exp == 0) {
		if (man == 0) {
			bits = sign;
		} else { /* subnormal: normalise */
			exp = 127 - 15 + 1;
			while (!(man & 0x400)) {
				man <<= 1;
				exp--;
			}
			bits = sign | (exp << 23) | ((man & 0x3ff) << 13);
		}
	} else if (exp == 31) {
		bits = sign | 0x7f800000 | (man << 13);
	} else {
		bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
	}
	memcpy(&f, &bits, sizeof f);
	return f;
}

/* Eight at a time with the F16C instructions (every x86-64 CPU since
 * 2012): the same values as nn_f16_to_f32, signalling NaNs quieted. */
__attribute__((target("avx,f16c"))) static void f16_to_f32_f16c(const uint16_t *in, float *out, size_t n)
{
	size_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(in + i))));
	for (; i < n; i++)
		out[i] = nn_f16_to_f32(in[i]);
}

/* Whether the CPU has F16C and the system saves the AVX registers. The
 * F16C bit comes from CPUID itself: not every compiler's
 * __builtin_cpu_supports knows it (clang 14 does not). */
static int has_f16c(void)
{
	unsigned a, b, c, d;

	return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C) && __builtin_cpu_supports("avx");
}

void nn_f16_to_f32_n(const uint16_t *in, float *out, size_t n)
{
	static atomic_int f16c = -1;
	int on = atomic_load_explicit(&f16c, memory_order_relaxed);

	if (on < 0) {
		on = has_f16c();
		atomic_store_explicit(&f16c, on, memory_order_relaxed);
	}
	if (on) {
		f16_to_f32_f16c(in, out, n);
		return;
	}
	for (size_t i = 0; i < n; i++)
		out[i] = nn_f16_to_f32(in[i]);
}

uint16_t nn_f32_to_f16(float f)
{
	uint32_t x, sign, man;
	int32_t exp;

	memcpy(&x, &f, sizeof x);
	sign = (x >> 16) & 0x8000;
	exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
	man = x & 0x7fffff;
	if (((x >> 23) & 0xff) == 0xff) /* inf or nan */
		return (uint16_t)(sign | 0x7c00 | (man ? 0x200 | (man >> 13) : 0));
	if (exp >= 31)
		return (uint16_t)(sign | 0x7c00);
	if (exp <= 0) { /* subnormal or zero, round to nearest even */
		if (exp < -10)
			return (uint16_t)sign;
		man |= 0x800000;
		uint32_t shift = (uint32_t)(14 - exp), half = 1u << (shift - 1);
		uint32_t r = man >> shift, rem = man & ((1u << shift) - 1);
		if (rem > half || (rem == half && (r & 1)))
			r++;
		return (uint16_t)(sign | r);
	}
	uint32_t r = ((uint32_t)exp << 10) | (man >> 13), rem = man & 0x1fff;
	if (rem > 0x1000 || (rem == 0x1000 && (r & 1)))
		r++; /* may carry into the exponent, which is right */
	return (uint16_t)(sign | r);
}

size_t nn_tview_bytes(const struct nn_tview *t)
{
	return (size_t)nn_numel(t->rank, t->dims) * nn_dtype_size(t->dtype);
}

/* Reads element i of an integer tensor (i64 or i32) as int64. */
int64_t ops_get_int(const struct nn_tview *t, int64_t i)
{
	return t->dtype == NN_DTYPE_I64 ? ((const int64_t *)t->data)[i] : ((const int32_t *)t->data)[i];
}

double ops_get_num(const struct nn_tview *t, int64_t i)
{
	switch (t->dtype) {
	case NN_DTYPE_F32: return ((const float *)t->data)[i];
	case NN_DTYPE_F64: return ((const double *)t->data)[i];
	case NN_DTYPE_F16: return nn_f16_to_f32(((const uint16_t *)t->data)[i]);
	default: return (double)ops_get_int(t, i);
	}
}

/* ===== Load-time checks ===== */

nn_status nn_op_check(const struct nn_graph *g, const struct nn_node *n)
{
	int min_in = 1, max_in = 1, min_out = 1, max_out = 1;

	switch (n->op) {
	case NN_OP_ADD: case NN_OP_MUL: min_in = max_in = 2; break;
	case NN_OP_CONCAT: max_in = 1 << 20; break;
	case NN_OP_CONV: min_in = 2; max_in = 3; break;
	case NN_OP_CONVINTEGER: min_in = 2; max_in = 4; break;
	case NN_OP_DQL: min_out = max_out = 3; break;
	case NN_OP_MAXPOOL: max_out = 2; break;
	case NN_OP_RESHAPE: min_in = max_in = 2; break;
	case NN_OP_RESIZE: min_in = g->opset < 11 ? 2 : 1; max_in = g->opset < 11 ? 2 : 4; break;
	case NN_OP_SLICE: if (g->opset >= 10) { min_in = 3; max_in = 5; } break;
	default: break;
	}
	if (n->n_in < min_in || n->n_in > max_in)
		return FAIL(NN_ERR_PARSE, n, "takes %d to %d inputs, has %d", NODE(n), min_in, max_in, n->n_in);
	if (n->n_out < min_out || n->n_out > max_out)
		return FAIL(NN_ERR_PARSE, n, "takes %d to %d outputs, has %d", NODE(n), min_out, max_out, n->n_out);
	for (int i = 0; i < min_in; i++)
		if (n->in[i] < 0)
			return FAIL(NN_ERR_PARSE, n, "input %d is required", NODE(n), i);
	if (n->out[0] < 0)
		return FAIL(NN_ERR_PARSE, n, "output 0 is required", NODE(n));
	if (n->op == NN_OP_MAXPOOL && n->n_out == 2 && n->out[1] >= 0)
		return FAIL(NN_ERR_UNSUPPORTED, n, "output 'Indices' is not supported", NODE(n));
	if (n->op == NN_OP_DQL && (n->out[1] < 0 || n->out[2] < 0))
		return FAIL(NN_ERR_PARSE, n, "all three outputs are required", NODE(n));
	return NN_OK;
}

/* ===== Shape inference ===== */

static nn_status infer_broadcast(const struct nn_node *n, const struct nn_tview *a, const struct nn_tview *b,
				 struct nn_tview *o)
{
	if (a->dtype != b->dtype)
		return FAIL(NN_ERR_SHAPE, n, "inputs of different element types", NODE(n));
	o->dtype = a->dtype;
	o->rank = a->rank > b->rank ? a->rank : b->rank;
	for (int i = 0; i < o->rank; i++) {
		int ia = i - (o->rank - a->rank), ib = i - (o->rank - b->rank);
		int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
		if (da != db && da != 1 && db != 1)
			return FAIL(NN_ERR_SHAPE, n, "shapes do not broadcast (axis %d: %lld vs %lld)", NODE(n), i,
				    (long long)da, (long long)db);
		o->dims[i] = da == 1 ? db : da;
	}
	return NN_OK;
}

nn_status nn_conv_out_dims(const struct nn_node *n, int nsp, const int64_t *in_dims, const int64_t *kernel,
			   int64_t *out_sp, int64_t *pb, int64_t *pe)
{
	const struct nn_conv_attr *a = &n->a.conv;

	for (int i = 0; i < nsp; i++) {
		int64_t I = in_dims[i], S = a->strides[i], Keff = (kernel[i] - 1) * a->dilations[i] + 1, O;
		if (S <= 0 || a->dilations[i] <= 0 || kernel[i] <= 0)
			return FAIL(NN_ERR_SHAPE, n, "spatial axis %d: kernel, stride and dilation must be positive",
				    NODE(n), i);
		pb[i] = a->pad_begin[i];
		pe[i] = a->pad_end[i];
		switch (a->auto_pad) {
		case NN_PAD_VALID:
			pb[i] = pe[i] = 0;
			O = I >= Keff ? (I - Keff) / S + 1 : 0;
			break;
		case NN_PAD_SAME_UPPER:
		case NN_PAD_SAME_LOWER: {
			O = (I + S - 1) / S;
			int64_t total = (O - 1) * S + Keff - I;
			if (total < 0)
				total = 0;
			if (a->auto_pad == NN_PAD_SAME_UPPER) {
				pb[i] = total / 2;
				pe[i] = total - pb[i];
			} else {
				pe[i] = total / 2;
				pb[i] = total - pe[i];
			}
			break;
		}
		default: {
			int64_t span = I + pb[i] + pe[i] - Keff;
			if (span < 0) {
				O = 0;
			} else if (a->ceil_mode) {
				O = (span + S - 1) / S + 1;
				if ((O - 1) * S >= I + pb[i]) /* a window may not start in the end padding */
					O--;
			} else {
				O = span / S + 1;
			}
		}
		}
		if (O <= 0)
			return FAIL(NN_ERR_SHAPE, n, "spatial axis %d: input %lld is too small for the kernel", NODE(n),
				    i, (long long)I);
		out_sp[i] = O;
	}
	return NN_OK;
}

static nn_status infer_conv(const struct nn_node *n, const struct nn_tview *const *in, struct nn_tview *out)
{
	const struct nn_tview *x = in[0], *w = in[1];
	int64_t kernel[NN_MAX_SPATIAL], pb[NN_MAX_SPATIAL], pe[NN_MAX_SPATIAL];
	const struct nn_conv_attr *a = &n->a.conv;
	int nsp = x->rank - 2;

	if (nsp < 1 || nsp > NN_MAX_SPATIAL)
		return FAIL(NN_ERR_UNSUPPORTED, n, "input rank %d (1 to 3 spatial axes are supported)", NODE(n), x->rank);
	if (a->nsp && a->nsp != nsp)
		return FAIL(NN_ERR_SHAPE, n, "attributes are for %d spatial axes, the input has %d", NODE(n), a->nsp,
			    nsp);
	if (n->op == NN_OP_MAXPOOL) {
		if (x->dtype != NN_DTYPE_F32 && x->dtype != NN_DTYPE_U8 && x->dtype != NN_DTYPE_I8)
			return FAIL(NN_ERR_UNSUPPORTED, n, "only float32 and 8-bit integers are supported", NODE(n));
		memcpy(kernel, a->kernel, sizeof kernel);
		out->dims[1] = x->dims[1];
		out->dtype = x->dtype;
	} else {
		if (w->rank != x->rank)
			return FAIL(NN_ERR_SHAPE, n, "weights of rank %d for an input of rank %d", NODE(n), w->rank,
				    x->rank);
		if (x->dims[1] != w->dims[1] * a->group || w->dims[0] % a->group)
			return FAIL(NN_ERR_SHAPE, n, "%lld input channels do not match weights %lldx%lld in %lld groups",
				    NODE(n), (long long)x->dims[1], (long long)w->dims[0], (long long)w->dims[1],
				    (long long)a->group);
		for (int i = 0; i < nsp; i++) {
			kernel[i] = w->dims[2 + i];
			if (a->kernel[0] && a->kernel[i] != kernel[i])
				return FAIL(NN_ERR_SHAPE, n, "kernel_shape does not match the weights", NODE(n));
		}
		if (n->op == NN_OP_CONV) {
			/* fp16 weights: a model's kept at half size (passes.c) */
			if (x->dtype != NN_DTYPE_F32 || (w->dtype != NN_DTYPE_F32 && w->dtype != NN_DTYPE_F16))
				return FAIL(NN_ERR_UNSUPPORTED, n, "only float32 is supported", NODE(n));
			if (n->n_in > 2 && in[2] && (in[2]->rank != 1 || in[2]->dims[0] != w->dims[0]))
				return FAIL(NN_ERR_SHAPE, n, "bias must have one value per output channel", NODE(n));
			out->dtype = NN_DTYPE_F32;
		} else {
			if ((x->dtype != NN_DTYPE_U8 && x->dtype != NN_DTYPE_I8) ||
			    (w->dtype != NN_DTYPE_U8 && w->dtype != NN_DTYPE_I8))
				return FAIL(NN_ERR_UNSUPPORTED, n, "only 8-bit integer inputs are supported", NODE(n));
			if (n->n_in > 2 && in[2] && (nn_numel(in[2]->rank, in[2]->dims) != 1 || in[2]->dtype != x->dtype))
				return FAIL(NN_ERR_UNSUPPORTED, n, "x_zero_point must be one value of x's type", NODE(n));
			if (n->n_in > 3 && in[3] &&
			    ((nn_numel(in[3]->rank, in[3]->dims) != 1 && nn_numel(in[3]->rank, in[3]->dims) != w->dims[0]) ||
			     in[3]->dtype != w->dtype))
				return FAIL(NN_ERR_UNSUPPORTED, n, "w_zero_point must be one value or one per channel",
					    NODE(n));
			out->dtype = n->float_out ? NN_DTYPE_F32 : NN_DTYPE_I32;
		}
		out->dims[1] = w->dims[0];
	}
	out->rank = x->rank;
	out->dims[0] = x->dims[0];
	return nn_conv_out_dims(n, nsp, x->dims + 2, kernel, out->dims + 2, pb, pe);
}

static nn_status infer_reshape(const struct nn_node *n, const struct nn_tview *const *in, struct nn_tview *o)
{
	const struct nn_tview *x = in[0], *s = in[1];
	int64_t numel = nn_numel(x->rank, x->dims), known = 1;
	int infer_at = -1;

	if (!s->data || s->dtype != NN_DTYPE_I64 || s->rank != 1)
		return FAIL(NN_ERR_UNSUPPORTED, n, "the shape must be a constant 1-D int64 tensor", NODE(n));
	if (s->dims[0] > NN_MAX_RANK)
		return FAIL(NN_ERR_UNSUPPORTED, n, "rank over %d", NODE(n), NN_MAX_RANK);
	o->dtype = x->dtype;
	o->rank = (int)s->dims[0];
	for (int i = 0; i < o->rank; i++) {
		int64_t d = ((const int64_t *)s->data)[i];
		if (d == 0 && !n->a.allowzero) {
			if (i >= x->rank)
				return FAIL(NN_ERR_SHAPE, n, "0 copies a dimension the input lacks", NODE(n));
			d = x->dims[i];
		}
		if (d == -1) {
			if (infer_at >= 0)
				return FAIL(NN_ERR_SHAPE, n, "more than one -1 in the shape", NODE(n));
			infer_at = i;
			continue;
		}
		if (d < 0)
			return FAIL(NN_ERR_SHAPE, n, "negative dimension %lld", NODE(n), (long long)d);
		o->dims[i] = d;
		if (__builtin_mul_overflow(known, d, &known))
			return FAIL(NN_ERR_SHAPE, n, "the shape is too large", NODE(n));
	}
	if (infer_at >= 0) {
		if (known == 0 || numel % known)
			return FAIL(NN_ERR_SHAPE, n, "cannot infer the -1 dimension", NODE(n));
		o->dims[infer_at] = numel / known;
		known *= o->dims[infer_at];
	}
	if (known != numel)
		return FAIL(NN_ERR_SHAPE, n, "%lld elements cannot take the new shape", NODE(n), (long long)numel);
	return NN_OK;
}

/* Resize: the scale per axis and the output dims. */
nn_status ops_resize_params(const struct nn_node *n, const struct nn_tview *const *in, int n_in,
			    int64_t opset, double *scales, int64_t *odims)
{
	const struct nn_tview *x = in[0], *sc = NULL, *sz = NULL;

	if (opset < 11)
		sc = in[1];
	else {
		if (n_in > 3 && in[3] && nn_numel(in[3]->rank, in[3]->dims) > 0)
			sz = in[3];
		if (n_in > 2 && in[2] && nn_numel(in[2]->rank, in[2]->dims) > 0)
			sc = in[2];
		if (sz && sc)
			return FAIL(NN_ERR_SHAPE, n, "both scales and sizes are given", NODE(n));
	}
	if (!sz && !sc)
		return FAIL(NN_ERR_SHAPE, n, "neither scales nor sizes are given", NODE(n));
	const struct nn_tview *p = sz ? sz : sc;
	if (!p->data)
		return FAIL(NN_ERR_UNSUPPORTED, n, "scales and sizes must be known before running", NODE(n));
	if (p->rank != 1 || p->dims[0] != x->rank)
		return FAIL(NN_ERR_SHAPE, n, "expected %d scales or sizes", NODE(n), x->rank);
	if ((sz && sz->dtype != NN_DTYPE_I64) || (sc && sc->dtype != NN_DTYPE_F32))
		return FAIL(NN_ERR_SHAPE, n, "scales must be float32 and sizes int64", NODE(n));
	for (int i = 0; i < x->rank; i++) {
		if (sz) {
			odims[i] = ((const int64_t *)sz->data)[i];
			scales[i] = x->dims[i] ? (double)odims[i] / (double)x->dims[i] : 1.0;
		} else {
			scales[i] = ((const float *)sc->data)[i];
			if (!(scales[i] > 0))
				return FAIL(NN_ERR_SHAPE, n, "scales must be positive", NODE(n));
			odims[i] = (int64_t)floor((double)x->dims[i] * scales[i]);
		}
		if (odims[i] <= 0)
			return FAIL(NN_ERR_SHAPE, n, "output dimension %d would be %lld", NODE(n), i, (long long)odims[i]);
		if (i < x->rank - 2 && odims[i] != x->dims[i])
			return FAIL(NN_ERR_UNSUPPORTED, n, "only the last two axes can be resized", NODE(n));
	}
	return NN_OK;
}

/* Slice: the normalised start and step per axis, and the output dims. */
nn_status ops_slice_params(const struct nn_node *n, const struct nn_tview *const *in, int n_in,
			   int64_t *start, int64_t *step, int64_t *odims)
{
	const struct nn_tview *x = in[0];
	int64_t st[NN_MAX_RANK], en[NN_MAX_RANK], ax[NN_MAX_RANK], sp[NN_MAX_RANK];
	int cnt;

	if (n_in == 1) { /* attribute form */
		const struct nn_slice_attr *a = &n->a.slice;
		cnt = a->n;
		for (int i = 0; i < cnt; i++) {
			st[i] = a->starts[i];
			en[i] = a->ends[i];
			ax[i] = a->has_axes ? a->axes[i] : i;
			sp[i] = 1;
		}
	} else {
		const struct nn_tview *ts = in[1], *te = in[2];
		const struct nn_tview *ta = n_in > 3 ? in[3] : NULL, *tp = n_in > 4 ? in[4] : NULL;
		if (!ts->data || !te->data || (ta && !ta->data) || (tp && !tp->data))
			return FAIL(NN_ERR_UNSUPPORTED, n, "starts, ends, axes and steps must be known before running",
				    NODE(n));
		if (ts->rank != 1 || te->rank != 1 || ts->dims[0] != te->dims[0] || ts->dims[0] > NN_MAX_RANK ||
		    (ta && (ta->rank != 1 || ta->dims[0] != ts->dims[0])) ||
		    (tp && (tp->rank != 1 || tp->dims[0] != ts->dims[0])))
			return FAIL(NN_ERR_SHAPE, n, "starts, ends, axes and steps must be 1-D of one length", NODE(n));
		for (const struct nn_tview *const *t = in + 1; t < in + n_in; t++)
			if (*t && (*t)->dtype != NN_DTYPE_I64 && (*t)->dtype != NN_DTYPE_I32)
				return FAIL(NN_ERR_SHAPE, n, "starts, ends, axes and steps must be integers", NODE(n));
		cnt = (int)ts->dims[0];
		for (int i = 0; i < cnt; i++) {
			st[i] = ops_get_int(ts, i);
			en[i] = ops_get_int(te, i);
			ax[i] = ta ? ops_get_int(ta, i) : i;
			sp[i] = tp ? ops_get_int(tp, i) : 1;
		}
	}
	for (int d = 0; d < x->rank; d++) {
		start[d] = 0;
		step[d] = 1;
		odims[d] = x->dims[d];
	}
	bool seen[NN_MAX_RANK] = {0};
	for (int i = 0; i < cnt; i++) {
		int64_t a = ax[i] < 0 ? ax[i] + x->rank : ax[i], dim, s = st[i], e = en[i];
		if (a < 0 || a >= x->rank || seen[a])
			return FAIL(NN_ERR_SHAPE, n, "bad or repeated axis %lld", NODE(n), (long long)ax[i]);
		seen[a] = true;
		if (sp[i] == 0)
			return FAIL(NN_ERR_SHAPE, n, "step 0", NODE(n));
		dim = x->dims[a];
		if (s < 0)
			s += dim;
		if (e < 0)
			e += dim;
		if (sp[i] > 0) {
			s = s < 0 ? 0 : s > dim ? dim : s;
			e = e < 0 ? 0 : e > dim ? dim : e;
			odims[a] = e > s ? (e - s + sp[i] - 1) / sp[i] : 0;
		} else {
			s = s < 0 ? 0 : s > dim - 1 ? dim - 1 : s;
			e = e < -1 ? -1 : e > dim - 1 ? dim - 1 : e;
			odims[a] = s > e ? (s - e + (-sp[i]) - 1) / (-sp[i]) : 0;
		}
		start[a] = s;
		step[a] = sp[i];
	}
	return NN_OK;
}

static nn_status op_infer(const struct nn_node *n, const struct nn_tview *const *in, struct nn_tview *out)
{
	const struct nn_tview *x = in[0];
	int64_t opset = n->op == NN_OP_RESIZE && n->a.resize.v10 ? 10 : 11;

	switch (n->op) {
	case NN_OP_ADD:
	case NN_OP_MUL:
		if (x->dtype == NN_DTYPE_BOOL)
			return FAIL(NN_ERR_UNSUPPORTED, n, "boolean inputs", NODE(n));
		return infer_broadcast(n, in[0], in[1], &out[0]);
	case NN_OP_CAST:
		out[0] = *x;
		out[0].dtype = n->a.to;
		return NN_OK;
	case NN_OP_IDENTITY:
		out[0] = *x;
		return NN_OK;
	case NN_OP_RELU:
	case NN_OP_SIGMOID:
		if (x->dtype != NN_DTYPE_F32)
			return FAIL(NN_ERR_UNSUPPORTED, n, "only float32 is supported", NODE(n));
		out[0] = *x;
		return NN_OK;
	case NN_OP_CONCAT: {
		int64_t axis = n->a.axis < 0 ? n->a.axis + x->rank : n->a.axis;
		if (axis < 0 || axis >= x->rank)
			return FAIL(NN_ERR_SHAPE, n, "axis %lld out of range", NODE(n), (long long)n->a.axis);
		out[0] = *x;
		out[0].dims[axis] = 0;
		for (int i = 0; i < n->n_in; i++) {
			const struct nn_tview *t = in[i];
			if (!t)
				return FAIL(NN_ERR_PARSE, n, "empty input name", NODE(n));
			if (t->rank != x->rank || t->dtype != x->dtype)
				return FAIL(NN_ERR_SHAPE, n, "input %d differs in rank or element type", NODE(n), i);
			for (int d = 0; d < x->rank; d++)
				if (d != axis && t->dims[d] != x->dims[d])
					return FAIL(NN_ERR_SHAPE, n, "input %d: dimension %d is %lld, expected %lld", NODE(n),
						    i, d, (long long)t->dims[d], (long long)x->dims[d]);
			out[0].dims[axis] += t->dims[axis];
		}
		return NN_OK;
	}
	case NN_OP_CONV:
	case NN_OP_CONVINTEGER:
	case NN_OP_MAXPOOL:
		return infer_conv(n, in, &out[0]);
	case NN_OP_DQL:
		if (x->dtype != NN_DTYPE_F32)
			return FAIL(NN_ERR_UNSUPPORTED, n, "only float32 input is supported", NODE(n));
		out[0] = *x;
		out[0].dtype = NN_DTYPE_U8;
		out[1] = (struct nn_tview){.dtype = NN_DTYPE_F32, .rank = 0};
		out[2] = (struct nn_tview){.dtype = NN_DTYPE_U8, .rank = 0};
		return NN_OK;
	case NN_OP_RESHAPE:
		return infer_reshape(n, in, &out[0]);
	case NN_OP_RESIZE: {
		double scales[NN_MAX_RANK];
		if (x->rank < 2)
			return FAIL(NN_ERR_UNSUPPORTED, n, "inputs of rank < 2", NODE(n));
		if (x->dtype != NN_DTYPE_F32)
			return FAIL(NN_ERR_UNSUPPORTED, n, "only float32 is supported", NODE(n));
		out[0] = *x;
		return ops_resize_params(n, in, n->n_in, opset, scales, out[0].dims);
	}
	case NN_OP_SHAPE: {
		int64_t s = n->a.shape.start, e = n->a.shape.has_end ? n->a.shape.end : x->rank;
		if (s < 0)
			s += x->rank;
		if (e < 0)
			e += x->rank;
		s = s < 0 ? 0 : s > x->rank ? x->rank : s;
		e = e < 0 ? 0 : e > x->rank ? x->rank : e;
		out[0] = (struct nn_tview){.dtype = NN_DTYPE_I64, .rank = 1, .dims = {e > s ? e - s : 0}};
		return NN_OK;
	}
	case NN_OP_SLICE: {
		int64_t start[NN_MAX_RANK], step[NN_MAX_RANK];
		out[0] = *x;
		return ops_slice_params(n, in, n->n_in, start, step, out[0].dims);
	}
	case NN_OP_COUNT:
		break;
	}
	return FAIL(NN_ERR_UNSUPPORTED, n, "no shape inference", NODE(n));
}

/* Largest tensor a plan may hold (nn_set_max_tensor_bytes). */
static _Atomic size_t max_tensor_bytes = (size_t)8 << 30;

void nn_set_max_tensor_bytes(size_t bytes)
{
	max_tensor_bytes = bytes ? bytes : (size_t)8 << 30;
}

nn_status nn_op_infer(const struct nn_node *n, const struct nn_tview *const *in, struct nn_tview *out)
{
	nn_status st = op_infer(n, in, out);

	/* a hostile or mistaken model must not make the runtime allocate more
	 * than the limit: every tensor is checked as its shape becomes known */
	for (int j = 0; st == NN_OK && j < n->n_out; j++) {
		size_t bytes = nn_dtype_size(out[j].dtype);
		if (out[j].rank < 0 || out[j].rank > NN_MAX_RANK)
			return FAIL(NN_ERR_SHAPE, n, "output rank %d", NODE(n), out[j].rank);
		for (int d = 0; d < out[j].rank; d++) {
			int64_t v = out[j].dims[d];
			if (v < 0 || (v > 0 && bytes > max_tensor_bytes / (size_t)v))
				return FAIL(NN_ERR_SHAPE, n, "output %d would be larger than %zu MB", NODE(n), j,
					    max_tensor_bytes >> 20);
			bytes *= (size_t)v;
		}
	}
	return st;
}
