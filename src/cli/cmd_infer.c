/*
 * cmd_infer.c - `petcut infer`: run a model on a raw float32 tensor, for
 * testing and benchmarking the nn runtime on its own.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "img/img.h"
#include "pipeline/pipeline.h"
#include "nn/nn.h"
#include "util/util.h"

static const char usage[] =
	"usage: petcut infer MODEL [--input x.f32] --shape N,C,H,W [--output y.f32] [--output-name NAME]\n"
	"                          [--runs N] [--threads T] [--precision fp32|bf16|int8] [--profile]\n"
	"Runs MODEL on a raw little-endian float32 tensor (deterministic noise when --input\n"
	"is not given) and writes its first output (or NAME) as raw float32. With --runs N it\n"
	"runs once to warm up, then N times, and prints infer_ms MEDIAN, first_ms (the first run, its\n"
	"plan included), plan_ms (that plan alone), peak_rss_kb and the plan's figures (ref_convs:\n"
	"convolutions on oneDNN's reference kernel; weights_from_file: weight tensors read from the\n"
	"models folder's cache/, or $PETCUT_WEIGHT_CACHE, not reordered again; weights_file_read: 1 if\n"
	"that file was read through to check it, 0 if its check record vouched for it). --profile adds, for\n"
	"the N runs, where a pass's time goes: a line per kind of step, the slowest first,\n"
	"\"profile MS_PER_RUN SHARE% STEPS GFLOP/S KIND\" (GFLOP/S for convolutions; timing each\n"
	"step adds a little to infer_ms).\n"
	"\nexit status: 0 done; 1 the model or a tensor could not be read or run; 2 bad usage\n";


/* The plan of the first run made apart and timed into *ms, so that first_ms
 * (which includes it) can be told from a slow first pass. */
static nn_status prepare_timed(nn_model *m, const struct nn_tensor *in, double *ms)
{
	double t0 = util_now_ms();
	nn_status st = nn_model_prepare(m, in, 1);
	*ms = util_now_ms() - t0;
	return st;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int parse_shape(const char *s, struct nn_tensor *t)
{
	char *end;
	t->rank = 0;
	while (*s) {
		if (t->rank == NN_MAX_RANK)
			return -1;
		errno = 0;
		long long v = strtoll(s, &end, 10);
		if (end == s || errno || v <= 0 || v > (1 << 24))
			return -1;
		t->dims[t->rank++] = v;
		s = end;
		if (*s == ',')
			s++;
		else if (*s)
			return -1;
	}
	return t->rank > 0 ? 0 : -1;
}

static int read_exact(const char *path, void *buf, size_t len)
{
	FILE *f = fopen(path, "rb");
	int c;
	if (!f)
		return -1;
	size_t got = fread(buf, 1, len, f);
	c = fgetc(f);
	fclose(f);
	return got == len && c == EOF ? 0 : -2;
}

/* The --profile lines: each kind of step's time per run, its share of the
 * steps' total, its steps per run and a convolution's GFLOP/s. */
static void print_profile(const nn_model *m)
{
	struct nn_profile_row rows[32];
	int runs, n = nn_model_profile_rows(m, rows, 32, &runs);
	double total = 0;

	if (n > 32)
		n = 32;
	for (int i = 0; i < n; i++)
		total += rows[i].ms;
	for (int i = 0; runs > 0 && total > 0 && i < n; i++)
		printf("profile %.1f %.1f%% %d %.0f %s\n", rows[i].ms / runs, 100 * rows[i].ms / total, rows[i].steps / runs,
		       rows[i].gflop > 0 ? rows[i].gflop / (rows[i].ms / 1e3) : 0, rows[i].what);
}

int cmd_infer(int argc, char **argv)
{
	const char *model = NULL, *in_path = NULL, *out_path = NULL, *shape = NULL, *out_name = NULL;
	const char *precision = "fp32";
	struct nn_tensor in = {.dtype = NN_DTYPE_F32}, out = {0};
	struct nn_tensor_info info;
	double *times = NULL, t0, load_ms, plan_ms = 0;
	int runs = 0, threads = 0, profile = 0, rc = 1;
	nn_model *m = NULL;
	nn_status st;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			fputs(usage, stdout);
			return 0;
		}
		if (a[0] == '-' && a[1] == '-' && i + 1 >= argc && strcmp(a, "--profile")) {
			fprintf(stderr, "petcut infer: %s needs a value\n", a);
			return 2;
		}
		if (!strcmp(a, "--input"))
			in_path = argv[++i];
		else if (!strcmp(a, "--output"))
			out_path = argv[++i];
		else if (!strcmp(a, "--output-name"))
			out_name = argv[++i];
		else if (!strcmp(a, "--shape"))
			shape = argv[++i];
		else if (!strcmp(a, "--runs"))
			runs = atoi(argv[++i]);
		else if (!strcmp(a, "--threads"))
			threads = atoi(argv[++i]);
		else if (!strcmp(a, "--precision"))
			precision = argv[++i];
		else if (!strcmp(a, "--profile"))
			profile = 1;
		else if (a[0] == '-') {
			fprintf(stderr, "petcut infer: unknown option %s\n", a);
			return 2;
		} else if (!model)
			model = a;
		else {
			fprintf(stderr, "petcut infer: unexpected argument %s\n", a);
			return 2;
		}
	}
	if (!model || !shape) {
		fputs(usage, stderr);
		return 2;
	}
	if (parse_shape(shape, &in) != 0) {
		fprintf(stderr, "petcut infer: bad --shape '%s' (expected positive integers like 1,3,1024,1024)\n", shape);
		return 2;
	}
	if (runs < 0 || runs > 10000) {
		fprintf(stderr, "petcut infer: --runs must be between 0 and 10000\n");
		return 2;
	}
	nn_set_threads(threads);
	size_t bytes = (size_t)nn_tensor_numel(&in) * sizeof(float);
	if (!(in.data = malloc(bytes))) {
		fprintf(stderr, "petcut infer: out of memory\n");
		return 1;
	}
	if (in_path) {
		int r = read_exact(in_path, in.data, bytes);
		if (r) {
			fprintf(stderr, "petcut infer: %s: %s\n", in_path,
				r == -1 ? strerror(errno) : "size does not match --shape");
			rc = 2;
			goto out;
		}
	} else {
		uint32_t x = 12345;
		for (size_t i = 0; i < bytes / sizeof(float); i++) {
			x = x * 1664525u + 1013904223u;
			((float *)in.data)[i] = (float)(x >> 8) / (float)(1u << 24) - 0.5f;
		}
	}

	t0 = util_now_ms();
	if ((st = nn_model_load_file(model, &m)) != NN_OK) {
		fprintf(stderr, "petcut infer: %s\n", nn_errmsg());
		rc = st == NN_ERR_IO ? 1 : 2;
		goto out;
	}
	pipe_model_weight_cache(m);
	if (!out_name && nn_model_output(m, 0, &info) == NN_OK)
		out_name = info.name;
	if (out_name && (st = nn_model_select_outputs(m, &out_name, 1)) != NN_OK) {
		fprintf(stderr, "petcut infer: %s\n", nn_errmsg());
		rc = 2;
		goto out;
	}
	int prec;
	char why[1024], calib_id[48];
	if (pipe_parse_precision(precision, &prec)) {
		fprintf(stderr, "petcut infer: --precision must be fp32, bf16 or int8\n");
		rc = 2;
		goto out;
	}
	if (pipe_model_set_precision(m, model, prec, calib_id, sizeof calib_id, why, sizeof why))
		fprintf(stderr, "petcut infer: %s: staying at fp32\n", why);
	load_ms = util_now_ms() - t0;
	if (nn_model_num_inputs(m) != 1) {
		fprintf(stderr, "petcut infer: the model takes %d inputs; only one-input models are supported\n",
			nn_model_num_inputs(m));
		rc = 2;
		goto out;
	}
	if (!(times = calloc((size_t)runs + 1, sizeof *times))) {
		fprintf(stderr, "petcut infer: out of memory\n");
		goto out;
	}
	for (int r = 0; r <= runs; r++) {
		nn_tensor_free(&out);
		t0 = util_now_ms();
		if ((!r && (st = prepare_timed(m, &in, &plan_ms)) != NN_OK) || (st = nn_run(m, &in, 1, &out, 1)) != NN_OK) {
			fprintf(stderr, "petcut infer: %s\n", nn_errmsg());
			rc = st == NN_ERR_SHAPE || st == NN_ERR_ARG || st == NN_ERR_UNSUPPORTED ? 2 : 1;
			goto out;
		}
		times[r] = util_now_ms() - t0;
		if (!r && profile) /* the warm runs only */
			nn_model_profile(m, 1);
	}
	if (out_path && img_write_file(out_path, out.data, (size_t)nn_tensor_numel(&out) * nn_dtype_size(out.dtype)) != IMG_OK) {
		fprintf(stderr, "petcut infer: %s: %s\n", out_path, img_errmsg());
		goto out;
	}
	if (runs > 0) {
		struct rusage ru;
		qsort(times + 1, (size_t)runs, sizeof *times, cmp_double);
		double med = runs % 2 ? times[1 + runs / 2] : (times[runs / 2] + times[runs / 2 + 1]) / 2;
		getrusage(RUSAGE_SELF, &ru);
		printf("load_ms %.1f\nplan_ms %.1f\nfirst_ms %.1f\ninfer_ms %.1f\nmin_ms %.1f\nmax_ms %.1f\npeak_rss_kb %ld\n",
		       load_ms, plan_ms, times[0], med, times[1], times[runs], ru.ru_maxrss);
		struct nn_plan_stats ps;
		if (nn_model_stats(m, &ps) == NN_OK)
			printf("arena_kb %zu\nscratch_kb %zu\nweights_kb %zu\nweights_from_file %d\nweights_file_read %d\n"
			       "ref_convs %d\n",
			       ps.arena_bytes >> 10, ps.scratch_bytes >> 10, ps.weight_bytes >> 10, ps.weights_from_file,
			       ps.weights_file_read, ps.ref_convs);
		if (profile)
			print_profile(m);
	}
	rc = 0;
out:
	nn_tensor_free(&out);
	free(in.data);
	free(times);
	nn_model_free(m);
	return rc;
}
