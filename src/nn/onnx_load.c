/*
 * onnx_load.c - ONNX ModelProto -> petcut graph IR.
 *
 * The protobuf is decoded by protobuf-c code generated at build time from
 * Debian's onnx.proto. Every node is mapped onto an nn_op and its attributes
 * are parsed and checked here, once: an operator, attribute or attribute value
 * that petcut does not implement fails the load with a message naming the
 * node, the op and the attribute. Constant nodes and initializers become
 * constant values; fp16 data is kept as fp16 here (passes.c decides).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx.pb-c.h"
#include "nn/nn_int.h"
#include "util/util.h"

/* ===== Tensors ===== */

static bool dtype_supported(int32_t t)
{
	return nn_dtype_size((nn_dtype)t) != 0;
}

/* Moves a TensorProto's data into a new buffer of nn dtype layout (raw
 * bytes are taken over, not copied: the decoded protobuf never holds a second
 * copy of the weights). */
static nn_status tensor_from_proto(Onnx__TensorProto *tp, const char *what, nn_dtype *dt,
				   int *rank, int64_t *dims, void **data)
{
	size_t esz, n = 1, bytes;
	void *buf;

	if (!tp->has_data_type || !dtype_supported(tp->data_type))
		return nn_fail(NN_ERR_UNSUPPORTED, "%s: tensor element type %d is not supported", what,
			       tp->data_type);
	if (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
		return nn_fail(NN_ERR_UNSUPPORTED, "%s: external tensor data is not supported", what);
	if (tp->segment)
		return nn_fail(NN_ERR_UNSUPPORTED, "%s: segmented tensors are not supported", what);
	if (tp->n_dims > NN_MAX_RANK)
		return nn_fail(NN_ERR_UNSUPPORTED, "%s: rank %zu is over %d", what, tp->n_dims, NN_MAX_RANK);
	for (size_t i = 0; i < tp->n_dims; i++) {
		if (tp->dims[i] < 0 || (tp->dims[i] > 0 && n > (SIZE_MAX >> 4) / (size_t)tp->dims[i]))
			return nn_fail(NN_ERR_PARSE, "%s: bad dimension %lld", what, (long long)tp->dims[i]);
		n *= (size_t)tp->dims[i];
		dims[i] = tp->dims[i];
	}
	*rank = (int)tp->n_dims;
	*dt = (nn_dtype)tp->data_type;
	esz = nn_dtype_size(*dt);
	bytes = n * esz;
	/* the data must be there before anything its size is allocated */
	if (tp->has_raw_data ? tp->raw_data.len != bytes
	    : *dt == NN_DTYPE_F32 ? tp->n_float_data != n
	    : *dt == NN_DTYPE_I64 ? tp->n_int64_data != n
	    : *dt == NN_DTYPE_F64 ? tp->n_double_data != n
	    : tp->n_int32_data != n)
		return nn_fail(NN_ERR_PARSE, "%s: tensor data does not match its shape", what);
	if (tp->has_raw_data && bytes) {
		/* pb_alloc allocated it, to be freed with nn_data_free; protobuf-c skips a NULL */
		*data = tp->raw_data.data;
		tp->raw_data.data = NULL;
		tp->raw_data.len = 0;
		return NN_OK;
	}
	buf = malloc(bytes ? bytes : 1);
	if (!buf)
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	if (tp->has_raw_data) {
		/* no elements */
	} else if (*dt == NN_DTYPE_F32) {
		if (bytes)
			memcpy(buf, tp->float_data, bytes);
	} else if (*dt == NN_DTYPE_I64) {
		if (bytes)
			memcpy(buf, tp->int64_data, bytes);
	} else if (*dt == NN_DTYPE_F64) {
		if (bytes)
			memcpy(buf, tp->double_data, bytes);
	} else {
		/* int32_data carries i32, and the narrow types one per element */
		for (size_t i = 0; i < n; i++) {
			int32_t v = tp->int32_data[i];
			switch (*dt) {
			case NN_DTYPE_I32: ((int32_t *)buf)[i] = v; break;
			case NN_DTYPE_F16: ((uint16_t *)buf)[i] = (uint16_t)v; break;
			case NN_DTYPE_I8: ((int8_t *)buf)[i] = (int8_t)v; break;
			default: ((uint8_t *)buf)[i] = (uint8_t)v; break;
			}
		}
	}
	*data = buf;
	return NN_OK;
}

/* ===== Attributes ===== */

struct attr_ctx {
	const Onnx__NodeProto *np;
	const char *node;
	const char *op;
};

static nn_status bad_attr(const struct attr_ctx *c, const char *attr, const char *why)
{
	return nn_fail(NN_ERR_UNSUPPORTED, "node '%s' (%s): attribute '%s': %s", c->node, c->op, attr, why);
}

static const Onnx__AttributeProto *attr_find(const struct attr_ctx *c, const char *name)
{
	for (size_t i = 0; i < c->np->n_attribute; i++)
		if (c->np->attribute[i]->name && !strcmp(c->np->attribute[i]->name, name))
			return c->np->attribute[i];
	return NULL;
}

/* Every attribute of the node must be one the op knows. */
static nn_status attr_only(const struct attr_ctx *c, const char *const *known)
{
	for (size_t i = 0; i < c->np->n_attribute; i++) {
		const char *name = c->np->attribute[i]->name ? c->np->attribute[i]->name : "";
		bool ok = false;
		for (const char *const *k = known; *k; k++)
			if (!strcmp(*k, name))
				ok = true;
		if (c->np->attribute[i]->ref_attr_name)
			return bad_attr(c, name, "attribute references are not supported");
		if (!ok)
			return bad_attr(c, name, "not supported by petcut");
	}
	return NN_OK;
}

static nn_status attr_int(const struct attr_ctx *c, const char *name, int64_t def, int64_t *out)
{
	const Onnx__AttributeProto *a = attr_find(c, name);
	*out = def;
	if (!a)
		return NN_OK;
	if (a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT)
		return bad_attr(c, name, "expected an integer");
	*out = a->i;
	return NN_OK;
}

static nn_status attr_ints(const struct attr_ctx *c, const char *name, int64_t *out, int max, int *n)
{
	const Onnx__AttributeProto *a = attr_find(c, name);
	*n = -1;
	if (!a)
		return NN_OK;
	if (a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS)
		return bad_attr(c, name, "expected a list of integers");
	if ((int)a->n_ints > max)
		return bad_attr(c, name, "too many values");
	for (size_t i = 0; i < a->n_ints; i++)
		out[i] = a->ints[i];
	*n = (int)a->n_ints;
	return NN_OK;
}

/* Copies a string attribute into buf; "" when absent. */
static nn_status attr_str(const struct attr_ctx *c, const char *name, const char *def, char *buf, size_t len)
{
	const Onnx__AttributeProto *a = attr_find(c, name);
	snprintf(buf, len, "%s", def);
	if (!a)
		return NN_OK;
	if (a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING)
		return bad_attr(c, name, "expected a string");
	if (a->s.len >= len)
		return bad_attr(c, name, "value too long");
	if (a->s.len)
		memcpy(buf, a->s.data, a->s.len);
	buf[a->s.len] = 0;
	return NN_OK;
}

/* A string attribute that must be one of names[] (NULL-terminated); *out
 * is its index. */
static nn_status attr_enum(const struct attr_ctx *c, const char *name, const char *def, const char *const *names,
			   const char *why, int *out)
{
	char s[48];
	nn_status st = attr_str(c, name, def, s, sizeof s);
	if (st)
		return st;
	for (int i = 0; names[i]; i++)
		if (!strcmp(s, names[i])) {
			*out = i;
			return NN_OK;
		}
	return bad_attr(c, name, why);
}

#define TRY(x)                          \
	do {                            \
		nn_status st_ = (x);    \
		if (st_ != NN_OK)       \
			return st_;     \
	} while (0)

/* Reads a per-axis attribute (strides, dilations): positive values, one per
 * spatial axis (*nsp, set here when still unknown), 1 on every axis when the
 * attribute is absent. */
static nn_status spatial_ints(const struct attr_ctx *c, const char *name, int64_t *vals, int *nsp)
{
	int n;

	TRY(attr_ints(c, name, vals, NN_MAX_SPATIAL, &n));
	if (n == 0)
		return bad_attr(c, name, "empty");
	if (n > 0 && *nsp && n != *nsp)
		return bad_attr(c, name, "length differs from kernel_shape");
	if (n > 0 && !*nsp)
		*nsp = n;
	for (int i = 0; i < NN_MAX_SPATIAL; i++) {
		if (n < 0)
			vals[i] = 1;
		else if (i < n && vals[i] <= 0)
			return bad_attr(c, name, "values must be positive");
	}
	return NN_OK;
}

static nn_status parse_conv_like(const struct attr_ctx *c, struct nn_conv_attr *a, bool pool)
{
	static const char *const conv_attrs[] = {"auto_pad", "dilations", "group", "kernel_shape", "pads",
						 "strides", NULL};
	static const char *const pool_attrs[] = {"auto_pad", "ceil_mode", "dilations", "kernel_shape",
						 "pads", "storage_order", "strides", NULL};
	int64_t tmp[2 * NN_MAX_SPATIAL], v;
	int n, nsp = 0;

	TRY(attr_only(c, pool ? pool_attrs : conv_attrs));
	memset(a, 0, sizeof *a);
	TRY(attr_ints(c, "kernel_shape", a->kernel, NN_MAX_SPATIAL, &n));
	if (n == 0)
		return bad_attr(c, "kernel_shape", "empty");
	if (n > 0)
		nsp = n;
	else if (pool)
		return bad_attr(c, "kernel_shape", "required");
	for (int i = 0; i < (n > 0 ? n : 0); i++)
		if (a->kernel[i] <= 0)
			return bad_attr(c, "kernel_shape", "values must be positive");
	TRY(spatial_ints(c, "strides", a->strides, &nsp));
	TRY(spatial_ints(c, "dilations", a->dilations, &nsp));
	TRY(attr_ints(c, "pads", tmp, 2 * NN_MAX_SPATIAL, &n));
	if (n >= 0) {
		if (n % 2 || (nsp && n != 2 * nsp))
			return bad_attr(c, "pads", "length must be twice the spatial rank");
		if (!nsp)
			nsp = n / 2;
		for (int i = 0; i < n / 2; i++) {
			a->pad_begin[i] = tmp[i];
			a->pad_end[i] = tmp[i + n / 2];
			if (tmp[i] < 0 || tmp[i + n / 2] < 0)
				return bad_attr(c, "pads", "negative padding is not supported");
		}
	}
	/* in the order of NN_PAD_* */
	static const char *const pads[] = {"NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID", NULL};
	TRY(attr_enum(c, "auto_pad", "NOTSET", pads, "unknown value", &a->auto_pad));
	if (a->auto_pad != NN_PAD_NOTSET && attr_find(c, "pads"))
		return bad_attr(c, "pads", "cannot be given with auto_pad");
	if (pool) {
		TRY(attr_int(c, "ceil_mode", 0, &v));
		if (v != 0 && v != 1)
			return bad_attr(c, "ceil_mode", "must be 0 or 1");
		a->ceil_mode = (int)v;
		TRY(attr_int(c, "storage_order", 0, &v));
		if (v != 0)
			return bad_attr(c, "storage_order", "only 0 (row major) is supported");
		a->group = 1;
	} else {
		TRY(attr_int(c, "group", 1, &a->group));
		if (a->group <= 0)
			return bad_attr(c, "group", "must be positive");
	}
	a->nsp = nsp;
	return NN_OK;
}

static nn_status parse_resize(const struct attr_ctx *c, struct nn_resize_attr *a, int64_t opset)
{
	static const char *const known[] = {"coordinate_transformation_mode", "cubic_coeff_a", "exclude_outside",
					    "extrapolation_value", "mode", "nearest_mode", NULL};
	int64_t v;

	TRY(attr_only(c, known));
	a->v10 = opset < 11;
	/* in the order of NN_RESIZE_*, NN_COORD_* and NN_NEAREST_* */
	static const char *const modes[] = {"nearest", "linear", NULL};
	static const char *const coords[] = {"half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", NULL};
	static const char *const nearest[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil", NULL};
	TRY(attr_enum(c, "mode", "nearest", modes, "only 'nearest' and 'linear' are supported", &a->mode));
	/* Resize-10 always maps coordinates asymmetrically and rounds down */
	TRY(attr_enum(c, "coordinate_transformation_mode", opset < 11 ? "asymmetric" : "half_pixel", coords,
		      "value not supported", &a->coord));
	TRY(attr_enum(c, "nearest_mode", opset < 11 ? "floor" : "round_prefer_floor", nearest, "unknown value",
		      &a->nearest));
	TRY(attr_int(c, "exclude_outside", 0, &v));
	if (v != 0)
		return bad_attr(c, "exclude_outside", "only 0 is supported");
	/* cubic_coeff_a and extrapolation_value do not affect the modes above */
	return NN_OK;
}

static const char *const no_attrs[] = {NULL};

/* Maps one NodeProto onto the IR node n (inputs and outputs already set). */
static nn_status parse_node(struct nn_graph *g, const Onnx__NodeProto *np, struct nn_node *n, const char *op)
{
	struct attr_ctx c = {np, n->name, op};
	int64_t v;
	int cnt;

	switch (n->op) {
	case NN_OP_CONV:
	case NN_OP_CONVINTEGER:
		return parse_conv_like(&c, &n->a.conv, false);
	case NN_OP_MAXPOOL:
		return parse_conv_like(&c, &n->a.conv, true);
	case NN_OP_RESIZE:
		return parse_resize(&c, &n->a.resize, g->opset);
	case NN_OP_CONCAT: {
		static const char *const k[] = {"axis", NULL};
		TRY(attr_only(&c, k));
		if (!attr_find(&c, "axis"))
			return bad_attr(&c, "axis", "required");
		return attr_int(&c, "axis", 0, &n->a.axis);
	}
	case NN_OP_CAST: {
		static const char *const k[] = {"to", "saturate", NULL};
		TRY(attr_only(&c, k));
		TRY(attr_int(&c, "to", 0, &v));
		if (!dtype_supported((int32_t)v))
			return bad_attr(&c, "to", "element type not supported");
		n->a.to = (nn_dtype)v;
		return NN_OK;
	}
	case NN_OP_RESHAPE: {
		static const char *const k[] = {"allowzero", NULL};
		TRY(attr_only(&c, k));
		TRY(attr_int(&c, "allowzero", 0, &n->a.allowzero));
		if (n->a.allowzero != 0 && n->a.allowzero != 1)
			return bad_attr(&c, "allowzero", "must be 0 or 1");
		if (g->opset < 5)
			return nn_fail(NN_ERR_UNSUPPORTED, "node '%s' (Reshape): opset %lld is too old", n->name,
				       (long long)g->opset);
		return NN_OK;
	}
	case NN_OP_SHAPE: {
		static const char *const k[] = {"start", "end", NULL};
		TRY(attr_only(&c, k));
		TRY(attr_int(&c, "start", 0, &n->a.shape.start));
		n->a.shape.has_end = attr_find(&c, "end") != NULL;
		return attr_int(&c, "end", 0, &n->a.shape.end);
	}
	case NN_OP_SLICE: {
		static const char *const k[] = {"starts", "ends", "axes", NULL};
		struct nn_slice_attr *s = &n->a.slice;
		int ne, na;
		if (g->opset >= 10)
			return attr_only(&c, no_attrs);
		TRY(attr_only(&c, k));
		TRY(attr_ints(&c, "starts", s->starts, NN_MAX_RANK, &cnt));
		TRY(attr_ints(&c, "ends", s->ends, NN_MAX_RANK, &ne));
		TRY(attr_ints(&c, "axes", s->axes, NN_MAX_RANK, &na));
		if (cnt < 0 || ne != cnt || (na >= 0 && na != cnt))
			return bad_attr(&c, "starts", "starts, ends and axes must have the same length");
		s->n = cnt;
		s->has_axes = na >= 0;
		return NN_OK;
	}
	case NN_OP_ADD:
	case NN_OP_MUL:
		if (g->opset < 7)
			return nn_fail(NN_ERR_UNSUPPORTED, "node '%s' (%s): opset %lld broadcasting is not supported",
				       n->name, op, (long long)g->opset);
		return attr_only(&c, no_attrs);
	default:
		return attr_only(&c, no_attrs);
	}
}

/* ===== Graph ===== */

static const struct {
	const char *name;
	enum nn_op op;
} op_map[] = {
	{"Add", NN_OP_ADD},	 {"Cast", NN_OP_CAST},
	{"Concat", NN_OP_CONCAT}, {"Conv", NN_OP_CONV},
	{"ConvInteger", NN_OP_CONVINTEGER}, {"DynamicQuantizeLinear", NN_OP_DQL},
	{"Identity", NN_OP_IDENTITY}, {"MaxPool", NN_OP_MAXPOOL},
	{"Mul", NN_OP_MUL},	 {"Relu", NN_OP_RELU},
	{"Reshape", NN_OP_RESHAPE}, {"Resize", NN_OP_RESIZE},
	{"Shape", NN_OP_SHAPE},	 {"Sigmoid", NN_OP_SIGMOID},
	{"Slice", NN_OP_SLICE},
};

static bool is_graph_input(const struct nn_graph *g, int v)
{
	for (int i = 0; i < g->n_inputs; i++)
		if (g->inputs[i] == v)
			return true;
	return false;
}

/* Returns the value for a name, creating it if it does not exist yet. */
static int value_for(struct nn_graph *g, const char *name)
{
	int v = nn_graph_find_value(g, name);
	return v >= 0 ? v : nn_graph_add_value(g, name, NN_DTYPE_UNDEFINED);
}

static nn_status load_constant_node(struct nn_graph *g, const Onnx__NodeProto *np, const char *name)
{
	const Onnx__AttributeProto *a;
	int v;

	if (np->n_output != 1 || np->n_attribute != 1)
		return nn_fail(NN_ERR_UNSUPPORTED, "node '%s' (Constant): expected one output and one attribute", name);
	a = np->attribute[0];
	if (!a->name || strcmp(a->name, "value") || !a->t)
		return nn_fail(NN_ERR_UNSUPPORTED, "node '%s' (Constant): attribute '%s': only 'value' is supported",
			       name, a->name ? a->name : "");
	v = value_for(g, np->output[0]);
	if (v < 0)
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	if (g->vals[v].producer >= 0 || g->vals[v].data || is_graph_input(g, v))
		return nn_fail(NN_ERR_PARSE, "node '%s': output '%s' is defined twice", name, np->output[0]);
	struct nn_value *val = &g->vals[v];
	return tensor_from_proto(a->t, name, &val->dtype, &val->rank, val->dims, &val->data);
}

static nn_status load_value_info(const Onnx__ValueInfoProto *vi, struct nn_tensor_info *ti)
{
	const Onnx__TypeProto__Tensor *tt;

	if (!vi->type || vi->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE)
		return nn_fail(NN_ERR_UNSUPPORTED, "'%s': only tensor inputs and outputs are supported", vi->name);
	tt = vi->type->tensor_type;
	ti->dtype = tt->has_elem_type ? (nn_dtype)tt->elem_type : NN_DTYPE_UNDEFINED;
	ti->rank = -1;
	if (tt->shape) {
		if (tt->shape->n_dim > NN_MAX_RANK)
			return nn_fail(NN_ERR_UNSUPPORTED, "'%s': rank over %d", vi->name, NN_MAX_RANK);
		ti->rank = (int)tt->shape->n_dim;
		for (size_t d = 0; d < tt->shape->n_dim; d++) {
			const Onnx__TensorShapeProto__Dimension *dim = tt->shape->dim[d];
			ti->dims[d] = dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE
					      ? dim->dim_value : -1;
			if (ti->dims[d] > INT32_MAX)
				return nn_fail(NN_ERR_UNSUPPORTED, "'%s': dimension %zu is too large", vi->name, d);
		}
	}
	return NN_OK;
}

static nn_status load_graph(const Onnx__ModelProto *mp, struct nn_graph *g)
{
	const Onnx__GraphProto *gp = mp->graph;
	char name[64];
	nn_status st;

	/* names are optional in the protobuf: a graph without them is not one */
	for (size_t i = 0; i < gp->n_input; i++)
		if (!gp->input[i]->name || !*gp->input[i]->name)
			return nn_fail(NN_ERR_PARSE, "graph input %zu has no name", i);
	for (size_t i = 0; i < gp->n_output; i++)
		if (!gp->output[i]->name || !*gp->output[i]->name)
			return nn_fail(NN_ERR_PARSE, "graph output %zu has no name", i);
	for (size_t i = 0; i < mp->n_opset_import; i++) {
		const char *d = mp->opset_import[i]->domain;
		if ((!d || !*d || !strcmp(d, "ai.onnx")) && mp->opset_import[i]->has_version)
			g->opset = mp->opset_import[i]->version;
	}
	if (!g->opset)
		return nn_fail(NN_ERR_PARSE, "the model imports no version of the default opset");

	for (size_t i = 0; i < gp->n_initializer; i++) {
		Onnx__TensorProto *tp = gp->initializer[i];
		int v;
		if (!tp->name || !*tp->name)
			return nn_fail(NN_ERR_PARSE, "initializer %zu has no name", i);
		if (nn_graph_find_value(g, tp->name) >= 0)
			return nn_fail(NN_ERR_PARSE, "initializer '%s' is defined twice", tp->name);
		if ((v = nn_graph_add_value(g, tp->name, NN_DTYPE_UNDEFINED)) < 0)
			return nn_fail(NN_ERR_NOMEM, "out of memory");
		struct nn_value *val = &g->vals[v];
		if ((st = tensor_from_proto(tp, tp->name, &val->dtype, &val->rank, val->dims, &val->data)))
			return st;
	}
	if (gp->n_sparse_initializer)
		return nn_fail(NN_ERR_UNSUPPORTED, "sparse initializers are not supported");

	/* graph inputs that are not initializers are the runtime inputs */
	g->inputs = calloc(gp->n_input + 1, sizeof *g->inputs);
	g->in_info = calloc(gp->n_input + 1, sizeof *g->in_info);
	if (!g->inputs || !g->in_info)
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < gp->n_input; i++) {
		const Onnx__ValueInfoProto *vi = gp->input[i];
		struct nn_tensor_info *ti = &g->in_info[g->n_inputs];
		int v = nn_graph_find_value(g, vi->name);
		if (v >= 0 && g->vals[v].data)
			continue; /* an initializer: a constant */
		if (v >= 0)
			return nn_fail(NN_ERR_PARSE, "input '%s' is listed twice", vi->name);
		if ((st = load_value_info(vi, ti)))
			return st;
		if (!dtype_supported(ti->dtype))
			return nn_fail(NN_ERR_UNSUPPORTED, "input '%s': element type %d is not supported", vi->name,
				       ti->dtype);
		if (ti->rank < 0)
			return nn_fail(NN_ERR_UNSUPPORTED, "input '%s': the rank must be declared", vi->name);
		if ((v = nn_graph_add_value(g, vi->name, ti->dtype)) < 0)
			return nn_fail(NN_ERR_NOMEM, "out of memory");
		g->vals[v].rank = ti->rank;
		memcpy(g->vals[v].dims, ti->dims, sizeof ti->dims);
		ti->name = g->vals[v].name;
		g->inputs[g->n_inputs++] = v;
	}

	for (size_t i = 0; i < gp->n_node; i++) {
		const Onnx__NodeProto *np = gp->node[i];
		const char *op = np->op_type ? np->op_type : "";
		size_t k;
		int ni;

		if (np->name && *np->name)
			snprintf(name, sizeof name, "%s", np->name);
		else
			snprintf(name, sizeof name, "#%zu", i);
		if (np->domain && *np->domain && strcmp(np->domain, "ai.onnx"))
			return nn_fail(NN_ERR_UNSUPPORTED, "node '%s' (%s): domain '%s' is not supported", name, op,
				       np->domain);
		if (!strcmp(op, "Constant")) {
			if ((st = load_constant_node(g, np, name)))
				return st;
			continue;
		}
		for (k = 0; k < sizeof op_map / sizeof op_map[0]; k++)
			if (!strcmp(op, op_map[k].name))
				break;
		if (k == sizeof op_map / sizeof op_map[0])
			return nn_fail(NN_ERR_UNSUPPORTED, "node '%s': operator '%s' is not supported", name, op);
		if ((ni = nn_graph_add_node(g, op_map[k].op, name, (int)np->n_input, (int)np->n_output)) < 0)
			return nn_fail(NN_ERR_NOMEM, "out of memory");
		struct nn_node *n;
		for (size_t j = 0; j < np->n_input; j++) {
			if (!*np->input[j]) {
				g->nodes[ni].in[j] = -1;
				continue;
			}
			/* nodes may come in any order; the passes sort them */
			int v = value_for(g, np->input[j]);
			if (v < 0)
				return nn_fail(NN_ERR_NOMEM, "out of memory");
			g->nodes[ni].in[j] = v;
		}
		for (size_t j = 0; j < np->n_output; j++) {
			if (!*np->output[j]) {
				g->nodes[ni].out[j] = -1;
				continue;
			}
			int v = value_for(g, np->output[j]);
			if (v < 0)
				return nn_fail(NN_ERR_NOMEM, "out of memory");
			if (g->vals[v].producer >= 0 || g->vals[v].data || is_graph_input(g, v))
				return nn_fail(NN_ERR_PARSE, "node '%s': output '%s' is defined twice", name,
					       np->output[j]);
			g->vals[v].producer = ni;
			g->nodes[ni].out[j] = v;
		}
		n = &g->nodes[ni];
		if ((st = parse_node(g, np, n, op)))
			return st;
		if ((st = nn_op_check(g, n)))
			return st;
	}

	for (int v = 0; v < g->n_vals; v++)
		if (g->vals[v].producer < 0 && !g->vals[v].data && !is_graph_input(g, v))
			return nn_fail(NN_ERR_PARSE, "'%s' is used but never defined", g->vals[v].name);
	if (!gp->n_output)
		return nn_fail(NN_ERR_PARSE, "the graph has no outputs");
	g->outputs = calloc(gp->n_output, sizeof *g->outputs);
	if (!g->outputs)
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < gp->n_output; i++) {
		int v = nn_graph_find_value(g, gp->output[i]->name);
		if (v < 0)
			return nn_fail(NN_ERR_PARSE, "output '%s' is never computed", gp->output[i]->name);
		g->outputs[i].value = v;
		g->outputs[i].name = strdup(gp->output[i]->name);
		g->n_outputs++;
		if (!g->outputs[i].name)
			return nn_fail(NN_ERR_NOMEM, "out of memory");
	}
	return NN_OK;
}

/* ===== Decoding ===== */

/* protobuf-c's allocations while decoding: a tensor's raw bytes (which the
 * graph keeps, see tensor_from_proto) from SLAB_FROM bytes in the graph's
 * slab (slab.c: huge pages, a fault every 2 MiB rather than every 4 KiB,
 * and later the activations' arena), else from a huge page's size on huge
 * pages of their own, the rest malloc's. Every block is freed with nn_data_free. */
#define SLAB_FROM ((size_t)64 << 10)

static void *pb_alloc(void *data, size_t n)
{
	void *p = n >= SLAB_FROM ? nn_slab_alloc(data, n) : NULL;

	if (p)
		return p;
	return n < UTIL_HUGE_PAGE ? malloc(n) : util_alloc_huge(n); /* names, attributes, small tensors: malloc's */
}

static void pb_free(void *data, void *p)
{
	(void)data;
	nn_data_free(p);
}

nn_status nn_onnx_load(const void *buf, size_t len, struct nn_graph *g)
{
	ProtobufCAllocator alloc = {.alloc = pb_alloc, .free = pb_free};
	Onnx__ModelProto *mp;
	nn_status st;

	/* the tensors' bytes fit in the file's size; as much again lets the
	 * region serve as the activations' arena (ISNet medium at 1024 x 1024
	 * in bf16: 96 MB, its file 88 MB); pages never touched cost nothing */
	if (!g->slab && len >= UTIL_HUGE_PAGE)
		g->slab = nn_slab_new(2 * len);
	alloc.allocator_data = g->slab;
	mp = onnx__model_proto__unpack(&alloc, len, buf);
	if (!mp)
		return nn_fail(NN_ERR_PARSE, "cannot decode the ONNX protobuf");
	if (!mp->graph)
		st = nn_fail(NN_ERR_PARSE, "the model has no graph");
	else
		st = load_graph(mp, g);
	onnx__model_proto__free_unpacked(mp, &alloc);
	return st;
}
