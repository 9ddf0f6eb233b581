/*
 * plan_conv.c - lowering Conv and ConvInteger onto oneDNN.
 *
 * A convolution becomes one oneDNN primitive with its fused post-ops (a
 * residual sum into dst, other binary ops, ReLU/Sigmoid), in the precision
 * of the plan: fp32, bf16 (activations and weights between convolutions),
 * or int8 (inputs quantized at calibrated scales, s8 weights with a scale
 * per output channel). Where it pays, a bf16 3x3 convolution runs as
 * Winograd F(2x2, 3x3) or F(4x4, 3x3) instead (wino.c). Weights are reordered once into
 * the layout the primitive asks for and kept by the model.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/plan_int.h"
#include "nn/wino.h"

/* ===== Weights ===== */

/* True if graph value v may be released once reordered: a large constant
 * whose only readers are Conv nodes taking it as their weights. */
static bool releasable(const struct nn_graph *g, int v)
{
	const struct nn_value *val = &g->vals[v];
	return val->data && val->rank >= 1 &&
	       nn_numel(val->rank, val->dims) * (int64_t)nn_dtype_size(val->dtype) >= 4096 &&
	       nn_graph_only_conv_weights(g, v);
}

/* The weights of node the model keeps in layout md, or NULL. */
static struct nn_wcache *wcache_find(nn_model *m, int node, const dnnl_memory_desc_t *md)
{
	for (struct nn_wcache *w = m->wcache; w; w = w->next)
		if (w->node == node && dnnl_memory_desc_equal(&w->md, md))
			return w;
	return NULL;
}

void nn_weights_release(nn_model *m, int wval)
{
	if (wval >= 0 && m->src_path && releasable(&m->g, wval)) {
		nn_data_free(m->g.vals[wval].data);
		m->g.vals[wval].data = NULL;
		m->g.vals[wval].released = true;
	}
}

/* Weights w[0..n) as s8 at scale s: w / s rounded to the nearest (ties to
 * even) within +-127, a NaN 127, as fmaxf(-127, fminf(127, nearbyintf(w / s)))
 * gives, without three libm calls a weight (they made most of an int8
 * plan's time): clamping first changes nothing, the bounds being whole, and
 * adding then taking away 1.5 * 2^23 rounds a float of at most 2^22. */
static void quantize_s8(const float *w, float s, int64_t n, int8_t *q)
{
	for (int64_t i = 0; i < n; i++) {
		float x = w[i] / s;
		x = x <= 127.0f ? x : 127.0f;
		x = x >= -127.0f ? x : -127.0f;
		q[i] = (int8_t)((x + 0x1.8p23f) - 0x1.8p23f);
	}
}

/* n float weights from data of type dt (f32 or f16): data itself, or a
 * widened copy in *wide (freed by the caller). NULL if out of memory. */
static const float *as_floats(const void *data, nn_dtype dt, int64_t n, float **wide)
{
	*wide = NULL;
	if (dt != NN_DTYPE_F16)
		return data;
	if (!(*wide = malloc(sizeof **wide * (size_t)(n ? n : 1))))
		return NULL;
	nn_f16_to_f32_n(data, *wide, (size_t)n);
	return *wide;
}

/* Weights of a conv node in layout md, reordered once and kept by the model,
 * from data (f32 or f16, type dt) in user_md's layout and dimensions. wval
 * is the graph value holding them (-1: data made by the plan). When the
 * model can reread its file, the graph's copy is released once reordered;
 * a later layout that needs it again returns NN_RELOAD. */
static nn_status weights_for(nn_model *m, int node, int wval, const dnnl_memory_desc_t *user_md,
			     const void *data, nn_dtype dt, const float *qscales, const dnnl_memory_desc_t *md,
			     dnnl_memory_t *out)
{
	struct nn_wcache *w;
	dnnl_memory_t src = NULL;
	int8_t *q = NULL;
	float *wide = NULL;
	dnnl_primitive_desc_t pd = NULL;
	dnnl_primitive_t prim = NULL;
	nn_status st = NN_OK;

	if ((w = wcache_find(m, node, md))) {
		*out = w->mem;
		nn_weights_release(m, wval);
		return NN_OK;
	}
	if (!data)
		return NN_RELOAD;
	if (!(data = as_floats(data, dt, nn_numel(user_md->ndims, user_md->dims), &wide)))
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	w = calloc(1, sizeof *w);
	if (!w || posix_memalign(&w->buf, 64, dnnl_memory_desc_get_size(md) + 64)) {
		free(w);
		free(wide);
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	}
	w->node = node;
	w->prec = m->building;
	w->md = *md;
	if (qscales) { /* int8: s8 per output channel, from the float weights */
		int64_t cnt = nn_numel(user_md->ndims, user_md->dims), oc = user_md->dims[0], per = cnt / oc;
		if (!(q = malloc((size_t)(cnt ? cnt : 1)))) {
			st = nn_fail(NN_ERR_NOMEM, "out of memory");
			goto out;
		}
#pragma omp parallel for schedule(static) if (cnt > 65536)
		for (int64_t o = 0; o < oc; o++)
			quantize_s8((const float *)data + o * per, qscales[o], per, q + o * per);
	}
	if (dnnl_memory_create(&w->mem, md, m->engine, w->buf) != dnnl_success ||
	    dnnl_memory_create(&src, user_md, m->engine, q ? (void *)q : (void *)data) != dnnl_success ||
	    dnnl_reorder_primitive_desc_create(&pd, user_md, m->engine, md, m->engine, NULL) != dnnl_success ||
	    dnnl_primitive_create(&prim, pd) != dnnl_success) {
		st = nn_fail(NN_ERR_BACKEND, "cannot reorder weights");
		goto out;
	}
	dnnl_exec_arg_t args[2] = {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, w->mem}};
	if (dnnl_primitive_execute(prim, m->stream, 2, args) != dnnl_success ||
	    dnnl_stream_wait(m->stream) != dnnl_success)
		st = nn_fail(NN_ERR_BACKEND, "cannot reorder weights");
out:
	free(q);
	free(wide);
	if (prim)
		dnnl_primitive_destroy(prim);
	if (pd)
		dnnl_primitive_desc_destroy(pd);
	if (src)
		dnnl_memory_destroy(src);
	if (st != NN_OK) {
		if (w->mem)
			dnnl_memory_destroy(w->mem);
		free(w->buf);
		free(w);
		return st;
	}
	w->next = m->wcache;
	m->wcache = w;
	*out = w->mem;
	nn_weights_release(m, wval);
	return NN_OK;
}

/* The Winograd weights of bf16 conv node (wino.c), made from data (the
 * weights, f32 or f16 as dt says, cout x cin x 3 x 3) once and kept by the
 * model. */
static nn_status wino_weights_for(nn_model *m, int node, int wval, const void *data, nn_dtype dt, int cin, int cout,
				  int tile, const uint16_t **u)
{
	dnnl_dims_t d = {(dnnl_dim_t)wino_weights_size(cin, cout, tile)};
	dnnl_memory_desc_t md;
	struct nn_wcache *w;

	if (dnnl_memory_desc_init_by_tag(&md, 1, d, dnnl_u8, dnnl_a) != dnnl_success)
		return nn_fail(NN_ERR_BACKEND, "cannot describe the weights");
	if (!(w = wcache_find(m, node, &md))) {
		float *wide;
		if (!data)
			return NN_RELOAD;
		if (!(data = as_floats(data, dt, (int64_t)cout * cin * 9, &wide)) || !(w = calloc(1, sizeof *w)) ||
		    posix_memalign(&w->buf, 64, (size_t)d[0])) {
			free(w);
			free(wide);
			return nn_fail(NN_ERR_NOMEM, "out of memory");
		}
		w->node = node;
		w->prec = m->building;
		w->md = md;
		wino_weights(data, cin, cout, tile, w->buf);
		free(wide);
		if (dnnl_memory_create(&w->mem, &md, m->engine, w->buf) != dnnl_success) {
			free(w->buf);
			free(w);
			return nn_fail(NN_ERR_BACKEND, "cannot keep the weights");
		}
		w->next = m->wcache;
		m->wcache = w;
	}
	*u = w->buf;
	nn_weights_release(m, wval);
	return NN_OK;
}

/* ===== Lowering convolutions ===== */

/* True if value v is read by a node after `node` or is a graph output. */
static bool used_after(const struct nn_graph *g, int v, int node)
{
	if (nn_graph_is_output(g, v))
		return true;
	for (int i = node + 1; i < g->n_nodes; i++) {
		const struct nn_node *n = &g->nodes[i];
		if (n->dead)
			continue;
		for (int j = 0; j < n->n_in; j++)
			if (n->in[j] == v)
				return true;
		for (int j = 0; j < n->n_post; j++)
			if (n->post[j].value == v)
				return true;
	}
	return false;
}

/* True if Conv node `node` runs on int8 in plan p (the test lower_conv_core
 * makes). A conv that reads the network's input stays float: its few
 * weights per output see the photo itself, and rounding them there costs
 * more of the mask's accuracy than any other single conv (ISNet medium at
 * 1024: a third of the mean error against fp32) for none of the time. */
bool plan_conv_runs_int8(nn_model *m, const struct nn_plan *p, int node)
{
	const struct nn_node *n = &m->g.nodes[node];
	float lo, hi;

	return p->precision == NN_PRECISION_INT8 && n->op == NN_OP_CONV && n->n_in >= 2 &&
	       !nn_graph_is_input(&m->g, n->in[0]) && p->tv[n->in[1]].kind == TV_CONST && n->a.conv.group == 1 &&
	       nn_quant_range(m, n->in[0], &lo, &hi);
}

/* The post-op of conv node n that adds a whole tensor of the shape of its
 * output tv out (oneDNN's sum into dst), or -1. */
int plan_sum_post(const struct nn_plan *p, const struct nn_node *n, int out)
{
	const struct ptv *O = &p->tv[out];

	for (int i = 0; i < n->n_post; i++) {
		const struct ptv *A = n->post[i].kind == NN_POST_ADD ? &p->tv[n->post[i].value] : NULL;
		if (A && A->kind != TV_CONST && A->t.rank == O->t.rank &&
		    !memcmp(A->t.dims, O->t.dims, sizeof A->t.dims[0] * (size_t)A->t.rank))
			return i;
	}
	return -1;
}

/* The scale of each input channel of int8 conv `node` reading tv x (a
 * deferred Concat joins its parts' scales) into sic, and whether it reads
 * s8; false if a range is missing. */
static bool conv_in_scales(nn_model *m, const struct nn_plan *p, int x, int64_t cin, float *sic, bool *is_signed)
{
	const struct nn_node *c = p->tv[x].deferred ? &m->g.nodes[p->tv[x].deferred - 1] : NULL;
	int n = c ? c->n_in : 1;
	float lo[64], hi[64];
	int64_t at = 0;

	if (n > 64)
		return false;
	*is_signed = false;
	for (int i = 0; i < n; i++) {
		if (!nn_quant_range(m, c ? c->in[i] : x, &lo[i], &hi[i]))
			return false;
		*is_signed |= lo[i] < 0;
	}
	for (int i = 0; i < n; i++) {
		int64_t ch = c ? p->tv[c->in[i]].t.dims[1] : cin;
		float t = nn_quant_scale(lo[i], hi[i], *is_signed);
		for (int64_t k = 0; k < ch && at + k < cin; k++)
			sic[at + k] = t;
		at += ch;
	}
	return at == cin;
}

/* Before a step that sums into tv out (whose layout is set): makes out hold
 * addend tv a times scale, sharing a's storage when this is its last use and
 * the layouts agree (scale 1 then), else copying it in first. */
static int addend_into(nn_model *m, struct nn_plan *p, int node, int a, int out, float scale)
{
	struct ptv *A = &p->tv[a];

	plan_tv_default_md(A);
	if (scale == 1.0f && A->kind == TV_RUN && A->has_md && dnnl_memory_desc_equal(&A->md, &p->tv[out].md) &&
	    !used_after(&m->g, a, node)) {
		p->tv[out].alias = a;
		return out;
	}
	return plan_reorder_scaled(m, p, a, out, NULL, scale);
}

/* True if Conv node `node` runs as Winograd in plan p (wino.c):
 * bf16, 3x3, stride 1, a dilation d whose multiples the image's sides are
 * and padding d, constant weights and bias, where the CPU
 * has AVX512_BF16, the channels suit and it beats oneDNN at this size, with
 * at most ReLU and a residual sum fused (their order in *relu, *sum,
 * *relu_after). PETCUT_NN_CONV=direct leaves them to oneDNN. */
bool plan_wino_fits(nn_model *m, const struct nn_plan *p, int node, int *relu, int *sum, int *relu_after)
{
	const struct nn_node *n = &m->g.nodes[node];
	const struct nn_conv_attr *a = &n->a.conv;
	const char *algo = getenv("PETCUT_NN_CONV");
	int64_t kernel[NN_MAX_SPATIAL] = {3, 3}, osp[NN_MAX_SPATIAL], pb[NN_MAX_SPATIAL], pe[NN_MAX_SPATIAL];

	if (p->precision != NN_PRECISION_BF16 || n->op != NN_OP_CONV || n->n_in < 2 || (algo && !strcmp(algo, "direct")))
		return false;
	const struct ptv *X = &p->tv[n->in[0]], *W = &p->tv[n->in[1]];
	const int64_t *wd = W->t.dims;
	int bias = n->n_in > 2 ? n->in[2] : -1;
	if (W->kind != TV_CONST || W->t.rank != 4 || X->t.rank != 4 || a->group != 1 || wd[2] != 3 || wd[3] != 3 ||
	    a->strides[0] != 1 || a->strides[1] != 1 || a->dilations[0] < 1 || a->dilations[1] != a->dilations[0] ||
	    a->dilations[0] > 64 || X->t.dims[2] % a->dilations[0] || X->t.dims[3] % a->dilations[0] ||
	    wd[1] != X->t.dims[1] || wd[0] > INT32_MAX || wd[1] > INT32_MAX || X->t.dims[0] > INT32_MAX ||
	    X->t.dims[2] > INT32_MAX || X->t.dims[3] > INT32_MAX ||
	    X->t.dims[0] > INT32_MAX / ((X->t.dims[2] / a->dilations[0] + 1) / 2 * a->dilations[0] * /* tiles */
					((X->t.dims[3] / a->dilations[0] + 1) / 2 * a->dilations[0]) + 1) ||
	    !wino_supported((int)wd[1], (int)wd[0]) ||
	    !wino_worth((int)wd[1], (int)wd[0], (int)X->t.dims[2], (int)X->t.dims[3]) ||
	    (bias >= 0 && (p->tv[bias].kind != TV_CONST || !p->tv[bias].t.data || p->tv[bias].t.dtype != NN_DTYPE_F32)))
		return false;
	if (nn_conv_out_dims(n, 2, X->t.dims + 2, kernel, osp, pb, pe) != NN_OK)
		return false;
	for (int i = 0; i < 2; i++)
		if (pb[i] != a->dilations[0] || pe[i] != a->dilations[0] || osp[i] != X->t.dims[2 + i])
			return false;
	*sum = plan_sum_post(p, n, n->out[0]);
	*relu = *relu_after = 0;
	for (int i = 0; i < n->n_post; i++) {
		if (i == *sum)
			continue;
		if (n->post[i].kind != NN_POST_RELU)
			return false;
		if (*sum >= 0 && i > *sum)
			*relu_after = 1;
		else
			*relu = 1;
	}
	return true;
}

/* Lowers Conv node `node` as Winograd (wino_fits holds; the tile from
 * wino_tile): its input in bf16 channels-last, or the parts of a deferred
 * Concat as they are, its output in bf16 channels-last. */
static nn_status lower_wino(nn_model *m, struct nn_plan *p, int node)
{
	const struct nn_node *n = &m->g.nodes[node];
	int x = n->in[0], w = n->in[1], out = n->out[0], bias = n->n_in > 2 ? n->in[2] : -1;
	const struct nn_node *cat = p->tv[x].deferred ? &m->g.nodes[p->tv[x].deferred - 1] : NULL;
	int n_parts = cat ? cat->n_in : 1, relu, sum, relu_after;
	const int64_t *wd = p->tv[w].t.dims;
	struct wino_conv *wc;
	const uint16_t *u = NULL;
	struct step *s;
	nn_status st;

	if (!plan_wino_fits(m, p, node, &relu, &sum, &relu_after) || n_parts > WINO_MAX_PARTS)
		return nn_fail(NN_ERR_BACKEND, "%s: internal: not a Winograd convolution", n->name);
	int dil = (int)n->a.conv.dilations[0];
	int tile = wino_tile((int)p->tv[x].t.dims[2] / dil, (int)p->tv[x].t.dims[3] / dil);
	if ((st = wino_weights_for(m, node, w, p->tv[w].t.data, p->tv[w].t.dtype, (int)wd[1], (int)wd[0], tile, &u)))
		return st;
	if (!(wc = calloc(1, sizeof *wc)) || !plan_own(p, wc)) {
		free(wc);
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	}
	*wc = (struct wino_conv){.cin = (int)wd[1], .cout = (int)wd[0], .n_parts = n_parts, .tile = tile, .dilation = dil,
				 .u = u,
				 .bias = bias >= 0 ? p->tv[bias].t.data : NULL, .relu = relu, .sum = sum >= 0,
				 .relu_after = relu_after};
	const int64_t *xd = p->tv[x].t.dims;
	size_t scratch = wino_scratch_size(wc, (int)xd[0], (int)xd[2], (int)xd[3]);
	if (scratch > p->scratch_size) /* shared with oneDNN's scratchpads: steps run one at a time */
		p->scratch_size = scratch;
	int ins[WINO_MAX_PARTS];
	for (int i = 0; i < n_parts; i++) {
		int v = cat ? cat->in[i] : x;
		dnnl_dims_t d;
		dnnl_memory_desc_t md;
		plan_fill_dims(d, 4, p->tv[v].t.dims);
		wc->part_cin[i] = (int)d[1];
		if (dnnl_memory_desc_init_by_tag(&md, 4, d, dnnl_bf16, dnnl_acdb) != dnnl_success ||
		    (ins[i] = plan_in_layout(m, p, v, &md)) < 0)
			return nn_fail(NN_ERR_BACKEND, "%s: cannot lay out the input", n->name);
	}
	dnnl_dims_t od;
	dnnl_memory_desc_t out_md;
	plan_fill_dims(od, 4, p->tv[out].t.dims);
	if (dnnl_memory_desc_init_by_tag(&out_md, 4, od, dnnl_bf16, dnnl_acdb) != dnnl_success)
		return nn_fail(NN_ERR_BACKEND, "%s: cannot lay out the output", n->name);
	plan_tv_set_md(&p->tv[out], &out_md);
	if (sum >= 0 && addend_into(m, p, node, n->post[sum].value, out, 1.0f) < 0)
		return nn_fail(NN_ERR_BACKEND, "%s: cannot copy the addend", n->name);
	if (!(s = plan_step_new(p, STEP_WINO, node)) || !(s->ins = calloc((size_t)n_parts, sizeof *s->ins)))
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	s->n_ins = n_parts;
	memcpy(s->ins, ins, sizeof ins[0] * (size_t)n_parts);
	s->outs[0] = out;
	s->n_outs = 1;
	s->wino = wc;
	return NN_OK;
}

/* A convolution being lowered by lower_conv_core: its operands, then what
 * each part works out for the next. */
struct conv_low {
	const struct nn_node *n;
	int node, x, wv, wval, bias_v, out;
	const void *wdata; /* weights in ONNX layout (NULL: runtime or released) */
	nn_dtype wdt;	   /* their type: f32, or f16 (a model's kept at half size) */
	float *wwide;	   /* int8: f16 weights widened (owned) */
	const int64_t *wdims;
	bool plain_out;
	/* conv_geometry */
	int nsp, wrank;
	int64_t kernel[NN_MAX_SPATIAL];
	dnnl_dims_t strides, dil, pl, pr, wd;
	/* conv_precision */
	dnnl_data_type_t adt; /* activations' type outside int8 */
	int64_t cin, per_oc;
	bool q8, in_signed;
	const float *s_w; /* int8: weight scale per output channel */
	float *sic;	  /* int8: scale per input channel */
	float s_out;	  /* int8: the output's scale when written as u8, else 0 */
	int sum;	  /* the post-op that is a sum into dst, or -1 */
	/* conv_primitive */
	dnnl_memory_desc_t src_md, w_md, w_user, b_md, dst_md;
	dnnl_memory_desc_t add_md[NN_MAX_POST]; /* the binary post-ops' operands */
	dnnl_alg_kind_t alg;
	bool any_out; /* the output's layout is oneDNN's choice, whatever its channels */
	float add_q; /* the scale of a held addend (0: float) */
};

/* Output size, padding and the weights' dimensions (groups split out). */
static nn_status conv_geometry(struct nn_plan *p, struct conv_low *c)
{
	const struct nn_conv_attr *a = &c->n->a.conv;
	const struct ptv *X = &p->tv[c->x];
	int64_t osp[NN_MAX_SPATIAL], pb[NN_MAX_SPATIAL], pe[NN_MAX_SPATIAL];
	nn_status st;

	c->nsp = X->t.rank - 2;
	for (int i = 0; i < c->nsp; i++)
		c->kernel[i] = c->wdims[2 + i];
	if ((st = nn_conv_out_dims(c->n, c->nsp, X->t.dims + 2, c->kernel, osp, pb, pe)))
		return st;
	for (int i = 0; i < c->nsp; i++) {
		c->strides[i] = a->strides[i];
		c->dil[i] = a->dilations[i] - 1;
		c->pl[i] = pb[i];
		c->pr[i] = pe[i];
	}
	if (a->group > 1) {
		c->wd[0] = a->group;
		c->wd[1] = c->wdims[0] / a->group;
		for (int i = 1; i < X->t.rank; i++)
			c->wd[i + 1] = c->wdims[i];
		c->wrank = X->t.rank + 1;
	} else {
		plan_fill_dims(c->wd, X->t.rank, c->wdims);
		c->wrank = X->t.rank;
	}
	return NN_OK;
}

/* The element types of the convolution and, in int8, its scales. */
static nn_status conv_precision(nn_model *m, struct nn_plan *p, struct conv_low *c)
{
	const struct nn_node *n = c->n;
	const struct ptv *X = &p->tv[c->x];
	const int64_t *wdims = c->wdims;

	/* bf16 precision: activations and weights in bf16 between convolutions
	 * (ConvInteger's exact integers stay in fp32) */
	c->adt = p->precision == NN_PRECISION_BF16 && n->op == NN_OP_CONV ? dnnl_bf16 : dnnl_f32;
	/* int8 precision: a conv with constant weights and a calibrated input
	 * reads it quantized (u8, or s8 if it goes below 0), each input channel
	 * at the scale of the tensor it comes from (sic; a Concat joins several).
	 * Those scales are folded into the float weights, which are then s8
	 * with one scale per output channel: acc = x_q * w_q approximates
	 * conv(x, w) / s_w[oc], and out = s_w[oc] / s_out * (acc + bias / s_w[oc])
	 * is written as u8 (s_out: the output's scale) when every reader takes
	 * it so, else as bf16 (s_out = 1). */
	c->cin = wdims[1];
	c->per_oc = nn_numel(X->t.rank, wdims) / wdims[0];
	c->sum = plan_sum_post(p, n, c->out);
	c->q8 = p->precision == NN_PRECISION_INT8 && n->op == NN_OP_CONV && c->wv < 0 && n->a.conv.group == 1 &&
		c->cin > 0 && !nn_graph_is_input(&m->g, n->in[0]); /* see plan_conv_runs_int8 */
	if (c->q8) {
		if (!(c->sic = malloc(sizeof *c->sic * (size_t)c->cin)) || !plan_own(p, c->sic)) {
			free(c->sic);
			return nn_fail(NN_ERR_NOMEM, "out of memory");
		}
		c->q8 = conv_in_scales(m, p, c->x, c->cin, c->sic, &c->in_signed);
	}
	if (c->q8 && c->wdt == NN_DTYPE_F16 && c->wdata) { /* scaled and folded below as floats */
		if (!(c->wdata = as_floats(c->wdata, c->wdt, wdims[0] * c->per_oc, &c->wwide)))
			return nn_fail(NN_ERR_NOMEM, "out of memory");
		c->wdt = NN_DTYPE_F32;
	}
	if (c->q8 && !(c->s_w = nn_quant_weight_scales(m, c->node, c->wdata, wdims[0], c->per_oc, c->sic, c->cin)))
		return c->wdata ? nn_fail(NN_ERR_NOMEM, "out of memory") : NN_RELOAD;
	float lo, hi;
	if (c->q8 && p->hold && p->hold[c->out] && !c->plain_out &&
	    (c->sum < 0 || p->tv[n->post[c->sum].value].q > 0) && nn_quant_range(m, c->out, &lo, &hi) && lo >= 0)
		c->s_out = nn_quant_scale(lo, hi, false);
	return NN_OK;
}

/* The primitive descriptor: its memory descriptors (oneDNN picks the
 * layouts), its algorithm, int8 output scales and the post-ops. */
static nn_status conv_primitive(nn_model *m, struct nn_plan *p, struct conv_low *c, dnnl_primitive_desc_t *pd)
{
	const struct nn_node *n = c->n;
	const struct nn_conv_attr *a = &n->a.conv;
	const struct ptv *X = &p->tv[c->x];
	const int64_t *wdims = c->wdims;
	int out = c->out;
	dnnl_convolution_desc_t desc;
	dnnl_primitive_attr_t attr = NULL;
	dnnl_post_ops_t po = NULL;
	nn_status st;

	plan_any_md(X->t.rank, X->t.dims, c->q8 ? (c->in_signed ? dnnl_s8 : dnnl_u8) : c->adt, &c->src_md);
	/* an int8 conv writes bf16 where the CPU has it: half the bytes for the
	 * ops between convs, and exact enough (the product was 8-bit) */
	dnnl_data_type_t ddt = c->s_out > 0 ? dnnl_u8
			       : c->q8 && (dnnl_get_effective_cpu_isa() & dnnl_cpu_isa_avx512_core_bf16) ==
							  dnnl_cpu_isa_avx512_core_bf16
				   ? dnnl_bf16
				   : c->adt;
	dnnl_memory_desc_init_by_tag(&c->w_md, c->wrank, c->wd, c->q8 ? dnnl_s8 : c->adt, dnnl_format_tag_any);
	dnnl_memory_desc_init_by_tag(&c->w_user, c->wrank, c->wd, c->q8 ? dnnl_s8 : dnnl_f32,
				     plan_plain_tags[c->wrank]);
	/* Winograd F(4x4, 3x3) where oneDNN has it (fp32 arithmetic, 4x fewer
	 * multiplications); PETCUT_NN_CONV=direct turns it off */
	const char *algo = getenv("PETCUT_NN_CONV");
	c->alg = dnnl_convolution_direct;
	if (!(algo && !strcmp(algo, "direct")) && c->adt == dnnl_f32 && !c->q8 && c->nsp == 2 && c->kernel[0] == 3 &&
	    c->kernel[1] == 3 && a->strides[0] == 1 && a->strides[1] == 1 && a->dilations[0] == 1 &&
	    a->dilations[1] == 1 && a->group == 1)
		c->alg = dnnl_convolution_winograd;
retry:
	/* a few output channels (the side outputs) stay row-major rather than
	 * padded to a 16-channel block */
	if (c->plain_out)
		plan_plain_md(NN_DTYPE_F32, p->tv[out].t.rank, p->tv[out].t.dims, &c->dst_md);
	else if (wdims[0] < 8 && p->tv[out].t.rank == 4 && !c->any_out) {
		dnnl_dims_t od;
		plan_fill_dims(od, 4, p->tv[out].t.dims);
		dnnl_memory_desc_init_by_tag(&c->dst_md, 4, od, ddt, dnnl_acdb);
	}
	else
		plan_any_md(p->tv[out].t.rank, p->tv[out].t.dims, ddt, &c->dst_md);
	if (c->bias_v >= 0)
		plan_plain_md(NN_DTYPE_F32, 1, wdims, &c->b_md);
	/* a held addend read by a float output is brought into dst as float;
	 * one joining a u8 output is copied as it is, its scale going to the sum */
	c->add_q = c->sum >= 0 ? p->tv[n->post[c->sum].value].q : 0;
	DNNL_TRY(dnnl_dilated_convolution_forward_desc_init(&desc, dnnl_forward_inference, c->alg, &c->src_md,
							    &c->w_md, c->bias_v >= 0 ? &c->b_md : NULL, &c->dst_md,
							    c->strides, c->dil, c->pl, c->pr),
		 n->name);
	DNNL_TRY(dnnl_primitive_attr_create(&attr), "attr");
	float *oscale = NULL;
	if (c->q8) {
		if (!(oscale = malloc(sizeof *oscale * (size_t)wdims[0])) || !plan_own(p, oscale)) {
			free(oscale);
			dnnl_primitive_attr_destroy(attr);
			return nn_fail(NN_ERR_NOMEM, "out of memory");
		}
		for (int64_t o = 0; o < wdims[0]; o++)
			oscale[o] = c->s_out > 0 ? c->s_w[o] / c->s_out : c->s_w[o];
		dnnl_primitive_attr_set_output_scales(attr, wdims[0], 1 << 1, oscale);
	}
	DNNL_TRY(dnnl_post_ops_create(&po), "post-ops");
	for (int i = 0; i < n->n_post; i++) {
		const struct nn_postop *q = &n->post[i];
		if (i == c->sum) {
			/* a whole-tensor addend: oneDNN's fast kernels take it as a sum
			 * into dst (which then holds the addend), not as a binary op */
			dnnl_post_ops_append_sum(po, c->s_out > 0 ? c->add_q / c->s_out : 1.0f);
			continue;
		}
		if (q->value >= 0) {
			/* the operand, right-aligned to the output's rank */
			struct ptv *A = &p->tv[q->value];
			int64_t d[NN_MAX_RANK];
			int r = p->tv[out].t.rank;
			for (int k = 0; k < r; k++)
				d[k] = k < r - A->t.rank ? 1 : A->t.dims[k - (r - A->t.rank)];
			if (A->kind == TV_CONST || A->t.rank != r) {
				/* seen row-major with leading ones (a view of its storage) */
				plan_plain_md(NN_DTYPE_F32, r, d, &c->add_md[i]);
			} else {
				plan_tv_default_md(A);
				c->add_md[i] = A->md;
			}
			dnnl_post_ops_append_binary(po, q->kind == NN_POST_ADD ? dnnl_binary_add : dnnl_binary_mul,
						    &c->add_md[i]);
		} else {
			dnnl_post_ops_append_eltwise(po, 1.0f, q->kind == NN_POST_RELU ? dnnl_eltwise_relu
										   : dnnl_eltwise_logistic,
						     0.0f, 0.0f);
		}
	}
	dnnl_primitive_attr_set_post_ops(attr, po);
	dnnl_post_ops_destroy(po);
	st = plan_prim_create(m, p, &desc, attr, pd, n->name);
	/* oneDNN's direct JIT kernels rather than its brgemm ones, which take
	 * 0.5 to 3.4 ms each to compile against 0.1 (2-core Xeon with AMX,
	 * ISNet medium at 1024 x 1024): in bf16, the five convolutions Winograd
	 * leaves to oneDNN ran 5.0 ms a pass either way, and the plan fell from
	 * 19 to 14 ms; in int8, every convolution: the plan fell from 321 to
	 * 79 ms and the pass from 315 to 288 ms (10 interleaved rounds). Not in
	 * fp32, where brgemm's kernels run faster (ISNet small's, on AVX-512:
	 * a pass 2.1 s against 2.5). */
	if (!st && (p->precision == NN_PRECISION_BF16 || c->q8))
		plan_prim_prefer(m, &desc, attr, pd, "brg", "jit:");
	dnnl_primitive_attr_destroy(attr);
	if (st && c->alg == dnnl_convolution_winograd) {
		c->alg = dnnl_convolution_direct;
		goto retry;
	}
	/* Without AVX-512, oneDNN's fast kernels take a sum only as the first
	 * post-op: relu(conv) + x (ISNet's residual blocks) would fall to its
	 * reference kernel, some hundred times slower. The addend is then read
	 * as a binary post-op instead. */
	if (!st && !c->q8 && plan_prim_is_ref(*pd) && (c->sum >= 0 || !c->any_out)) {
		dnnl_primitive_desc_destroy(*pd);
		*pd = NULL;
		if (c->sum >= 0)
			c->sum = -1;
		else if (!c->any_out) /* and a few output channels get oneDNN's layout */
			c->any_out = true;
		goto retry;
	}
	return st;
}

/* The tv the primitive reads its input from, in the layout it wants
 * (quantized in int8), or -1. */
static int conv_input(nn_model *m, struct nn_plan *p, const struct conv_low *c, dnnl_primitive_desc_t pd)
{
	const dnnl_memory_desc_t *want = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
	int x = c->x;
	bool q8 = c->q8;
	/* the input's scale read now: adding a tensor below may move p->tv */
	float xq = p->tv[x].q;
	float xf = q8 ? (xq > 0 ? xq : 1.0f) / c->sic[0] : 1.0f; /* stored input to quantized input */
	/* a held input at the conv's own scale is read as it is */
	int xs = q8 && p->tv[x].deferred ? plan_add_quantized_concat(m, p, p->tv[x].deferred - 1, x, want, c->sic)
		 : q8 && (xf != 1.0f || xq == 0) ? plan_add_quantized(m, p, x, want, xf)
						 : plan_in_layout(m, p, x, want);
	if (!q8 && xq > 0)
		xs = -1; /* only int8 convs read held tensors */
	return xs;
}

/* The weights in the layout the primitive wants: constant ones kept by the
 * model (*wmem), runtime ones reordered on every run into a new tv (*wt). */
static nn_status conv_weights(nn_model *m, struct nn_plan *p, const struct conv_low *c, dnnl_primitive_desc_t pd,
			      dnnl_memory_t *wmem, int *wt)
{
	const int64_t *wdims = c->wdims;
	float *wfold = NULL;
	nn_status st;

	if (c->wv < 0 && c->q8 && c->wdata) { /* the folded weights */
		int64_t per_ic = c->per_oc / c->cin;
		if (!(wfold = malloc(sizeof *wfold * (size_t)(wdims[0] * c->per_oc))))
			return nn_fail(NN_ERR_NOMEM, "out of memory");
		/* [oc][cin][per_ic]: input channel ic's scale on its per_ic weights */
#pragma omp parallel for schedule(static) if (wdims[0] * c->per_oc > 65536)
		for (int64_t o = 0; o < wdims[0]; o++)
			for (int64_t ic = 0; ic < c->cin; ic++) {
				int64_t at = o * c->per_oc + ic * per_ic;
				for (int64_t k = 0; k < per_ic; k++)
					wfold[at + k] = ((const float *)c->wdata)[at + k] * c->sic[ic];
			}
	}
	if (c->wv < 0) { /* constant weights */
		st = weights_for(m, c->node, c->wval, &c->w_user, c->q8 ? wfold : c->wdata,
				 c->q8 ? NN_DTYPE_F32 : c->wdt, c->q8 ? c->s_w : NULL,
				 dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), wmem);
		free(wfold);
	} else {
		struct nn_tview t = p->tv[c->wv].t;
		st = NN_OK;
		if ((*wt = plan_tv_new(p, &t, TV_RUN)) < 0)
			st = nn_fail(NN_ERR_NOMEM, "out of memory");
		else {
			plan_tv_set_md(&p->tv[*wt], dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0));
			if (plan_reorder_into(m, p, c->wv, *wt, &c->w_user) < 0)
				st = nn_fail(NN_ERR_BACKEND, "%s: cannot lay out the weights", c->n->name);
		}
	}
	return st;
}

/* Binds the step's arguments: input xs, the weights (tv wt, else memory
 * wmem), the bias, the output and the post-ops' operands. */
static nn_status conv_bind(nn_model *m, struct nn_plan *p, const struct conv_low *c, struct step *s, int xs, int wt,
			   dnnl_memory_t wmem)
{
	const struct nn_node *n = c->n;
	int bias_v = c->bias_v, out = c->out;
	nn_status st;

	plan_arg_tv(s, DNNL_ARG_SRC, xs);
	if (wt >= 0)
		plan_arg_tv(s, DNNL_ARG_WEIGHTS, wt);
	else
		plan_arg_mem(s, DNNL_ARG_WEIGHTS, wmem);
	if (bias_v >= 0 && c->q8) { /* the bias, in the units of the int8 product */
		const float *b = p->tv[bias_v].t.data;
		float *bq = p->tv[bias_v].kind == TV_CONST && b ? malloc(sizeof *bq * (size_t)c->wdims[0]) : NULL;
		dnnl_memory_t bmem;
		if (!bq || !plan_own(p, bq)) {
			free(bq);
			return b ? nn_fail(NN_ERR_NOMEM, "out of memory") : nn_fail(NN_ERR_BACKEND, "%s: bias", n->name);
		}
		for (int64_t o = 0; o < c->wdims[0]; o++)
			bq[o] = b[o] / c->s_w[o];
		if ((st = plan_const_mem(m, p, &c->b_md, bq, &bmem)))
			return st;
		plan_arg_mem(s, DNNL_ARG_BIAS, bmem);
	} else if (bias_v >= 0 && (st = plan_bind_value(m, p, s, DNNL_ARG_BIAS, bias_v, &c->b_md))) {
		return st;
	}
	plan_arg_tv(s, DNNL_ARG_DST, out);
	for (int i = 0; i < n->n_post; i++) {
		int v = n->post[i].value;
		if (v < 0 || i == c->sum)
			continue;
		if (p->tv[v].kind != TV_CONST && p->tv[v].t.rank != p->tv[out].t.rank && !plan_is_plain(&p->tv[v]))
			return nn_fail(NN_ERR_BACKEND, "%s: addend layout", n->name);
		if ((st = plan_bind_view(m, p, s, DNNL_ARG_ATTR_MULTIPLE_POST_OP(i) | DNNL_ARG_SRC_1, v,
					  &c->add_md[i])))
			return st;
	}
	return NN_OK;
}

/* Conv (float) or the float core of ConvInteger: x is the input tv (f32),
 * wdata the weights in ONNX layout (of graph value wval's type, else f32),
 * bias optional; the output goes to tv `out` (for ConvInteger, forced
 * row-major). */
static nn_status lower_conv_core(nn_model *m, struct nn_plan *p, int node, int x, const void *wdata, int wv,
				 int wval, const int64_t *wdims, int bias_v, int out, bool plain_out)
{
	struct conv_low c = {.n = &m->g.nodes[node], .node = node, .x = x, .wv = wv, .wval = wval,
			     .bias_v = bias_v, .out = out, .wdata = wdata,
			     .wdt = wval >= 0 ? p->tv[wval].t.dtype : NN_DTYPE_F32, .wdims = wdims,
			     .plain_out = plain_out};
	const struct nn_node *n = c.n;
	dnnl_primitive_desc_t pd = NULL;
	dnnl_memory_t wmem = NULL;
	struct step *s;
	nn_status st;
	int xs, wt = -1;

	if ((st = conv_geometry(p, &c)) || (st = conv_precision(m, p, &c)) || (st = conv_primitive(m, p, &c, &pd)))
		goto fail;
	if ((xs = conv_input(m, p, &c, pd)) < 0) {
		st = nn_fail(NN_ERR_BACKEND, "%s: cannot lay out the input", n->name);
		goto fail;
	}
	if ((st = conv_weights(m, p, &c, pd, &wmem, &wt)))
		goto fail;
	plan_tv_set_md(&p->tv[out], dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0));
	p->tv[out].q = c.s_out;
	if (c.sum >= 0 &&
	    addend_into(m, p, node, n->post[c.sum].value, out, c.add_q > 0 && c.s_out == 0 ? c.add_q : 1.0f) < 0) {
		st = nn_fail(NN_ERR_BACKEND, "%s: cannot copy the addend", n->name);
		goto fail;
	}
	if (!(s = plan_step_new(p, STEP_PRIM, node))) {
		st = nn_fail(NN_ERR_NOMEM, "out of memory");
		goto fail;
	}
	if ((st = conv_bind(m, p, &c, s, xs, wt, wmem)))
		goto fail;
	plan_prim_finish(p, s, pd);
	free(c.wwide);
	return NN_OK;
fail:
	if (pd)
		dnnl_primitive_desc_destroy(pd);
	free(c.wwide);
	return st;
}

nn_status plan_lower_conv(nn_model *m, struct nn_plan *p, int node)
{
	const struct nn_node *n = &m->g.nodes[node];
	int w = n->in[1];

	int relu, sum, relu_after;

	if (plan_wino_fits(m, p, node, &relu, &sum, &relu_after))
		return lower_wino(m, p, node);
	if (p->tv[w].kind == TV_CONST)
		return lower_conv_core(m, p, node, n->in[0], p->tv[w].t.data, -1, w, p->tv[w].t.dims,
				       n->n_in > 2 ? n->in[2] : -1, n->out[0], false);
	if ((w = plan_in_plain(m, p, w)) < 0)
		return nn_fail(NN_ERR_BACKEND, "%s: cannot lay out the weights", n->name);
	return lower_conv_core(m, p, node, n->in[0], NULL, w, -1, p->tv[w].t.dims, n->n_in > 2 ? n->in[2] : -1,
			       n->out[0], false);
}

/* Adds a step making a float copy of 8-bit tv `v` less its zero point
 * (tv zp, one value or one per index of axis 0; -1 for none). */
static int zero_point_to_f32(struct nn_plan *p, int node, int v, int zp)
{
	struct nn_tview t = p->tv[v].t;
	struct step *s;
	int f;

	t.dtype = NN_DTYPE_F32;
	if ((f = plan_tv_new(p, &t, TV_RUN)) < 0 || !(s = plan_step_new(p, STEP_ZP_TO_F32, node)))
		return -1;
	if (plan_is_dense(&p->tv[v])) { /* elementwise: keep the layout */
		dnnl_memory_desc_t md = plan_md_as(&p->tv[v].md, NN_DTYPE_F32);
		plan_tv_set_md(&p->tv[f], &md);
	} else {
		plan_tv_default_md(&p->tv[f]);
	}
	if (!(s->ins = calloc(2, sizeof *s->ins)))
		return -1;
	s->n_ins = 2;
	s->ins[0] = v;
	s->ins[1] = zp;
	s->outs[0] = f;
	s->n_outs = 1;
	return f;
}

/* ConvInteger: (x - x_zero) and (w - w_zero) as floats, a float
 * convolution, and the integer result. Products of 8-bit values summed in
 * float are exact while the sum stays below 2^24 (a 3x3 kernel over 200
 * channels of extreme values); past that the result is the nearest float. */
nn_status plan_lower_convinteger(nn_model *m, struct nn_plan *p, int node)
{
	const struct nn_node *n = &m->g.nodes[node];
	int xz = n->n_in > 2 ? n->in[2] : -1, wz = n->n_in > 3 ? n->in[3] : -1;
	int x, w, xf, wf = -1, of;
	const struct ptv *W;
	float *wdata = NULL;
	struct nn_tview t;
	struct step *s;
	nn_status st;

	/* with one zero point, (x - x_zero) is elementwise and x may stay in
	 * its layout */
	x = n->in[0];
	if ((xz >= 0 && nn_numel(p->tv[xz].t.rank, p->tv[xz].t.dims) != 1) || !plan_is_dense(&p->tv[x]))
		x = plan_in_plain(m, p, x);
	if (x < 0 || (w = plan_in_plain(m, p, n->in[1])) < 0)
		return nn_fail(NN_ERR_BACKEND, "%s: cannot lay out the inputs", n->name);
	W = &p->tv[w];
	if (W->kind == TV_CONST && (wz < 0 || p->tv[wz].kind == TV_CONST)) {
		/* constant weights: converted once, here */
		int64_t cnt = nn_numel(W->t.rank, W->t.dims), per = cnt / W->t.dims[0];
		int64_t nz = wz >= 0 ? nn_numel(p->tv[wz].t.rank, p->tv[wz].t.dims) : 0;
		if (!(wdata = malloc(sizeof *wdata * (size_t)(cnt ? cnt : 1))) || !plan_own(p, wdata)) {
			free(wdata);
			return nn_fail(NN_ERR_NOMEM, "out of memory");
		}
		for (int64_t i = 0; i < cnt; i++) {
			double z = 0, v;
			if (wz >= 0) {
				const void *zd = p->tv[wz].t.data;
				int64_t zi = nz == 1 ? 0 : i / per;
				z = p->tv[wz].t.dtype == NN_DTYPE_U8 ? ((const uint8_t *)zd)[zi] : ((const int8_t *)zd)[zi];
			}
			v = W->t.dtype == NN_DTYPE_U8 ? ((const uint8_t *)W->t.data)[i] : ((const int8_t *)W->t.data)[i];
			wdata[i] = (float)(v - z);
		}
	} else if ((wf = zero_point_to_f32(p, node, w, wz)) < 0) {
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	}
	if ((xf = zero_point_to_f32(p, node, x, xz)) < 0)
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	if (n->float_out) /* the fused Cast: the float result is the output */
		return lower_conv_core(m, p, node, xf, wdata, wf, -1, p->tv[w].t.dims, -1, n->out[0], false);
	t = p->tv[n->out[0]].t;
	t.dtype = NN_DTYPE_F32;
	if ((of = plan_tv_new(p, &t, TV_RUN)) < 0)
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	if ((st = lower_conv_core(m, p, node, xf, wdata, wf, -1, p->tv[w].t.dims, -1, of, true)))
		return st;
	if (!(s = plan_step_new(p, STEP_F32_TO_I32, node)) || !(s->ins = calloc(1, sizeof *s->ins)))
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	s->n_ins = 1;
	s->ins[0] = of;
	s->outs[0] = n->out[0];
	s->n_outs = 1;
	plan_tv_default_md(&p->tv[n->out[0]]);
	return NN_OK;
}
