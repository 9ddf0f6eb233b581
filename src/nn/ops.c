/*
 * ops.c - the operator table: load-time checks, shape inference and the
 * reference kernels.
 *
 * Reference kernels run on dense row-major tensors. They fold constants at
 * load and plan time (Shape/Slice/Concat chains, casts of initializers) and
 * run the light operators at run time; the heavy ones (Conv, MaxPool,
 * Resize, Concat and eltwise on activations) are planned onto oneDNN by
 * plan.c, and the kernels here are their specification in tests.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn_int.h"

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
_Static_assert(NN_OP_COUNT == 15, "update nn_op_names and the switches in ops.c");

static const char *op_name(enum nn_op op)
{
	return (unsigned)op < NN_OP_COUNT ? nn_op_names[op] : "?";
}

#define FAIL(st, n, ...) nn_fail(st, "node '%s' (%s): " __VA_ARGS__)
#define NODE(n) (n)->name, op_name((n)->op)

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
static int64_t get_int(const struct nn_tview *t, int64_t i)
{
	return t->dtype == NN_DTYPE_I64 ? ((const int64_t *)t->data)[i] : ((const int32_t *)t->data)[i];
}

static double get_num(const struct nn_tview *t, int64_t i)
{
	switch (t->dtype) {
	case NN_DTYPE_F32: return ((const float *)t->data)[i];
	case NN_DTYPE_F64: return ((const double *)t->data)[i];
	case NN_DTYPE_F16: return nn_f16_to_f32(((const uint16_t *)t->data)[i]);
	default: return (double)get_int(t, i);
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
			if (x->dtype != NN_DTYPE_F32 || w->dtype != NN_DTYPE_F32)
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
static nn_status resize_params(const struct nn_node *n, const struct nn_tview *const *in, int n_in,
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
static nn_status slice_params(const struct nn_node *n, const struct nn_tview *const *in, int n_in,
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
			st[i] = get_int(ts, i);
			en[i] = get_int(te, i);
			ax[i] = ta ? get_int(ta, i) : i;
			sp[i] = tp ? get_int(tp, i) : 1;
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
		return resize_params(n, in, n->n_in, opset, scales, out[0].dims);
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
		return slice_params(n, in, n->n_in, start, step, out[0].dims);
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
		default: v = get_num(x, i); break;
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
			  : (double)((const float *)w->data)[i])
	double xz = 0, *wz = calloc((size_t)g.M, sizeof *wz);
	if (!wz)
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	if (integer) {
		if (n->n_in > 2 && in[2])
			xz = get_num(in[2], 0);
		if (n->n_in > 3 && in[3])
			for (int64_t m = 0; m < g.M; m++)
				wz[m] = get_num(in[3], nn_numel(in[3]->rank, in[3]->dims) == 1 ? 0 : m);
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
	nn_status st = resize_params(n, in, n->n_in, n->a.resize.v10 ? 10 : 11, scales, odims);

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
	nn_status st = slice_params(n, in, n->n_in, start, step, odims);

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
