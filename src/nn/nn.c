/*
 * nn.c - the public face of the nn module: errors, loading, inspection and
 * runs. The heavy lifting is in onnx_load.c, passes.c and plan.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nn/nn_int.h"

/* ===== Errors ===== */

_Thread_local struct util_err nn_err;

const char *nn_errmsg(void)
{
	return nn_err.msg;
}

const char *nn_strerror(nn_status st)
{
	/* by -st, in nn_status's order */
	static const char *const texts[] = {"ok", "out of memory", "cannot read model", "not a valid ONNX model",
					    "unsupported model", "bad input shape", "bad argument", "oneDNN error"};

	return UTIL_STATUS_TEXT(texts, st);
}

/* ===== Small helpers ===== */

size_t nn_dtype_size(nn_dtype t)
{
	switch (t) {
	case NN_DTYPE_F32: case NN_DTYPE_I32: return 4;
	case NN_DTYPE_U8: case NN_DTYPE_I8: case NN_DTYPE_BOOL: return 1;
	case NN_DTYPE_I64: case NN_DTYPE_F64: return 8;
	case NN_DTYPE_F16: return 2;
	default: return 0;
	}
}

int64_t nn_numel(int rank, const int64_t *dims)
{
	int64_t n = 1;
	for (int i = 0; i < rank; i++)
		n *= dims[i];
	return n;
}

int64_t nn_tensor_numel(const struct nn_tensor *t)
{
	return nn_numel(t->rank, t->dims);
}

void nn_tensor_free(struct nn_tensor *t)
{
	if (!t)
		return;
	free(t->data);
	memset(t, 0, sizeof *t);
}

void nn_set_threads(int n)
{
	if (n <= 0) {
		long c = sysconf(_SC_NPROCESSORS_ONLN);
		n = c > 0 ? (int)c : 1;
	}
	omp_set_num_threads(n);
}

/* ===== Loading ===== */

static nn_status model_init(nn_model *m)
{
	if (dnnl_engine_create(&m->engine, dnnl_cpu, 0) != dnnl_success)
		return nn_fail(NN_ERR_BACKEND, "cannot create the oneDNN CPU engine");
	if (dnnl_stream_create(&m->stream, m->engine, dnnl_stream_default_flags) != dnnl_success)
		return nn_fail(NN_ERR_BACKEND, "cannot create a oneDNN stream");
	pthread_mutex_init(&m->lock, NULL);
	return NN_OK;
}

static nn_status fill_out_info(nn_model *m)
{
	free(m->out_info);
	m->out_info = calloc(m->g.n_outputs ? m->g.n_outputs : 1, sizeof *m->out_info);
	if (!m->out_info)
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	for (int i = 0; i < m->g.n_outputs; i++) {
		const struct nn_value *v = &m->g.vals[m->g.outputs[i].value];
		struct nn_tensor_info *t = &m->out_info[i];
		t->name = m->g.outputs[i].name;
		t->dtype = v->dtype;
		t->rank = v->rank < 0 ? 0 : v->rank;
		for (int d = 0; d < t->rank; d++)
			t->dims[d] = v->dims[d];
	}
	return NN_OK;
}

/* The model around a graph that nn_onnx_load filled (taken over, freed on failure). */
static nn_status model_from_graph(nn_model *m)
{
	nn_status st;

	if ((st = nn_graph_optimize(&m->g)) != NN_OK || (st = fill_out_info(m)) != NN_OK ||
	    (st = model_init(m)) != NN_OK) {
		nn_graph_free(&m->g);
		free(m->out_info);
		if (m->stream)
			dnnl_stream_destroy(m->stream);
		if (m->engine)
			dnnl_engine_destroy(m->engine);
		free(m->src_path);
		free(m);
		return st;
	}
	return NN_OK;
}

nn_status nn_model_load_memory(const void *buf, size_t len, nn_model **out)
{
	nn_status st;
	nn_model *m;

	*out = NULL;
	if (!buf || !len)
		return nn_fail(NN_ERR_ARG, "empty model buffer");
	m = calloc(1, sizeof *m);
	if (!m)
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	if ((st = nn_onnx_load(buf, len, &m->g)) != NN_OK) {
		nn_graph_free(&m->g);
		free(m);
		return st;
	}
	if ((st = model_from_graph(m)) != NN_OK)
		return st;
	*out = m;
	return NN_OK;
}

/* Decodes the ONNX file at path into g (not yet optimized); *sb gets the
 * file's identity. The mapping is gone before the graph is rewritten, so the
 * file's bytes and the promoted weights are never held together. */
static nn_status graph_from_file(const char *path, struct nn_graph *g, struct stat *sb)
{
	void *map;
	nn_status st;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return nn_fail(NN_ERR_IO, "%s: %s", path, strerror(errno));
	if (fstat(fd, sb) < 0 || !S_ISREG(sb->st_mode) || sb->st_size == 0) {
		close(fd);
		return nn_fail(NN_ERR_IO, "%s: not a regular non-empty file", path);
	}
	map = mmap(NULL, (size_t)sb->st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		return nn_fail(NN_ERR_IO, "%s: %s", path, strerror(errno));
	st = nn_onnx_load(map, (size_t)sb->st_size, g);
	munmap(map, (size_t)sb->st_size);
	return st;
}

/* Prefixes the last error message with the model's path. */
static nn_status fail_with_path(nn_status st, const char *path)
{
	char msg[sizeof nn_err.msg];

	if (st == NN_ERR_NOMEM || !strncmp(nn_err.msg, path, strlen(path)))
		return st;
	snprintf(msg, sizeof msg, "%s", nn_err.msg);
	return nn_fail(st, "%s: %s", path, msg);
}

nn_status nn_model_load_file(const char *path, nn_model **out)
{
	nn_status st;
	nn_model *m;

	*out = NULL;
	m = calloc(1, sizeof *m);
	if (!m)
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	if ((st = graph_from_file(path, &m->g, &m->src_stat)) != NN_OK) {
		nn_graph_free(&m->g);
		free(m);
		return fail_with_path(st, path);
	}
	if (!(m->src_path = strdup(path))) {
		nn_graph_free(&m->g);
		free(m);
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	}
	if ((st = model_from_graph(m)) != NN_OK)
		return fail_with_path(st, path);
	*out = m;
	return NN_OK;
}

nn_status nn_model_reload_weights(nn_model *m)
{
	struct nn_graph g2 = {0};
	struct stat sb;
	nn_status st;

	if (!m->src_path)
		return nn_fail(NN_ERR_BACKEND, "released weights and no file to reread");
	if ((st = graph_from_file(m->src_path, &g2, &sb)) == NN_OK &&
	    (sb.st_ino != m->src_stat.st_ino || sb.st_dev != m->src_stat.st_dev ||
	     sb.st_size != m->src_stat.st_size || sb.st_mtim.tv_sec != m->src_stat.st_mtim.tv_sec ||
	     sb.st_mtim.tv_nsec != m->src_stat.st_mtim.tv_nsec))
		st = nn_fail(NN_ERR_IO, "the model file changed since it was loaded");
	if (st == NN_OK)
		st = nn_graph_optimize(&g2);
	/* the same file through the same passes gives the same values, in the
	 * same order; each one taken back is checked against what it replaces */
	for (int v = 0; st == NN_OK && v < m->g.n_vals; v++) {
		struct nn_value *a = &m->g.vals[v], *b = v < g2.n_vals ? &g2.vals[v] : NULL;
		if (!a->released)
			continue;
		if (!b || !b->data || strcmp(a->name, b->name) || a->dtype != b->dtype || a->rank != b->rank ||
		    memcmp(a->dims, b->dims, sizeof a->dims[0] * (size_t)a->rank)) {
			st = nn_fail(NN_ERR_IO, "the model file no longer matches the loaded model ('%s')", a->name);
			break;
		}
		a->data = b->data;
		a->released = false;
		b->data = NULL;
	}
	nn_graph_free(&g2);
	return st == NN_OK ? st : fail_with_path(st, m->src_path);
}

static void wcache_free(struct nn_wcache *w)
{
	while (w) {
		struct nn_wcache *next = w->next;
		if (w->mem)
			dnnl_memory_destroy(w->mem);
		if (!w->mapped)
			free(w->buf);
		free(w);
		w = next;
	}
}

void nn_model_trim(nn_model *m)
{
	pthread_mutex_lock(&m->lock);
	nn_slab_take(&m->g.slab, 0, NULL);
	pthread_mutex_unlock(&m->lock);
}

void nn_model_rest(nn_model *m)
{
	pthread_mutex_lock(&m->lock);
	nn_slab_take(&m->g.slab, 0, NULL); /* once no weight is in it */
	nn_plans_free(m);
	wcache_free(m->wcache);
	m->wcache = NULL;
	free(m->arena);
	m->arena = NULL;
	m->arena_size = 0;
	free(m->scratch);
	m->scratch = NULL;
	m->scratch_size = 0;
	nn_wfile_forget(m);
	pthread_mutex_unlock(&m->lock);
	/* oneDNN's cache of primitives (process-wide) keeps those the plans
	 * made, some 90 MB for ISNet at 1024: emptied by setting its size */
	int cap;
	if (dnnl_get_primitive_cache_capacity(&cap) == dnnl_success && cap > 0) {
		dnnl_set_primitive_cache_capacity(0);
		dnnl_set_primitive_cache_capacity(cap);
	}
	malloc_trim(0); /* the weights were freed in blocks malloc would keep */
}

void nn_model_set_one_pass(nn_model *m, int on)
{
	if (m)
		m->one_pass = on != 0;
}

void nn_model_free(nn_model *m)
{
	if (!m)
		return;
	nn_plans_free(m);
	wcache_free(m->wcache);
	nn_wfile_forget(m);
	free(m->wdir);
	free(m->arena);
	free(m->scratch);
	nn_quant_free(m);
	nn_graph_free(&m->g);
	free(m->out_info);
	free(m->src_path);
	dnnl_stream_destroy(m->stream);
	dnnl_engine_destroy(m->engine);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* ===== Inspection ===== */

int nn_model_num_inputs(const nn_model *m)
{
	return m->g.n_inputs;
}

int nn_model_num_outputs(const nn_model *m)
{
	return m->g.n_outputs;
}

nn_status nn_model_input(const nn_model *m, int i, struct nn_tensor_info *out)
{
	if (i < 0 || i >= m->g.n_inputs)
		return nn_fail(NN_ERR_ARG, "no input %d", i);
	*out = m->g.in_info[i];
	return NN_OK;
}

nn_status nn_model_output(const nn_model *m, int i, struct nn_tensor_info *out)
{
	if (i < 0 || i >= m->g.n_outputs)
		return nn_fail(NN_ERR_ARG, "no output %d", i);
	*out = m->out_info[i];
	return NN_OK;
}

nn_status nn_model_select_outputs(nn_model *m, const char *const *names, int n)
{
	struct nn_graph_output *keep;
	nn_status st = NN_OK;

	if (n <= 0)
		return nn_fail(NN_ERR_ARG, "no outputs selected");
	keep = calloc((size_t)n, sizeof *keep);
	if (!keep)
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	for (int i = 0; i < n; i++) {
		int j;
		for (j = 0; j < m->g.n_outputs; j++)
			if (!strcmp(m->g.outputs[j].name, names[i]))
				break;
		if (j == m->g.n_outputs) {
			free(keep);
			return nn_fail(NN_ERR_ARG, "the model has no output '%s'", names[i]);
		}
		keep[i].value = m->g.outputs[j].value;
		keep[i].name = strdup(names[i]);
		if (!keep[i].name)
			st = NN_ERR_NOMEM;
	}
	pthread_mutex_lock(&m->lock);
	for (int j = 0; j < m->g.n_outputs; j++)
		free(m->g.outputs[j].name);
	free(m->g.outputs);
	m->g.outputs = keep;
	m->g.n_outputs = n;
	nn_plans_free(m);
	nn_graph_remove_dead(&m->g);
	if (st == NN_OK)
		st = fill_out_info(m);
	pthread_mutex_unlock(&m->lock);
	return st == NN_ERR_NOMEM ? nn_fail(st, "out of memory") : st;
}

/* Checks that model m can run at precision p here. */
static nn_status precision_check(const nn_model *m, nn_precision p)
{
	dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();

	if (p != NN_PRECISION_FP32 && p != NN_PRECISION_BF16 && p != NN_PRECISION_INT8)
		return nn_fail(NN_ERR_ARG, "unknown precision %d", (int)p);
	if (p == NN_PRECISION_BF16 && (isa & dnnl_cpu_isa_avx512_core_bf16) != dnnl_cpu_isa_avx512_core_bf16)
		return nn_fail(NN_ERR_UNSUPPORTED, "this CPU has no AVX512_BF16");
	if (p == NN_PRECISION_INT8 && (isa & dnnl_cpu_isa_avx512_core_vnni) != dnnl_cpu_isa_avx512_core_vnni)
		return nn_fail(NN_ERR_UNSUPPORTED, "this CPU has no AVX512_VNNI: no int8");
	if (p == NN_PRECISION_INT8 && !nn_model_has_calibration(m))
		return nn_fail(NN_ERR_UNSUPPORTED, "int8 needs a calibration (petcut model calibrate)");
	return NN_OK;
}

nn_status nn_model_set_precision(nn_model *m, nn_precision p)
{
	nn_status st = precision_check(m, p);

	if (st != NN_OK)
		return st;
	pthread_mutex_lock(&m->lock);
	m->precision = p;
	pthread_mutex_unlock(&m->lock);
	return NN_OK;
}

nn_precision nn_model_precision(const nn_model *m)
{
	return m->precision;
}

/* ===== Runs ===== */

/* Checks the caller's inputs against the model's signature. */
static nn_status check_inputs(const nn_model *m, const struct nn_tensor *inputs, int n_inputs, bool need_data)
{
	if (n_inputs != m->g.n_inputs)
		return nn_fail(NN_ERR_ARG, "expected %d inputs, got %d", m->g.n_inputs, n_inputs);
	for (int i = 0; i < n_inputs; i++) {
		const struct nn_tensor_info *ti = &m->g.in_info[i];
		if (inputs[i].dtype != ti->dtype)
			return nn_fail(NN_ERR_ARG, "input '%s': wrong element type", ti->name);
		if (inputs[i].rank != ti->rank || inputs[i].rank > NN_MAX_RANK)
			return nn_fail(NN_ERR_SHAPE, "input '%s': rank %d, the model takes %d", ti->name,
				       inputs[i].rank, ti->rank);
		for (int d = 0; d < ti->rank; d++)
			if (inputs[i].dims[d] < 0)
				return nn_fail(NN_ERR_SHAPE, "input '%s': dimension %d is %lld", ti->name, d,
					       (long long)inputs[i].dims[d]);
		if ((need_data || m->g.in_value[i]) && !inputs[i].data && nn_tensor_numel(&inputs[i]) > 0)
			return nn_fail(NN_ERR_ARG, "input '%s': no data", ti->name);
	}
	return NN_OK;
}

/* A plan at precision prec, or at the model's when prec is negative. */
static nn_status prepare(nn_model *m, int prec, const struct nn_tensor *inputs, int n_inputs)
{
	struct nn_plan *p;
	nn_status st;

	if (!m)
		return nn_fail(NN_ERR_ARG, "no model");
	if ((prec >= 0 && (st = precision_check(m, (nn_precision)prec)) != NN_OK) ||
	    (st = check_inputs(m, inputs, n_inputs, false)) != NN_OK)
		return st;
	pthread_mutex_lock(&m->lock);
	st = nn_plan_get(m, inputs, prec >= 0 ? (nn_precision)prec : m->precision, &p);
	pthread_mutex_unlock(&m->lock);
	return st;
}

nn_status nn_model_prepare(nn_model *m, const struct nn_tensor *inputs, int n_inputs)
{
	return prepare(m, -1, inputs, n_inputs);
}

nn_status nn_model_prepare_at(nn_model *m, nn_precision prec, const struct nn_tensor *inputs, int n_inputs)
{
	return prepare(m, (int)prec, inputs, n_inputs);
}

/* A run at precision prec, or at the model's when prec is negative. */
static nn_status run(nn_model *m, int prec, const struct nn_tensor *inputs, int n_inputs,
		     struct nn_tensor *outputs, int n_outputs)
{
	struct nn_plan *p;
	nn_status st;

	if (!m || n_outputs != m->g.n_outputs)
		return nn_fail(NN_ERR_ARG, "expected %d outputs", m ? m->g.n_outputs : 0);
	if ((prec >= 0 && (st = precision_check(m, (nn_precision)prec)) != NN_OK) ||
	    (st = check_inputs(m, inputs, n_inputs, true)) != NN_OK)
		return st;
	memset(outputs, 0, sizeof *outputs * (size_t)n_outputs);
	pthread_mutex_lock(&m->lock);
	st = nn_plan_get(m, inputs, prec >= 0 ? (nn_precision)prec : m->precision, &p);
	if (st == NN_OK)
		st = nn_plan_exec(m, p, inputs, outputs);
	pthread_mutex_unlock(&m->lock);
	if (st != NN_OK)
		for (int i = 0; i < n_outputs; i++)
			nn_tensor_free(&outputs[i]);
	return st;
}

nn_status nn_run(nn_model *m, const struct nn_tensor *inputs, int n_inputs, struct nn_tensor *outputs, int n_outputs)
{
	return run(m, -1, inputs, n_inputs, outputs, n_outputs);
}

nn_status nn_run_at(nn_model *m, nn_precision prec, const struct nn_tensor *inputs, int n_inputs,
		    struct nn_tensor *outputs, int n_outputs)
{
	return run(m, (int)prec, inputs, n_inputs, outputs, n_outputs);
}
