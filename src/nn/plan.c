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
 * that are never alive together share memory. oneDNN's scratchpads and
 * petcut's Winograd convolutions' buffers share one scratch buffer too (the
 * steps run one at a time).
 *
 * This file builds a plan, keeps the model's recent plans and runs them;
 * the lowering, tensors and arena are in plan_*.c (plan_int.h).
 */
#include <inttypes.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nn/plan_int.h"
#include "nn/wino.h"
#include "util/util.h"

/* ===== Building a plan ===== */

static void plan_free(struct nn_plan *p)
{
	if (!p)
		return;
	free(p->hold);
	for (int i = 0; i < p->n_steps; i++) {
		if (p->steps[i].prim)
			dnnl_primitive_destroy(p->steps[i].prim);
		if (p->steps[i].pd)
			dnnl_primitive_desc_destroy(p->steps[i].pd);
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
	free(p->drops);
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

/* Makes every step's primitive from its descriptor: oneDNN compiles one
 * kernel per primitive, each on its own, so they are spread over the
 * threads (a fresh process's planning at 1024 x 1024 bf16: 517 ms against
 * 744 made one by one, on 2 cores). */
static nn_status plan_prims_create(const nn_model *m, struct nn_plan *p)
{
	int failed = -1;

	#pragma omp parallel for schedule(dynamic, 1)
	for (int i = 0; i < p->n_steps; i++) {
		struct step *s = &p->steps[i];
		if (!s->pd)
			continue;
		if (dnnl_primitive_create(&s->prim, s->pd) != dnnl_success) {
			s->prim = NULL;
			#pragma omp critical(plan_prims)
			if (failed < 0 || i < failed)
				failed = i;
		}
		dnnl_primitive_desc_destroy(s->pd);
		s->pd = NULL;
	}
	if (failed >= 0) {
		int node = p->steps[failed].node;
		return nn_fail(NN_ERR_BACKEND, "%s: cannot create the primitive", node >= 0 ? m->g.nodes[node].name : "reorder");
	}
	return NN_OK;
}

static int drop_order(const void *a, const void *b)
{
	const struct plan_drop *x = a, *y = b;
	return (x->step > y->step) - (x->step < y->step);
}

/* The plan's weights that come from the weights file, each with the last
 * step of its node (a node the plan does not run has none). */
static nn_status find_drops(nn_model *m, struct nn_plan *p)
{
	int n = 0;

	for (const struct nn_wcache *w = m->wcache; w; w = w->next)
		n += w->mapped && w->prec == p->precision;
	if (!n)
		return NN_OK;
	if (!(p->drops = calloc((size_t)n, sizeof *p->drops)))
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	for (const struct nn_wcache *w = m->wcache; w; w = w->next) {
		int last = -1;
		if (!w->mapped || w->prec != p->precision)
			continue;
		for (int i = 0; i < p->n_steps; i++)
			if (p->steps[i].node == w->node)
				last = i;
		if (last >= 0)
			p->drops[p->n_drops++] = (struct plan_drop){last, w->buf, dnnl_memory_desc_get_size(&w->md)};
	}
	qsort(p->drops, (size_t)p->n_drops, sizeof *p->drops, drop_order);
	return NN_OK;
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
			if (!(p->in_copy[i] = malloc(bytes + 1)) || !plan_own(p, p->in_copy[i])) {
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
		if (plan_tv_new(p, &w.tv[v], kind) < 0) {
			st = nn_fail(NN_ERR_NOMEM, "out of memory");
			goto fail;
		}
		p->tv[v].t.data = w.tv[v].data;
		if (w.owned[v]) {
			if (!plan_own(p, w.tv[v].data)) {
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
		if ((st = plan_lower_node(m, p, i)) != NN_OK)
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
		if ((o = plan_tv_new(p, &p->tv[v].t, TV_OUT)) < 0) {
			st = nn_fail(NN_ERR_NOMEM, "out of memory");
			goto fail;
		}
		p->tv[o].ext = i;
		p->out_tv[i] = o;
		plan_tv_default_md(&p->tv[o]);
		if (p->tv[v].kind == TV_RUN && p->tv[v].has_md && p->tv[o].has_md) {
			int r = plan_add_reorder(m, p, v, &p->tv[o].md);
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
		if (!(s = plan_step_new(p, STEP_COPY, -1)) || !(s->ins = calloc(1, sizeof *s->ins))) {
			st = nn_fail(NN_ERR_NOMEM, "out of memory");
			goto fail;
		}
		s->n_ins = 1;
		s->ins[0] = v;
		s->outs[0] = o;
		s->n_outs = 1;
	}
	plan_liveness(p);
	if ((st = plan_arena(p)) != NN_OK || (st = plan_prims_create(m, p)) != NN_OK)
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
	if ((st = find_drops(m, p)) != NN_OK)
		goto fail;
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
	nn_wfile_load(m, prec);
	m->building = prec;
	st = plan_build(m, inputs, prec, &p);
	if (st == NN_RELOAD && (st = nn_model_reload_weights(m)) == NN_OK)
		st = plan_build(m, inputs, prec, &p);
	if (st == NN_RELOAD)
		st = nn_fail(NN_ERR_BACKEND, "weights missing after rereading the model");
	if (st != NN_OK)
		return st;
	/* building freed the graph's copies of the weights it reordered (most
	 * of the model, in blocks of a few MB that malloc keeps for reuse once
	 * its mmap threshold has risen): hand those pages back now, or a
	 * one-photo process carries them through the rest of its work */
	malloc_trim(0);
	nn_wfile_save(m, prec);
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

/* ===== Running steps ===== */

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

/* A buffer of activations at least need bytes long (on huge pages: a pass
 * touches all of it, and a fresh process's first pass would otherwise take
 * a page fault every 4 KB of it). */
static nn_status grow_buffer(void **buf, size_t *size, size_t need)
{
	if (need <= *size)
		return NN_OK;
	free(*buf);
	*size = 0;
	if (!(*buf = util_alloc_big(need)))
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
		if (wino_run(s->wino, parts, dst, (int)x->t.dims[0], (int)x->t.dims[2], (int)x->t.dims[3], m->scratch,
			     m->scratch_size))
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

/* ===== Profile ===== */


/* What step s is, for the profile, and a convolution's arithmetic. */
static void step_kind(const nn_model *m, const struct nn_plan *p, const struct step *s, char *what, size_t n,
		      double *gflop)
{
	const struct nn_node *nd = s->node >= 0 ? &m->g.nodes[s->node] : NULL;
	*gflop = 0;
	if (!nd) {
		snprintf(what, n, s->kind == STEP_PRIM ? "layout change" : "copy to the output");
		return;
	}
	if ((nd->op == NN_OP_CONV || nd->op == NN_OP_CONVINTEGER) && nd->n_in > 1 && nd->in[1] >= 0 &&
	    m->g.vals[nd->in[1]].rank == 4) {
		const int64_t *k = m->g.vals[nd->in[1]].dims;
		const struct ptv *o = &p->tv[nd->out[0]];
		*gflop = 2e-9 * (double)nn_numel(o->t.rank, o->t.dims) * (double)(k[1] * k[2] * k[3]);
		snprintf(what, n, "Conv %" PRId64 "x%" PRId64 "%s", k[2], k[3],
			 s->kind == STEP_WINO ? " (petcut Winograd)" : s->kind == STEP_REF ? " (reference)" : "");
		return;
	}
	snprintf(what, n, "%s%s", (unsigned)nd->op < NN_OP_COUNT ? nn_op_names[nd->op] : "?",
		 s->kind == STEP_REF ? " (reference)" : s->kind == STEP_PRIM || s->kind == STEP_WINO ? "" : " (conversion)");
}

static void profile_add(nn_model *m, const struct nn_plan *p, const struct step *s, double ms)
{
	char what[sizeof m->prof[0].what];
	double gflop;
	int i = 0;

	step_kind(m, p, s, what, sizeof what, &gflop);
	while (i < m->n_prof && strcmp(m->prof[i].what, what))
		i++;
	if (i == m->n_prof) {
		if (i == (int)(sizeof m->prof / sizeof m->prof[0]))
			return;
		m->n_prof++;
		m->prof[i] = (struct nn_profile_row){0};
		snprintf(m->prof[i].what, sizeof m->prof[i].what, "%s", what);
	}
	m->prof[i].steps++;
	m->prof[i].ms += ms;
	m->prof[i].gflop += gflop;
}

void nn_model_profile(nn_model *m, int on)
{
	m->profiling = on != 0;
	if (on)
		m->n_prof = m->prof_runs = 0;
}

static int by_time(const void *a, const void *b)
{
	double x = ((const struct nn_profile_row *)a)->ms, y = ((const struct nn_profile_row *)b)->ms;
	return (x < y) - (x > y);
}

int nn_model_profile_rows(const nn_model *m, struct nn_profile_row *rows, int max, int *runs)
{
	struct nn_profile_row all[sizeof m->prof / sizeof m->prof[0]];
	memcpy(all, m->prof, sizeof all[0] * (size_t)m->n_prof);
	qsort(all, (size_t)m->n_prof, sizeof all[0], by_time);
	memcpy(rows, all, sizeof all[0] * (size_t)(max < m->n_prof ? max : m->n_prof));
	*runs = m->prof_runs;
	return m->n_prof;
}

/* ===== Running a plan ===== */

nn_status nn_plan_exec(nn_model *m, struct nn_plan *p, const struct nn_tensor *inputs, struct nn_tensor *outputs)
{
	size_t need = p->arena_size ? p->arena_size : 1, size = 0;
	void *slab;
	nn_status st;

	/* the region the model was decoded into, once a plan keeps all its
	 * weights: already in memory, where a new arena's pages would be made
	 * and zeroed during the pass (slab.c); released if it is not needed */
	if (m->g.slab && (slab = nn_slab_take(&m->g.slab, need > m->arena_size ? need : 0, &size))) {
		free(m->arena);
		m->arena = slab;
		m->arena_size = size;
	}
	if ((st = grow_buffer(&m->arena, &m->arena_size, need)) ||
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
	for (int i = 0, d = 0; i < p->n_steps; i++) {
		const struct step *s = &p->steps[i];
		/* the weights the steps before this one were last to read */
		for (; m->one_pass && d < p->n_drops && p->drops[d].step < i; d++)
			nn_wfile_let_go(p->drops[d].buf, p->drops[d].len);
		double t0 = m->profiling ? util_now_ms() : 0;
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
		} else {
			dnnl_stream_wait(m->stream);
			st = s->kind == STEP_REF ? run_ref(m, p, s, inputs, outputs) : run_helper(m, p, s, inputs, outputs);
			if (st != NN_OK)
				return st;
		}
		if (m->profiling) {
			dnnl_stream_wait(m->stream);
			profile_add(m, p, s, util_now_ms() - t0);
		}
	}
	if (dnnl_stream_wait(m->stream) != dnnl_success)
		return nn_fail(NN_ERR_BACKEND, "oneDNN stream failed");
	m->prof_runs += m->profiling;
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
		out->ref_convs = p->ref_convs;
		for (int i = 0; i < p->n_tv; i++)
			if (p->tv[i].kind == TV_RUN && p->tv[i].first >= 0)
				out->tensor_bytes += p->tv[i].bytes;
		for (const struct nn_wcache *w = m->wcache; w; w = w->next) {
			out->weight_bytes += dnnl_memory_desc_get_size(&w->md);
			out->weights_from_file += w->mapped;
		}
		out->weights_file_read = out->weights_from_file && m->wread[p->precision];
	}
	pthread_mutex_unlock(&m->lock);
	return p ? NN_OK : nn_fail(NN_ERR_ARG, "the model has not run yet");
}
