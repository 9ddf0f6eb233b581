/*
 * test_nn.c - the nn runtime's contract: load errors name what is wrong,
 * batches equal single runs, any input size runs, activations share an arena,
 * a model loaded from a file releases the weights its primitives hold and
 * rereads them, unchanged, when a new layout needs them.
 * Conformance of each op is test_conformance.c; agreement with ONNX Runtime
 * on real photos is test_isnet_ort.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "nn/nn.h"
#include "nn/nn_int.h" /* to see which weights a model has released */

#include "check.h"


#define NODE_TESTS "/usr/include/onnx/backend/test/data/node"

static void fill_noise(float *x, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1664525u + 1013904223u;
		x[i] = (float)(seed >> 8) / (float)(1u << 24) - 0.5f;
	}
}

static void test_load_errors(void)
{
	nn_model *m = NULL;
	static const char garbage[] = "this is not a protobuf \xff\xff\xff\xff";
	nn_status st;

	st = nn_model_load_file("/nonexistent/model.onnx", &m);
	CHECK(st == NN_ERR_IO && !m && strstr(nn_errmsg(), "/nonexistent/model.onnx"),
	      "a missing file is NN_ERR_IO naming the path (%s)", nn_errmsg());
	st = nn_model_load_memory(garbage, sizeof garbage, &m);
	CHECK(st == NN_ERR_PARSE && !m, "garbage bytes are NN_ERR_PARSE (%s)", nn_errmsg());
	st = nn_model_load_file(NODE_TESTS "/test_abs/model.onnx", &m);
	CHECK(st == NN_ERR_UNSUPPORTED && strstr(nn_errmsg(), "'Abs'") && strstr(nn_errmsg(), "node"),
	      "an unsupported op fails the load naming the node and op (%s)", nn_errmsg());
	st = nn_model_load_file(NODE_TESTS "/test_resize_upsample_scales_cubic/model.onnx", &m);
	CHECK(st == NN_ERR_UNSUPPORTED && strstr(nn_errmsg(), "(Resize)") && strstr(nn_errmsg(), "attribute 'mode'"),
	      "an unsupported attribute value fails the load naming node, op and attribute (%s)", nn_errmsg());
	st = nn_model_load_file(NODE_TESTS "/test_maxpool_with_argmax_2d_precomputed_strides/model.onnx", &m);
	CHECK(st == NN_ERR_UNSUPPORTED && strstr(nn_errmsg(), "storage_order"),
	      "MaxPool with storage_order 1 is refused (%s)", nn_errmsg());
	nn_model_free(m);
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (buf = malloc((size_t)n)) && fread(buf, 1, (size_t)n, f) == (size_t)n)
		*len = (size_t)n;
	else {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

static float max_diff(const float *a, const float *b, size_t n)
{
	float d = 0;
	for (size_t i = 0; i < n; i++)
		d = fmaxf(d, fabsf(a[i] - b[i]));
	return d;
}

static void test_isnet(const char *path)
{
	const char *out_name = "output";
	enum { H = 256, W = 256 };
	size_t img = 3 * H * W, len = 0;
	struct nn_tensor in = {.dtype = NN_DTYPE_F32, .rank = 4, .dims = {1, 3, H, W}};
	struct nn_tensor o1 = {0}, o2 = {0}, ob = {0};
	struct nn_plan_stats stats;
	struct nn_tensor_info info;
	nn_model *m = NULL;
	float *x = malloc(sizeof *x * img * 2);
	char *buf = read_file(path, &len);
	nn_status st;

	if (!x || !buf) {
		CHECK(0, "read %s", path);
		goto out;
	}
	st = nn_model_load_memory(buf, len / 2, &m);
	CHECK(st == NN_ERR_PARSE && !m, "half a model file is NN_ERR_PARSE (%s)", nn_errmsg());
	st = nn_model_load_memory(buf, len, &m);
	CHECK(st == NN_OK, "ISNet loads from memory (%s)", st ? nn_errmsg() : "");
	if (st)
		goto out;
	CHECK(nn_model_num_inputs(m) == 1 && nn_model_input(m, 0, &info) == NN_OK && !strcmp(info.name, "input") &&
		      info.rank == 4 && info.dims[1] == 3,
	      "input 0 is 'input' [N,3,H,W]");
	CHECK(nn_model_num_outputs(m) == 12, "12 outputs declared (%d)", nn_model_num_outputs(m));
	const char *bad = "no-such-output";
	CHECK(nn_model_select_outputs(m, &bad, 1) == NN_ERR_ARG, "selecting an unknown output is NN_ERR_ARG");
	CHECK(nn_model_select_outputs(m, &out_name, 1) == NN_OK && nn_model_num_outputs(m) == 1,
	      "selecting 'output' leaves one output");

	fill_noise(x, img, 1);
	fill_noise(x + img, img, 2);
	in.data = x;
	st = nn_run(m, &in, 1, &o1, 1);
	CHECK(st == NN_OK && o1.rank == 4 && o1.dims[0] == 1 && o1.dims[1] == 1 && o1.dims[2] == H && o1.dims[3] == W,
	      "a %dx%d input gives a 1x1x%dx%d mask (%s)", H, W, H, W, st ? nn_errmsg() : "");
	in.data = x + img;
	st = nn_run(m, &in, 1, &o2, 1);
	CHECK(st == NN_OK, "second image runs");
	in.data = x;
	in.dims[0] = 2;
	st = nn_run(m, &in, 1, &ob, 1);
	CHECK(st == NN_OK && ob.dims[0] == 2, "a batch of 2 runs (%s)", st ? nn_errmsg() : "");
	if (st == NN_OK && o1.data && o2.data) {
		float d1 = max_diff(o1.data, ob.data, (size_t)H * W);
		float d2 = max_diff(o2.data, (float *)ob.data + H * W, (size_t)H * W);
		CHECK(d1 < 1e-4f && d2 < 1e-4f, "batch results equal single runs (max diff %.2g, %.2g)", d1, d2);
	}
	if (nn_model_stats(m, &stats) == NN_OK)
		CHECK(stats.arena_bytes > 0 && stats.arena_bytes * 4 < stats.tensor_bytes,
		      "activations share an arena: %zu MB for %zu MB of tensors", stats.arena_bytes >> 20,
		      stats.tensor_bytes >> 20);
	in.dims[0] = 1;
	st = nn_model_set_precision(m, NN_PRECISION_BF16);
	if (st == NN_ERR_UNSUPPORTED) {
		printf("# skipped the bf16 check: %s\n", nn_errmsg());
	} else {
		struct nn_tensor ob16 = {0};
		st = nn_run(m, &in, 1, &ob16, 1);
		if (st == NN_OK) {
			double sum = 0;
			float d = max_diff(o1.data, ob16.data, (size_t)H * W);
			for (int i = 0; i < H * W; i++)
				sum += fabsf(((float *)o1.data)[i] - ((float *)ob16.data)[i]);
			CHECK(d < 0.05f && sum / (H * W) < 0.002, "bf16 agrees with fp32 (max diff %.3g, mean %.2g)", d,
			      sum / (H * W));
			/* a batch at bf16 (Winograd tiles across images) equals its single runs */
			struct nn_tensor s2 = {0}, b2 = {0};
			in.data = x + img;
			st = nn_run(m, &in, 1, &s2, 1);
			in.data = x;
			in.dims[0] = 2;
			if (st == NN_OK)
				st = nn_run(m, &in, 1, &b2, 1);
			in.dims[0] = 1;
			CHECK(st == NN_OK && max_diff(ob16.data, b2.data, (size_t)H * W) < 1e-4f &&
				      max_diff(s2.data, (float *)b2.data + H * W, (size_t)H * W) < 1e-4f,
			      "a bf16 batch of 2 equals its single runs (%s)", st ? nn_errmsg() : "");
			nn_tensor_free(&s2);
			nn_tensor_free(&b2);
		} else {
			CHECK(0, "bf16 runs (%s)", nn_errmsg());
		}
		nn_tensor_free(&ob16);
		nn_model_set_precision(m, NN_PRECISION_FP32);
	}
	nn_tensor_free(&o1);
	struct nn_tensor shape_only = {.dtype = NN_DTYPE_F32, .rank = 4, .dims = {1, 3, 128, 96}};
	st = nn_model_prepare(m, &shape_only, 1);
	CHECK(st == NN_OK && nn_model_stats(m, &stats) == NN_OK && stats.steps > 0,
	      "a plan can be prepared from shapes alone (%d steps)", stats.steps);
	in.dims[2] = 200;
	in.dims[3] = 300;
	st = nn_run(m, &in, 1, &o1, 1);
	CHECK(st == NN_OK && o1.dims[2] == 200 && o1.dims[3] == 300, "a 200x300 input (not a multiple of 32) runs (%s)",
	      st ? nn_errmsg() : "");
	if (st == NN_OK && nn_model_set_precision(m, NN_PRECISION_BF16) == NN_OK) {
		/* odd sizes inside the network (25x38 ...): partial Winograd tiles */
		struct nn_tensor o16 = {0};
		st = nn_run(m, &in, 1, &o16, 1);
		double sum = 0;
		for (int i = 0; st == NN_OK && i < 200 * 300; i++)
			sum += fabsf(((float *)o1.data)[i] - ((float *)o16.data)[i]);
		CHECK(st == NN_OK && sum / (200 * 300) < 0.002, "at 200x300 bf16 agrees with fp32 (mean diff %.2g)",
		      sum / (200 * 300));
		nn_tensor_free(&o16);
		nn_model_set_precision(m, NN_PRECISION_FP32);
	}
	nn_tensor_free(&o1);
	in.dims[1] = 4;
	in.dims[2] = 64;
	in.dims[3] = 64;
	st = nn_run(m, &in, 1, &o1, 1);
	CHECK(st == NN_ERR_SHAPE && strstr(nn_errmsg(), "channels"), "4 channels is NN_ERR_SHAPE (%s)", nn_errmsg());
	in.dims[1] = 3;
	in.rank = 3;
	st = nn_run(m, &in, 1, &o1, 1);
	CHECK(st == NN_ERR_SHAPE, "rank 3 is NN_ERR_SHAPE (%s)", nn_errmsg());
out:
	nn_tensor_free(&o1);
	nn_tensor_free(&o2);
	nn_tensor_free(&ob);
	nn_model_free(m);
	free(buf);
	free(x);
}

static int count_released(const nn_model *m)
{
	int n = 0;
	for (int v = 0; v < m->g.n_vals; v++)
		n += m->g.vals[v].released;
	return n;
}

/* A file-loaded model: weights released once the primitives hold them,
 * reread (and identical) when a precision change needs them again, refused
 * when the file changed underneath. */
static void test_isnet_file(const char *path)
{
	const char *out_name = "output";
	enum { H = 160, W = 160 };
	struct nn_tensor in = {.dtype = NN_DTYPE_F32, .rank = 4, .dims = {1, 3, H, W}};
	struct nn_tensor r32 = {0}, r16 = {0}, f32 = {0}, f16 = {0};
	nn_model *ref = NULL, *m = NULL;
	char copy[] = "/tmp/petcut-test-nn-XXXXXX";
	size_t len = 0;
	char *buf = read_file(path, &len);
	float *x = malloc(sizeof *x * 3 * H * W);
	bool bf16 = true;
	int fd = mkstemp(copy);
	nn_status st;

	if (!buf || !x || fd < 0 || write(fd, buf, len) != (ssize_t)len || close(fd)) {
		CHECK(0, "copy %s to %s", path, copy);
		goto out;
	}
	fill_noise(x, (size_t)3 * H * W, 7);
	in.data = x;
	/* the reference: loaded from memory, so nothing is ever released */
	if (nn_model_load_memory(buf, len, &ref) != NN_OK || nn_model_select_outputs(ref, &out_name, 1) != NN_OK ||
	    nn_run(ref, &in, 1, &r32, 1) != NN_OK) {
		CHECK(0, "reference model runs (%s)", nn_errmsg());
		goto out;
	}
	if (nn_model_set_precision(ref, NN_PRECISION_BF16) == NN_ERR_UNSUPPORTED) {
		printf("# bf16 part of the release test skipped: %s\n", nn_errmsg());
		bf16 = false;
	} else if (nn_run(ref, &in, 1, &r16, 1) != NN_OK) {
		CHECK(0, "reference model runs in bf16 (%s)", nn_errmsg());
		goto out;
	}
	CHECK(count_released(ref) == 0, "a model loaded from memory keeps its weights");
	st = nn_model_load_file(copy, &m);
	CHECK(st == NN_OK && nn_model_select_outputs(m, &out_name, 1) == NN_OK, "ISNet loads from a file (%s)",
	      st ? nn_errmsg() : "");
	if (!m)
		goto out;
	CHECK(m->g.slab != NULL, "its tensors were decoded into one slab");
	/* its fp16 convolution weights are held as they are, not widened */
	int half = 0;
	for (int i = 0; i < m->g.n_nodes; i++) {
		const struct nn_node *n = &m->g.nodes[i];
		if (!n->dead && n->op == NN_OP_CONV && n->n_in > 1 && m->g.vals[n->in[1]].data)
			half += m->g.vals[n->in[1]].dtype == NN_DTYPE_F16;
	}
	CHECK(half >= 100, "the model holds %d conv weights at half size until a plan reorders them", half);
	if (bf16) {
		nn_model_set_precision(m, NN_PRECISION_BF16);
		st = nn_run(m, &in, 1, &f16, 1);
		CHECK(st == NN_OK && max_diff(f16.data, r16.data, (size_t)H * W) == 0,
		      "bf16 from the file equals bf16 from memory (%s)", st ? nn_errmsg() : "");
		int rel = count_released(m);
		CHECK(rel >= 100, "the graph's copies of %d conv weights are released once reordered", rel);
		/* what the kernels read with aligned vector loads */
		CHECK(m->arena && m->scratch && !((uintptr_t)m->arena % 64) && !((uintptr_t)m->scratch % 64),
		      "the activations (%zu bytes) and scratch (%zu bytes) are 64-byte aligned", m->arena_size,
		      m->scratch_size);
		/* with every weight kept by the plan, the slab became the arena */
		CHECK(!m->g.slab && m->arena_size == 2 * len, "the activations live in the slab the model was decoded into (%zu bytes)",
		      m->arena_size);
		nn_model_set_precision(m, NN_PRECISION_FP32);
	}
	st = nn_run(m, &in, 1, &f32, 1);
	CHECK(st == NN_OK && max_diff(f32.data, r32.data, (size_t)H * W) == 0,
	      "fp32 after bf16 rereads the weights and equals fp32 from memory (%s)", st ? nn_errmsg() : "");
	CHECK(count_released(m) >= 100, "and releases them again (%d)", count_released(m));
	/* at rest: no plan, no reordered weights, no activations; the next run
	 * builds them again from the file and computes the same */
	nn_model_rest(m);
	CHECK(!m->plans && !m->wcache && !m->arena && !m->scratch, "a model at rest holds no plan, weights or arena");
	nn_tensor_free(&f32);
	st = nn_run(m, &in, 1, &f32, 1);
	CHECK(st == NN_OK && max_diff(f32.data, r32.data, (size_t)H * W) == 0,
	      "the run after a rest rereads the weights and equals fp32 from memory (%s)", st ? nn_errmsg() : "");
	/* the file replaced (a new mtime stands for it): rereading is refused */
	struct timeval tv[2] = {{1000000000, 0}, {1000000000, 0}};
	CHECK(utimes(copy, tv) == 0, "touch the copy");
	st = nn_model_reload_weights(m);
	CHECK(st == NN_ERR_IO && strstr(nn_errmsg(), "changed"), "a changed file is not reread (%s)", nn_errmsg());
out:
	nn_tensor_free(&r32);
	nn_tensor_free(&r16);
	nn_tensor_free(&f32);
	nn_tensor_free(&f16);
	nn_model_free(ref);
	nn_model_free(m);
	if (fd >= 0)
		unlink(copy);
	free(buf);
	free(x);
}

/* n floats of noise from seed (malloc'd) and the temporary folder made from
 * the template dir, or NULL (a failed check) if either cannot be had. */
static float *noise_in_folder(char *dir, size_t n, uint32_t seed)
{
	float *x = malloc(sizeof *x * n);

	if (!x || !mkdtemp(dir)) {
		CHECK(0, "a temporary folder and an input");
		free(x);
		return NULL;
	}
	fill_noise(x, n, seed);
	return x;
}

/* Whether the last run_with_weight_file read the weights file through to
 * check it (nn_plan_stats.weights_file_read). */
static int last_file_read = -1;

/* One run of the ISNet file at path with the weights file kept in dir:
 * its mask in *out and how many weight tensors came from the file; -1 if
 * it does not run. rest: run again after nn_model_rest; one_pass: as a
 * one-pass model (nn_model_set_one_pass), run twice, the second pass
 * reading back the weights the first let go of, its mask the same. */
static int run_with_weight_file(const char *path, const char *dir, const float *x, int h, int w, bool rest,
				bool one_pass, struct nn_tensor *out)
{
	const char *out_name = "output";
	struct nn_tensor in = {.dtype = NN_DTYPE_F32, .rank = 4, .dims = {1, 3, h, w}, .data = (void *)x};
	struct nn_plan_stats ps;
	nn_model *m = NULL;
	int got = -1;

	if (nn_model_load_file(path, &m) != NN_OK || nn_model_select_outputs(m, &out_name, 1) != NN_OK ||
	    nn_model_set_weight_cache(m, dir) != NN_OK)
		goto out;
	nn_model_set_one_pass(m, one_pass);
	if (nn_run(m, &in, 1, out, 1) != NN_OK)
		goto out;
	if (one_pass) {
		struct nn_tensor again = {0};
		bool same = nn_run(m, &in, 1, &again, 1) == NN_OK &&
			    max_diff(out->data, again.data, (size_t)h * w) == 0;
		nn_tensor_free(&again);
		if (!same) {
			printf("# a one-pass model's second pass differs from its first\n");
			goto out;
		}
	}
	if (rest) { /* at rest and back: the weights come from the file again */
		nn_model_rest(m);
		nn_tensor_free(out);
		if (nn_run(m, &in, 1, out, 1) != NN_OK)
			goto out;
	}
	if (nn_model_stats(m, &ps) == NN_OK) {
		got = ps.weights_from_file;
		last_file_read = ps.weights_file_read;
	}
out:
	if (got < 0)
		printf("# %s\n", nn_errmsg());
	nn_model_free(m);
	return got;
}

/* Removes the folder at dir and all in it. */
static void remove_folder(const char *dir)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	CHECK(system(cmd) == 0, "remove %s", dir);
}

/* Flips a bit of the byte in the middle of the file at path, size bytes. */
static void damage_middle(const char *path, off_t size)
{
	FILE *f = fopen(path, "r+b");
	int byte = f && !fseek(f, (long)(size / 2), SEEK_SET) ? fgetc(f) : EOF;
	CHECK(byte != EOF && !fseek(f, (long)(size / 2), SEEK_SET) && fputc(byte ^ 0x40, f) != EOF,
	      "damage the file");
	if (f)
		fclose(f);
}

/* The one weights file in dir, in file (empty if none). */
static void weights_file_in(const char *dir, char *file, size_t n)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "ls -d %s/*.weights 2>/dev/null | head -1", dir);
	FILE *ls = popen(cmd, "r");
	*file = '\0';
	if (ls && fgets(file, (int)n, ls))
		file[strcspn(file, "\n")] = '\0';
	if (ls)
		pclose(ls);
}

/* The file of reordered weights: written by a first process, used by the
 * next with the same mask, ignored and rewritten when damaged. */
static void test_weight_file(const char *path)
{
	enum { H = 160, W = 160 };
	char dir[] = "/tmp/petcut-test-wfile-XXXXXX", file[4096] = "";
	struct nn_tensor a = {0}, b = {0}, c = {0}, d = {0};
	float *x = noise_in_folder(dir, (size_t)3 * H * W, 11);
	int n;

	if (!x)
		return;
	n = run_with_weight_file(path, dir, x, H, W, false, false, &a);
	CHECK(n == 0, "a first process reorders every weight (%d from the file)", n);
	weights_file_in(dir, file, sizeof file);
	struct stat sb;
	CHECK(*file && !stat(file, &sb) && sb.st_size > 1000000, "and writes them to %s", *file ? file : "a file");
	n = run_with_weight_file(path, dir, x, H, W, false, false, &b);
	CHECK(n >= 100 && b.data && max_diff(a.data, b.data, (size_t)H * W) == 0,
	      "the next takes %d weight tensors from the file and makes the same mask", n);
	n = run_with_weight_file(path, dir, x, H, W, true, false, &c);
	CHECK(n >= 100 && c.data && max_diff(a.data, c.data, (size_t)H * W) == 0,
	      "and after a rest takes them from the file again (%d)", n);
	/* a one-pass model lets each step's weights go from its mapping as the
	 * pass goes: the same mask, twice (the second pass reads them back) */
	nn_tensor_free(&c);
	n = run_with_weight_file(path, dir, x, H, W, false, true, &c);
	CHECK(n >= 100 && c.data && max_diff(a.data, c.data, (size_t)H * W) == 0,
	      "a one-pass model takes %d from the file, lets them go as it runs, and makes the same mask twice", n);
	/* one byte of a tensor changed: the file is not used, and is rewritten */
	damage_middle(file, sb.st_size);
	nn_tensor_free(&c);
	n = run_with_weight_file(path, dir, x, H, W, false, false, &c);
	CHECK(n == 0 && c.data && max_diff(a.data, c.data, (size_t)H * W) == 0,
	      "a damaged file is not used (%d from it) and the mask is the same", n);
	n = run_with_weight_file(path, dir, x, H, W, false, false, &d);
	CHECK(n >= 100 && d.data && max_diff(a.data, d.data, (size_t)H * W) == 0,
	      "it was written anew: the next process takes %d from it", n);
	nn_tensor_free(&a);
	nn_tensor_free(&b);
	nn_tensor_free(&c);
	nn_tensor_free(&d);
	remove_folder(dir);
	free(x);
}

/* The file's check record: a file is read through until one is written,
 * which happens once the file has not changed for 2 s; then a process
 * takes the file on the record without reading it, with the same mask; a
 * file changed in any way is read through again (and, damaged, not used). */
static void test_weight_file_record(const char *path)
{
	enum { H = 96, W = 96 };
	char dir[] = "/tmp/petcut-test-wrec-XXXXXX", file[4096] = "", rec[4200];
	struct nn_tensor a = {0}, b = {0}, c = {0}, d = {0};
	float *x = noise_in_folder(dir, (size_t)3 * H * W, 12);
	struct stat sb;
	int n;

	if (!x)
		return;
	n = run_with_weight_file(path, dir, x, H, W, false, false, &a);
	weights_file_in(dir, file, sizeof file);
	snprintf(rec, sizeof rec, "%s.checked", file);
	CHECK(n == 0 && *file && !stat(file, &sb), "a first process writes the weights file");
	/* settled: 2 s after its last change */
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	if (now.tv_sec < sb.st_ctim.tv_sec + 3)
		sleep((unsigned)(sb.st_ctim.tv_sec + 3 - now.tv_sec));
	n = run_with_weight_file(path, dir, x, H, W, false, false, &b);
	CHECK(n >= 50 && last_file_read == 1 && !access(rec, F_OK) && max_diff(a.data, b.data, (size_t)H * W) == 0,
	      "the next reads it through (%d) and records the check (%s)", last_file_read, rec);
	nn_tensor_free(&b);
	n = run_with_weight_file(path, dir, x, H, W, false, false, &b);
	CHECK(n >= 50 && last_file_read == 0 && b.data && max_diff(a.data, b.data, (size_t)H * W) == 0,
	      "the one after takes %d tensors on the record, not reading the file (%d), with the same mask", n,
	      last_file_read);
	/* the file's times set back as they were after a change: still read */
	damage_middle(file, sb.st_size);
	struct timespec times[2] = {sb.st_atim, sb.st_mtim};
	CHECK(!utimensat(AT_FDCWD, file, times, 0), "set its times back");
	/* a record whose file is gone: removed when a file is next written */
	char orphan[4200];
	snprintf(orphan, sizeof orphan, "%s/00000000-00000000.fp32.weights.checked", dir);
	FILE *o = fopen(orphan, "wb");
	CHECK(o && fclose(o) == 0, "a record without its file");
	n = run_with_weight_file(path, dir, x, H, W, false, false, &c);
	CHECK(n == 0 && c.data && max_diff(a.data, c.data, (size_t)H * W) == 0,
	      "a damaged file with its old times is read through and not used (%d from it), the mask the same", n);
	CHECK(access(orphan, F_OK) && errno == ENOENT && !access(rec, F_OK),
	      "writing it anew removed the record without a file, and kept the file's own");
	n = run_with_weight_file(path, dir, x, H, W, false, false, &d);
	CHECK(n >= 50 && last_file_read == 1 && d.data && max_diff(a.data, d.data, (size_t)H * W) == 0,
	      "the file written anew is read through by the next process (%d), which takes %d from it",
	      last_file_read, n);
	nn_tensor_free(&a);
	nn_tensor_free(&b);
	nn_tensor_free(&c);
	nn_tensor_free(&d);
	remove_folder(dir);
	free(x);
}

/* One int8 run of the ISNet file at path with the weights file kept in
 * dir, calibrated on x_cal (its ranges saved to calib when save, else read
 * from it): the mask in *out and how many tensors came from the file; -1
 * if it does not run, -2 if the CPU has no int8 (nn_errmsg says why). */
static int run_int8_with_weight_file(const char *path, const char *dir, const char *calib, bool save,
				     const float *x_cal, const float *x, int h, int w, struct nn_tensor *out)
{
	const char *out_name = "output";
	struct nn_tensor cal = {.dtype = NN_DTYPE_F32, .rank = 4, .dims = {1, 3, h, w}, .data = (void *)x_cal};
	struct nn_tensor in = {.dtype = NN_DTYPE_F32, .rank = 4, .dims = {1, 3, h, w}, .data = (void *)x};
	struct nn_plan_stats ps;
	nn_model *m = NULL;
	nn_status st;
	int got = -1;

	if (nn_model_load_file(path, &m) != NN_OK || nn_model_select_outputs(m, &out_name, 1) != NN_OK ||
	    nn_model_set_weight_cache(m, dir) != NN_OK)
		goto out;
	if (save ? nn_model_observe(m, &cal, 1) != NN_OK || nn_model_save_calibration(m, calib) != NN_OK
		 : nn_model_load_calibration(m, calib) != NN_OK)
		goto out;
	if ((st = nn_run_at(m, NN_PRECISION_INT8, &in, 1, out, 1)) != NN_OK) {
		got = st == NN_ERR_UNSUPPORTED ? -2 : -1;
		goto out;
	}
	if (nn_model_stats(m, &ps) == NN_OK)
		got = ps.weights_from_file;
out:
	if (got == -1)
		printf("# %s\n", nn_errmsg());
	nn_model_free(m);
	return got;
}

/* int8's weights file: the s8 weights and their per-channel scales come
 * from it too, with the same mask, under the calibration that made them
 * (its key names the calibration: another one does not use the file). */
static void test_weight_file_int8(const char *path)
{
	enum { H = 160, W = 160 };
	char dir[] = "/tmp/petcut-test-wfile8-XXXXXX", calib[sizeof dir + 16], cmd[256];
	struct nn_tensor a = {0}, b = {0}, c = {0};
	float *x = noise_in_folder(dir, (size_t)3 * H * W, 21);
	int n;

	if (!x)
		return;
	snprintf(calib, sizeof calib, "%s/calib", dir);
	n = run_int8_with_weight_file(path, dir, calib, true, x, x, H, W, &a);
	if (n == -2) {
		printf("# skipped the int8 weights file: %s\n", nn_errmsg());
		goto out;
	}
	CHECK(n == 0, "a first int8 process reorders and quantizes every weight (%d from the file)", n);
	n = run_int8_with_weight_file(path, dir, calib, false, NULL, x, H, W, &b);
	CHECK(n >= 100 && b.data && max_diff(a.data, b.data, (size_t)H * W) == 0,
	      "the next, with the same calibration, takes %d tensors (s8 weights and their scales) from the file "
	      "and makes the same mask", n);
	/* the same ranges halved: another calibration */
	snprintf(cmd, sizeof cmd, "awk 'NR == 1 { print; next } { print $1 / 2, $2 / 2, $3 }' %s > %s.2", calib, calib);
	CHECK(system(cmd) == 0, "write another calibration");
	strcat(calib, ".2");
	n = run_int8_with_weight_file(path, dir, calib, false, NULL, x, H, W, &c);
	CHECK(n == 0 && c.data, "a process with another calibration does not use that file (%d from it)", n);
	/* one process, the file's calibration and then the other: the weights
	 * it took from the file are let go, the new ones made from the model */
	{
		const char *out_name = "output";
		struct nn_tensor in = {.dtype = NN_DTYPE_F32, .rank = 4, .dims = {1, 3, H, W}, .data = x}, d = {0}, e = {0};
		nn_model *m = NULL;
		calib[strlen(calib) - 2] = '\0';
		bool ran = nn_model_load_file(path, &m) == NN_OK && nn_model_select_outputs(m, &out_name, 1) == NN_OK &&
			   nn_model_set_weight_cache(m, dir) == NN_OK && nn_model_load_calibration(m, calib) == NN_OK &&
			   nn_run_at(m, NN_PRECISION_INT8, &in, 1, &d, 1) == NN_OK;
		strcat(calib, ".2");
		ran = ran && nn_model_load_calibration(m, calib) == NN_OK &&
		      nn_run_at(m, NN_PRECISION_INT8, &in, 1, &e, 1) == NN_OK;
		CHECK(ran && a.data && c.data && max_diff(a.data, d.data, (size_t)H * W) == 0 &&
			      max_diff(c.data, e.data, (size_t)H * W) == 0,
		      "a process that changes its calibration makes each calibration's mask (%s)", ran ? "ran" : nn_errmsg());
		nn_tensor_free(&d);
		nn_tensor_free(&e);
		nn_model_free(m);
	}
out:
	nn_tensor_free(&a);
	nn_tensor_free(&b);
	nn_tensor_free(&c);
	remove_folder(dir);
	free(x);
}

/* Every half-precision value converted many at a time (the vector path
 * where the CPU has one) equals the one-at-a-time conversion: the same
 * bits, or NaN for NaN. */
/* A process that prepares its plans and waits (a server) hands the slab
 * back; its first pass then makes its arena anew and computes the same. */
static void test_trim(const char *path)
{
	enum { H = 160, W = 160 };
	struct nn_tensor in = {.dtype = NN_DTYPE_F32, .rank = 4, .dims = {1, 3, H, W}}, a = {0}, b = {0};
	const char *out_name = "output";
	float *x = malloc(sizeof *x * 3 * H * W);
	nn_model *m = NULL, *n = NULL;

	if (!x || nn_model_load_file(path, &m) != NN_OK || nn_model_load_file(path, &n) != NN_OK ||
	    nn_model_select_outputs(m, &out_name, 1) != NN_OK || nn_model_select_outputs(n, &out_name, 1) != NN_OK) {
		CHECK(0, "ISNet loads twice (%s)", nn_errmsg());
		goto out;
	}
	fill_noise(x, (size_t)3 * H * W, 11);
	in.data = x;
	nn_model_set_precision(m, NN_PRECISION_FP32);
	nn_model_set_precision(n, NN_PRECISION_FP32);
	CHECK(nn_model_prepare(m, &in, 1) == NN_OK && m->g.slab && count_released(m) >= 100,
	      "planned, the weights released, the slab kept for the first pass");
	nn_model_trim(m);
	CHECK(!m->g.slab, "trimmed: the slab is handed back");
	bool ran = nn_run(m, &in, 1, &a, 1) == NN_OK && nn_run(n, &in, 1, &b, 1) == NN_OK;
	CHECK(ran && max_diff(a.data, b.data, (size_t)H * W) == 0 && n->arena_size > m->arena_size,
	      "its pass makes a new arena (%zu bytes, against the slab's %zu) and computes the same", m->arena_size,
	      n->arena_size);
out:
	nn_tensor_free(&a);
	nn_tensor_free(&b);
	nn_model_free(m);
	nn_model_free(n);
	free(x);
}

/* The slab's rules (slab.c); in the sanitizer build, its checks also see
 * that no block is touched after its slab is released. */
static void test_slab(void)
{
	const size_t size = (size_t)1 << 20;
	struct nn_slab *s = nn_slab_new(size);
	unsigned char *a, *b;
	size_t got = 0;
	void *r;

	CHECK(s != NULL, "a slab of 1 MiB");
	if (!s)
		return;
	a = nn_slab_alloc(s, 1000);
	b = nn_slab_alloc(s, 5000);
	CHECK(a && b && !((uintptr_t)a % 64) && !((uintptr_t)b % 64) && b >= a + 1000 && !nn_slab_alloc(s, size),
	      "two 64-aligned blocks from it, apart, and none larger than what is left");
	if (!a || !b)
		return;
	memset(a, 1, 1000);
	memset(b, 2, 5000);
	CHECK(!nn_slab_take(&s, 4096, &got) && s, "not taken while both blocks are in use");
	nn_data_free(a);
	CHECK(!nn_slab_take(&s, 4096, &got) && s && b[4999] == 2, "nor while one is, which keeps its bytes");
	nn_data_free(b);
	r = nn_slab_take(&s, 4096, &got);
	CHECK(r && !s && got == size && !((uintptr_t)r % 64), "taken whole once both are freed (%zu bytes)", got);
	if (r)
		memset(r, 0, got);
	free(r);
	/* an owner that lets go first: the slab lives until its last block */
	s = nn_slab_new(size);
	a = nn_slab_alloc(s, 100);
	nn_slab_close(s);
	CHECK(a != NULL, "a block of a slab its owner let go");
	if (a) { /* (without one, the slab is gone) */
		CHECK(!nn_slab_alloc(s, 100), "a slab let go hands out no more blocks");
		memset(a, 3, 100);
		nn_data_free(a);
	}
	/* too small for what is asked: released, not taken */
	s = nn_slab_new(4096);
	r = nn_slab_take(&s, size, &got);
	CHECK(!r && !s, "a slab smaller than what is asked is released");
	nn_data_free(malloc(10)); /* malloc's go to free() */
	nn_data_free(NULL);
}

static void test_f16_conversion(void)
{
	static uint16_t in[65536 + 3];
	static float out[65536 + 3];
	int bad = 0;

	for (uint32_t i = 0; i < 65536 + 3; i++)
		in[i] = (uint16_t)(i * 40503u); /* every value once, in a scrambled order, and three more */
	nn_f16_to_f32_n(in, out, 65536 + 3);
	for (uint32_t i = 0; i < 65536 + 3; i++) {
		float want = nn_f16_to_f32(in[i]);
		bad += isnan(want) ? !isnan(out[i]) : memcmp(&want, &out[i], sizeof want) != 0;
	}
	CHECK(bad == 0, "all 65536 halves converted in bulk as one at a time (%d differ)", bad);
}

int main(void)
{
	char path[4096];
	const char *dir = getenv("PETCUT_MODELS"), *home = getenv("HOME");

	nn_set_threads(0);
	test_f16_conversion();
	test_slab();
	test_load_errors();
	if (dir && *dir)
		snprintf(path, sizeof path, "%s/isnet-medium.onnx", dir);
	else
		snprintf(path, sizeof path, "%s/.cache/petcut/models/isnet-medium.onnx", home ? home : "");
	FILE *f = fopen(path, "rb");
	if (f) {
		fclose(f);
		test_isnet(path);
		test_isnet_file(path);
		test_trim(path);
		test_weight_file(path);
		test_weight_file_record(path);
		test_weight_file_int8(path);
	} else {
		printf("# skipped the ISNet checks: %s is not there (petcut model fetch)\n", path);
		if (!failures)
			return 77;
	}
	printf("%s\n", failures ? "FAILED" : "all passed");
	return failures ? 1 : 0;
}
