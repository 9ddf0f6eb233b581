/*
 * plan_tensor.c - the tensors of a plan and the steps that bind them.
 *
 * Every value the plan computes is a tv (struct ptv) with a oneDNN memory
 * descriptor once its layout is known. Steps take their arguments as tvs
 * and are bound to memories when the plan is finished; a tv wanted in
 * another layout, or multiplied by a scale (int8 inputs), is reordered into
 * a new one by a step of its own.
 */
#include <stdlib.h>
#include <string.h>

#include "nn/plan_int.h"

/* ===== Arrays of the plan ===== */

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

bool plan_own(struct nn_plan *p, void *buf)
{
	if (!grow((void **)&p->owned, &p->cap_owned, p->n_owned + 1, sizeof *p->owned))
		return false;
	p->owned[p->n_owned++] = buf;
	return true;
}

/* ===== Memory descriptors ===== */

void plan_fill_dims(dnnl_dims_t d, int n, const int64_t *v)
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

const dnnl_format_tag_t plan_plain_tags[] = {dnnl_format_tag_undef, dnnl_a, dnnl_ab, dnnl_abc, dnnl_abcd,
					       dnnl_abcde, dnnl_abcdef};

/* Row-major descriptor; false when oneDNN cannot describe the tensor. */
bool plan_plain_md(nn_dtype t, int rank, const int64_t *dims, dnnl_memory_desc_t *md)
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
	return dnnl_memory_desc_init_by_tag(md, rank, d, dt, plan_plain_tags[rank]) == dnnl_success;
}

/* A descriptor leaving the layout to oneDNN. */
bool plan_any_md(int rank, const int64_t *dims, dnnl_data_type_t dt, dnnl_memory_desc_t *md)
{
	dnnl_dims_t d;
	for (int i = 0; i < rank; i++)
		d[i] = dims[i];
	return dnnl_memory_desc_init_by_tag(md, rank, d, dt, dnnl_format_tag_any) == dnnl_success;
}

/* True if tv v has a descriptor with no padding: elementwise kernels may
 * then run on its storage whatever the layout. */
bool plan_is_dense(const struct ptv *v)
{
	return v->has_md && v->md.format_kind == dnnl_blocked &&
	       dnnl_memory_desc_get_size(&v->md) == (size_t)nn_numel(v->t.rank, v->t.dims) * nn_dtype_size(v->t.dtype);
}

/* The same layout for another element type. */
dnnl_memory_desc_t plan_md_as(const dnnl_memory_desc_t *md, nn_dtype t)
{
	dnnl_memory_desc_t r = *md;
	dnnl_data_type_t dt = dnnl_f32;
	dnnl_type(t, &dt);
	r.data_type = dt;
	return r;
}

bool plan_is_plain(const struct ptv *v)
{
	dnnl_memory_desc_t md;
	if (!v->has_md)
		return true;
	return plan_plain_md(v->t.dtype, v->t.rank, v->t.dims, &md) && dnnl_memory_desc_equal(&md, &v->md);
}

/* ===== Tensors of the plan ===== */

int plan_tv_new(struct nn_plan *p, const struct nn_tview *t, int kind)
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
int plan_tv_root(const struct nn_plan *p, int v, size_t *off)
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

void plan_tv_set_md(struct ptv *v, const dnnl_memory_desc_t *md)
{
	v->md = *md;
	v->has_md = true;
	v->bytes = dnnl_memory_desc_get_size(md);
}

/* Gives a runtime tensor its row-major descriptor if it has none. */
void plan_tv_default_md(struct ptv *v)
{
	dnnl_memory_desc_t md;
	if (!v->has_md && plan_plain_md(v->t.dtype, v->t.rank, v->t.dims, &md))
		plan_tv_set_md(v, &md);
}

/* A oneDNN memory over constant data (lives as long as the plan). */
nn_status plan_const_mem(nn_model *m, struct nn_plan *p, const dnnl_memory_desc_t *md, void *data,
			 dnnl_memory_t *out)
{
	if (!grow((void **)&p->consts, &p->cap_consts, p->n_consts + 1, sizeof *p->consts))
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	DNNL_TRY(dnnl_memory_create(out, md, m->engine, data), "memory");
	p->consts[p->n_consts++] = *out;
	return NN_OK;
}

/* ===== Steps ===== */

struct step *plan_step_new(struct nn_plan *p, int kind, int node)
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

void plan_arg_tv(struct step *s, int arg, int tv)
{
	s->args[s->nargs].arg = arg;
	s->args[s->nargs].memory = NULL; /* bound when the plan is finished */
	s->arg_tv[s->nargs++] = tv;
}

void plan_arg_mem(struct step *s, int arg, dnnl_memory_t mem)
{
	s->args[s->nargs].arg = arg;
	s->args[s->nargs].memory = mem;
	s->arg_tv[s->nargs++] = -1;
}

/* Creates a primitive from an op descriptor with a user-managed scratchpad. */
nn_status plan_prim_create(nn_model *m, struct nn_plan *p, const_dnnl_op_desc_t desc, dnnl_primitive_attr_t attr,
			   dnnl_primitive_desc_t *pd, const char *what)
{
	dnnl_status_t s;

	dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
	s = dnnl_primitive_desc_create(pd, desc, attr, m->engine, NULL);
	if (s != dnnl_success)
		return nn_fail(NN_ERR_BACKEND, "%s: oneDNN has no implementation (status %d)", what, (int)s);
	return NN_OK;
}

bool plan_prim_is_ref(const_dnnl_primitive_desc_t pd)
{
	const char *impl = NULL;

	return dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success && impl &&
	       !strncmp(impl, "ref", 3);
}

/* If oneDNN chose an implementation of desc whose name begins with from,
 * replaces *pd with its next one whose name begins with to, where it has
 * one. attr as *pd was made with. */
void plan_prim_prefer(nn_model *m, const_dnnl_op_desc_t desc, const_dnnl_primitive_attr_t attr,
		      dnnl_primitive_desc_t *pd, const char *from, const char *to)
{
	dnnl_primitive_desc_iterator_t it;
	const char *impl = NULL;

	if (dnnl_primitive_desc_query(*pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success || !impl ||
	    strncmp(impl, from, strlen(from)) ||
	    dnnl_primitive_desc_iterator_create(&it, desc, attr, m->engine, NULL) != dnnl_success)
		return;
	while (dnnl_primitive_desc_iterator_next(it) == dnnl_success) {
		dnnl_primitive_desc_t c = dnnl_primitive_desc_iterator_fetch(it);
		const char *name = NULL;
		if (c && dnnl_primitive_desc_query(c, dnnl_query_impl_info_str, 0, &name) == dnnl_success && name &&
		    !strncmp(name, to, strlen(to))) {
			dnnl_primitive_desc_destroy(*pd);
			*pd = c;
			break;
		}
		if (c)
			dnnl_primitive_desc_destroy(c);
	}
	dnnl_primitive_desc_iterator_destroy(it);
}

/* Finishes a step from its primitive descriptor: its scratchpad now, its
 * primitive (compiling its kernel) with the others' once the plan is laid
 * out (plan_prims_create). The step owns pd. */
void plan_prim_finish(struct nn_plan *p, struct step *s, dnnl_primitive_desc_t pd)
{
	const dnnl_memory_desc_t *sp = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
	size_t size = sp ? dnnl_memory_desc_get_size(sp) : 0;

	if (size > p->scratch_size)
		p->scratch_size = size;
	dnnl_primitive_kind_t kind;
	if (dnnl_primitive_desc_query(pd, dnnl_query_primitive_kind, 0, &kind) == dnnl_success &&
	    kind == dnnl_convolution && plan_prim_is_ref(pd))
		p->ref_convs++;
	if (size)
		plan_arg_mem(s, DNNL_ARG_SCRATCHPAD, p->scratch_mem);
	s->pd = pd;
}

/* Adds a step copying tv `src` (seen through src_md, or its own layout when
 * NULL) into tv `dst` (whose layout is set), multiplied by scale (int8
 * quantization; 1 for a plain copy). */
static int reorder_view(nn_model *m, struct nn_plan *p, int src, int dst, const dnnl_memory_desc_t *src_md,
			const dnnl_memory_desc_t *dst_md, float scale);

int plan_reorder_scaled(nn_model *m, struct nn_plan *p, int src, int dst, const dnnl_memory_desc_t *src_md,
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
	if (st != dnnl_success || !(s = plan_step_new(p, STEP_PRIM, -1))) {
		nn_fail(NN_ERR_BACKEND, "cannot reorder a tensor (status %d)", (int)st);
		return -1;
	}
	if (src_md != &p->tv[src].md) {
		if (plan_bind_view(m, p, s, DNNL_ARG_SRC, src, src_md) != NN_OK) {
			dnnl_primitive_desc_destroy(pd);
			return -1;
		}
	} else {
		plan_arg_tv(s, DNNL_ARG_SRC, src);
	}
	if (dst_md) {
		if (plan_bind_view(m, p, s, DNNL_ARG_DST, dst, dst_md) != NN_OK) {
			dnnl_primitive_desc_destroy(pd);
			return -1;
		}
	} else {
		plan_arg_tv(s, DNNL_ARG_DST, dst);
	}
	plan_prim_finish(p, s, pd);
	return dst;
}

/* Adds a step copying tv `src` into tv `dst` (whose layout is set). */
int plan_reorder_into(nn_model *m, struct nn_plan *p, int src, int dst, const dnnl_memory_desc_t *src_md)
{
	return plan_reorder_scaled(m, p, src, dst, src_md, 1.0f);
}

/* A new tensor holding tv `src` times scale in layout md (an int8 input). */
int plan_add_quantized(nn_model *m, struct nn_plan *p, int src, const dnnl_memory_desc_t *md, float scale)
{
	int dst;

	plan_tv_default_md(&p->tv[src]);
	if (!p->tv[src].has_md || (dst = plan_tv_new(p, &p->tv[src].t, TV_RUN)) < 0)
		return -1;
	plan_tv_set_md(&p->tv[dst], md);
	return plan_reorder_scaled(m, p, src, dst, NULL, scale);
}

/* The int8 input of a conv that reads a deferred Concat (node cnode, value
 * x): each part is quantized straight into its channels of a new tensor of
 * layout md, so the float concatenation is never written; sic holds the
 * scale of each channel (a part already held as u8 is rescaled, or just
 * copied when the scales agree). */
int plan_add_quantized_concat(nn_model *m, struct nn_plan *p, int cnode, int x, const dnnl_memory_desc_t *md,
			      const float *sic)
{
	const struct nn_node *c = &m->g.nodes[cnode];
	int64_t at = 0;
	int dst;

	if ((dst = plan_tv_new(p, &p->tv[x].t, TV_RUN)) < 0)
		return -1;
	plan_tv_set_md(&p->tv[dst], md);
	for (int i = 0; i < c->n_in; i++) {
		int v = c->in[i];
		dnnl_dims_t dims, offs = {0, at, 0, 0};
		dnnl_memory_desc_t part;
		plan_tv_default_md(&p->tv[v]);
		plan_fill_dims(dims, 4, p->tv[v].t.dims);
		if (!p->tv[v].has_md || dnnl_memory_desc_init_submemory(&part, md, dims, offs) != dnnl_success ||
		    reorder_view(m, p, v, dst, NULL, &part, (p->tv[v].q > 0 ? p->tv[v].q : 1.0f) / sic[at]) < 0)
			return -1;
		at += dims[1];
	}
	return dst;
}

/* Copies tv `src` into a new tensor of layout `md`; returns it or -1. */
int plan_add_reorder(nn_model *m, struct nn_plan *p, int src, const dnnl_memory_desc_t *md)
{
	int dst;

	plan_tv_default_md(&p->tv[src]);
	if (!p->tv[src].has_md)
		return -1;
	if ((dst = plan_tv_new(p, &p->tv[src].t, TV_RUN)) < 0)
		return -1;
	plan_tv_set_md(&p->tv[dst], md);
	return plan_reorder_into(m, p, src, dst, NULL);
}

/* The tv holding value v in layout md, reordering if needed. */
int plan_in_layout(nn_model *m, struct nn_plan *p, int v, const dnnl_memory_desc_t *md)
{
	plan_tv_default_md(&p->tv[v]);
	if (p->tv[v].has_md && dnnl_memory_desc_equal(&p->tv[v].md, md))
		return v;
	return plan_add_reorder(m, p, v, md);
}

/* The tv holding value v row-major. */
int plan_in_plain(nn_model *m, struct nn_plan *p, int v)
{
	dnnl_memory_desc_t md;
	if (plan_is_plain(&p->tv[v]))
		return v;
	if (!plan_plain_md(p->tv[v].t.dtype, p->tv[v].t.rank, p->tv[v].t.dims, &md))
		return -1;
	return plan_add_reorder(m, p, v, &md);
}

/* A dnnl memory for a runtime value or constant: binds tv or const memory. */
nn_status plan_bind_value(nn_model *m, struct nn_plan *p, struct step *s, int arg, int v,
			  const dnnl_memory_desc_t *md_if_const)
{
	if (p->tv[v].kind == TV_CONST) {
		dnnl_memory_t mem;
		nn_status st = plan_const_mem(m, p, md_if_const, p->tv[v].t.data, &mem);
		if (st)
			return st;
		plan_arg_mem(s, arg, mem);
	} else {
		plan_arg_tv(s, arg, v);
	}
	return NN_OK;
}

/* Binds tv v to a primitive argument through descriptor md. */
nn_status plan_bind_view(nn_model *m, struct nn_plan *p, struct step *s, int arg, int v,
			 const dnnl_memory_desc_t *md)
{
	struct view *w;

	if (p->tv[v].kind == TV_CONST)
		return plan_bind_value(m, p, s, arg, v, md);
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
