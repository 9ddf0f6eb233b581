/*
 * test_conformance.c - runs ONNX's backend node tests through petcut's nn
 * runtime and compares every output with the expected tensor.
 *
 * The node tests are the ones Debian's libonnx-testdata installs: one folder
 * per case with model.onnx and test_data_set_N/{input,output}_K.pb, each .pb a
 * serialised onnx.TensorProto. A case is selected when every node of its
 * graph is an op petcut implements (the list below); the rest are counted and
 * not run. A selected case whose model the runtime refuses at load with
 * NN_ERR_UNSUPPORTED is SKIPPED with the runtime's message; any other failure
 * (load, run, dtype, shape or a value out of tolerance) is FAILED, nn_run
 * answering NN_ERR_UNSUPPORTED included (nn.h promises refusal at load).
 *
 * The node tests feed conv weights, Reshape shapes, Resize scales and Slice
 * bounds as graph inputs, where real models have initializers. The runtime
 * takes all of those at run time, so every case runs exactly as given: a
 * refusal is never worked around, and counts only as the SKIPPED or FAILED
 * above.
 *
 *   test_conformance [NAME_SUBSTRING]
 *
 * The folder is $PETCUT_ONNX_NODE_TESTS, else the Debian location. The
 * outcome of every selected case is pinned in tests/unit/conformance-pinned.txt
 * (or $PETCUT_CONFORMANCE_PINNED): "pass NAME" or "skip NAME". A case whose
 * outcome differs from its line, a selected case without one, or a line whose
 * case was not selected (without a filter) is a failure, so a regression that
 * makes a node unsupported cannot pass as one more skip. Exit 0 when no case
 * failed, 1 otherwise, 77 when the node tests are not installed.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nn/nn.h"
#include "onnx.pb-c.h"

#define NODE_TESTS_DIR "/usr/include/onnx/backend/test/data/node"
#define MAX_PINNED 1024
#define MAX_IO 32
#define MAX_TENSOR_BYTES ((size_t)1 << 31) /* sanity bound on a .pb's shape */

/* Tolerance for floating-point outputs: |got - want| <= ATOL + RTOL * |want|.
 * Integer and boolean outputs must match exactly. */
#define ATOL 1e-4
#define RTOL 1e-3

/* The ops petcut implements; a case runs only if all its nodes are in here. */
static const char *const supported_ops[] = {
	"Conv",	   "Relu",	   "MaxPool",	"Resize",	       "Concat",
	"Add",	   "Sigmoid",	   "DynamicQuantizeLinear", "ConvInteger", "Cast",
	"Mul",	   "Reshape",	   "Shape",	"Slice",	       "Constant",
};

enum case_result { CASE_PASSED, CASE_FAILED, CASE_SKIPPED };

/* The pinned outcomes: names and what each must do (CASE_PASSED or
 * CASE_SKIPPED), and whether it was met. */
static struct pinned {
	char name[160];
	enum case_result want;
	int seen;
} pinned[MAX_PINNED];
static int n_pinned;

/* Reads the pinned outcomes; -1 with a message when the file is missing or
 * malformed. */
static int read_pinned(void)
{
	const char *path = getenv("PETCUT_CONFORMANCE_PINNED");
	char line[256], what[8];
	FILE *f;

	if (!path || !*path)
		path = "tests/unit/conformance-pinned.txt";
	if (!(f = fopen(path, "r"))) {
		printf("conformance: cannot read the pinned outcomes %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof line, f)) {
		if (line[0] == '#' || line[0] == '\n')
			continue;
		struct pinned *p = &pinned[n_pinned];
		if (n_pinned == MAX_PINNED || sscanf(line, "%7s %159s", what, p->name) != 2 ||
		    (strcmp(what, "pass") && strcmp(what, "skip"))) {
			printf("conformance: %s: a line is not 'pass NAME' or 'skip NAME': %s", path, line);
			fclose(f);
			return -1;
		}
		p->want = strcmp(what, "pass") ? CASE_SKIPPED : CASE_PASSED;
		n_pinned++;
	}
	fclose(f);
	return 0;
}

/* The pinned line of a case, or NULL. */
static struct pinned *pinned_of(const char *name)
{
	for (int i = 0; i < n_pinned; i++)
		if (!strcmp(pinned[i].name, name))
			return &pinned[i];
	return NULL;
}

/* Cases that loaded but that nn_run then refused with NN_ERR_UNSUPPORTED: a
 * failure, as nn.h promises such models are refused at load time. */
static int n_refused_at_run;

/* ===== Small helpers ===== */

/* Formats into a fixed buffer owned by the caller; never fails. */
static void fmt(char *buf, size_t len, const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	vsnprintf(buf, len, f, ap);
	va_end(ap);
}

/* Reads a whole file; *out is malloc'd (freed by the caller). */
static int read_file(const char *path, uint8_t **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long n;
	int rc = -1;

	if (!f)
		return -1;
	if (fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET))
		goto out;
	buf = malloc(n ? (size_t)n : 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n)
		goto out;
	*out = buf;
	*len = (size_t)n;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	fclose(f);
	return rc;
}

static int is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int file_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists the entries of dir whose name starts with prefix, sorted. Returns the
 * count (the array and its strings are malloc'd), or -1. */
static int list_dir(const char *dir, const char *prefix, char ***out)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **names = NULL;
	int n = 0, cap = 0;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || strncmp(e->d_name, prefix, strlen(prefix)))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			char **nn = realloc(names, cap * sizeof *names);
			if (!nn)
				break;
			names = nn;
		}
		if (!(names[n] = strdup(e->d_name)))
			break;
		n++;
	}
	closedir(d);
	qsort(names, n, sizeof *names, cmp_str);
	*out = names;
	return n;
}

static void free_list(char **names, int n)
{
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static const char *dtype_name(int t)
{
	switch (t) {
	case NN_DTYPE_F32: return "float32";
	case NN_DTYPE_U8: return "uint8";
	case NN_DTYPE_I8: return "int8";
	case NN_DTYPE_I32: return "int32";
	case NN_DTYPE_I64: return "int64";
	case NN_DTYPE_BOOL: return "bool";
	case NN_DTYPE_F16: return "float16";
	case NN_DTYPE_F64: return "float64";
	case 4: return "uint16";
	case 5: return "int16";
	case 8: return "string";
	case 12: return "uint32";
	case 13: return "uint64";
	case 16: return "bfloat16";
	default: return "undefined";
	}
}

static void shape_str(char *buf, size_t len, int rank, const int64_t *dims)
{
	size_t o = 0;
	o += snprintf(buf + o, len - o, "[");
	for (int i = 0; i < rank && o < len; i++)
		o += snprintf(buf + o, len - o, "%s%lld", i ? "," : "", (long long)dims[i]);
	if (o < len)
		snprintf(buf + o, len - o, "]");
}

static float half_to_float(uint16_t h)
{
	uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
	if (exp == 0x1f)
		return man ? NAN : (sign ? -INFINITY : INFINITY);
	float v = exp ? ldexpf((float)(man | 0x400), (int)exp - 25) : ldexpf((float)man, -24);
	return sign ? -v : v;
}

/* ===== TensorProto -> nn_tensor ===== */

/* Fills t from a TensorProto (t->data is malloc'd). Returns 0, or -1 with a
 * reason in why. */
static int tensor_from_proto(const Onnx__TensorProto *p, struct nn_tensor *t, char *why, size_t wlen)
{
	int dt = p->data_type;
	size_t esz, n = 1, i;

	memset(t, 0, sizeof *t);
	switch (dt) {
	case NN_DTYPE_F32: case NN_DTYPE_U8: case NN_DTYPE_I8: case NN_DTYPE_I32:
	case NN_DTYPE_I64: case NN_DTYPE_BOOL: case NN_DTYPE_F16: case NN_DTYPE_F64:
		break;
	default:
		fmt(why, wlen, "tensor '%s' has dtype %s, which nn_dtype cannot hold", p->name ? p->name : "",
		    dtype_name(dt));
		return -1;
	}
	if (p->n_dims > NN_MAX_RANK) {
		fmt(why, wlen, "tensor '%s' has rank %zu > %d", p->name ? p->name : "", p->n_dims, NN_MAX_RANK);
		return -1;
	}
	if (p->has_data_location && p->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
		fmt(why, wlen, "tensor '%s' has external data", p->name ? p->name : "");
		return -1;
	}
	t->dtype = (nn_dtype)dt;
	t->rank = (int)p->n_dims;
	esz = nn_dtype_size(t->dtype);
	for (i = 0; i < p->n_dims; i++) {
		if (p->dims[i] < 0 || (p->dims[i] && n > MAX_TENSOR_BYTES / esz / (size_t)p->dims[i])) {
			fmt(why, wlen, "tensor '%s' has a bad or huge shape", p->name ? p->name : "");
			return -1;
		}
		t->dims[i] = p->dims[i];
		n *= (size_t)p->dims[i];
	}
	t->data = calloc(n ? n : 1, esz);
	if (!t->data) {
		fmt(why, wlen, "out of memory");
		return -1;
	}
	if (p->has_raw_data && (p->raw_data.len || !n)) {
		if (p->raw_data.len != n * esz) {
			fmt(why, wlen, "tensor '%s': raw_data has %zu bytes, expected %zu", p->name ? p->name : "",
			    p->raw_data.len, n * esz);
			goto fail;
		}
		if (n)
			memcpy(t->data, p->raw_data.data, n * esz);
		return 0;
	}
	/* Typed fields, as onnx.proto assigns them per data type. */
	size_t have;
	switch (dt) {
	case NN_DTYPE_F32: have = p->n_float_data; break;
	case NN_DTYPE_I64: have = p->n_int64_data; break;
	case NN_DTYPE_F64: have = p->n_double_data; break;
	default: have = p->n_int32_data; break;
	}
	if (have != n) {
		fmt(why, wlen, "tensor '%s' holds %zu values, its shape needs %zu", p->name ? p->name : "", have, n);
		goto fail;
	}
	for (i = 0; i < n; i++) {
		switch (dt) {
		case NN_DTYPE_F32: ((float *)t->data)[i] = p->float_data[i]; break;
		case NN_DTYPE_I64: ((int64_t *)t->data)[i] = p->int64_data[i]; break;
		case NN_DTYPE_F64: ((double *)t->data)[i] = p->double_data[i]; break;
		case NN_DTYPE_I32: ((int32_t *)t->data)[i] = p->int32_data[i]; break;
		case NN_DTYPE_F16: ((uint16_t *)t->data)[i] = (uint16_t)p->int32_data[i]; break;
		case NN_DTYPE_I8: ((int8_t *)t->data)[i] = (int8_t)p->int32_data[i]; break;
		default: ((uint8_t *)t->data)[i] = (uint8_t)p->int32_data[i]; break; /* u8, bool */
		}
	}
	return 0;
fail:
	free(t->data);
	t->data = NULL;
	return -1;
}

/* Loads a .pb file holding one TensorProto into t (data malloc'd) and its
 * name into name (may be empty). */
static int load_pb(const char *path, struct nn_tensor *t, char *name, size_t nlen, char *why, size_t wlen)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	Onnx__TensorProto *p;
	int rc;

	if (read_file(path, &buf, &len)) {
		fmt(why, wlen, "cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	p = onnx__tensor_proto__unpack(NULL, len, buf);
	free(buf);
	if (!p) {
		fmt(why, wlen, "%s is not a TensorProto", path);
		return -1;
	}
	fmt(name, nlen, "%s", p->name ? p->name : "");
	rc = tensor_from_proto(p, t, why, wlen);
	onnx__tensor_proto__free_unpacked(p, NULL);
	return rc;
}

/* ===== Comparison ===== */

static double elem_as_double(const struct nn_tensor *t, int64_t i)
{
	switch (t->dtype) {
	case NN_DTYPE_F32: return ((const float *)t->data)[i];
	case NN_DTYPE_F64: return ((const double *)t->data)[i];
	case NN_DTYPE_F16: return half_to_float(((const uint16_t *)t->data)[i]);
	case NN_DTYPE_U8: case NN_DTYPE_BOOL: return ((const uint8_t *)t->data)[i];
	case NN_DTYPE_I8: return ((const int8_t *)t->data)[i];
	case NN_DTYPE_I32: return ((const int32_t *)t->data)[i];
	case NN_DTYPE_I64: return (double)((const int64_t *)t->data)[i];
	default: return NAN;
	}
}

static int is_float_dtype(nn_dtype t)
{
	return t == NN_DTYPE_F32 || t == NN_DTYPE_F64 || t == NN_DTYPE_F16;
}

/* Compares got with want. Returns 0 when they match, else -1 with the first
 * mismatch (and the number of mismatches) in why. */
static int compare(const char *name, const struct nn_tensor *got, const struct nn_tensor *want, char *why,
		   size_t wlen)
{
	char gs[160], ws[160];
	int64_t n, bad = 0, first = -1;
	double worst = 0;

	if (got->dtype != want->dtype) {
		fmt(why, wlen, "output '%s': dtype %s, expected %s", name, dtype_name(got->dtype),
		    dtype_name(want->dtype));
		return -1;
	}
	shape_str(gs, sizeof gs, got->rank, got->dims);
	shape_str(ws, sizeof ws, want->rank, want->dims);
	if (strcmp(gs, ws)) {
		fmt(why, wlen, "output '%s': shape %s, expected %s", name, gs, ws);
		return -1;
	}
	n = nn_tensor_numel(want);
	if (n > 0 && !got->data) {
		fmt(why, wlen, "output '%s': no data", name);
		return -1;
	}
	for (int64_t i = 0; i < n; i++) {
		int ok;
		if (is_float_dtype(want->dtype)) {
			double g = elem_as_double(got, i), w = elem_as_double(want, i);
			if (isnan(w) || isnan(g))
				ok = isnan(w) && isnan(g);
			else if (isinf(w) || isinf(g))
				ok = g == w;
			else
				ok = fabs(g - w) <= ATOL + RTOL * fabs(w);
			if (!ok && !isnan(g) && !isnan(w) && fabs(g - w) > worst)
				worst = fabs(g - w);
		} else if (want->dtype == NN_DTYPE_I64) {
			ok = ((const int64_t *)got->data)[i] == ((const int64_t *)want->data)[i];
		} else {
			size_t esz = nn_dtype_size(want->dtype);
			ok = !memcmp((const char *)got->data + i * esz, (const char *)want->data + i * esz, esz);
		}
		if (!ok) {
			if (first < 0)
				first = i;
			bad++;
		}
	}
	if (!bad)
		return 0;
	fmt(why, wlen, "output '%s': %lld of %lld values differ; first at flat index %lld: got %.9g, expected %.9g",
	    name, (long long)bad, (long long)n, (long long)first, elem_as_double(got, first),
	    elem_as_double(want, first));
	if (is_float_dtype(want->dtype)) {
		size_t o = strlen(why);
		if (o < wlen)
			snprintf(why + o, wlen - o, " (largest |diff| %.3g)", worst);
	}
	return -1;
}

/* ===== One case ===== */

/* Says whether every node of the model at path is a supported op; fills ops
 * with the op types it found that are not (comma-separated). -1: unreadable. */
static int model_ops_supported(const char *path, char *ops, size_t olen)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	Onnx__ModelProto *m;
	int ok = 1;

	ops[0] = 0;
	if (read_file(path, &buf, &len))
		return -1;
	m = onnx__model_proto__unpack(NULL, len, buf);
	free(buf);
	if (!m || !m->graph) {
		if (m)
			onnx__model_proto__free_unpacked(m, NULL);
		return -1;
	}
	for (size_t i = 0; i < m->graph->n_node; i++) {
		const Onnx__NodeProto *nd = m->graph->node[i];
		int found = 0;
		const char *dom = nd->domain ? nd->domain : "";
		if (!dom[0] || !strcmp(dom, "ai.onnx"))
			for (size_t k = 0; k < sizeof supported_ops / sizeof supported_ops[0]; k++)
				if (!strcmp(nd->op_type, supported_ops[k]))
					found = 1;
		if (!found) {
			ok = 0;
			if (!strstr(ops, nd->op_type)) {
				size_t o = strlen(ops);
				snprintf(ops + o, olen - o, "%s%s", o ? "," : "", nd->op_type);
			}
		}
	}
	onnx__model_proto__free_unpacked(m, NULL);
	return ok;
}

/* Runs one data set (inputs and expected outputs in setdir) on model m. On
 * failure why says what went wrong; *refused_at_run is set when nn_run
 * answered NN_ERR_UNSUPPORTED. */
static enum case_result run_set(nn_model *m, const char *setdir, char *why, size_t wlen, int *refused_at_run)
{
	struct nn_tensor in[MAX_IO], want[MAX_IO], got[MAX_IO], ordered[MAX_IO];
	char in_names[MAX_IO][128], want_names[MAX_IO][128], path[4096];
	int n_in_files = 0, n_out_files = 0, n_in, n_out, i;
	enum case_result res = CASE_FAILED;
	nn_status st;

	memset(in, 0, sizeof in);
	memset(want, 0, sizeof want);
	memset(got, 0, sizeof got);
	n_in = nn_model_num_inputs(m);
	n_out = nn_model_num_outputs(m);
	if (n_in < 0 || n_in > MAX_IO || n_out < 0 || n_out > MAX_IO) {
		fmt(why, wlen, "model reports %d inputs, %d outputs", n_in, n_out);
		return CASE_FAILED;
	}
	for (;; n_in_files++) {
		fmt(path, sizeof path, "%s/input_%d.pb", setdir, n_in_files);
		if (n_in_files == MAX_IO || !file_exists(path))
			break;
		if (load_pb(path, &in[n_in_files], in_names[n_in_files], sizeof in_names[0], why, wlen))
			goto out;
	}
	for (;; n_out_files++) {
		fmt(path, sizeof path, "%s/output_%d.pb", setdir, n_out_files);
		if (n_out_files == MAX_IO || !file_exists(path))
			break;
		if (load_pb(path, &want[n_out_files], want_names[n_out_files], sizeof want_names[0], why, wlen))
			goto out;
	}
	if (n_in != n_in_files) {
		fmt(why, wlen, "model has %d inputs, the data set %d", n_in, n_in_files);
		goto out;
	}
	if (n_out != n_out_files) {
		fmt(why, wlen, "model has %d outputs, the data set %d", n_out, n_out_files);
		goto out;
	}
	/* Inputs in the model's order: by name when the .pb files carry names. */
	for (i = 0; i < n_in; i++) {
		struct nn_tensor_info info;
		int k = i;
		if ((st = nn_model_input(m, i, &info))) {
			fmt(why, wlen, "nn_model_input(%d): %s: %s", i, nn_strerror(st), nn_errmsg());
			goto out;
		}
		for (int j = 0; j < n_in_files; j++)
			if (in_names[j][0] && info.name && !strcmp(in_names[j], info.name))
				k = j;
		ordered[i] = in[k];
	}
	st = nn_run(m, ordered, n_in, got, n_out);
	if (st == NN_ERR_UNSUPPORTED) {
		*refused_at_run = 1;
		fmt(why, wlen, "loaded, then nn_run refused it (nn.h: refuse at load): %s", nn_errmsg());
		goto out;
	}
	if (st) {
		fmt(why, wlen, "nn_run: %s: %s", nn_strerror(st), nn_errmsg());
		goto out;
	}
	for (i = 0; i < n_out; i++) {
		struct nn_tensor_info info;
		int k = i;
		if ((st = nn_model_output(m, i, &info))) {
			fmt(why, wlen, "nn_model_output(%d): %s: %s", i, nn_strerror(st), nn_errmsg());
			goto out;
		}
		for (int j = 0; j < n_out_files; j++)
			if (want_names[j][0] && info.name && !strcmp(want_names[j], info.name))
				k = j;
		if (compare(info.name ? info.name : "?", &got[i], &want[k], why, wlen))
			goto out;
	}
	res = CASE_PASSED;
out:
	for (i = 0; i < MAX_IO; i++) {
		free(in[i].data);
		free(want[i].data);
		if (i < n_out)
			nn_tensor_free(&got[i]);
	}
	return res;
}

/* Runs every data set of the case in dir. PASSED when all match; SKIPPED
 * (why: the runtime's message) when the model is refused at load as
 * unsupported; FAILED otherwise, nn_run refusing included (nn.h says
 * unsupported models are refused at load), which sets *run_refusal. */
static enum case_result run_case(const char *dir, char *why, size_t wlen, int *n_sets, int *run_refusal)
{
	char path[4096], setdir[4096], sub[2048], **sets = NULL;
	enum case_result res = CASE_FAILED;
	nn_model *m = NULL;
	nn_status st;
	int n, i;

	*n_sets = 0;
	*run_refusal = 0;
	fmt(path, sizeof path, "%s/model.onnx", dir);
	n = list_dir(dir, "test_data_set_", &sets);
	if (n <= 0) {
		fmt(why, wlen, "no test_data_set_* folder");
		goto out;
	}
	/* One model serves every data set, as it would in an application. */
	st = nn_model_load_file(path, &m);
	if (st == NN_ERR_UNSUPPORTED) {
		res = CASE_SKIPPED;
		fmt(why, wlen, "%s", nn_errmsg());
		goto out;
	}
	if (st) {
		fmt(why, wlen, "load: %s: %s", nn_strerror(st), nn_errmsg());
		goto out;
	}
	for (i = 0; i < n; i++) {
		fmt(setdir, sizeof setdir, "%s/%s", dir, sets[i]);
		if (!is_dir(setdir))
			continue;
		if (run_set(m, setdir, sub, sizeof sub, run_refusal) != CASE_PASSED) {
			fmt(why, wlen, "%s: %s", sets[i], sub);
			goto out;
		}
		(*n_sets)++;
	}
	res = CASE_PASSED;
out:
	free_list(sets, n > 0 ? n : 0);
	nn_model_free(m);
	return res;
}

/* ===== Main ===== */

int main(int argc, char **argv)
{
	const char *root = getenv("PETCUT_ONNX_NODE_TESTS");
	const char *filter = argc > 1 ? argv[1] : NULL;
	char **cases = NULL, path[4096], why[4096], ops[1024];
	int n, i, passed = 0, failed = 0, skipped = 0, unselected = 0;

	setvbuf(stdout, NULL, _IOLBF, 0); /* progress shows even if the test is killed */
	if (!root || !root[0])
		root = NODE_TESTS_DIR;
	if (!is_dir(root)) {
		printf("SKIP: ONNX backend node tests not found at %s (install Debian's libonnx-testdata or set "
		       "PETCUT_ONNX_NODE_TESTS)\n",
		       root);
		return 77;
	}
	n = list_dir(root, "test_", &cases);
	if (n <= 0) {
		printf("SKIP: no test_* folders in %s\n", root);
		free_list(cases, n > 0 ? n : 0);
		return 77;
	}
	if (read_pinned()) {
		free_list(cases, n);
		return 1;
	}
	printf("ONNX node tests in %s; floats must match within %g + %g*|expected|, integers exactly\n", root,
	       ATOL, RTOL);
	fflush(stdout);
	for (i = 0; i < n; i++) {
		int sets = 0, sel, run_refusal = 0;
		enum case_result r;

		if (filter && !strstr(cases[i], filter))
			continue;
		fmt(path, sizeof path, "%s/%s/model.onnx", root, cases[i]);
		if (!file_exists(path))
			continue;
		sel = model_ops_supported(path, ops, sizeof ops);
		if (sel != 1) {
			unselected++;
			continue;
		}
		fmt(path, sizeof path, "%s/%s", root, cases[i]);
		why[0] = 0;
		r = run_case(path, why, sizeof why, &sets, &run_refusal);
		n_refused_at_run += run_refusal;
		switch (r) {
		case CASE_PASSED:
			passed++;
			printf("  pass  %s (%d data set%s)\n", cases[i], sets, sets == 1 ? "" : "s");
			break;
		case CASE_SKIPPED:
			skipped++;
			printf("  skip  %s: refused as unsupported: %s\n", cases[i], why);
			break;
		default:
			failed++;
			printf("  FAIL  %s: %s\n", cases[i], why);
			break;
		}
		struct pinned *p = pinned_of(cases[i]);
		if (!p) {
			failed++;
			printf("  FAIL  %s: %s, but no line of the pinned outcomes names it\n", cases[i],
			       r == CASE_PASSED ? "passed" : r == CASE_SKIPPED ? "skipped" : "failed");
		} else if (r != CASE_FAILED && r != p->want) {
			failed++;
			printf("  FAIL  %s: pinned to %s, it %s\n", cases[i], p->want == CASE_PASSED ? "pass" : "skip",
			       r == CASE_PASSED ? "passed" : "was skipped");
		}
		if (p)
			p->seen = 1;
		fflush(stdout);
	}
	for (i = 0; !filter && i < n_pinned; i++)
		if (!pinned[i].seen) {
			failed++;
			printf("  FAIL  %s: pinned to %s, but it was not selected or is gone\n", pinned[i].name,
			       pinned[i].want == CASE_PASSED ? "pass" : "skip");
		}
	printf("conformance: %d selected (ops all supported), %d passed, %d failed, %d skipped; %d not selected "
	       "(other ops)\n",
	       passed + failed + skipped, passed, failed, skipped, unselected);
	if (n_refused_at_run)
		printf("conformance: %d of the failures loaded and were then refused as unsupported by nn_run\n",
		       n_refused_at_run);
	free_list(cases, n);
	return failed ? 1 : 0;
}
