/*
 * plan_lower.c - lowering every node but the convolutions (plan_conv.c).
 *
 * MaxPool, linear Resize, Concat, Relu/Sigmoid and float Add/Mul become
 * oneDNN primitives whose layouts oneDNN picks; a Concat may cost nothing
 * (its inputs placed inside its output) or be left to the conv that reads
 * it. Everything else runs the reference kernel (ops_ref.c) on row-major
 * data. int8 plans first decide which tensors are held as u8 between
 * int8 convs (plan_holds).
 */
#include <stdlib.h>
#include <string.h>

#include "nn/plan_int.h"
#include "nn/wino.h"

/* ===== Lowering ===== */

/* The node reading value v when it is its only reader (and v is no graph
 * output); else -1. */
static int sole_reader(const struct nn_graph *g, int v)
{
	int reader = -1;

	if (nn_graph_is_output(g, v))
		return -1;
	for (int i = 0; i < g->n_nodes; i++) {
		const struct nn_node *n = &g->nodes[i];
		if (n->dead)
			continue;
		for (int j = 0; j < n->n_in; j++)
			if (n->in[j] == v) {
				if (reader >= 0 && reader != i)
					return -1;
				reader = i;
			}
		for (int j = 0; j < n->n_post; j++)
			if (n->post[j].value == v)
				return -1;
	}
	return reader;
}

/* Starts a step for a primitive without attributes: its descriptor (the
 * caller binds the arguments, then calls prim_finish), and out's layout,
 * which the primitive chose. */
static nn_status begin_prim(nn_model *m, struct nn_plan *p, int node, const_dnnl_op_desc_t desc, int out,
			    struct step **s, dnnl_primitive_desc_t *pd)
{
	dnnl_primitive_attr_t attr;
	nn_status st;

	DNNL_TRY(dnnl_primitive_attr_create(&attr), "attr");
	st = plan_prim_create(m, p, desc, attr, pd, m->g.nodes[node].name);
	dnnl_primitive_attr_destroy(attr);
	if (st)
		return st;
	plan_tv_set_md(&p->tv[out], dnnl_primitive_desc_query_md(*pd, dnnl_query_dst_md, 0));
	if (!(*s = plan_step_new(p, STEP_PRIM, node))) {
		dnnl_primitive_desc_destroy(*pd);
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	}
	return NN_OK;
}

/* A one-input primitive from x to out; out takes the layout it chooses. */
static nn_status add_unary(nn_model *m, struct nn_plan *p, int node, const_dnnl_op_desc_t desc, int x, int out)
{
	dnnl_primitive_desc_t pd;
	struct step *s;
	nn_status st = begin_prim(m, p, node, desc, out, &s, &pd);

	if (st)
		return st;
	plan_arg_tv(s, DNNL_ARG_SRC, x);
	plan_arg_tv(s, DNNL_ARG_DST, out);
	plan_prim_finish(p, s, pd);
	return NN_OK;
}

static nn_status lower_maxpool(nn_model *m, struct nn_plan *p, int node)
{
	const struct nn_node *n = &m->g.nodes[node];
	const struct nn_conv_attr *a = &n->a.conv;
	int x = n->in[0], out = n->out[0], nsp;
	int64_t osp[NN_MAX_SPATIAL], pb[NN_MAX_SPATIAL], pe[NN_MAX_SPATIAL];
	dnnl_dims_t strides, kernel, dil, pl, pr;
	dnnl_memory_desc_t dst_md;
	dnnl_pooling_v2_desc_t desc;
	nn_status st;

	plan_tv_default_md(&p->tv[x]);
	nsp = p->tv[x].t.rank - 2;
	if ((st = nn_conv_out_dims(n, nsp, p->tv[x].t.dims + 2, a->kernel, osp, pb, pe)))
		return st;
	for (int i = 0; i < nsp; i++) {
		int64_t keff = (a->kernel[i] - 1) * a->dilations[i] + 1;
		strides[i] = a->strides[i];
		kernel[i] = a->kernel[i];
		dil[i] = a->dilations[i] - 1;
		pl[i] = pb[i];
		/* ceil mode: pad the end so the last window fits; padding never wins a max */
		pr[i] = (osp[i] - 1) * a->strides[i] + keff - p->tv[x].t.dims[2 + i] - pb[i];
		if (pr[i] < 0)
			pr[i] = 0;
	}
	plan_any_md(p->tv[out].t.rank, p->tv[out].t.dims, p->tv[x].md.data_type, &dst_md);
	DNNL_TRY(dnnl_pooling_v2_forward_desc_init(&desc, dnnl_forward_inference, dnnl_pooling_max, &p->tv[x].md,
						   &dst_md, strides, kernel, dil, pl, pr),
		 n->name);
	p->tv[out].q = p->tv[x].q; /* the max of u8 values is one of them */
	return add_unary(m, p, node, &desc, x, out);
}

/* True if Resize node n runs on oneDNN: linear half-pixel on the spatial
 * axes; other modes use the reference kernel. */
static bool resize_on_dnnl(const struct nn_plan *p, const struct nn_node *n)
{
	int x = n->in[0], out = n->out[0], r = p->tv[x].t.rank;
	const int64_t *id = p->tv[x].t.dims, *od = p->tv[out].t.dims;
	bool by_sizes = n->n_in > 3 && n->in[3] >= 0 && nn_numel(p->tv[n->in[3]].t.rank, p->tv[n->in[3]].t.dims) > 0;

	if (n->a.resize.mode != NN_RESIZE_LINEAR || n->a.resize.coord != NN_COORD_HALF_PIXEL || r < 3 || r > 5)
		return false;
	if (!by_sizes) { /* oneDNN maps coordinates with out/in, ONNX with the given scale */
		const float *sc = p->tv[n->a.resize.v10 ? n->in[1] : n->in[2]].t.data;
		if (!sc)
			return false;
		for (int i = 2; i < r; i++)
			if ((double)sc[i] * (double)id[i] != (double)od[i])
				return false;
	}
	return id[0] == od[0] && id[1] == od[1];
}

static nn_status lower_resize(nn_model *m, struct nn_plan *p, int node, bool *declined)
{
	const struct nn_node *n = &m->g.nodes[node];
	int x = n->in[0], out = n->out[0];
	dnnl_memory_desc_t dst_md;
	dnnl_resampling_desc_t desc;

	*declined = !resize_on_dnnl(p, n);
	if (*declined)
		return NN_OK;
	plan_tv_default_md(&p->tv[x]);
	plan_any_md(p->tv[out].t.rank, p->tv[out].t.dims, p->tv[x].md.data_type, &dst_md);
	DNNL_TRY(dnnl_resampling_forward_desc_init(&desc, dnnl_forward_inference, dnnl_resampling_linear, NULL,
						   &p->tv[x].md, &dst_md),
		 n->name);
	p->tv[out].q = p->tv[x].q; /* linear: a held input's scale carries over */
	return add_unary(m, p, node, &desc, x, out);
}

/* Concat along channels of one image in a layout whose channel blocks are
 * outermost (nchw, nChw8c/16c with whole blocks): each input is a contiguous
 * slice of the output, so the inputs are placed inside the output's storage
 * and the concat costs nothing. Returns false to fall back to a copy. */
static bool concat_in_place(struct nn_plan *p, const struct nn_node *n, int out)
{
	static const struct {
		dnnl_format_tag_t tag;
		int block;
	} layouts[] = {{dnnl_abcd, 1}, {dnnl_aBcd16b, 16}, {dnnl_aBcd8b, 8}};
	const struct ptv *O = &p->tv[out];
	dnnl_memory_desc_t md, omd;
	int roots[64];

	dnnl_data_type_t dt;

	if (O->t.rank != 4 || O->t.dims[0] != 1 || n->n_in > 64 ||
	    (n->a.axis != 1 && n->a.axis != -3) || !p->tv[n->in[0]].has_md)
		return false;
	dt = p->tv[n->in[0]].md.data_type;
	for (size_t l = 0; l < sizeof layouts / sizeof layouts[0]; l++) {
		dnnl_dims_t d;
		bool ok = true;
		for (int i = 0; ok && i < n->n_in; i++) {
			const struct ptv *X = &p->tv[n->in[i]];
			size_t off;
			int r;
			plan_fill_dims(d, 4, X->t.dims);
			ok = X->kind == TV_RUN && X->has_md && X->t.dtype == NN_DTYPE_F32 &&
			     X->t.dims[1] % layouts[l].block == 0 &&
			     dnnl_memory_desc_init_by_tag(&md, 4, d, dt, layouts[l].tag) == dnnl_success &&
			     dnnl_memory_desc_equal(&md, &X->md);
			if (!ok)
				break;
			/* the whole storage chain of the input moves into the output */
			r = plan_tv_root(p, n->in[i], &off);
			ok = off == 0 && p->tv[r].kind == TV_RUN && p->tv[r].bytes == X->bytes;
			for (int j = 0; ok && j < i; j++)
				ok = roots[j] != r;
			roots[i] = r;
		}
		if (!ok)
			continue;
		plan_fill_dims(d, 4, O->t.dims);
		if (dnnl_memory_desc_init_by_tag(&omd, 4, d, dt, layouts[l].tag) != dnnl_success)
			continue;
		plan_tv_set_md(&p->tv[out], &omd);
		size_t at = 0;
		for (int i = 0; i < n->n_in; i++) {
			p->tv[roots[i]].alias = out;
			p->tv[roots[i]].alias_off = at;
			at += p->tv[n->in[i]].bytes;
		}
		return true;
	}
	return false;
}

/* True if Concat node `node` (along channels) is read by one conv alone
 * that reads its parts where they are: an int8 conv quantizes them into
 * place, a Winograd one transforms them straight from their tensors. */
static bool concat_deferred(nn_model *m, const struct nn_plan *p, int node)
{
	const struct nn_node *n = &m->g.nodes[node];
	int out = n->out[0], r = p->tv[out].t.rank, relu, sum, relu_after;
	int64_t axis = n->a.axis < 0 ? n->a.axis + r : n->a.axis;
	int reader = sole_reader(&m->g, out);
	bool wino;

	if (p->tv[out].t.dtype != NN_DTYPE_F32 || r != 4 || axis != 1 || reader < 0 || m->g.nodes[reader].in[0] != out ||
	    n->n_in > 64)
		return false;
	wino = plan_wino_fits(m, p, reader, &relu, &sum, &relu_after);
	if (!wino && !(p->precision == NN_PRECISION_INT8 && plan_conv_runs_int8(m, p, reader)))
		return false;
	if (wino && n->n_in > WINO_MAX_PARTS)
		return false;
	for (int i = 0; i < n->n_in; i++)
		if (n->in[i] < 0 || p->tv[n->in[i]].kind != TV_RUN || p->tv[n->in[i]].t.rank != 4 ||
		    p->tv[n->in[i]].t.dims[1] <= 0 || (wino && p->tv[n->in[i]].t.dims[1] % 16))
			return false;
	return true;
}

/* True if node n reads a tensor held as u8 (which only int8 convs, max
 * pooling, linear resizing and deferred Concats take). */
static bool held_input(const struct nn_plan *p, const struct nn_node *n)
{
	for (int i = 0; i < n->n_in; i++)
		if (n->in[i] >= 0 && p->tv[n->in[i]].q > 0)
			return true;
	for (int i = 0; i < n->n_post; i++)
		if (n->post[i].value >= 0 && p->tv[n->post[i].value].q > 0)
			return true;
	return false;
}

/* int8 plans: which values may be held as u8 between int8 convs (p->hold):
 * those with a range that never goes below 0 all of whose readers take
 * them so: an int8 conv's input, max pooling or linear resizing whose
 * output may be held, a Concat deferred into an int8 conv, the addend of an
 * int8 conv whose output may be held. Readers come later, so the nodes are
 * visited last to first. */
nn_status plan_holds(nn_model *m, struct nn_plan *p)
{
	const struct nn_graph *g = &m->g;

	if (p->precision != NN_PRECISION_INT8)
		return NN_OK;
	if (!(p->hold = calloc((size_t)g->n_vals + 1, sizeof *p->hold)))
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	for (int i = g->n_nodes - 1; i >= 0; i--) {
		const struct nn_node *pn = &g->nodes[i];
		int v = pn->n_out > 0 ? pn->out[0] : -1;
		float lo, hi;
		bool ok;
		if (pn->dead || v < 0 || p->tv[v].kind != TV_RUN || nn_graph_is_output(g, v) ||
		    (pn->op != NN_OP_CONV && pn->op != NN_OP_MAXPOOL && pn->op != NN_OP_RESIZE) ||
		    !nn_quant_range(m, v, &lo, &hi) || lo < 0)
			continue;
		ok = true;
		for (int j = i + 1; ok && j < g->n_nodes; j++) {
			const struct nn_node *n = &g->nodes[j];
			if (n->dead)
				continue;
			for (int k = 0; ok && k < n->n_in; k++) {
				if (n->in[k] != v)
					continue;
				switch (n->op) {
				case NN_OP_CONV:
					ok = k == 0 && plan_conv_runs_int8(m, p, j);
					break;
				case NN_OP_MAXPOOL:
					ok = k == 0 && p->hold[n->out[0]];
					break;
				case NN_OP_RESIZE:
					ok = k == 0 && resize_on_dnnl(p, n) && p->hold[n->out[0]];
					break;
				case NN_OP_CONCAT:
					ok = concat_deferred(m, p, j);
					break;
				case NN_OP_SHAPE: /* reads the dimensions alone */
					break;
				default:
					ok = false;
				}
			}
			for (int k = 0; ok && k < n->n_post; k++)
				if (n->post[k].value == v)
					ok = n->op == NN_OP_CONV && k == plan_sum_post(p, n, n->out[0]) &&
					     p->hold[n->out[0]];
		}
		p->hold[v] = ok;
	}
	return NN_OK;
}

static nn_status lower_concat(nn_model *m, struct nn_plan *p, int node, bool *declined)
{
	const struct nn_node *n = &m->g.nodes[node];
	int out = n->out[0], r = p->tv[out].t.rank;
	int64_t axis = n->a.axis < 0 ? n->a.axis + r : n->a.axis;
	dnnl_memory_desc_t *mds;
	dnnl_primitive_attr_t attr;
	dnnl_primitive_desc_t pd;
	int ins[MAX_ARGS];
	struct step *s;
	dnnl_status_t ds;

	*declined = true;
	if (p->tv[out].t.dtype != NN_DTYPE_F32 || r < 1 || r > 6 || n->n_in > MAX_ARGS - 2)
		return NN_OK;
	for (int i = 0; i < n->n_in; i++)
		if (p->tv[n->in[i]].kind == TV_CONST || p->tv[n->in[i]].t.dims[axis] == 0)
			return NN_OK;
	*declined = false;
	if (concat_deferred(m, p, node)) {
		p->tv[out].deferred = node + 1;
		return NN_OK;
	}
	if (held_input(p, n))
		return nn_fail(NN_ERR_BACKEND, "%s: internal: a held input", n->name);
	if (concat_in_place(p, n, out))
		return NN_OK;
	if (n->n_in < 1 || !(mds = calloc((size_t)(unsigned)n->n_in, sizeof *mds)))
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	bool mixed = false;
	for (int i = 0; i < n->n_in; i++) {
		plan_tv_default_md(&p->tv[n->in[i]]);
		mixed |= p->tv[n->in[i]].md.data_type != p->tv[n->in[0]].md.data_type;
	}
	for (int i = 0; i < n->n_in; i++) {
		int v = n->in[i];
		/* inputs of different element types meet as row-major fp32 */
		if (mixed && (v = plan_in_plain(m, p, v)) < 0) {
			free(mds);
			return nn_fail(NN_ERR_BACKEND, "%s: cannot lay out input %d", n->name, i);
		}
		mds[i] = p->tv[v].md;
		ins[i] = v;
	}
	DNNL_TRY(dnnl_primitive_attr_create(&attr), "attr");
	dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
	ds = dnnl_concat_primitive_desc_create(&pd, NULL, n->n_in, (int)axis, mds, attr, m->engine);
	dnnl_primitive_attr_destroy(attr);
	free(mds);
	if (ds != dnnl_success)
		return nn_fail(NN_ERR_BACKEND, "%s: oneDNN concat failed (status %d)", n->name, (int)ds);
	plan_tv_set_md(&p->tv[out], dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0));
	if (!(s = plan_step_new(p, STEP_PRIM, node))) {
		dnnl_primitive_desc_destroy(pd);
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	}
	for (int i = 0; i < n->n_in; i++)
		plan_arg_tv(s, DNNL_ARG_MULTIPLE_SRC + i, ins[i]);
	plan_arg_tv(s, DNNL_ARG_DST, out);
	plan_prim_finish(p, s, pd);
	return NN_OK;
}

static nn_status lower_eltwise(nn_model *m, struct nn_plan *p, int node, bool *declined)
{
	const struct nn_node *n = &m->g.nodes[node];
	int x = n->in[0], out = n->out[0];
	dnnl_eltwise_desc_t desc;

	plan_tv_default_md(&p->tv[x]);
	*declined = !p->tv[x].has_md;
	if (*declined)
		return NN_OK;
	DNNL_TRY(dnnl_eltwise_forward_desc_init(&desc, dnnl_forward_inference,
						n->op == NN_OP_RELU ? dnnl_eltwise_relu : dnnl_eltwise_logistic,
						&p->tv[x].md, 0.0f, 0.0f),
		 n->name);
	return add_unary(m, p, node, &desc, x, out);
}

/* Float Add/Mul where the first operand (after swapping) has the output's
 * shape; oneDNN broadcasts only the second. */
static nn_status lower_binary(nn_model *m, struct nn_plan *p, int node, bool *declined)
{
	const struct nn_node *n = &m->g.nodes[node];
	int a = n->in[0], b = n->in[1], out = n->out[0], r = p->tv[out].t.rank;
	dnnl_memory_desc_t bmd;
	dnnl_binary_desc_t desc;
	dnnl_primitive_desc_t pd;
	int64_t d[NN_MAX_RANK];
	struct step *s;
	nn_status st;

	*declined = true;
	if (p->tv[out].t.dtype != NN_DTYPE_F32 || r < 1 || r > 6 || nn_numel(r, p->tv[out].t.dims) == 0)
		return NN_OK;
	if (p->tv[a].kind == TV_CONST || p->tv[a].t.rank != r ||
	    memcmp(p->tv[a].t.dims, p->tv[out].t.dims, sizeof d[0] * (size_t)r)) {
		int t = a;
		a = b;
		b = t;
	}
	if (p->tv[a].kind == TV_CONST || p->tv[a].t.rank != r ||
	    memcmp(p->tv[a].t.dims, p->tv[out].t.dims, sizeof d[0] * (size_t)r))
		return NN_OK;
	*declined = false;
	plan_tv_default_md(&p->tv[a]);
	for (int k = 0; k < r; k++)
		d[k] = k < r - p->tv[b].t.rank ? 1 : p->tv[b].t.dims[k - (r - p->tv[b].t.rank)];
	if (p->tv[b].kind == TV_CONST || p->tv[b].t.rank != r) {
		/* seen row-major with leading ones */
		if (p->tv[b].kind != TV_CONST && (b = plan_in_plain(m, p, b)) < 0)
			return nn_fail(NN_ERR_BACKEND, "%s: cannot lay out the input", n->name);
		plan_plain_md(NN_DTYPE_F32, r, d, &bmd);
	} else {
		plan_tv_default_md(&p->tv[b]);
		bmd = p->tv[b].md;
	}
	DNNL_TRY(dnnl_binary_desc_init(&desc, n->op == NN_OP_ADD ? dnnl_binary_add : dnnl_binary_mul, &p->tv[a].md,
				       &bmd, &p->tv[a].md),
		 n->name);
	if ((st = begin_prim(m, p, node, &desc, out, &s, &pd)))
		return st;
	plan_arg_tv(s, DNNL_ARG_SRC_0, a);
	if ((st = plan_bind_view(m, p, s, DNNL_ARG_SRC_1, b, &bmd))) {
		dnnl_primitive_desc_destroy(pd);
		return st;
	}
	plan_arg_tv(s, DNNL_ARG_DST, out);
	plan_prim_finish(p, s, pd);
	return NN_OK;
}

static nn_status lower_ref(nn_model *m, struct nn_plan *p, int node);

/* DynamicQuantizeLinear is elementwise but for its global range: on a dense
 * input it runs in the input's layout and its result keeps that layout. */
static nn_status lower_dql(nn_model *m, struct nn_plan *p, int node)
{
	const struct nn_node *n = &m->g.nodes[node];
	struct step *s;
	int x = n->in[0];

	if (!plan_is_dense(&p->tv[x]) || plan_is_plain(&p->tv[x]))
		return lower_ref(m, p, node);
	if (!(s = plan_step_new(p, STEP_REF, node)) || !(s->ins = calloc(1, sizeof *s->ins)))
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	s->ins[0] = x;
	s->n_ins = 1;
	s->n_outs = 3;
	for (int j = 0; j < 3; j++)
		s->outs[j] = n->out[j];
	dnnl_memory_desc_t md = plan_md_as(&p->tv[x].md, NN_DTYPE_U8);
	plan_tv_set_md(&p->tv[n->out[0]], &md);
	plan_tv_default_md(&p->tv[n->out[1]]);
	plan_tv_default_md(&p->tv[n->out[2]]);
	return NN_OK;
}

/* Everything else: the reference kernel on row-major data. */
static nn_status lower_ref(nn_model *m, struct nn_plan *p, int node)
{
	const struct nn_node *n = &m->g.nodes[node];
	struct step *s;
	int *ins;

	if (n->n_post)
		return nn_fail(NN_ERR_UNSUPPORTED, "node '%s': fused operations need oneDNN", n->name);
	if (!(ins = calloc((size_t)n->n_in + 1, sizeof *ins)))
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	for (int j = 0; j < n->n_in; j++) {
		int v = n->in[j];
		if (v >= 0 && p->tv[v].kind != TV_CONST && (v = plan_in_plain(m, p, v)) < 0) {
			free(ins);
			return nn_fail(NN_ERR_BACKEND, "node '%s': cannot lay out input %d", n->name, j);
		}
		ins[j] = v;
	}
	if (!(s = plan_step_new(p, STEP_REF, node))) {
		free(ins);
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	}
	s->ins = ins;
	s->n_ins = n->n_in;
	s->n_outs = n->n_out;
	for (int j = 0; j < n->n_out; j++) {
		s->outs[j] = n->out[j];
		if (n->out[j] >= 0)
			plan_tv_default_md(&p->tv[n->out[j]]);
	}
	return NN_OK;
}

/* Adds the steps of node i: a oneDNN primitive where one fits, else the
 * reference kernel. */
nn_status plan_lower_node(nn_model *m, struct nn_plan *p, int i)
{
	const struct nn_node *n = &m->g.nodes[i];
	bool declined = true;
	nn_status st = NN_OK;

	if (n->op != NN_OP_CONV && n->op != NN_OP_MAXPOOL && n->op != NN_OP_CONCAT && n->op != NN_OP_SHAPE &&
	    !(n->op == NN_OP_RESIZE && resize_on_dnnl(p, n)) && held_input(p, n))
		return nn_fail(NN_ERR_BACKEND, "%s: internal: a held input", n->name);
	switch (n->op) {
	case NN_OP_CONV:
		return plan_lower_conv(m, p, i);
	case NN_OP_CONVINTEGER:
		return plan_lower_convinteger(m, p, i);
	case NN_OP_MAXPOOL:
		if (p->tv[n->in[0]].t.dtype == NN_DTYPE_F32)
			return lower_maxpool(m, p, i);
		break;
	case NN_OP_RESIZE:
		st = lower_resize(m, p, i, &declined);
		break;
	case NN_OP_CONCAT:
		st = lower_concat(m, p, i, &declined);
		break;
	case NN_OP_RELU:
	case NN_OP_SIGMOID:
		st = lower_eltwise(m, p, i, &declined);
		break;
	case NN_OP_ADD:
	case NN_OP_MUL:
		st = lower_binary(m, p, i, &declined);
		break;
	case NN_OP_DQL:
		return lower_dql(m, p, i);
	default:
		break;
	}
	if (st != NN_OK || !declined)
		return st;
	return lower_ref(m, p, i);
}
