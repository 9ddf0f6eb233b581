/*
 * plan.c - per-shape execution plans on oneDNN.
 *
 * For a set of input shapes the shape walk gives every value's shape and
 * folds what can be known early. Each remaining node becomes one step: a
 * oneDNN primitive (Conv and ConvInteger with their post-ops, MaxPool,
 * linear Resize, Concat, Relu/Sigmoid, float Add/Mul) whose layouts oneDNN
 * picks (format_tag_any), or a reference kernel on row-major data. Reorders
 * are inserted only where a consumer wants another layout; weights are
 * reordered once and kept by the model. Every intermediate tensor gets an
 * offset in one arena, planned from the tensors' lifetimes so that tensors
 * that are never alive together share memory. oneDNN's scratchpads share one
 * buffer too.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn_int.h"
#include "nn/wino.h"

/* ===== Plan structures ===== */

enum { TV_NONE, TV_CONST, TV_IN, TV_RUN, TV_OUT };

struct ptv {
	struct nn_tview t; /* shape; data for TV_CONST */
	int kind;
	int ext; /* input index (TV_IN) or output index (TV_OUT) */
	bool has_md;
	dnnl_memory_desc_t md;
	size_t bytes;
	int first, last; /* steps using it */
	int alias;	 /* lives inside the storage of this tv (-1: its own) */
	size_t alias_off; /* ... at this byte offset */
	size_t off;	 /* arena offset (TV_RUN) */
	dnnl_memory_t mem;
	int deferred;	 /* Concat node + 1 whose copy the int8 conv reading this tensor makes as it quantizes */
	float q;	 /* int8 plans: held as u8, x = q * stored (0: float) */
};

enum { STEP_PRIM, STEP_REF, STEP_ZP_TO_F32, STEP_F32_TO_I32, STEP_COPY, STEP_WINO };

#define MAX_ARGS (NN_MAX_POST + 8)

struct step {
	int kind;
	int node;
	dnnl_primitive_t prim;
	int nargs;
	dnnl_exec_arg_t args[MAX_ARGS];
	int arg_tv[MAX_ARGS]; /* the tv behind args[i], or -1 */
	int n_ins, n_outs;
	int *ins;    /* REF and helpers: tv per node input (-1 omitted) */
	int outs[4];
	const struct wino_conv *wino; /* STEP_WINO */
};

/* A tensor seen through another descriptor (a lower-rank operand padded
 * with ones, weights with their groups split out). */
struct view {
	int tv;
	dnnl_memory_t mem;
};

struct nn_plan {
	struct nn_plan *next;
	int n_inputs;
	int in_rank[16];
	int64_t in_dims[16][NN_MAX_RANK];
	void *in_copy[16]; /* values of the inputs that decide shapes */
	nn_precision precision;
	struct ptv *tv;
	int n_tv, cap_tv;
	struct step *steps;
	int n_steps, cap_steps;
	int *out_tv;
	size_t arena_size, scratch_size;
	dnnl_memory_t scratch_mem;
	void **owned; /* plan-owned buffers (folded constants, prepared data) */
	int n_owned, cap_owned;
	dnnl_memory_t *consts; /* memories over constant data */
	int n_consts, cap_consts;
	struct view *views; /* memories that see a tv through another descriptor */
	int n_views, cap_views;
	bool *hold; /* int8 plans, per graph value: every reader can take it as u8 */
};

#define DNNL_TRY(call, what)                                                                   \
	do {                                                                                   \
		dnnl_status_t s_ = (call);                                                     \
		if (s_ != dnnl_success)                                                        \
			return nn_fail(NN_ERR_BACKEND, "%s: oneDNN status %d", (what), (int)s_); \
	} while (0)

static bool grow(void **arr, int *cap, int need, size_t esz)
{
	if (need <= *cap)
		return true;
	int c = *cap ? *cap : 64;
	while (c < need)
		c *= 2;
	void *p = realloc(*arr, (size_t)c * esz);
	if (!p)
		return false;
	memset((char *)p + (size_t)*cap * esz, 0, (size_t)(c - *cap) * esz);
	*arr = p;
	*cap = c;
	return true;
}

static bool own(struct nn_plan *p, void *buf)
{
	if (!grow((void **)&p->owned, &p->cap_owned, p->n_owned + 1, sizeof *p->owned))
		return false;
	p->owned[p->n_owned++] = buf;
	return true;
}

/* ===== Memory descriptors ===== */

static void fill_dims(dnnl_dims_t d, int n, const int64_t *v)
{
	for (int i = 0; i < n; i++)
		d[i] = v[i];
}

static bool dnnl_type(nn_dtype t, dnnl_data_type_t *dt)
{
	switch (t) {
	case NN_DTYPE_F32: *dt = dnnl_f32; return true;
	case NN_DTYPE_I32: *dt = dnnl_s32; return true;
	case NN_DTYPE_U8: *dt = dnnl_u8; return true;
	case NN_DTYPE_I8: *dt = dnnl_s8; return true;
	default: return false;
	}
}

static const dnnl_format_tag_t plain_tags[] = {dnnl_format_tag_undef, dnnl_a, dnnl_ab, dnnl_abc, dnnl_abcd,
					       dnnl_abcde, dnnl_abcdef};

/* Row-major descriptor; false when oneDNN cannot describe the tensor. */
static bool plain_md(nn_dtype t, int rank, const int64_t *dims, dnnl_memory_desc_t *md)
{
	dnnl_data_type_t dt;
	dnnl_dims_t d;

	if (!dnnl_type(t, &dt) || rank < 1 || rank > 6)
		return false;
	for (int i = 0; i < rank; i++) {
		if (dims[i] <= 0)
			return false;
		d[i] = dims[i];
	}
	return dnnl_memory_desc_init_by_tag(md, rank, d, dt, plain_tags[rank]) == dnnl_success;
}

/* A descriptor leaving the layout to oneDNN. */
static bool any_md(int rank, const int64_t *dims, dnnl_data_type_t dt, dnnl_memory_desc_t *md)
{
	dnnl_dims_t d;
	for (int i = 0; i < rank; i++)
		d[i] = dims[i];
	return dnnl_memory_desc_init_by_tag(md, rank, d, dt, dnnl_format_tag_any) == dnnl_success;
}

/* True if tv v has a descriptor with no padding: elementwise kernels may
 * then run on its storage whatever the layout. */
static bool is_dense(const struct ptv *v)
{
	return v->has_md && v->md.format_kind == dnnl_blocked &&
	       dnnl_memory_desc_get_size(&v->md) == (size_t)nn_numel(v->t.rank, v->t.dims) * nn_dtype_size(v->t.dtype);
}

/* The same layout for another element type. */
static dnnl_memory_desc_t md_as(const dnnl_memory_desc_t *md, nn_dtype t)
{
	dnnl_memory_desc_t r = *md;
	dnnl_data_type_t dt = dnnl_f32;
	dnnl_type(t, &dt);
	r.data_type = dt;
	return r;
}

static bool is_plain(const struct ptv *v)
{
	dnnl_memory_desc_t md;
	if (!v->has_md)
		return true;
	return plain_md(v->t.dtype, v->t.rank, v->t.dims, &md) && dnnl_memory_desc_equal(&md, &v->md);
}

/* ===== Tensors of the plan ===== */

static int tv_new(struct nn_plan *p, const struct nn_tview *t, int kind)
{
	if (!grow((void **)&p->tv, &p->cap_tv, p->n_tv + 1, sizeof *p->tv))
		return -1;
	struct ptv *v = &p->tv[p->n_tv];
	memset(v, 0, sizeof *v);
	v->t = *t;
	v->t.data = NULL;
	v->kind = kind;
	v->first = v->last = -1;
	v->alias = -1;
	v->bytes = nn_tview_bytes(t);
	return p->n_tv++;
}

/* The tv whose storage v lives in, and v's byte offset inside it. */
static int tv_root(const struct nn_plan *p, int v, size_t *off)
{
	size_t o = 0;
	while (p->tv[v].alias >= 0) {
		o += p->tv[v].alias_off;
		v = p->tv[v].alias;
	}
	if (off)
		*off = o;
	return v;
}

static void tv_set_md(struct ptv *v, const dnnl_memory_desc_t *md)
{
	v->md = *md;
	v->has_md = true;
	v->bytes = dnnl_memory_desc_get_size(md);
}

/* Gives a runtime tensor its row-major descriptor if it has none. */
static void tv_default_md(struct ptv *v)
{
	dnnl_memory_desc_t md;
	if (!v->has_md && plain_md(v->t.dtype, v->t.rank, v->t.dims, &md))
		tv_set_md(v, &md);
}

/* A oneDNN memory over constant data (lives as long as the plan). */
static nn_status const_mem(nn_model *m, struct nn_plan *p, const dnnl_memory_desc_t *md, void *data,
			   dnnl_memory_t *out)
{
	if (!grow((void **)&p->consts, &p->cap_consts, p->n_consts + 1, sizeof *p->consts))
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	DNNL_TRY(dnnl_memory_create(out, md, m->engine, data), "memory");
	p->consts[p->n_consts++] = *out;
	return NN_OK;
}

/* ===== Steps ===== */

static struct step *step_new(struct nn_plan *p, int kind, int node)
{
	if (!grow((void **)&p->steps, &p->cap_steps, p->n_steps + 1, sizeof *p->steps))
		return NULL;
	struct step *s = &p->steps[p->n_steps++];
	memset(s, 0, sizeof *s);
	s->kind = kind;
	s->node = node;
	for (int i = 0; i < MAX_ARGS; i++)
		s->arg_tv[i] = -1;
	for (int i = 0; i < 4; i++)
		s->outs[i] = -1;
	return s;
}

static void arg_tv(struct step *s, int arg, int tv)
{
	s->args[s->nargs].arg = arg;
	s->args[s->nargs].memory = NULL; /* bound when the plan is finished */
	s->arg_tv[s->nargs++] = tv;
}

static void arg_mem(struct step *s, int arg, dnnl_memory_t mem)
{
	s->args[s->nargs].arg = arg;
	s->args[s->nargs].memory = mem;
	s->arg_tv[s->nargs++] = -1;
}

/* Creates a primitive from an op descriptor with a user-managed scratchpad. */
static nn_status prim_create(nn_model *m, struct nn_plan *p, const_dnnl_op_desc_t desc, dnnl_primitive_attr_t attr,
			     dnnl_primitive_desc_t *pd, const char *what)
{
	dnnl_status_t s;

	dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
	s = dnnl_primitive_desc_create(pd, desc, attr, m->engine, NULL);
	if (s != dnnl_success)
		return nn_fail(NN_ERR_BACKEND, "%s: oneDNN has no implementation (status %d)", what, (int)s);
	return NN_OK;
}

/* Finishes a step from its primitive descriptor: primitive and scratchpad. */
static nn_status prim_finish(struct nn_plan *p, struct step *s, dnnl_primitive_desc_t pd, const char *what)
{
	const dnnl_memory_desc_t *sp = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
	size_t size = sp ? dnnl_memory_desc_get_size(sp) : 0;

	if (size > p->scratch_size)
		p->scratch_size = size;
	if (size)
		arg_mem(s, DNNL_ARG_SCRATCHPAD, p->scratch_mem);
	dnnl_status_t st = dnnl_primitive_create(&s->prim, pd);
	dnnl_primitive_desc_destroy(pd);
	if (st != dnnl_success)
		return nn_fail(NN_ERR_BACKEND, "%s: cannot create the primitive (status %d)", what, (int)st);
	return NN_OK;
}

/* Adds a step copying tv `src` into tv `dst` (whose layout is set). */
static nn_status bind_view(nn_model *m, struct nn_plan *p, struct step *s, int arg, int v,
			   const dnnl_memory_desc_t *md);

/* Adds a step copying tv `src` (seen through src_md, or its own layout when
 * NULL) into tv `dst` (whose layout is set), multiplied by scale (int8
 * quantization; 1 for a plain copy). */
static int reorder_view(nn_model *m, struct nn_plan *p, int src, int dst, const dnnl_memory_desc_t *src_md,
			const dnnl_memory_desc_t *dst_md, float scale);

static int reorder_scaled(nn_model *m, struct nn_plan *p, int src, int dst, const dnnl_memory_desc_t *src_md,
			  float scale)
{
	return reorder_view(m, p, src, dst, src_md, NULL, scale);
}

/* The same, writing tv `dst` through dst_md (a part of it; NULL: all of it). */
static int reorder_view(nn_model *m, struct nn_plan *p, int src, int dst, const dnnl_memory_desc_t *src_md,
			const dnnl_memory_desc_t *dst_md, float scale)
{
	dnnl_primitive_desc_t pd;
	dnnl_primitive_attr_t attr;
	const dnnl_memory_desc_t *md = dst_md ? dst_md : &p->tv[dst].md;
	struct step *s;

	if (!src_md)
		src_md = &p->tv[src].md;
	if (dnnl_primitive_attr_create(&attr) != dnnl_success)
		return -1;
	dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
	if (scale != 1.0f)
		dnnl_primitive_attr_set_output_scales(attr, 1, 0, &scale);
	dnnl_status_t st = dnnl_reorder_primitive_desc_create(&pd, src_md, m->engine, md, m->engine, attr);
	dnnl_primitive_attr_destroy(attr);
	if (st != dnnl_success || !(s = step_new(p, STEP_PRIM, -1))) {
		nn_fail(NN_ERR_BACKEND, "cannot reorder a tensor (status %d)", (int)st);
		return -1;
	}
	if (src_md != &p->tv[src].md) {
		if (bind_view(m, p, s, DNNL_ARG_SRC, src, src_md) != NN_OK) {
			dnnl_primitive_desc_destroy(pd);
			return -1;
		}
	} else {
		arg_tv(s, DNNL_ARG_SRC, src);
	}
	if (dst_md) {
		if (bind_view(m, p, s, DNNL_ARG_DST, dst, dst_md) != NN_OK) {
			dnnl_primitive_desc_destroy(pd);
			return -1;
		}
	} else {
		arg_tv(s, DNNL_ARG_DST, dst);
	}
	if (prim_finish(p, s, pd, "reorder") != NN_OK)
		return -1;
	return dst;
}

static int reorder_into(nn_model *m, struct nn_plan *p, int src, int dst, const dnnl_memory_desc_t *src_md)
{
	return reorder_scaled(m, p, src, dst, src_md, 1.0f);
}

/* A new tensor holding tv `src` times scale in layout md (an int8 input). */
static int add_quantized(nn_model *m, struct nn_plan *p, int src, const dnnl_memory_desc_t *md, float scale)
{
	int dst;

	tv_default_md(&p->tv[src]);
	if (!p->tv[src].has_md || (dst = tv_new(p, &p->tv[src].t, TV_RUN)) < 0)
		return -1;
	tv_set_md(&p->tv[dst], md);
	return reorder_scaled(m, p, src, dst, NULL, scale);
}

/* The int8 input of a conv that reads a deferred Concat (node cnode, value
 * x): each part is quantized straight into its channels of a new tensor of
 * layout md, so the float concatenation is never written; sic holds the
 * scale of each channel (a part already held as u8 is rescaled, or just
 * copied when the scales agree). */
static int add_quantized_concat(nn_model *m, struct nn_plan *p, int cnode, int x, const dnnl_memory_desc_t *md,
				const float *sic)
{
	const struct nn_node *c = &m->g.nodes[cnode];
	int64_t at = 0;
	int dst;

	if ((dst = tv_new(p, &p->tv[x].t, TV_RUN)) < 0)
		return -1;
	tv_set_md(&p->tv[dst], md);
	for (int i = 0; i < c->n_in; i++) {
		int v = c->in[i];
		dnnl_dims_t dims, offs = {0, at, 0, 0};
		dnnl_memory_desc_t part;
		tv_default_md(&p->tv[v]);
		fill_dims(dims, 4, p->tv[v].t.dims);
		if (!p->tv[v].has_md || dnnl_memory_desc_init_submemory(&part, md, dims, offs) != dnnl_success ||
		    reorder_view(m, p, v, dst, NULL, &part, (p->tv[v].q > 0 ? p->tv[v].q : 1.0f) / sic[at]) < 0)
			return -1;
		at += dims[1];
	}
	return dst;
}

/* Copies tv `src` into a new tensor of layout `md`; returns it or -1. */
static int add_reorder(nn_model *m, struct nn_plan *p, int src, const dnnl_memory_desc_t *md)
{
	int dst;

	tv_default_md(&p->tv[src]);
	if (!p->tv[src].has_md)
		return -1;
	if ((dst = tv_new(p, &p->tv[src].t, TV_RUN)) < 0)
		return -1;
	tv_set_md(&p->tv[dst], md);
	return reorder_into(m, p, src, dst, NULL);
}

/* The tv holding value v in layout md, reordering if needed. */
static int in_layout(nn_model *m, struct nn_plan *p, int v, const dnnl_memory_desc_t *md)
{
	tv_default_md(&p->tv[v]);
	if (p->tv[v].has_md && dnnl_memory_desc_equal(&p->tv[v].md, md))
		return v;
	return add_reorder(m, p, v, md);
}

/* The tv holding value v row-major. */
static int in_plain(nn_model *m, struct nn_plan *p, int v)
{
	dnnl_memory_desc_t md;
	if (is_plain(&p->tv[v]))
		return v;
	if (!plain_md(p->tv[v].t.dtype, p->tv[v].t.rank, p->tv[v].t.dims, &md))
		return -1;
	return add_reorder(m, p, v, &md);
}

/* A dnnl memory for a runtime value or constant: binds tv or const memory. */
static nn_status bind_value(nn_model *m, struct nn_plan *p, struct step *s, int arg, int v,
			    const dnnl_memory_desc_t *md_if_const)
{
	if (p->tv[v].kind == TV_CONST) {
		dnnl_memory_t mem;
		nn_status st = const_mem(m, p, md_if_const, p->tv[v].t.data, &mem);
		if (st)
			return st;
		arg_mem(s, arg, mem);
	} else {
		arg_tv(s, arg, v);
	}
	return NN_OK;
}

/* Binds tv v to a primitive argument through descriptor md. */
static nn_status bind_view(nn_model *m, struct nn_plan *p, struct step *s, int arg, int v,
			   const dnnl_memory_desc_t *md)
{
	struct view *w;

	if (p->tv[v].kind == TV_CONST)
		return bind_value(m, p, s, arg, v, md);
	if (!grow((void **)&p->views, &p->cap_views, p->n_views + 1, sizeof *p->views))
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	w = &p->views[p->n_views];
	DNNL_TRY(dnnl_memory_create(&w->mem, md, m->engine, DNNL_MEMORY_NONE), "memory");
	w->tv = v;
	p->n_views++;
	s->args[s->nargs].arg = arg;
	s->args[s->nargs].memory = w->mem;
	s->arg_tv[s->nargs++] = v; /* for the tensor's lifetime */
	return NN_OK;
}

/* ===== Weights ===== */

/* True if graph value v may be released once reordered: a large constant
 * whose only consumers are Conv nodes taking it as their weights. */
static bool releasable(const struct nn_graph *g, int v)
{
	const struct nn_value *val = &g->vals[v];
	if (!val->data || val->rank < 1 || nn_numel(val->rank, val->dims) * (int64_t)nn_dtype_size(val->dtype) < 4096)
		return false;
	for (int i = 0; i < g->n_nodes; i++) {
		const struct nn_node *n = &g->nodes[i];
		if (n->dead)
			continue;
		for (int j = 0; j < n->n_in; j++)
			if (n->in[j] == v && (n->op != NN_OP_CONV || j != 1))
				return false;
		for (int j = 0; j < n->n_post; j++)
			if (n->post[j].value == v)
				return false;
	}
	return !nn_graph_is_output(g, v);
}

/* The weights of node the model keeps in layout md, or NULL. */
static struct nn_wcache *wcache_find(nn_model *m, int node, const dnnl_memory_desc_t *md)
{
	for (struct nn_wcache *w = m->wcache; w; w = w->next)
		if (w->node == node && dnnl_memory_desc_equal(&w->md, md))
			return w;
	return NULL;
}

/* Once weights graph value wval is kept in a layout: releases the graph's
 * copy when the model can reread its file. */
static void weights_release(nn_model *m, int wval)
{
	if (wval >= 0 && m->src_path && releasable(&m->g, wval)) {
		free(m->g.vals[wval].data);
		m->g.vals[wval].data = NULL;
		m->g.vals[wval].released = true;
	}
}

/* Weights of a conv node in layout md, reordered once and kept by the model.
 * wval is the graph value holding them (-1: data made by the plan). When the
 * model can reread its file, the graph's copy is released once reordered;
 * a later layout that needs it again returns NN_RELOAD. */
static nn_status weights_for(nn_model *m, int node, int wval, const dnnl_memory_desc_t *user_md,
			     const float *data, const float *qscales, const dnnl_memory_desc_t *md, dnnl_memory_t *out)
{
	struct nn_wcache *w;
	dnnl_memory_t src = NULL;
	int8_t *q = NULL;
	dnnl_primitive_desc_t pd = NULL;
	dnnl_primitive_t prim = NULL;
	nn_status st = NN_OK;

	if ((w = wcache_find(m, node, md))) {
		*out = w->mem;
		weights_release(m, wval);
		return NN_OK;
	}
	if (!data)
		return NN_RELOAD;
	w = calloc(1, sizeof *w);
	if (!w)
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	w->node = node;
	w->md = *md;
	if (posix_memalign(&w->buf, 64, dnnl_memory_desc_get_size(md) + 64)) {
		free(w);
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	}
	if (qscales) { /* int8: s8 per output channel, from the float weights */
		int64_t cnt = nn_numel(user_md->ndims, user_md->dims), per = cnt / user_md->dims[0];
		if (!(q = malloc((size_t)(cnt ? cnt : 1)))) {
			st = nn_fail(NN_ERR_NOMEM, "out of memory");
			goto out;
		}
		for (int64_t i = 0; i < cnt; i++)
			q[i] = (int8_t)fmaxf(-127.0f, fminf(127.0f, nearbyintf(data[i] / qscales[i / per])));
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
	weights_release(m, wval);
	return NN_OK;
}

/* The Winograd weights of bf16 conv node (wino.c), made from data (the
 * float weights, cout x cin x 3 x 3) once and kept by the model. */
static nn_status wino_weights_for(nn_model *m, int node, int wval, const float *data, int cin, int cout,
				  const uint16_t **u)
{
	dnnl_dims_t d = {(dnnl_dim_t)wino_weights_size(cin, cout)};
	dnnl_memory_desc_t md;
	struct nn_wcache *w;

	if (dnnl_memory_desc_init_by_tag(&md, 1, d, dnnl_u8, dnnl_a) != dnnl_success)
		return nn_fail(NN_ERR_BACKEND, "cannot describe the weights");
	if (!(w = wcache_find(m, node, &md))) {
		if (!data)
			return NN_RELOAD;
		if (!(w = calloc(1, sizeof *w)) || posix_memalign(&w->buf, 64, (size_t)d[0])) {
			free(w);
			return nn_fail(NN_ERR_NOMEM, "out of memory");
		}
		w->node = node;
		w->md = md;
		wino_weights(data, cin, cout, w->buf);
		if (dnnl_memory_create(&w->mem, &md, m->engine, w->buf) != dnnl_success) {
			free(w->buf);
			free(w);
			return nn_fail(NN_ERR_BACKEND, "cannot keep the weights");
		}
		w->next = m->wcache;
		m->wcache = w;
	}
	*u = w->buf;
	weights_release(m, wval);
	return NN_OK;
}

/* ===== Lowering ===== */


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

/* True if Conv node `node` runs on int8 in plan p (the test lower_conv_core
 * makes). */
static bool conv_runs_int8(nn_model *m, const struct nn_plan *p, int node)
{
	const struct nn_node *n = &m->g.nodes[node];
	float lo, hi;

	return p->precision == NN_PRECISION_INT8 && n->op == NN_OP_CONV && n->n_in >= 2 &&
	       p->tv[n->in[1]].kind == TV_CONST && n->a.conv.group == 1 && nn_quant_range(m, n->in[0], &lo, &hi);
}

/* The post-op of conv node n that adds a whole tensor of the shape of its
 * output tv out (oneDNN's sum into dst), or -1. */
static int sum_post(const struct nn_plan *p, const struct nn_node *n, int out)
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

	tv_default_md(A);
	if (scale == 1.0f && A->kind == TV_RUN && A->has_md && dnnl_memory_desc_equal(&A->md, &p->tv[out].md) &&
	    !used_after(&m->g, a, node)) {
		p->tv[out].alias = a;
		return out;
	}
	return reorder_scaled(m, p, a, out, NULL, scale);
}

/* True if Conv node `node` runs as Winograd F(2x2, 3x3) in plan p (wino.c):
 * bf16, 3x3, stride 1, padding 1, constant weights and bias, where the CPU
 * has AVX512_BF16, the channels suit and it beats oneDNN at this size, with
 * at most ReLU and a residual sum fused (their order in *relu, *sum,
 * *relu_after). PETCUT_NN_CONV=direct leaves them to oneDNN. */
static bool wino_fits(nn_model *m, const struct nn_plan *p, int node, int *relu, int *sum, int *relu_after)
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
	    a->strides[0] != 1 || a->strides[1] != 1 || a->dilations[0] != 1 || a->dilations[1] != 1 ||
	    wd[1] != X->t.dims[1] || wd[0] > INT32_MAX || wd[1] > INT32_MAX || X->t.dims[0] > INT32_MAX ||
	    X->t.dims[2] > INT32_MAX || X->t.dims[3] > INT32_MAX ||
	    X->t.dims[0] > INT32_MAX / (((X->t.dims[2] + 1) / 2) * ((X->t.dims[3] + 1) / 2) + 1) || /* tiles */
	    !wino_supported((int)wd[1], (int)wd[0]) ||
	    !wino_worth((int)wd[1], (int)wd[0], (int)X->t.dims[2], (int)X->t.dims[3]) ||
	    (bias >= 0 && (p->tv[bias].kind != TV_CONST || !p->tv[bias].t.data || p->tv[bias].t.dtype != NN_DTYPE_F32)))
		return false;
	if (nn_conv_out_dims(n, 2, X->t.dims + 2, kernel, osp, pb, pe) != NN_OK)
		return false;
	for (int i = 0; i < 2; i++)
		if (pb[i] != 1 || pe[i] != 1 || osp[i] != X->t.dims[2 + i])
			return false;
	*sum = sum_post(p, n, n->out[0]);
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

/* Lowers Conv node `node` as Winograd F(2x2, 3x3) (wino_fits holds): its
 * input in bf16 channels-last, or the parts of a deferred Concat as they
 * are, its output in bf16 channels-last. */
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

	if (!wino_fits(m, p, node, &relu, &sum, &relu_after) || n_parts > WINO_MAX_PARTS)
		return nn_fail(NN_ERR_BACKEND, "%s: internal: not a Winograd convolution", n->name);
	if ((st = wino_weights_for(m, node, w, p->tv[w].t.data, (int)wd[1], (int)wd[0], &u)))
		return st;
	if (!(wc = calloc(1, sizeof *wc)) || !own(p, wc)) {
		free(wc);
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	}
	*wc = (struct wino_conv){.cin = (int)wd[1], .cout = (int)wd[0], .n_parts = n_parts, .u = u,
				 .bias = bias >= 0 ? p->tv[bias].t.data : NULL, .relu = relu, .sum = sum >= 0,
				 .relu_after = relu_after};
	int ins[WINO_MAX_PARTS];
	for (int i = 0; i < n_parts; i++) {
		int v = cat ? cat->in[i] : x;
		dnnl_dims_t d;
		dnnl_memory_desc_t md;
		fill_dims(d, 4, p->tv[v].t.dims);
		wc->part_cin[i] = (int)d[1];
		if (dnnl_memory_desc_init_by_tag(&md, 4, d, dnnl_bf16, dnnl_acdb) != dnnl_success ||
		    (ins[i] = in_layout(m, p, v, &md)) < 0)
			return nn_fail(NN_ERR_BACKEND, "%s: cannot lay out the input", n->name);
	}
	dnnl_dims_t od;
	dnnl_memory_desc_t out_md;
	fill_dims(od, 4, p->tv[out].t.dims);
	if (dnnl_memory_desc_init_by_tag(&out_md, 4, od, dnnl_bf16, dnnl_acdb) != dnnl_success)
		return nn_fail(NN_ERR_BACKEND, "%s: cannot lay out the output", n->name);
	tv_set_md(&p->tv[out], &out_md);
	if (sum >= 0 && addend_into(m, p, node, n->post[sum].value, out, 1.0f) < 0)
		return nn_fail(NN_ERR_BACKEND, "%s: cannot copy the addend", n->name);
	if (!(s = step_new(p, STEP_WINO, node)) || !(s->ins = calloc((size_t)n_parts, sizeof *s->ins)))
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	s->n_ins = n_parts;
	memcpy(s->ins, ins, sizeof ins[0] * (size_t)n_parts);
	s->outs[0] = out;
	s->n_outs = 1;
	s->wino = wc;
	return NN_OK;
}

/* Conv (float) or the float core of ConvInteger: x is the input tv (f32),
 * wdata the float weights in ONNX layout, bias optional; the output goes to
 * tv `out` (for ConvInteger, forced row-major). */
static nn_status lower_conv_core(nn_model *m, struct nn_plan *p, int node, int x, const float *wdata, int wv,
				 int wval, const int64_t *wdims, int bias_v, int out, bool plain_out)
{
	const struct nn_node *n = &m->g.nodes[node];
	const struct nn_conv_attr *a = &n->a.conv;
	const struct ptv *X = &p->tv[x];
	int nsp = X->t.rank - 2;
	int64_t kernel[NN_MAX_SPATIAL] = {0}, osp[NN_MAX_SPATIAL], pb[NN_MAX_SPATIAL], pe[NN_MAX_SPATIAL];
	dnnl_dims_t strides, dil, pl, pr, wd;
	dnnl_memory_desc_t src_md, w_md, w_user, b_md, dst_md;
	dnnl_convolution_desc_t desc;
	dnnl_primitive_attr_t attr = NULL;
	dnnl_post_ops_t po = NULL;
	dnnl_primitive_desc_t pd = NULL;
	dnnl_memory_t wmem = NULL;
	struct step *s;
	nn_status st;
	int wrank;

	for (int i = 0; i < nsp; i++)
		kernel[i] = wdims[2 + i];
	if ((st = nn_conv_out_dims(n, nsp, X->t.dims + 2, kernel, osp, pb, pe)))
		return st;
	for (int i = 0; i < nsp; i++) {
		strides[i] = a->strides[i];
		dil[i] = a->dilations[i] - 1;
		pl[i] = pb[i];
		pr[i] = pe[i];
	}
	if (a->group > 1) {
		wd[0] = a->group;
		wd[1] = wdims[0] / a->group;
		for (int i = 1; i < X->t.rank; i++)
			wd[i + 1] = wdims[i];
		wrank = X->t.rank + 1;
	} else {
		fill_dims(wd, X->t.rank, wdims);
		wrank = X->t.rank;
	}
	/* bf16 precision: activations and weights in bf16 between convolutions
	 * (ConvInteger's exact integers stay in fp32) */
	dnnl_data_type_t adt = p->precision == NN_PRECISION_BF16 && n->op == NN_OP_CONV ? dnnl_bf16 : dnnl_f32;
	/* int8 precision: a conv with constant weights and a calibrated input
	 * reads it quantized (u8, or s8 if it goes below 0), each input channel
	 * at the scale of the tensor it comes from (sic; a Concat joins several).
	 * Those scales are folded into the float weights, which are then s8
	 * with one scale per output channel: acc = x_q * w_q approximates
	 * conv(x, w) / s_w[oc], and out = s_w[oc] / s_out * (acc + bias / s_w[oc])
	 * is written as u8 (s_out: the output's scale) when every reader takes
	 * it so, else as bf16 (s_out = 1). */
	int64_t cin = wdims[1], per_oc = nn_numel(X->t.rank, wdims) / wdims[0];
	bool in_signed = false;
	const float *s_w = NULL;
	float *sic = NULL, *wfold = NULL, s_out = 0;
	int sum = sum_post(p, n, out); /* the post-op that is a sum into dst */
	bool q8 = p->precision == NN_PRECISION_INT8 && n->op == NN_OP_CONV && wv < 0 && a->group == 1 && cin > 0;
	if (q8) {
		if (!(sic = malloc(sizeof *sic * (size_t)cin)) || !own(p, sic)) {
			free(sic);
			return nn_fail(NN_ERR_NOMEM, "out of memory");
		}
		q8 = conv_in_scales(m, p, x, cin, sic, &in_signed);
	}
	if (q8 && !(s_w = nn_quant_weight_scales(m, node, wdata, wdims[0], per_oc, sic, cin)))
		return wdata ? nn_fail(NN_ERR_NOMEM, "out of memory") : NN_RELOAD;
	float lo, hi;
	if (q8 && p->hold && p->hold[out] && !plain_out && (sum < 0 || p->tv[n->post[sum].value].q > 0) &&
	    nn_quant_range(m, out, &lo, &hi) && lo >= 0)
		s_out = nn_quant_scale(lo, hi, false);
	any_md(X->t.rank, X->t.dims, q8 ? (in_signed ? dnnl_s8 : dnnl_u8) : adt, &src_md);
	/* an int8 conv writes bf16 where the CPU has it: half the bytes for the
	 * ops between convs, and exact enough (the product was 8-bit) */
	dnnl_data_type_t ddt = s_out > 0 ? dnnl_u8
			       : q8 && (dnnl_get_effective_cpu_isa() & dnnl_cpu_isa_avx512_core_bf16) ==
						     dnnl_cpu_isa_avx512_core_bf16
				   ? dnnl_bf16
				   : adt;
	dnnl_memory_desc_init_by_tag(&w_md, wrank, wd, q8 ? dnnl_s8 : adt, dnnl_format_tag_any);
	dnnl_memory_desc_init_by_tag(&w_user, wrank, wd, q8 ? dnnl_s8 : dnnl_f32, plain_tags[wrank]);
	/* a few output channels (the side outputs) stay row-major rather than
	 * padded to a 16-channel block */
	if (plain_out)
		plain_md(NN_DTYPE_F32, p->tv[out].t.rank, p->tv[out].t.dims, &dst_md);
	else if (wdims[0] < 8 && p->tv[out].t.rank == 4) {
		dnnl_dims_t od;
		fill_dims(od, 4, p->tv[out].t.dims);
		dnnl_memory_desc_init_by_tag(&dst_md, 4, od, ddt, dnnl_acdb);
	}
	else
		any_md(p->tv[out].t.rank, p->tv[out].t.dims, ddt, &dst_md);
	if (bias_v >= 0)
		plain_md(NN_DTYPE_F32, 1, wdims, &b_md);
	/* Winograd F(4x4, 3x3) where oneDNN has it (fp32 arithmetic, 4x fewer
	 * multiplications); PETCUT_NN_CONV=direct turns it off */
	const char *algo = getenv("PETCUT_NN_CONV");
	dnnl_alg_kind_t alg = dnnl_convolution_direct;
	if (!(algo && !strcmp(algo, "direct")) && adt == dnnl_f32 && !q8 && nsp == 2 && kernel[0] == 3 && kernel[1] == 3 && a->strides[0] == 1 &&
	    a->strides[1] == 1 && a->dilations[0] == 1 && a->dilations[1] == 1 && a->group == 1)
		alg = dnnl_convolution_winograd;
retry:
	/* a held addend read by a float output is brought into dst as float;
	 * one joining a u8 output is copied as it is, its scale going to the sum */
	float add_q = sum >= 0 ? p->tv[n->post[sum].value].q : 0;
	DNNL_TRY(dnnl_dilated_convolution_forward_desc_init(&desc, dnnl_forward_inference, alg, &src_md,
						    &w_md, bias_v >= 0 ? &b_md : NULL, &dst_md, strides, dil, pl, pr),
		 n->name);
	DNNL_TRY(dnnl_primitive_attr_create(&attr), "attr");
	float *oscale = NULL;
	if (q8) {
		if (!(oscale = malloc(sizeof *oscale * (size_t)wdims[0])) || !own(p, oscale)) {
			free(oscale);
			dnnl_primitive_attr_destroy(attr);
			return nn_fail(NN_ERR_NOMEM, "out of memory");
		}
		for (int64_t o = 0; o < wdims[0]; o++)
			oscale[o] = s_out > 0 ? s_w[o] / s_out : s_w[o];
		dnnl_primitive_attr_set_output_scales(attr, wdims[0], 1 << 1, oscale);
	}
	DNNL_TRY(dnnl_post_ops_create(&po), "post-ops");
	dnnl_memory_desc_t add_md[NN_MAX_POST];
	for (int i = 0; i < n->n_post; i++) {
		const struct nn_postop *q = &n->post[i];
		if (i == sum) {
			/* a whole-tensor addend: oneDNN's fast kernels take it as a sum
			 * into dst (which then holds the addend), not as a binary op */
			dnnl_post_ops_append_sum(po, s_out > 0 ? add_q / s_out : 1.0f);
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
				plain_md(NN_DTYPE_F32, r, d, &add_md[i]);
			} else {
				tv_default_md(A);
				add_md[i] = A->md;
			}
			dnnl_post_ops_append_binary(po, q->kind == NN_POST_ADD ? dnnl_binary_add : dnnl_binary_mul,
						    &add_md[i]);
		} else {
			dnnl_post_ops_append_eltwise(po, 1.0f, q->kind == NN_POST_RELU ? dnnl_eltwise_relu
										   : dnnl_eltwise_logistic,
						     0.0f, 0.0f);
		}
	}
	dnnl_primitive_attr_set_post_ops(attr, po);
	dnnl_post_ops_destroy(po);
	st = prim_create(m, p, &desc, attr, &pd, n->name);
	dnnl_primitive_attr_destroy(attr);
	if (st && alg == dnnl_convolution_winograd) {
		alg = dnnl_convolution_direct;
		goto retry;
	}
	if (st)
		return st;

	const dnnl_memory_desc_t *want = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
	float xf = q8 ? (X->q > 0 ? X->q : 1.0f) / sic[0] : 1.0f; /* stored input to quantized input */
	/* a held input at the conv's own scale is read as it is */
	int xs = q8 && p->tv[x].deferred		? add_quantized_concat(m, p, p->tv[x].deferred - 1, x, want, sic)
		 : q8 && (xf != 1.0f || X->q == 0) ? add_quantized(m, p, x, want, xf)
						   : in_layout(m, p, x, want);
	if (!q8 && X->q > 0)
		xs = -1; /* only int8 convs read held tensors */
	if (xs < 0) {
		dnnl_primitive_desc_destroy(pd);
		return nn_fail(NN_ERR_BACKEND, "%s: cannot lay out the input", n->name);
	}
	int wt = -1; /* runtime weights: reordered on every run */
	if (wv < 0 && q8 && wdata) { /* the folded weights */
		int64_t per_ic = per_oc / cin;
		if (!(wfold = malloc(sizeof *wfold * (size_t)(wdims[0] * per_oc)))) {
			dnnl_primitive_desc_destroy(pd);
			return nn_fail(NN_ERR_NOMEM, "out of memory");
		}
		for (int64_t i = 0; i < wdims[0] * per_oc; i++)
			wfold[i] = wdata[i] * sic[i / per_ic % cin];
	}
	if (wv < 0) { /* constant weights */
		st = weights_for(m, node, wval, &w_user, q8 ? wfold : wdata, q8 ? s_w : NULL,
				 dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), &wmem);
		free(wfold);
		wfold = NULL;
	} else {
		struct nn_tview t = p->tv[wv].t;
		st = NN_OK;
		if ((wt = tv_new(p, &t, TV_RUN)) < 0)
			st = nn_fail(NN_ERR_NOMEM, "out of memory");
		else {
			tv_set_md(&p->tv[wt], dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0));
			if (reorder_into(m, p, wv, wt, &w_user) < 0)
				st = nn_fail(NN_ERR_BACKEND, "%s: cannot lay out the weights", n->name);
		}
	}
	if (st) {
		dnnl_primitive_desc_destroy(pd);
		return st;
	}
	tv_set_md(&p->tv[out], dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0));
	p->tv[out].q = s_out;
	if (sum >= 0 && addend_into(m, p, node, n->post[sum].value, out, add_q > 0 && s_out == 0 ? add_q : 1.0f) < 0) {
		dnnl_primitive_desc_destroy(pd);
		return nn_fail(NN_ERR_BACKEND, "%s: cannot copy the addend", n->name);
	}
	if (!(s = step_new(p, STEP_PRIM, node))) {
		dnnl_primitive_desc_destroy(pd);
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	}
	arg_tv(s, DNNL_ARG_SRC, xs);
	if (wt >= 0)
		arg_tv(s, DNNL_ARG_WEIGHTS, wt);
	else
		arg_mem(s, DNNL_ARG_WEIGHTS, wmem);
	if (bias_v >= 0 && q8) { /* the bias, in the units of the int8 product */
		const float *b = p->tv[bias_v].t.data;
		float *bq = p->tv[bias_v].kind == TV_CONST && b ? malloc(sizeof *bq * (size_t)wdims[0]) : NULL;
		dnnl_memory_t bmem;
		if (!bq || !own(p, bq)) {
			free(bq);
			st = b ? nn_fail(NN_ERR_NOMEM, "out of memory") : nn_fail(NN_ERR_BACKEND, "%s: bias", n->name);
			goto fail;
		}
		for (int64_t o = 0; o < wdims[0]; o++)
			bq[o] = b[o] / s_w[o];
		if ((st = const_mem(m, p, &b_md, bq, &bmem)))
			goto fail;
		arg_mem(s, DNNL_ARG_BIAS, bmem);
	} else if (bias_v >= 0 && (st = bind_value(m, p, s, DNNL_ARG_BIAS, bias_v, &b_md))) {
		goto fail;
	}
	arg_tv(s, DNNL_ARG_DST, out);
	for (int i = 0; i < n->n_post; i++) {
		int v = n->post[i].value;
		if (v < 0 || i == sum)
			continue;
		if (p->tv[v].kind != TV_CONST && p->tv[v].t.rank != p->tv[out].t.rank && !is_plain(&p->tv[v])) {
			st = nn_fail(NN_ERR_BACKEND, "%s: addend layout", n->name);
			goto fail;
		}
		if ((st = bind_view(m, p, s, DNNL_ARG_ATTR_MULTIPLE_POST_OP(i) | DNNL_ARG_SRC_1, v, &add_md[i])))
			goto fail;
	}
	return prim_finish(p, s, pd, n->name);
fail:
	dnnl_primitive_desc_destroy(pd);
	return st;
}

static nn_status lower_conv(nn_model *m, struct nn_plan *p, int node)
{
	const struct nn_node *n = &m->g.nodes[node];
	int w = n->in[1];

	int relu, sum, relu_after;

	if (wino_fits(m, p, node, &relu, &sum, &relu_after))
		return lower_wino(m, p, node);
	if (p->tv[w].kind == TV_CONST)
		return lower_conv_core(m, p, node, n->in[0], p->tv[w].t.data, -1, w, p->tv[w].t.dims,
				       n->n_in > 2 ? n->in[2] : -1, n->out[0], false);
	if ((w = in_plain(m, p, w)) < 0)
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
	if ((f = tv_new(p, &t, TV_RUN)) < 0 || !(s = step_new(p, STEP_ZP_TO_F32, node)))
		return -1;
	if (is_dense(&p->tv[v])) { /* elementwise: keep the layout */
		dnnl_memory_desc_t md = md_as(&p->tv[v].md, NN_DTYPE_F32);
		tv_set_md(&p->tv[f], &md);
	} else {
		tv_default_md(&p->tv[f]);
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
static nn_status lower_convinteger(nn_model *m, struct nn_plan *p, int node)
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
	if ((xz >= 0 && nn_numel(p->tv[xz].t.rank, p->tv[xz].t.dims) != 1) || !is_dense(&p->tv[x]))
		x = in_plain(m, p, x);
	if (x < 0 || (w = in_plain(m, p, n->in[1])) < 0)
		return nn_fail(NN_ERR_BACKEND, "%s: cannot lay out the inputs", n->name);
	W = &p->tv[w];
	if (W->kind == TV_CONST && (wz < 0 || p->tv[wz].kind == TV_CONST)) {
		/* constant weights: converted once, here */
		int64_t cnt = nn_numel(W->t.rank, W->t.dims), per = cnt / W->t.dims[0];
		int64_t nz = wz >= 0 ? nn_numel(p->tv[wz].t.rank, p->tv[wz].t.dims) : 0;
		if (!(wdata = malloc(sizeof *wdata * (size_t)(cnt ? cnt : 1))) || !own(p, wdata)) {
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
	if ((of = tv_new(p, &t, TV_RUN)) < 0)
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	if ((st = lower_conv_core(m, p, node, xf, wdata, wf, -1, p->tv[w].t.dims, -1, of, true)))
		return st;
	if (!(s = step_new(p, STEP_F32_TO_I32, node)) || !(s->ins = calloc(1, sizeof *s->ins)))
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	s->n_ins = 1;
	s->ins[0] = of;
	s->outs[0] = n->out[0];
	s->n_outs = 1;
	tv_default_md(&p->tv[n->out[0]]);
	return NN_OK;
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
	st = prim_create(m, p, desc, attr, pd, m->g.nodes[node].name);
	dnnl_primitive_attr_destroy(attr);
	if (st)
		return st;
	tv_set_md(&p->tv[out], dnnl_primitive_desc_query_md(*pd, dnnl_query_dst_md, 0));
	if (!(*s = step_new(p, STEP_PRIM, node))) {
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
	arg_tv(s, DNNL_ARG_SRC, x);
	arg_tv(s, DNNL_ARG_DST, out);
	return prim_finish(p, s, pd, m->g.nodes[node].name);
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

	tv_default_md(&p->tv[x]);
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
	any_md(p->tv[out].t.rank, p->tv[out].t.dims, p->tv[x].md.data_type, &dst_md);
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
	tv_default_md(&p->tv[x]);
	any_md(p->tv[out].t.rank, p->tv[out].t.dims, p->tv[x].md.data_type, &dst_md);
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
			fill_dims(d, 4, X->t.dims);
			ok = X->kind == TV_RUN && X->has_md && X->t.dtype == NN_DTYPE_F32 &&
			     X->t.dims[1] % layouts[l].block == 0 &&
			     dnnl_memory_desc_init_by_tag(&md, 4, d, dt, layouts[l].tag) == dnnl_success &&
			     dnnl_memory_desc_equal(&md, &X->md);
			if (!ok)
				break;
			/* the whole storage chain of the input moves into the output */
			r = tv_root(p, n->in[i], &off);
			ok = off == 0 && p->tv[r].kind == TV_RUN && p->tv[r].bytes == X->bytes;
			for (int j = 0; ok && j < i; j++)
				ok = roots[j] != r;
			roots[i] = r;
		}
		if (!ok)
			continue;
		fill_dims(d, 4, O->t.dims);
		if (dnnl_memory_desc_init_by_tag(&omd, 4, d, dt, layouts[l].tag) != dnnl_success)
			continue;
		tv_set_md(&p->tv[out], &omd);
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
	wino = wino_fits(m, p, reader, &relu, &sum, &relu_after);
	if (!wino && !(p->precision == NN_PRECISION_INT8 && conv_runs_int8(m, p, reader)))
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
static nn_status plan_holds(nn_model *m, struct nn_plan *p)
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
					ok = k == 0 && conv_runs_int8(m, p, j);
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
					ok = n->op == NN_OP_CONV && k == sum_post(p, n, n->out[0]) && p->hold[n->out[0]];
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
	nn_status st;

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
		tv_default_md(&p->tv[n->in[i]]);
		mixed |= p->tv[n->in[i]].md.data_type != p->tv[n->in[0]].md.data_type;
	}
	for (int i = 0; i < n->n_in; i++) {
		int v = n->in[i];
		/* inputs of different element types meet as row-major fp32 */
		if (mixed && (v = in_plain(m, p, v)) < 0) {
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
	tv_set_md(&p->tv[out], dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0));
	if (!(s = step_new(p, STEP_PRIM, node))) {
		dnnl_primitive_desc_destroy(pd);
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	}
	for (int i = 0; i < n->n_in; i++)
		arg_tv(s, DNNL_ARG_MULTIPLE_SRC + i, ins[i]);
	arg_tv(s, DNNL_ARG_DST, out);
	st = prim_finish(p, s, pd, n->name);
	return st;
}

static nn_status lower_eltwise(nn_model *m, struct nn_plan *p, int node, bool *declined)
{
	const struct nn_node *n = &m->g.nodes[node];
	int x = n->in[0], out = n->out[0];
	dnnl_eltwise_desc_t desc;

	tv_default_md(&p->tv[x]);
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
	tv_default_md(&p->tv[a]);
	for (int k = 0; k < r; k++)
		d[k] = k < r - p->tv[b].t.rank ? 1 : p->tv[b].t.dims[k - (r - p->tv[b].t.rank)];
	if (p->tv[b].kind == TV_CONST || p->tv[b].t.rank != r) {
		/* seen row-major with leading ones */
		if (p->tv[b].kind != TV_CONST && (b = in_plain(m, p, b)) < 0)
			return nn_fail(NN_ERR_BACKEND, "%s: cannot lay out the input", n->name);
		plain_md(NN_DTYPE_F32, r, d, &bmd);
	} else {
		tv_default_md(&p->tv[b]);
		bmd = p->tv[b].md;
	}
	DNNL_TRY(dnnl_binary_desc_init(&desc, n->op == NN_OP_ADD ? dnnl_binary_add : dnnl_binary_mul, &p->tv[a].md,
				       &bmd, &p->tv[a].md),
		 n->name);
	if ((st = begin_prim(m, p, node, &desc, out, &s, &pd)))
		return st;
	arg_tv(s, DNNL_ARG_SRC_0, a);
	if ((st = bind_view(m, p, s, DNNL_ARG_SRC_1, b, &bmd))) {
		dnnl_primitive_desc_destroy(pd);
		return st;
	}
	arg_tv(s, DNNL_ARG_DST, out);
	return prim_finish(p, s, pd, n->name);
}

static nn_status lower_ref(nn_model *m, struct nn_plan *p, int node);

/* DynamicQuantizeLinear is elementwise but for its global range: on a dense
 * input it runs in the input's layout and its result keeps that layout. */
static nn_status lower_dql(nn_model *m, struct nn_plan *p, int node)
{
	const struct nn_node *n = &m->g.nodes[node];
	struct step *s;
	int x = n->in[0];

	if (!is_dense(&p->tv[x]) || is_plain(&p->tv[x]))
		return lower_ref(m, p, node);
	if (!(s = step_new(p, STEP_REF, node)) || !(s->ins = calloc(1, sizeof *s->ins)))
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	s->ins[0] = x;
	s->n_ins = 1;
	s->n_outs = 3;
	for (int j = 0; j < 3; j++)
		s->outs[j] = n->out[j];
	dnnl_memory_desc_t md = md_as(&p->tv[x].md, NN_DTYPE_U8);
	tv_set_md(&p->tv[n->out[0]], &md);
	tv_default_md(&p->tv[n->out[1]]);
	tv_default_md(&p->tv[n->out[2]]);
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
		if (v >= 0 && p->tv[v].kind != TV_CONST && (v = in_plain(m, p, v)) < 0) {
			free(ins);
			return nn_fail(NN_ERR_BACKEND, "node '%s': cannot lay out input %d", n->name, j);
		}
		ins[j] = v;
	}
	if (!(s = step_new(p, STEP_REF, node))) {
		free(ins);
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	}
	s->ins = ins;
	s->n_ins = n->n_in;
	s->n_outs = n->n_out;
	for (int j = 0; j < n->n_out; j++) {
		s->outs[j] = n->out[j];
		if (n->out[j] >= 0)
			tv_default_md(&p->tv[n->out[j]]);
	}
	return NN_OK;
}

/* ===== Arena ===== */

#define ARENA_ALIGN 64

struct block {
	size_t off, size;
	int first, last;
};

static int by_size_desc(const void *a, const void *b)
{
	const struct ptv *const *x = a, *const *y = b;
	return (*x)->bytes < (*y)->bytes ? 1 : (*x)->bytes > (*y)->bytes ? -1 : 0;
}

/* Places every runtime tensor at the lowest offset where it overlaps no
 * tensor alive at the same time, largest first. */
static nn_status plan_arena(struct nn_plan *p)
{
	struct ptv **order = malloc(sizeof *order * (size_t)(p->n_tv + 1));
	struct block *placed = malloc(sizeof *placed * (size_t)(p->n_tv + 1));
	int n = 0, np = 0;

	if (!order || !placed) {
		free(order);
		free(placed);
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	}
	for (int i = 0; i < p->n_tv; i++)
		if (p->tv[i].kind == TV_RUN && p->tv[i].first >= 0 && p->tv[i].alias < 0)
			order[n++] = &p->tv[i];
	qsort(order, (size_t)n, sizeof *order, by_size_desc);
	p->arena_size = 0;
	for (int i = 0; i < n; i++) {
		struct ptv *v = order[i];
		size_t size = (v->bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN, off = 0;
		bool moved = true;
		/* first fit: bump past any live-overlapping block we collide with */
		while (moved) {
			moved = false;
			for (int j = 0; j < np; j++) {
				const struct block *b = &placed[j];
				if (b->last < v->first || b->first > v->last)
					continue;
				if (off < b->off + b->size && b->off < off + size) {
					off = b->off + b->size;
					moved = true;
				}
			}
		}
		v->off = off;
		placed[np++] = (struct block){off, size, v->first, v->last};
		if (off + size > p->arena_size)
			p->arena_size = off + size;
	}
	for (int i = 0; i < p->n_tv; i++)
		if (p->tv[i].alias >= 0) {
			size_t o;
			int r = tv_root(p, i, &o);
			p->tv[i].off = p->tv[r].off + o;
		}
	free(order);
	free(placed);
	return NN_OK;
}

static void use_tv(struct nn_plan *p, int v, int step)
{
	if (v < 0)
		return;
	struct ptv *t = &p->tv[v];
	if (t->first < 0 || step < t->first)
		t->first = step;
	if (step > t->last)
		t->last = step;
}

static void liveness(struct nn_plan *p)
{
	for (int i = 0; i < p->n_steps; i++) {
		const struct step *s = &p->steps[i];
		for (int a = 0; a < s->nargs; a++)
			use_tv(p, s->arg_tv[a], i);
		for (int a = 0; a < s->n_ins; a++)
			use_tv(p, s->ins[a], i);
		for (int a = 0; a < s->n_outs; a++)
			use_tv(p, s->outs[a], i);
	}
	/* tensors sharing storage live as one */
	for (int i = 0; i < p->n_tv; i++) {
		if (p->tv[i].alias < 0 || p->tv[i].first < 0)
			continue;
		struct ptv *r = &p->tv[tv_root(p, i, NULL)];
		if (r->first < 0 || p->tv[i].first < r->first)
			r->first = p->tv[i].first;
		if (p->tv[i].last > r->last)
			r->last = p->tv[i].last;
	}
}

/* ===== Building a plan ===== */

static void plan_free(struct nn_plan *p)
{
	if (!p)
		return;
	free(p->hold);
	for (int i = 0; i < p->n_steps; i++) {
		if (p->steps[i].prim)
			dnnl_primitive_destroy(p->steps[i].prim);
		free(p->steps[i].ins);
	}
	for (int i = 0; i < p->n_tv; i++)
		if (p->tv[i].mem)
			dnnl_memory_destroy(p->tv[i].mem);
	for (int i = 0; i < p->n_consts; i++)
		dnnl_memory_destroy(p->consts[i]);
	for (int i = 0; i < p->n_views; i++)
		dnnl_memory_destroy(p->views[i].mem);
	free(p->views);
	for (int i = 0; i < p->n_owned; i++)
		free(p->owned[i]);
	if (p->scratch_mem)
		dnnl_memory_destroy(p->scratch_mem);
	free(p->steps);
	free(p->tv);
	free(p->consts);
	free(p->owned);
	free(p->out_tv);
	free(p);
}

void nn_plans_free(nn_model *m)
{
	while (m->plans) {
		struct nn_plan *next = m->plans->next;
		plan_free(m->plans);
		m->plans = next;
	}
	m->n_plans = 0;
}

static nn_status lower_node(nn_model *m, struct nn_plan *p, int i)
{
	const struct nn_node *n = &m->g.nodes[i];
	bool declined = true;
	nn_status st = NN_OK;

	if (n->op != NN_OP_CONV && n->op != NN_OP_MAXPOOL && n->op != NN_OP_CONCAT && n->op != NN_OP_SHAPE &&
	    !(n->op == NN_OP_RESIZE && resize_on_dnnl(p, n)) && held_input(p, n))
		return nn_fail(NN_ERR_BACKEND, "%s: internal: a held input", n->name);
	switch (n->op) {
	case NN_OP_CONV:
		return lower_conv(m, p, i);
	case NN_OP_CONVINTEGER:
		return lower_convinteger(m, p, i);
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

static nn_status plan_build(nn_model *m, const struct nn_tensor *inputs, nn_precision prec, struct nn_plan **out)
{
	struct nn_graph *g = &m->g;
	struct nn_tview in[16];
	struct nn_walk w;
	struct nn_plan *p;
	dnnl_memory_desc_t md;
	nn_status st;

	if (g->n_inputs > 16)
		return nn_fail(NN_ERR_UNSUPPORTED, "more than 16 inputs");
	if (!(p = calloc(1, sizeof *p)))
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	p->precision = prec;
	p->n_inputs = g->n_inputs;
	for (int i = 0; i < g->n_inputs; i++) {
		in[i] = (struct nn_tview){.dtype = inputs[i].dtype, .rank = inputs[i].rank};
		memcpy(in[i].dims, inputs[i].dims, sizeof in[i].dims);
		p->in_rank[i] = inputs[i].rank;
		memcpy(p->in_dims[i], inputs[i].dims, sizeof p->in_dims[i]);
		if (g->in_value[i]) {
			size_t bytes = nn_tview_bytes(&in[i]);
			if (!(p->in_copy[i] = malloc(bytes + 1)) || !own(p, p->in_copy[i])) {
				free(p->in_copy[i]);
				plan_free(p);
				return nn_fail(NN_ERR_NOMEM, "out of memory");
			}
			memcpy(p->in_copy[i], inputs[i].data, bytes);
			in[i].data = p->in_copy[i];
		}
	}
	if ((st = nn_graph_walk(g, in, &w)) != NN_OK) {
		plan_free(p);
		return st;
	}
	/* one tv per graph value, then temporaries */
	for (int v = 0; v < g->n_vals; v++) {
		int kind = !w.known[v] ? TV_NONE : w.tv[v].data || g->vals[v].released ? TV_CONST : TV_RUN;
		if (tv_new(p, &w.tv[v], kind) < 0) {
			st = nn_fail(NN_ERR_NOMEM, "out of memory");
			goto fail;
		}
		p->tv[v].t.data = w.tv[v].data;
		if (w.owned[v]) {
			if (!own(p, w.tv[v].data)) {
				st = nn_fail(NN_ERR_NOMEM, "out of memory");
				goto fail;
			}
			w.owned[v] = false;
		}
	}
	for (int i = 0; i < g->n_inputs; i++) {
		if (g->in_value[i])
			continue; /* a constant of this plan */
		p->tv[g->inputs[i]].kind = TV_IN;
		p->tv[g->inputs[i]].ext = i;
	}
	if (dnnl_memory_desc_init_by_tag(&md, 1, (dnnl_dims_t){1}, dnnl_u8, dnnl_a) != dnnl_success ||
	    dnnl_memory_create(&p->scratch_mem, &md, m->engine, DNNL_MEMORY_NONE) != dnnl_success) {
		st = nn_fail(NN_ERR_BACKEND, "cannot create the scratchpad");
		goto fail;
	}
	if ((st = plan_holds(m, p)) != NN_OK)
		goto fail;
	for (int i = 0; i < g->n_nodes; i++) {
		if (g->nodes[i].dead || nn_walk_folds(g, &w, &g->nodes[i]))
			continue;
		if ((st = lower_node(m, p, i)) != NN_OK)
			goto fail;
	}
	free(p->hold);
	p->hold = NULL;
	if (!(p->out_tv = calloc((size_t)g->n_outputs + 1, sizeof *p->out_tv))) {
		st = nn_fail(NN_ERR_NOMEM, "out of memory");
		goto fail;
	}
	for (int i = 0; i < g->n_outputs; i++) {
		int v = g->outputs[i].value, o;
		struct step *s;
		if ((o = tv_new(p, &p->tv[v].t, TV_OUT)) < 0) {
			st = nn_fail(NN_ERR_NOMEM, "out of memory");
			goto fail;
		}
		p->tv[o].ext = i;
		p->out_tv[i] = o;
		tv_default_md(&p->tv[o]);
		if (p->tv[v].kind == TV_RUN && p->tv[v].has_md && p->tv[o].has_md) {
			int r = add_reorder(m, p, v, &p->tv[o].md);
			if (r < 0) {
				st = nn_fail(NN_ERR_BACKEND, "cannot lay out output '%s'", g->outputs[i].name);
				goto fail;
			}
			/* write straight into the caller's buffer: retarget the reorder */
			s = &p->steps[p->n_steps - 1];
			s->arg_tv[1] = o;
			p->tv[r].kind = TV_NONE;
			continue;
		}
		if (!(s = step_new(p, STEP_COPY, -1)) || !(s->ins = calloc(1, sizeof *s->ins))) {
			st = nn_fail(NN_ERR_NOMEM, "out of memory");
			goto fail;
		}
		s->n_ins = 1;
		s->ins[0] = v;
		s->outs[0] = o;
		s->n_outs = 1;
	}
	liveness(p);
	if ((st = plan_arena(p)) != NN_OK)
		goto fail;
	for (int i = 0; i < p->n_tv; i++) {
		struct ptv *t = &p->tv[i];
		if (!t->has_md || t->first < 0 || (t->kind != TV_RUN && t->kind != TV_IN && t->kind != TV_OUT))
			continue;
		if (dnnl_memory_create(&t->mem, &t->md, m->engine, DNNL_MEMORY_NONE) != dnnl_success) {
			st = nn_fail(NN_ERR_BACKEND, "cannot create a memory object");
			goto fail;
		}
	}
	for (int i = 0; i < p->n_steps; i++) {
		struct step *s = &p->steps[i];
		for (int a = 0; a < s->nargs; a++) {
			if (s->args[a].arg == DNNL_ARG_SCRATCHPAD)
				s->args[a].memory = p->scratch_mem;
			else if (s->arg_tv[a] >= 0 && !s->args[a].memory)
				s->args[a].memory = p->tv[s->arg_tv[a]].mem;
			if (!s->args[a].memory) {
				st = nn_fail(NN_ERR_BACKEND, "internal: unbound argument");
				goto fail;
			}
		}
	}
	nn_walk_free(&w);
	*out = p;
	return NN_OK;
fail:
	nn_walk_free(&w);
	plan_free(p);
	return st;
}

#define MAX_PLANS 4

nn_status nn_plan_get(nn_model *m, const struct nn_tensor *inputs, nn_precision prec, struct nn_plan **out)
{
	struct nn_plan **pp, *p;
	nn_status st;
	int count = 0;

	for (pp = &m->plans; (p = *pp); pp = &p->next) {
		bool same = p->precision == prec;
		for (int i = 0; same && i < p->n_inputs; i++) {
			same = p->in_rank[i] == inputs[i].rank &&
			       !memcmp(p->in_dims[i], inputs[i].dims, sizeof inputs[i].dims[0] * (size_t)inputs[i].rank);
			if (same && p->in_copy[i])
				same = !memcmp(p->in_copy[i], inputs[i].data,
					       (size_t)nn_tensor_numel(&inputs[i]) * nn_dtype_size(inputs[i].dtype));
		}
		if (same) { /* move to front */
			*pp = p->next;
			p->next = m->plans;
			m->plans = p;
			*out = p;
			return NN_OK;
		}
	}
	st = plan_build(m, inputs, prec, &p);
	if (st == NN_RELOAD && (st = nn_model_reload_weights(m)) == NN_OK)
		st = plan_build(m, inputs, prec, &p);
	if (st == NN_RELOAD)
		st = nn_fail(NN_ERR_BACKEND, "weights missing after rereading the model");
	if (st != NN_OK)
		return st;
	p->next = m->plans;
	m->plans = p;
	for (pp = &m->plans; *pp; count++) {
		if (count >= MAX_PLANS) {
			struct nn_plan *old = *pp;
			*pp = old->next;
			plan_free(old);
			continue;
		}
		pp = &(*pp)->next;
	}
	*out = p;
	return NN_OK;
}

/* ===== Running ===== */

static void *tv_ptr(nn_model *m, const struct nn_plan *p, int v, const struct nn_tensor *inputs,
		    struct nn_tensor *outputs)
{
	const struct ptv *t = &p->tv[v];
	switch (t->kind) {
	case TV_CONST: return t->t.data;
	case TV_IN: return inputs[t->ext].data;
	case TV_OUT: return outputs[t->ext].data;
	case TV_RUN: return (char *)m->arena + t->off;
	default: return NULL;
	}
}

static nn_status grow_buffer(void **buf, size_t *size, size_t need)
{
	if (need <= *size)
		return NN_OK;
	free(*buf);
	*buf = NULL;
	*size = 0;
	if (posix_memalign(buf, 4096, need))
		return nn_fail(NN_ERR_NOMEM, "out of memory (%zu bytes of activations)", need);
	*size = need;
	return NN_OK;
}

static nn_status run_helper(nn_model *m, const struct nn_plan *p, const struct step *s,
			    const struct nn_tensor *inputs, struct nn_tensor *outputs)
{
	const struct ptv *x = &p->tv[s->ins[0]];
	int64_t cnt = nn_numel(x->t.rank, x->t.dims);
	const void *src = tv_ptr(m, p, s->ins[0], inputs, outputs);
	void *dst = tv_ptr(m, p, s->outs[0], inputs, outputs);

	switch (s->kind) {
	case STEP_ZP_TO_F32: {
		/* zero point: none, one value, or one per index of axis 0 */
		int64_t nz = 0, per = x->t.rank && x->t.dims[0] ? cnt / x->t.dims[0] : cnt;
		const void *z = NULL;
		bool zu8 = false, xu8 = x->t.dtype == NN_DTYPE_U8;
		float *d = dst;
		if (s->ins[1] >= 0) {
			z = tv_ptr(m, p, s->ins[1], inputs, outputs);
			nz = nn_numel(p->tv[s->ins[1]].t.rank, p->tv[s->ins[1]].t.dims);
			zu8 = p->tv[s->ins[1]].t.dtype == NN_DTYPE_U8;
		}
		#pragma omp parallel for if (cnt > 65536)
		for (int64_t r = 0; r < (nz > 1 ? nz : 1); r++) {
			/* one run of elements sharing a zero point */
			int64_t len = nz > 1 ? per : cnt, at = r * len;
			float zp = !z ? 0.0f : zu8 ? ((const uint8_t *)z)[r] : ((const int8_t *)z)[r];
			if (xu8)
				for (int64_t i = at; i < at + len; i++)
					d[i] = (float)((const uint8_t *)src)[i] - zp;
			else
				for (int64_t i = at; i < at + len; i++)
					d[i] = (float)((const int8_t *)src)[i] - zp;
		}
		return NN_OK;
	}
	case STEP_F32_TO_I32: {
		const float *f = src;
		int32_t *d = dst;
		#pragma omp parallel for
		for (int64_t i = 0; i < cnt; i++)
			d[i] = (int32_t)lrintf(f[i]);
		return NN_OK;
	}
	case STEP_COPY:
		memcpy(dst, src, nn_tview_bytes(&x->t));
		return NN_OK;
	case STEP_WINO: {
		const uint16_t *parts[WINO_MAX_PARTS];
		for (int i = 0; i < s->n_ins && i < WINO_MAX_PARTS; i++)
			parts[i] = tv_ptr(m, p, s->ins[i], inputs, outputs);
		if (wino_run(s->wino, parts, dst, (int)x->t.dims[0], (int)x->t.dims[2], (int)x->t.dims[3]))
			return nn_fail(NN_ERR_NOMEM, "out of memory for a Winograd convolution's buffers");
		return NN_OK;
	}
	}
	return nn_fail(NN_ERR_BACKEND, "internal: unknown step");
}

static nn_status run_ref(nn_model *m, const struct nn_plan *p, const struct step *s,
			 const struct nn_tensor *inputs, struct nn_tensor *outputs)
{
	const struct nn_node *n = &m->g.nodes[s->node];
	struct nn_tview tin[64], tout[4], *ptin = tin;
	const struct nn_tview *ins[64], **pins = ins;
	nn_status st;

	if (s->n_ins > 64) {
		ptin = malloc(sizeof *ptin * (size_t)s->n_ins);
		pins = malloc(sizeof *pins * (size_t)s->n_ins);
		if (!ptin || !pins) {
			free(ptin == tin ? NULL : ptin);
			free(pins == ins ? NULL : pins);
			return nn_fail(NN_ERR_NOMEM, "out of memory");
		}
	}
	for (int j = 0; j < s->n_ins; j++) {
		pins[j] = NULL;
		if (s->ins[j] < 0)
			continue;
		ptin[j] = p->tv[s->ins[j]].t;
		ptin[j].data = tv_ptr(m, p, s->ins[j], inputs, outputs);
		pins[j] = &ptin[j];
	}
	memset(tout, 0, sizeof tout);
	for (int j = 0; j < s->n_outs; j++)
		if (s->outs[j] >= 0) {
			tout[j] = p->tv[s->outs[j]].t;
			tout[j].data = tv_ptr(m, p, s->outs[j], inputs, outputs);
		}
	st = nn_op_ref(n, pins, tout);
	if (ptin != tin) {
		free(ptin);
		free(pins);
	}
	return st;
}

/* Calibration: the range of value v, held by argument arg of step s (a
 * convolution's input as it is about to run, any primitive's output once it
 * ran); padding in blocked layouts holds zeros, which ranges include anyway
 * for tensors that follow a ReLU. */
static void observe_arg(nn_model *m, const struct step *s, int arg, int v)
{
	const dnnl_memory_desc_t *md;
	void *data;

	dnnl_stream_wait(m->stream);
	for (int a = 0; a < s->nargs; a++) {
		if (s->args[a].arg != arg || !s->args[a].memory ||
		    dnnl_memory_get_memory_desc(s->args[a].memory, &md) != dnnl_success || md->data_type != dnnl_f32 ||
		    dnnl_memory_get_data_handle(s->args[a].memory, &data) != dnnl_success || !data)
			continue;
		nn_quant_observe(m, v, data, dnnl_memory_desc_get_size(md) / sizeof(float));
	}
}

nn_status nn_plan_exec(nn_model *m, struct nn_plan *p, const struct nn_tensor *inputs, struct nn_tensor *outputs)
{
	nn_status st;

	if ((st = grow_buffer(&m->arena, &m->arena_size, p->arena_size ? p->arena_size : 1)) ||
	    (st = grow_buffer(&m->scratch, &m->scratch_size, p->scratch_size ? p->scratch_size : 1)))
		return st;
	for (int i = 0; i < m->g.n_outputs; i++) {
		const struct ptv *o = &p->tv[p->out_tv[i]];
		outputs[i].dtype = o->t.dtype;
		outputs[i].rank = o->t.rank;
		memcpy(outputs[i].dims, o->t.dims, sizeof o->t.dims);
		outputs[i].data = malloc(o->bytes ? o->bytes : 1);
		if (!outputs[i].data)
			return nn_fail(NN_ERR_NOMEM, "out of memory");
	}
	for (int i = 0; i < p->n_tv; i++)
		if (p->tv[i].mem)
			dnnl_memory_set_data_handle(p->tv[i].mem, tv_ptr(m, p, i, inputs, outputs));
	for (int i = 0; i < p->n_views; i++)
		dnnl_memory_set_data_handle(p->views[i].mem, tv_ptr(m, p, p->views[i].tv, inputs, outputs));
	dnnl_memory_set_data_handle(p->scratch_mem, m->scratch);
	for (int i = 0; i < p->n_steps; i++) {
		const struct step *s = &p->steps[i];
		bool observe = m->observing && s->kind == STEP_PRIM && s->node >= 0;
		if (observe && m->g.nodes[s->node].op == NN_OP_CONV)
			observe_arg(m, s, DNNL_ARG_SRC, m->g.nodes[s->node].in[0]);
		if (s->kind == STEP_PRIM) {
			dnnl_status_t ds = dnnl_primitive_execute(s->prim, m->stream, s->nargs, s->args);
			if (ds != dnnl_success)
				return nn_fail(NN_ERR_BACKEND, "%s: oneDNN failed (status %d)",
					       s->node >= 0 ? m->g.nodes[s->node].name : "reorder", (int)ds);
			if (observe && m->g.nodes[s->node].n_out > 0)
				observe_arg(m, s, DNNL_ARG_DST, m->g.nodes[s->node].out[0]);
			continue;
		}
		dnnl_stream_wait(m->stream);
		st = s->kind == STEP_REF ? run_ref(m, p, s, inputs, outputs) : run_helper(m, p, s, inputs, outputs);
		if (st != NN_OK)
			return st;
	}
	if (dnnl_stream_wait(m->stream) != dnnl_success)
		return nn_fail(NN_ERR_BACKEND, "oneDNN stream failed");
	return NN_OK;
}

/* ===== Figures ===== */

nn_status nn_model_stats(nn_model *m, struct nn_plan_stats *out)
{
	const struct nn_plan *p;

	memset(out, 0, sizeof *out);
	pthread_mutex_lock(&m->lock);
	p = m->plans;
	if (p) {
		out->steps = p->n_steps;
		for (int i = 0; i < p->n_steps; i++)
			out->reorders += p->steps[i].kind == STEP_PRIM && p->steps[i].node < 0;
		out->arena_bytes = p->arena_size;
		out->scratch_bytes = p->scratch_size;
		for (int i = 0; i < p->n_tv; i++)
			if (p->tv[i].kind == TV_RUN && p->tv[i].first >= 0)
				out->tensor_bytes += p->tv[i].bytes;
		for (const struct nn_wcache *w = m->wcache; w; w = w->next)
			out->weight_bytes += dnnl_memory_desc_get_size(&w->md);
	}
	pthread_mutex_unlock(&m->lock);
	return p ? NN_OK : nn_fail(NN_ERR_ARG, "the model has not run yet");
}
