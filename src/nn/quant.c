/*
 * quant.c - what int8 inference needs besides the kernels: the ranges of
 * each convolution's input seen on calibration photos, their file, and the
 * per-output-channel scales of the weights.
 *
 * Static quantization, symmetric, zero point 0: a convolution whose input
 * was never seen below 0 (it follows a ReLU) reads it as u8 with scale
 * hi / 255; otherwise as s8 with scale max(|lo|, hi) / 127. Its weights are
 * s8 with one scale per output channel, max |w| / 127. The int8 product,
 * rescaled by s_in * s_w[oc], comes out in float and the fused operations
 * (bias, ReLU, residual sums) run in float as before.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn/nn_int.h"

#define CALIB_MAGIC "petcut-calibration 1"

static nn_status calib_alloc(nn_model *m)
{
	if (m->calib)
		return NN_OK;
	m->calib = calloc((size_t)m->g.n_nodes + 1, sizeof *m->calib);
	return m->calib ? NN_OK : nn_fail(NN_ERR_NOMEM, "out of memory");
}

void nn_quant_observe(nn_model *m, int node, const float *x, size_t n)
{
	struct nn_calib *c;
	float lo = 0, hi = 0;

	if (!m->calib || node < 0 || node >= m->g.n_nodes)
		return;
	for (size_t i = 0; i < n; i++) {
		lo = fminf(lo, x[i]);
		hi = fmaxf(hi, x[i]);
	}
	c = &m->calib[node];
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

bool nn_quant_input(const nn_model *m, int node, float *scale, bool *is_signed)
{
	const struct nn_calib *c;
	float r;

	if (!m->calib || node < 0 || node >= m->g.n_nodes || !m->calib[node].set)
		return false;
	c = &m->calib[node];
	*is_signed = c->lo < 0;
	r = *is_signed ? fmaxf(-c->lo, c->hi) / 127.0f : c->hi / 255.0f;
	*scale = r > 0 && isfinite(r) ? r : 1.0f;
	return true;
}

int nn_model_has_calibration(const nn_model *m)
{
	if (!m->calib)
		return false;
	for (int i = 0; i < m->g.n_nodes; i++)
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
	for (int i = 0; i < m->g.n_nodes; i++)
		if (m->calib[i].set)
			fprintf(f, "%.9g %.9g %s\n", m->calib[i].lo, m->calib[i].hi, m->g.nodes[i].name);
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

/* The node named name, or -1. */
static int node_by_name(const struct nn_graph *g, const char *name)
{
	for (int i = 0; i < g->n_nodes; i++)
		if (!g->nodes[i].dead && !strcmp(g->nodes[i].name, name))
			return i;
	return -1;
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
		fclose(f);
		return nn_fail(NN_ERR_PARSE, "%s: not a petcut calibration file", path);
	}
	pthread_mutex_lock(&m->lock);
	if ((st = calib_alloc(m)) == NN_OK) {
		memset(m->calib, 0, sizeof *m->calib * (size_t)m->g.n_nodes);
		nn_plans_free(m); /* int8 plans used the old ranges */
	}
	while (st == NN_OK && fgets(line, sizeof line, f)) {
		char name[1024];
		float lo, hi;
		int node;
		lineno++;
		line[strcspn(line, "\n")] = 0;
		if (sscanf(line, "%f %f %1023[^\n]", &lo, &hi, name) != 3 || !isfinite(lo) || !isfinite(hi) || lo > hi) {
			st = nn_fail(NN_ERR_PARSE, "%s:%d: expected 'LO HI NODE'", path, lineno);
			break;
		}
		if ((node = node_by_name(&m->g, name)) < 0) {
			st = nn_fail(NN_ERR_PARSE, "%s:%d: the model has no node '%s'", path, lineno, name);
			break;
		}
		m->calib[node] = (struct nn_calib){.lo = lo, .hi = hi, .set = true};
		n++;
	}
	if (st == NN_OK && ferror(f))
		st = nn_fail(NN_ERR_IO, "%s: read error", path);
	if (st == NN_OK && !n)
		st = nn_fail(NN_ERR_PARSE, "%s: no ranges", path);
	if (st != NN_OK && m->calib)
		memset(m->calib, 0, sizeof *m->calib * (size_t)m->g.n_nodes);
	pthread_mutex_unlock(&m->lock);
	fclose(f);
	return st;
}

const float *nn_quant_weight_scales(nn_model *m, int node, const float *w, int64_t oc, int64_t per_oc)
{
	float *s;

	if (!m->wscales && !(m->wscales = calloc((size_t)m->g.n_nodes + 1, sizeof *m->wscales)))
		return NULL;
	if (m->wscales[node])
		return m->wscales[node];
	if (!w || !(s = malloc(sizeof *s * (size_t)oc)))
		return NULL;
	for (int64_t o = 0; o < oc; o++) {
		float mx = 0;
		for (int64_t i = 0; i < per_oc; i++)
			mx = fmaxf(mx, fabsf(w[o * per_oc + i]));
		s[o] = mx > 0 ? mx / 127.0f : 1.0f;
	}
	m->wscales[node] = s;
	return s;
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
