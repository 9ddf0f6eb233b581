/*
 * passes.c - the graph IR's helpers and the passes that run once at load:
 *
 *   1. element types of every value;
 *   2. fp16 promotion: a graph whose activations are fp16 between casts
 *      (ISNet's "medium" export) computes in fp32; fp16 constants are widened
 *      (a convolution's weights when a plan reorders them) and the casts
 *      between the two become no-ops;
 *   3. no-op removal (Identity, same-type Cast);
 *   4. constant folding of everything computed from constants alone;
 *   5. size generalisation: a Resize whose target size was frozen into the
 *      graph at export takes it from the tensor it is joined with, so the
 *      model runs at any input size;
 *   6. fusion of Conv with following Relu/Sigmoid/Add into oneDNN post-ops;
 *   7. dead-node removal.
 *
 * The shape walk (nn_graph_walk), shared with plan.c, is here too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn_int.h"

/* ===== Values, nodes, names ===== */

static uint32_t name_hash(const char *s)
{
	uint32_t h = 2166136261u;
	while (*s)
		h = (h ^ (uint8_t)*s++) * 16777619u;
	return h;
}

static bool hash_insert(struct nn_graph *g, int v)
{
	if (2 * (g->n_vals + 1) > g->hash_cap) {
		int cap = g->hash_cap ? 2 * g->hash_cap : 1024;
		int *h = calloc((size_t)cap, sizeof *h);
		if (!h)
			return false;
		free(g->hash);
		g->hash = h;
		g->hash_cap = cap;
		for (int i = 0; i < g->n_vals; i++)
			if (i != v && g->vals[i].name)
				hash_insert(g, i);
	}
	uint32_t i = name_hash(g->vals[v].name) & (uint32_t)(g->hash_cap - 1);
	while (g->hash[i])
		i = (i + 1) & (uint32_t)(g->hash_cap - 1);
	g->hash[i] = v + 1;
	return true;
}

int nn_graph_find_value(const struct nn_graph *g, const char *name)
{
	if (!g->hash_cap)
		return -1;
	for (uint32_t i = name_hash(name) & (uint32_t)(g->hash_cap - 1); g->hash[i];
	     i = (i + 1) & (uint32_t)(g->hash_cap - 1))
		if (!strcmp(g->vals[g->hash[i] - 1].name, name))
			return g->hash[i] - 1;
	return -1;
}

int nn_graph_add_value(struct nn_graph *g, const char *name, nn_dtype dt)
{
	if (g->n_vals == g->cap_vals) {
		int cap = g->cap_vals ? 2 * g->cap_vals : 256;
		struct nn_value *v = realloc(g->vals, sizeof *v * (size_t)cap);
		if (!v)
			return -1;
		g->vals = v;
		g->cap_vals = cap;
	}
	struct nn_value *v = &g->vals[g->n_vals];
	memset(v, 0, sizeof *v);
	v->name = strdup(name);
	v->dtype = dt;
	v->rank = -1;
	v->producer = -1;
	if (!v->name)
		return -1;
	g->n_vals++;
	if (!hash_insert(g, g->n_vals - 1))
		return -1;
	return g->n_vals - 1;
}

int nn_graph_add_node(struct nn_graph *g, enum nn_op op, const char *name, int n_in, int n_out)
{
	if (g->n_nodes == g->cap_nodes) {
		int cap = g->cap_nodes ? 2 * g->cap_nodes : 256;
		struct nn_node *n = realloc(g->nodes, sizeof *n * (size_t)cap);
		if (!n)
			return -1;
		g->nodes = n;
		g->cap_nodes = cap;
	}
	struct nn_node *n = &g->nodes[g->n_nodes];
	memset(n, 0, sizeof *n);
	n->op = op;
	n->name = strdup(name);
	n->n_in = n_in;
	n->n_out = n_out;
	n->in = calloc((size_t)n_in + 1, sizeof *n->in);
	n->out = calloc((size_t)n_out + 1, sizeof *n->out);
	if (!n->name || !n->in || !n->out) {
		free(n->name);
		free(n->in);
		free(n->out);
		return -1;
	}
	for (int i = 0; i < n_in; i++)
		n->in[i] = -1;
	for (int i = 0; i < n_out; i++)
		n->out[i] = -1;
	return g->n_nodes++;
}

void nn_graph_free(struct nn_graph *g)
{
	for (int i = 0; i < g->n_vals; i++) {
		free(g->vals[i].name);
		nn_data_free(g->vals[i].data);
	}
	for (int i = 0; i < g->n_nodes; i++) {
		free(g->nodes[i].name);
		free(g->nodes[i].in);
		free(g->nodes[i].out);
	}
	for (int i = 0; i < g->n_outputs; i++)
		free(g->outputs[i].name);
	free(g->vals);
	free(g->nodes);
	free(g->inputs);
	free(g->in_info);
	free(g->in_value);
	free(g->outputs);
	free(g->hash);
	nn_slab_close(g->slab);
	memset(g, 0, sizeof *g);
}

int nn_graph_count_uses(const struct nn_graph *g, int value)
{
	int uses = 0;
	for (int i = 0; i < g->n_nodes; i++) {
		const struct nn_node *n = &g->nodes[i];
		if (n->dead)
			continue;
		for (int j = 0; j < n->n_in; j++)
			uses += n->in[j] == value;
		for (int j = 0; j < n->n_post; j++)
			uses += n->post[j].value == value;
	}
	return uses;
}

bool nn_graph_is_output(const struct nn_graph *g, int value)
{
	for (int i = 0; i < g->n_outputs; i++)
		if (g->outputs[i].value == value)
			return true;
	return false;
}

bool nn_graph_only_conv_weights(const struct nn_graph *g, int v)
{
	bool read = false;

	if (nn_graph_is_output(g, v))
		return false;
	for (int i = 0; i < g->n_nodes; i++) {
		const struct nn_node *n = &g->nodes[i];
		if (n->dead)
			continue;
		for (int j = 0; j < n->n_in; j++)
			if (n->in[j] == v) {
				if (n->op != NN_OP_CONV || j != 1)
					return false;
				read = true;
			}
		for (int j = 0; j < n->n_post; j++)
			if (n->post[j].value == v)
				return false;
	}
	return read;
}

bool nn_graph_is_input(const struct nn_graph *g, int value)
{
	for (int i = 0; i < g->n_inputs; i++)
		if (g->inputs[i] == value)
			return true;
	return false;
}

/* Points every use of value `from` (node inputs, post-ops, graph outputs)
 * at value `to`. */
static void replace_uses(struct nn_graph *g, int from, int to)
{
	for (int i = 0; i < g->n_nodes; i++) {
		struct nn_node *n = &g->nodes[i];
		for (int j = 0; j < n->n_in; j++)
			if (n->in[j] == from)
				n->in[j] = to;
		for (int j = 0; j < n->n_post; j++)
			if (n->post[j].value == from)
				n->post[j].value = to;
	}
	for (int i = 0; i < g->n_outputs; i++)
		if (g->outputs[i].value == from)
			g->outputs[i].value = to;
}

/* The single live node that reads value v, or -1 (none, several, or v is a
 * graph output). */
static int sole_consumer(const struct nn_graph *g, int v)
{
	int found = -1;
	if (nn_graph_is_output(g, v))
		return -1;
	for (int i = 0; i < g->n_nodes; i++) {
		const struct nn_node *n = &g->nodes[i];
		int uses = 0;
		if (n->dead)
			continue;
		for (int j = 0; j < n->n_in; j++)
			uses += n->in[j] == v;
		for (int j = 0; j < n->n_post; j++)
			uses += n->post[j].value == v;
		if (uses > 1 || (uses && found >= 0))
			return -1;
		if (uses)
			found = i;
	}
	return found;
}

/* ===== 1. Element types ===== */

static void infer_types(struct nn_graph *g)
{
	for (int i = 0; i < g->n_nodes; i++) {
		struct nn_node *n = &g->nodes[i];
		nn_dtype t = n->in[0] >= 0 ? g->vals[n->in[0]].dtype : NN_DTYPE_UNDEFINED;
		if (n->dead)
			continue;
		switch (n->op) {
		case NN_OP_CAST: t = n->a.to; break;
		case NN_OP_SHAPE: t = NN_DTYPE_I64; break;
		case NN_OP_CONVINTEGER: t = NN_DTYPE_I32; break;
		case NN_OP_DQL:
			g->vals[n->out[1]].dtype = NN_DTYPE_F32;
			g->vals[n->out[2]].dtype = NN_DTYPE_U8;
			t = NN_DTYPE_U8;
			break;
		default: break;
		}
		g->vals[n->out[0]].dtype = t;
	}
}

/* ===== 2. fp16 promotion ===== */

static nn_status promote_fp16(struct nn_graph *g)
{
	bool any = false;

	/* promotion keeps the declared signature: each fp16 output must be made
	 * by a Cast, which stays a real cast */
	for (int i = 0; i < g->n_outputs; i++) {
		const struct nn_value *v = &g->vals[g->outputs[i].value];
		if (v->dtype == NN_DTYPE_F16 && (v->producer < 0 || g->nodes[v->producer].op != NN_OP_CAST))
			return NN_OK;
	}
	for (int v = 0; v < g->n_vals; v++) {
		struct nn_value *val = &g->vals[v];
		if (val->dtype != NN_DTYPE_F16 || nn_graph_is_input(g, v) || nn_graph_is_output(g, v))
			continue;
		any = true;
		/* a convolution's weights stay fp16: a plan widens them as it
		 * reorders them, and one that finds them reordered already (a
		 * weights file) never does, so they are never held at full size */
		if (val->data && nn_graph_only_conv_weights(g, v))
			continue;
		if (val->data) {
			int64_t cnt = nn_numel(val->rank, val->dims);
			float *f = malloc(sizeof *f * (size_t)(cnt ? cnt : 1));
			if (!f)
				return nn_fail(NN_ERR_NOMEM, "out of memory");
			nn_f16_to_f32_n(val->data, f, (size_t)cnt);
			nn_data_free(val->data);
			val->data = f;
		}
		val->dtype = NN_DTYPE_F32;
	}
	if (!any)
		return NN_OK;
	for (int i = 0; i < g->n_nodes; i++) {
		struct nn_node *n = &g->nodes[i];
		if (n->op == NN_OP_CAST && n->a.to == NN_DTYPE_F16 && g->vals[n->out[0]].dtype == NN_DTYPE_F32)
			n->a.to = NN_DTYPE_F32;
	}
	return NN_OK;
}

/* ===== 3. No-ops ===== */

static void remove_noops(struct nn_graph *g)
{
	for (int i = 0; i < g->n_nodes; i++) {
		struct nn_node *n = &g->nodes[i];
		int in = n->in[0], out = n->out[0];
		if (n->dead || !(n->op == NN_OP_IDENTITY ||
				 (n->op == NN_OP_CAST && g->vals[in].dtype == n->a.to)))
			continue;
		/* a graph input passed straight to an output keeps its node */
		if (nn_graph_is_input(g, in) && nn_graph_is_output(g, out))
			continue;
		if (nn_graph_is_output(g, in) && nn_graph_is_output(g, out))
			continue;
		replace_uses(g, out, in);
		n->dead = true;
	}
}

/* ===== The shape walk ===== */

void nn_walk_free(struct nn_walk *w)
{
	if (w->tv && w->owned)
		for (int i = 0; i < w->n; i++)
			if (w->owned[i])
				free(w->tv[i].data);
	free(w->tv);
	free(w->owned);
	free(w->known);
	memset(w, 0, sizeof *w);
}

bool nn_walk_folds(const struct nn_graph *g, const struct nn_walk *w, const struct nn_node *n)
{
	if (n->op == NN_OP_SHAPE)
		return true;
	if (n->n_post)
		return false;
	for (int j = 0; j < n->n_in; j++)
		if (n->in[j] >= 0 && !w->tv[n->in[j]].data)
			return false;
	return true;
}

nn_status nn_graph_walk(const struct nn_graph *g, const struct nn_tview *inputs, struct nn_walk *w)
{
	const struct nn_tview *ins[64], **inp = ins;
	struct nn_tview outs[4];
	nn_status st = NN_OK;

	memset(w, 0, sizeof *w);
	w->n = g->n_vals;
	w->tv = calloc((size_t)g->n_vals, sizeof *w->tv);
	w->owned = calloc((size_t)g->n_vals, sizeof *w->owned);
	w->known = calloc((size_t)g->n_vals, sizeof *w->known);
	if (!w->tv || !w->owned || !w->known) {
		nn_walk_free(w);
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	}
	for (int v = 0; v < g->n_vals; v++) {
		const struct nn_value *val = &g->vals[v];
		if (!val->data && !val->released) /* released: shape known, data reread when needed */
			continue;
		w->tv[v].dtype = val->dtype;
		w->tv[v].rank = val->rank;
		memcpy(w->tv[v].dims, val->dims, sizeof val->dims);
		w->tv[v].data = val->data;
		w->known[v] = true;
	}
	for (int i = 0; i < g->n_inputs; i++) { /* data only for inputs that decide shapes */
		w->tv[g->inputs[i]] = inputs[i];
		w->known[g->inputs[i]] = true;
	}
	for (int i = 0; i < g->n_nodes && st == NN_OK; i++) {
		const struct nn_node *n = &g->nodes[i];
		if (n->dead)
			continue;
		if (n->n_in > 64 && inp == ins) {
			inp = malloc(sizeof *inp * (size_t)n->n_in);
			if (!inp) {
				st = nn_fail(NN_ERR_NOMEM, "out of memory");
				break;
			}
		}
		for (int j = 0; j < n->n_in; j++) {
			if (n->in[j] >= 0 && !w->known[n->in[j]]) {
				st = nn_fail(NN_ERR_PARSE, "node '%s': input '%s' is not computed before it", n->name,
					     g->vals[n->in[j]].name);
				break;
			}
			inp[j] = n->in[j] >= 0 ? &w->tv[n->in[j]] : NULL;
		}
		if (st)
			break;
		memset(outs, 0, sizeof outs);
		if ((st = nn_op_infer(n, inp, outs)) != NN_OK)
			break;
		for (int j = 0; j < n->n_post; j++) {
			const struct nn_postop *p = &n->post[j];
			if (p->value < 0)
				continue;
			const struct nn_tview *o = &outs[0], *a = &w->tv[p->value];
			bool same = a->rank <= o->rank && a->dtype == o->dtype;
			for (int d = 0; same && d < a->rank; d++) {
				int64_t od = o->dims[o->rank - a->rank + d];
				same = a->dims[d] == od || a->dims[d] == 1;
			}
			if (!same) {
				st = nn_fail(NN_ERR_SHAPE, "node '%s': a fused operand does not fit the output", n->name);
				break;
			}
		}
		if (st)
			break;
		bool fold = nn_walk_folds(g, w, n);
		for (int j = 0; j < n->n_out && st == NN_OK; j++) {
			int v = n->out[j];
			if (v < 0)
				continue;
			w->tv[v] = outs[j];
			w->tv[v].data = NULL;
			w->known[v] = true;
			if (fold) {
				size_t bytes = nn_tview_bytes(&outs[j]);
				w->tv[v].data = malloc(bytes ? bytes : 1);
				w->owned[v] = true;
				if (!w->tv[v].data)
					st = nn_fail(NN_ERR_NOMEM, "out of memory");
			}
		}
		if (st == NN_OK && fold) {
			struct nn_tview o[4];
			for (int j = 0; j < n->n_out; j++)
				o[j] = n->out[j] >= 0 ? w->tv[n->out[j]] : outs[j];
			for (int j = 0; j < n->n_out; j++)
				if (n->out[j] < 0 && !(o[j].data = malloc(nn_tview_bytes(&outs[j]) + 1)))
					st = nn_fail(NN_ERR_NOMEM, "out of memory");
			if (st == NN_OK)
				st = nn_op_ref(n, inp, o);
			for (int j = 0; j < n->n_out; j++)
				if (n->out[j] < 0)
					free(o[j].data);
		}
	}
	if (inp != ins)
		free(inp);
	if (st != NN_OK)
		nn_walk_free(w);
	return st;
}

/* ===== 4. Constant folding ===== */

/* Folds nodes whose inputs are all constants into constants. */
static nn_status fold_constants(struct nn_graph *g)
{
	for (int i = 0; i < g->n_nodes; i++) {
		struct nn_node *n = &g->nodes[i];
		const struct nn_tview *ins[64];
		struct nn_tview in_tv[64], outs[4];
		bool all = n->n_in <= 64 && n->op != NN_OP_SHAPE;
		nn_status st;

		if (n->dead)
			continue;
		for (int j = 0; all && j < n->n_in; j++)
			all = n->in[j] < 0 || g->vals[n->in[j]].data;
		if (!all)
			continue;
		for (int j = 0; j < n->n_in; j++) {
			const struct nn_value *v = n->in[j] >= 0 ? &g->vals[n->in[j]] : NULL;
			ins[j] = NULL;
			if (!v)
				continue;
			in_tv[j] = (struct nn_tview){v->dtype, v->rank, {0}, v->data};
			memcpy(in_tv[j].dims, v->dims, sizeof v->dims);
			ins[j] = &in_tv[j];
		}
		memset(outs, 0, sizeof outs);
		if ((st = nn_op_infer(n, ins, outs)) != NN_OK)
			return st;
		for (int j = 0; j < n->n_out; j++) {
			outs[j].data = malloc(nn_tview_bytes(&outs[j]) + 1);
			if (!outs[j].data)
				st = nn_fail(NN_ERR_NOMEM, "out of memory");
		}
		if (st == NN_OK)
			st = nn_op_ref(n, ins, outs);
		for (int j = 0; j < n->n_out; j++) {
			int v = n->out[j];
			if (st != NN_OK || v < 0) {
				free(outs[j].data);
				continue;
			}
			struct nn_value *val = &g->vals[v];
			val->dtype = outs[j].dtype;
			val->rank = outs[j].rank;
			memcpy(val->dims, outs[j].dims, sizeof val->dims);
			val->data = outs[j].data;
			val->producer = -1;
		}
		if (st != NN_OK)
			return st;
		n->dead = true;
	}
	return NN_OK;
}

/* ===== Topological order ===== */

/* Reorders live nodes so each comes after the producers of its inputs,
 * keeping the original order where it is free to. */
static nn_status toposort(struct nn_graph *g)
{
	int n = g->n_nodes, done = 0;
	struct nn_node *sorted = malloc(sizeof *sorted * (size_t)(n ? n : 1));
	bool *placed = calloc((size_t)(n ? n : 1), sizeof *placed);
	bool *ready = calloc((size_t)g->n_vals + 1, sizeof *ready);
	int *newidx = malloc(sizeof *newidx * (size_t)(n ? n : 1));

	if (!sorted || !placed || !ready || !newidx) {
		free(sorted);
		free(placed);
		free(ready);
		free(newidx);
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	}
	for (int v = 0; v < g->n_vals; v++)
		ready[v] = g->vals[v].producer < 0 || g->nodes[g->vals[v].producer].dead;
	while (done < n) {
		bool progress = false;
		for (int i = 0; i < n; i++) {
			struct nn_node *nd = &g->nodes[i];
			bool ok = !placed[i];
			for (int j = 0; ok && j < nd->n_in; j++)
				ok = nd->in[j] < 0 || ready[nd->in[j]];
			for (int j = 0; ok && j < nd->n_post; j++)
				ok = nd->post[j].value < 0 || ready[nd->post[j].value];
			if (!ok && !nd->dead)
				continue;
			if (placed[i])
				continue;
			newidx[i] = done;
			sorted[done++] = *nd;
			placed[i] = true;
			progress = true;
			for (int j = 0; j < nd->n_out; j++)
				if (nd->out[j] >= 0)
					ready[nd->out[j]] = true;
		}
		if (!progress) {
			free(sorted);
			free(placed);
			free(ready);
			free(newidx);
			return nn_fail(NN_ERR_PARSE, "the graph has a cycle");
		}
	}
	if (n)
		memcpy(g->nodes, sorted, sizeof *sorted * (size_t)n);
	for (int v = 0; v < g->n_vals; v++)
		if (g->vals[v].producer >= 0)
			g->vals[v].producer = newidx[g->vals[v].producer];
	free(sorted);
	free(placed);
	free(ready);
	free(newidx);
	return NN_OK;
}

/* ===== 5. Size generalisation ===== */

/* Marks every value computed from node r's outputs (nodes are sorted). */
static void mark_downstream(const struct nn_graph *g, int r, bool *down)
{
	memset(down, 0, sizeof *down * (size_t)g->n_vals);
	for (int j = 0; j < g->nodes[r].n_out; j++)
		if (g->nodes[r].out[j] >= 0)
			down[g->nodes[r].out[j]] = true;
	for (int i = r + 1; i < g->n_nodes; i++) {
		const struct nn_node *n = &g->nodes[i];
		bool hit = false;
		if (n->dead)
			continue;
		for (int j = 0; j < n->n_in && !hit; j++)
			hit = n->in[j] >= 0 && down[n->in[j]];
		for (int j = 0; hit && j < n->n_out; j++)
			if (n->out[j] >= 0)
				down[n->out[j]] = true;
	}
}

/* Finds the tensor whose height and width a Resize's output must match. */
static int resize_partner(const struct nn_graph *g, const struct nn_walk *w, int r, bool *down)
{
	int out = g->nodes[r].out[0];
	const struct nn_tview *o = &w->tv[out];

	for (int i = 0; i < g->n_nodes; i++) {
		const struct nn_node *n = &g->nodes[i];
		if (n->dead || (n->op != NN_OP_CONCAT && n->op != NN_OP_ADD))
			continue;
		bool uses = false;
		for (int j = 0; j < n->n_in; j++)
			uses |= n->in[j] == out;
		if (!uses)
			continue;
		for (int j = 0; j < n->n_in; j++) {
			int t = n->in[j];
			if (t < 0 || t == out || g->vals[t].data || !w->known[t] || w->tv[t].rank != 4)
				continue;
			if (w->tv[t].dims[2] == o->dims[2] && w->tv[t].dims[3] == o->dims[3] && !down[t])
				return t;
		}
	}
	for (int i = 0; i < g->n_inputs; i++) {
		int t = g->inputs[i];
		if (w->tv[t].rank == 4 && w->tv[t].dims[2] == o->dims[2] && w->tv[t].dims[3] == o->dims[3])
			return t;
	}
	return -1;
}

static nn_status generalise_sizes(struct nn_graph *g)
{
	struct nn_tview in[64];
	struct nn_walk w;
	int n_nodes = g->n_nodes;
	bool changed = false;

	if (g->n_inputs > 64)
		return NN_OK;
	for (int i = 0; i < g->n_inputs; i++) {
		const struct nn_tensor_info *ti = &g->in_info[i];
		in[i] = (struct nn_tview){.dtype = ti->dtype, .rank = ti->rank};
		int64_t numel = 1;
		for (int d = 0; d < ti->rank; d++) {
			if (ti->dims[d] < 0 || __builtin_mul_overflow(numel, ti->dims[d], &numel) || numel > (1 << 30))
				return NN_OK; /* no static shapes to learn from */
			in[i].dims[d] = ti->dims[d];
		}
	}
	if (nn_graph_walk(g, in, &w) != NN_OK)
		return NN_OK; /* the plan will report what is wrong */
	bool *down = malloc(sizeof *down * (size_t)(g->n_vals + 3 * g->n_nodes + 1)); /* room for the new values */
	if (!down) {
		nn_walk_free(&w);
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	}
	for (int r = 0; r < n_nodes; r++) {
		struct nn_node *n = &g->nodes[r];
		char name[96];
		int partner, s1, s2, sizes, k;

		if (n->dead || n->op != NN_OP_RESIZE || n->a.resize.v10 || w.tv[n->in[0]].rank != 4)
			continue;
		if (w.tv[n->out[0]].dims[0] != w.tv[n->in[0]].dims[0] || w.tv[n->out[0]].dims[1] != w.tv[n->in[0]].dims[1])
			continue;
		mark_downstream(g, r, down);
		if ((partner = resize_partner(g, &w, r, down)) < 0)
			continue;
		/* sizes = concat(shape(x)[0:2], shape(partner)[2:4]) */
		int x = n->in[0];
		char n1[112], n2[112];
		snprintf(name, sizeof name, "petcut.sizes.%d", r);
		snprintf(n1, sizeof n1, "%s.lead", name);
		snprintf(n2, sizeof n2, "%s.spatial", name);
		if ((s1 = nn_graph_add_value(g, n1, NN_DTYPE_I64)) < 0 ||
		    (s2 = nn_graph_add_value(g, n2, NN_DTYPE_I64)) < 0 ||
		    (sizes = nn_graph_add_value(g, name, NN_DTYPE_I64)) < 0)
			goto nomem;
		if ((k = nn_graph_add_node(g, NN_OP_SHAPE, name, 1, 1)) < 0)
			goto nomem;
		g->nodes[k].in[0] = x;
		g->nodes[k].out[0] = s1;
		g->nodes[k].a.shape.start = 0;
		g->nodes[k].a.shape.end = 2;
		g->nodes[k].a.shape.has_end = true;
		g->vals[s1].producer = k;
		if ((k = nn_graph_add_node(g, NN_OP_SHAPE, name, 1, 1)) < 0)
			goto nomem;
		g->nodes[k].in[0] = partner;
		g->nodes[k].out[0] = s2;
		g->nodes[k].a.shape.start = 2;
		g->nodes[k].a.shape.end = 4;
		g->nodes[k].a.shape.has_end = true;
		g->vals[s2].producer = k;
		if ((k = nn_graph_add_node(g, NN_OP_CONCAT, name, 2, 1)) < 0)
			goto nomem;
		g->nodes[k].in[0] = s1;
		g->nodes[k].in[1] = s2;
		g->nodes[k].out[0] = sizes;
		g->nodes[k].a.axis = 0;
		g->vals[sizes].producer = k;
		n = &g->nodes[r];
		if (n->n_in < 4) {
			int *in2 = realloc(n->in, sizeof *in2 * 5);
			if (!in2)
				goto nomem;
			n->in = in2;
			for (int j = n->n_in; j < 4; j++)
				n->in[j] = -1;
			n->n_in = 4;
		}
		n->in[2] = -1; /* scales, if any, are replaced by sizes */
		n->in[3] = sizes;
		changed = true;
	}
	nn_walk_free(&w);
	free(down);
	return changed ? toposort(g) : NN_OK;
nomem:
	nn_walk_free(&w);
	free(down);
	return nn_fail(NN_ERR_NOMEM, "out of memory");
}

/* ===== 6. Fusion ===== */

static void fuse_conv(struct nn_graph *g)
{
	for (int i = 0; i < g->n_nodes; i++) {
		struct nn_node *n = &g->nodes[i];
		if (n->dead || (n->op != NN_OP_CONV && n->op != NN_OP_CONVINTEGER))
			continue;
		if (n->op == NN_OP_CONVINTEGER) {
			/* ConvInteger then Cast to float: the float convolution that
			 * computes it gives the float directly */
			int c = sole_consumer(g, n->out[0]);
			if (c < 0 || g->nodes[c].op != NN_OP_CAST || g->nodes[c].a.to != NN_DTYPE_F32)
				continue;
			n->float_out = true;
			n->out[0] = g->nodes[c].out[0];
			g->vals[n->out[0]].producer = i;
			g->nodes[c].dead = true;
		}
		for (;;) {
			int out = n->out[0], c = sole_consumer(g, out);
			if (c < 0 || n->n_post == NN_MAX_POST)
				break;
			struct nn_node *m = &g->nodes[c];
			struct nn_postop p = {.value = -1};
			if (m->op == NN_OP_RELU || m->op == NN_OP_SIGMOID) {
				p.kind = m->op == NN_OP_RELU ? NN_POST_RELU : NN_POST_SIGMOID;
			} else if (m->op == NN_OP_ADD || m->op == NN_OP_MUL) {
				int other = m->in[0] == out ? m->in[1] : m->in[0];
				int prod = g->vals[other].producer;
				/* the operand must exist when the conv runs, and be another tensor */
				if (other == out || (prod >= 0 && prod > i) || g->vals[other].dtype != NN_DTYPE_F32)
					break;
				p.kind = m->op == NN_OP_ADD ? NN_POST_ADD : NN_POST_MUL;
				p.value = other;
			} else {
				break;
			}
			n->post[n->n_post++] = p;
			n->out[0] = m->out[0];
			g->vals[m->out[0]].producer = i;
			m->dead = true;
		}
	}
}

/* ===== 7. Dead nodes ===== */

void nn_graph_remove_dead(struct nn_graph *g)
{
	bool *live = calloc((size_t)g->n_vals + 1, sizeof *live);
	if (!live)
		return; /* nothing removed: still correct */
	for (int i = 0; i < g->n_outputs; i++)
		live[g->outputs[i].value] = true;
	for (int i = g->n_nodes - 1; i >= 0; i--) {
		struct nn_node *n = &g->nodes[i];
		bool needed = false;
		if (n->dead)
			continue;
		for (int j = 0; j < n->n_out; j++)
			needed |= n->out[j] >= 0 && live[n->out[j]];
		if (!needed) {
			n->dead = true;
			continue;
		}
		for (int j = 0; j < n->n_in; j++)
			if (n->in[j] >= 0)
				live[n->in[j]] = true;
		for (int j = 0; j < n->n_post; j++)
			if (n->post[j].value >= 0)
				live[n->post[j].value] = true;
	}
	for (int v = 0; v < g->n_vals; v++)
		if (!live[v] && g->vals[v].data) {
			nn_data_free(g->vals[v].data);
			g->vals[v].data = NULL;
		}
	free(live);
}

/* ===== Inputs that decide shapes ===== */

/* Finds the graph inputs whose values (not only shapes) decide the shapes of
 * other tensors: those reaching Reshape's shape, Resize's scales or sizes or
 * Slice's bounds. Plans are made for their values. */
static nn_status mark_value_inputs(struct nn_graph *g)
{
	bool *need = calloc((size_t)g->n_vals + 1, sizeof *need);
	free(g->in_value);
	g->in_value = calloc((size_t)g->n_inputs + 1, sizeof *g->in_value);
	if (!need || !g->in_value) {
		free(need);
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	}
	for (int i = g->n_nodes - 1; i >= 0; i--) {
		const struct nn_node *n = &g->nodes[i];
		bool all = false;
		if (n->dead)
			continue;
		for (int j = 0; j < n->n_out; j++)
			all |= n->out[j] >= 0 && need[n->out[j]];
		for (int j = 0; j < n->n_in; j++) {
			bool port = (n->op == NN_OP_RESHAPE && j == 1) || (n->op == NN_OP_RESIZE && j >= 1) ||
				    (n->op == NN_OP_SLICE && j >= 1);
			if (n->in[j] >= 0 && (all || port) && n->op != NN_OP_SHAPE)
				need[n->in[j]] = true;
		}
	}
	for (int i = 0; i < g->n_inputs; i++)
		g->in_value[i] = need[g->inputs[i]];
	free(need);
	return NN_OK;
}

nn_status nn_graph_optimize(struct nn_graph *g)
{
	nn_status st;

	if ((st = toposort(g)) != NN_OK)
		return st;
	infer_types(g);
	if ((st = promote_fp16(g)) != NN_OK)
		return st;
	remove_noops(g);
	nn_graph_remove_dead(g);
	if ((st = fold_constants(g)) != NN_OK)
		return st;
	if ((st = generalise_sizes(g)) != NN_OK)
		return st;
	fuse_conv(g);
	nn_graph_remove_dead(g);
	return mark_value_inputs(g);
}
