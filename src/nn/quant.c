/*
 * quant.c - what int8 inference needs besides the kernels: the ranges of
 * the activations seen on calibration photos, their file, and the
 * per-output-channel scales of the weights.
 *
 * Static quantization, symmetric, zero point 0. Every activation a float
 * run produces has a range: one never seen below 0 (it follows a ReLU) is
 * u8 with scale hi / 255, any other s8 with scale max(|lo|, hi) / 127.
 * A convolution's input may join tensors of different scales (a Concat):
 * the plan folds each input channel's scale into the float weights, which
 * are then s8 with one scale per output channel, max |w| / 127.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn/nn_int.h"

#define CALIB_MAGIC "petcut-calibration 2"
#define CALIB_MAGIC_V1 "petcut-calibration 1"

static nn_status calib_alloc(nn_model *m)
{
	if (m->calib)
		return NN_OK;
	m->calib = calloc((size_t)m->g.n_vals + 1, sizeof *m->calib);
	return m->calib ? NN_OK : nn_fail(NN_ERR_NOMEM, "out of memory");
}

void nn_quant_observe(nn_model *m, int v, const float *x, size_t n)
{
	struct nn_calib *c;
	float lo = 0, hi = 0;

	if (!m->calib || v < 0 || v >= m->g.n_vals)
		return;
	for (size_t i = 0; i < n; i++) {
		lo = fminf(lo, x[i]);
		hi = fmaxf(hi, x[i]);
	}
	c = &m->calib[v];
	if (!c->set || lo < c->lo)
		c->lo = lo;
	if (!c->set || hi > c->hi)
		c->hi = hi;
	c->set = true;
}

nn_status nn_model_observe(nn_model *m, const struct nn_tensor *inputs, int n_inputs)
{
	struct nn_tensor *out;
	nn_status st;

	if (!m)
		return nn_fail(NN_ERR_ARG, "no model");
	if ((st = calib_alloc(m)) != NN_OK)
		return st;
	if (!(out = calloc((size_t)m->g.n_outputs + 1, sizeof *out)))
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	m->observing = true;
	st = nn_run_at(m, NN_PRECISION_FP32, inputs, n_inputs, out, m->g.n_outputs);
	m->observing = false;
	for (int i = 0; i < m->g.n_outputs; i++)
		nn_tensor_free(&out[i]);
	free(out);
	return st;
}

bool nn_quant_range(const nn_model *m, int v, float *lo, float *hi)
{
	const struct nn_node *n;
	bool any = false;

	if (!m->calib || v < 0 || v >= m->g.n_vals)
		return false;
	if (m->calib[v].set) {
		*lo = m->calib[v].lo;
		*hi = m->calib[v].hi;
		return true;
	}
	/* a concatenation spans its parts' ranges */
	if (m->g.vals[v].producer < 0 || (n = &m->g.nodes[m->g.vals[v].producer])->op != NN_OP_CONCAT)
		return false;
	for (int i = 0; i < n->n_in; i++) {
		float l, h;
		if (n->in[i] < 0 || n->in[i] == v || !m->calib[n->in[i]].set)
			return false;
		l = m->calib[n->in[i]].lo;
		h = m->calib[n->in[i]].hi;
		*lo = any ? fminf(*lo, l) : l;
		*hi = any ? fmaxf(*hi, h) : h;
		any = true;
	}
	return any;
}

float nn_quant_scale(float lo, float hi, bool is_signed)
{
	float r = is_signed ? fmaxf(-lo, hi) / 127.0f : hi / 255.0f;
	return r > 0 && isfinite(r) ? r : 1.0f;
}

int nn_model_has_calibration(const nn_model *m)
{
	if (!m->calib)
		return false;
	for (int i = 0; i < m->g.n_vals; i++)
		if (m->calib[i].set)
			return true;
	return false;
}

nn_status nn_model_save_calibration(nn_model *m, const char *path)
{
	char tmp[4096];
	FILE *f;
	int bad;

	if (!nn_model_has_calibration(m))
		return nn_fail(NN_ERR_ARG, "nothing observed yet");
	if (snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid()) >= (int)sizeof tmp)
		return nn_fail(NN_ERR_ARG, "path too long");
	if (!(f = fopen(tmp, "w")))
		return nn_fail(NN_ERR_IO, "%s: %s", tmp, strerror(errno));
	fprintf(f, "%s\n", CALIB_MAGIC);
	for (int i = 0; i < m->g.n_vals; i++)
		if (m->calib[i].set && m->g.vals[i].name && *m->g.vals[i].name)
			fprintf(f, "%.9g %.9g %s\n", m->calib[i].lo, m->calib[i].hi, m->g.vals[i].name);
	bad = ferror(f);
	bad |= fflush(f) != 0 || fsync(fileno(f)) != 0;
	bad |= fclose(f) != 0;
	if (bad || rename(tmp, path) != 0) {
		int e = errno;
		unlink(tmp);
		return nn_fail(NN_ERR_IO, "%s: %s", path, strerror(e));
	}
	return NN_OK;
}

nn_status nn_model_load_calibration(nn_model *m, const char *path)
{
	char line[1024];
	nn_status st = NN_OK;
	int n = 0, lineno = 1;
	FILE *f;

	if (!(f = fopen(path, "r")))
		return nn_fail(NN_ERR_IO, "%s: %s", path, strerror(errno));
	if (!fgets(line, sizeof line, f) || strncmp(line, CALIB_MAGIC, strlen(CALIB_MAGIC))) {
		bool old = !strncmp(line, CALIB_MAGIC_V1, strlen(CALIB_MAGIC_V1));
		fclose(f);
		return old ? nn_fail(NN_ERR_PARSE, "%s: made by an older petcut (run petcut model calibrate again)", path)
			   : nn_fail(NN_ERR_PARSE, "%s: not a petcut calibration file", path);
	}
	pthread_mutex_lock(&m->lock);
	if ((st = calib_alloc(m)) == NN_OK) {
		memset(m->calib, 0, sizeof *m->calib * (size_t)m->g.n_vals);
		/* int8 plans and weights used the old ranges */
		nn_plans_free(m);
		nn_quant_forget_weights(m);
	}
	while (st == NN_OK && fgets(line, sizeof line, f)) {
		char name[1024];
		float lo, hi;
		int v;
		lineno++;
		line[strcspn(line, "\n")] = 0;
		if (sscanf(line, "%f %f %1023[^\n]", &lo, &hi, name) != 3 || !isfinite(lo) || !isfinite(hi) || lo > hi) {
			st = nn_fail(NN_ERR_PARSE, "%s:%d: expected 'LO HI NODE'", path, lineno);
			break;
		}
		if ((v = nn_graph_find_value(&m->g, name)) < 0) {
			st = nn_fail(NN_ERR_PARSE, "%s:%d: the model has no tensor '%s'", path, lineno, name);
			break;
		}
		m->calib[v] = (struct nn_calib){.lo = lo, .hi = hi, .set = true};
		n++;
	}
	if (st == NN_OK && ferror(f))
		st = nn_fail(NN_ERR_IO, "%s: read error", path);
	if (st == NN_OK && !n)
		st = nn_fail(NN_ERR_PARSE, "%s: no ranges", path);
	if (st != NN_OK && m->calib)
		memset(m->calib, 0, sizeof *m->calib * (size_t)m->g.n_vals);
	pthread_mutex_unlock(&m->lock);
	fclose(f);
	return st;
}

/* Whether wcache entry e holds int8 weight scales (the weights file keeps
 * them beside the s8 weights they made): one dimension of f32, where a
 * convolution's weights have three or more. */
static bool is_scales(const struct nn_wcache *e)
{
	return e->md.ndims == 1 && e->md.data_type == dnnl_f32;
}

static const struct nn_wcache *scales_entry(const nn_model *m, int node, int64_t oc)
{
	for (const struct nn_wcache *e = m->wcache; e; e = e->next)
		if (e->node == node && e->prec == NN_PRECISION_INT8 && is_scales(e) && e->md.dims[0] == oc)
			return e;
	return NULL;
}

/* A copy of node's scales s (oc of them) in the model's wcache, for the
 * weights file; left out if memory is short (the file then lacks them and
 * a later process makes them again). */
static void keep_scales(nn_model *m, int node, const float *s, int64_t oc)
{
	struct nn_wcache *e;

	if (scales_entry(m, node, oc))
		return;
	if (!(e = calloc(1, sizeof *e)) ||
	    dnnl_memory_desc_init_by_tag(&e->md, 1, (dnnl_dims_t){oc}, dnnl_f32, dnnl_a) != dnnl_success ||
	    !(e->buf = malloc(sizeof *s * (size_t)oc))) {
		free(e);
		return;
	}
	memcpy(e->buf, s, sizeof *s * (size_t)oc);
	e->node = node;
	e->prec = NN_PRECISION_INT8;
	e->next = m->wcache;
	m->wcache = e;
}

const float *nn_quant_weight_scales(nn_model *m, int node, const float *w, int64_t oc, int64_t per_oc,
				    const float *sic, int64_t cin)
{
	int64_t per_ic = cin > 0 ? per_oc / cin : per_oc;
	float *s;

	if (!m->wscales && !(m->wscales = calloc((size_t)m->g.n_nodes + 1, sizeof *m->wscales)))
		return NULL;
	if (m->wscales[node])
		return m->wscales[node];
	/* the weights released: the scales from the weights file, which kept them */
	const struct nn_wcache *kept = w ? NULL : scales_entry(m, node, oc);
	if ((!w && !kept) || !(s = malloc(sizeof *s * (size_t)oc)))
		return NULL;
	if (kept) {
		memcpy(s, kept->buf, sizeof *s * (size_t)oc);
		return m->wscales[node] = s;
	}
	if (per_ic < 1) /* the loop below steps by it */
		per_ic = 1;
	/* (a NaN is passed over, as fmaxf would, without its call a weight) */
#pragma omp parallel for schedule(static) if (oc * per_oc > 65536)
	for (int64_t o = 0; o < oc; o++) {
		float mx = 0;
		for (int64_t i0 = 0; i0 < per_oc; i0 += per_ic) {
			float f = sic ? sic[i0 / per_ic] : 1.0f; /* input channel i0 / per_ic's scale */
			for (int64_t i = i0; i < i0 + per_ic && i < per_oc; i++) {
				float a = fabsf(w[o * per_oc + i]) * f;
				mx = a > mx ? a : mx;
			}
		}
		s[o] = mx > 0 ? mx / 127.0f : 1.0f;
	}
	m->wscales[node] = s;
	keep_scales(m, node, s, oc);
	return s;
}

void nn_quant_forget_weights(nn_model *m)
{
	struct nn_wcache **pw = &m->wcache, *w;

	if (m->wscales)
		for (int i = 0; i < m->g.n_nodes; i++) {
			free(m->wscales[i]);
			m->wscales[i] = NULL;
		}
	while ((w = *pw)) {
		if (w->md.data_type != dnnl_s8 && !(w->prec == NN_PRECISION_INT8 && is_scales(w))) {
			pw = &w->next;
			continue;
		}
		*pw = w->next;
		if (w->mem)
			dnnl_memory_destroy(w->mem);
		if (!w->mapped)
			free(w->buf);
		free(w);
	}
}

void nn_quant_free(nn_model *m)
{
	if (m->wscales)
		for (int i = 0; i < m->g.n_nodes; i++)
			free(m->wscales[i]);
	free(m->wscales);
	free(m->calib);
	m->wscales = NULL;
	m->calib = NULL;
}
