/*
 * test_isnet_ort.c - end-to-end check of petcut's nn runtime against ONNX
 * Runtime: the ISNet models on real photos.
 *
 * For each photo in BUILD/testdata/photos and each model (medium, small), the
 * photo becomes ISNet's input tensor (libvips: decode, sRGB, resize to
 * 1024 x 1024 ignoring the aspect ratio, v / 255 - 0.5, planar RGB, 1 x 3 x
 * 1024 x 1024); petcut's nn runs the model keeping the output "output", and
 * ONNX Runtime (tests/ref/ort_run.js under Node, installed by
 * scripts/test-setup.sh) runs it on the same tensor. The two masks must agree:
 *
 *   model    IoU at threshold 0.5    mean |difference|
 *   medium   >= 0.9995               <= 0.0001
 *   small    >= 0.99                 <= 0.01
 *
 * ONNX Runtime's outputs are cached in BUILD/testdata/ref, named by the
 * model's SHA-256 and the photo's name and input tensor's SHA-256, so each is
 * computed once.
 *
 *   test_isnet_ort             compare (exit 0 all within bounds, 1 not,
 *                              77 when ONNX Runtime or the photos are missing)
 *   test_isnet_ort --prepare   only compute the missing references
 *
 * BUILD is the folder above the one holding this program (or $PETCUT_BUILD);
 * models are $PETCUT_MODELS/isnet-{medium,small}.onnx, by default under
 * ~/.cache/petcut/models (what petcut model fetch fills). The program runs
 * from the repository root (tests/run.sh does that).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <openssl/evp.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <vips/vips.h>

#include "nn/nn.h"

extern char **environ;

#define SIDE 1024
#define PLANE ((size_t)SIDE * SIDE)
#define MAX_PHOTOS 64

/* One model under test and the bounds its mask must meet. */
struct model_case {
	const char *name;	/* as in petcut model path NAME */
	double min_iou;		/* IoU of the masks thresholded at 0.5 */
	double max_mean_diff;	/* mean |petcut - ORT| over the mask */
	double bf16_min_iou;	/* IoU of petcut's bf16 mask against its fp32 one (0: not checked) */
	double int8_min_iou;	/* the same for int8, calibrated on every other photo (0: not checked) */
};

static const struct model_case models[] = {
	/* fp32 agrees with ONNX Runtime to IoU 0.9999 and mean |diff| 2.4e-5 at
	 * worst on the test photos: a few times that; the small model (int8
	 * weights, where rounding differs) to 0.9933 and 0.0033 */
	{"medium", 0.9995, 0.0001, 0.99, 0.98},
	{"small", 0.99, 0.01, 0, 0},
};

/* References computed by this run and found cached (for --prepare's report). */
static int refs_computed, refs_cached;

/* Paths the test works with, all resolved once in main. */
static char build_dir[2048], models_dir[2048], photos_dir[2100], ref_dir[2100], ort_dir[2100],
	ort_script[2100];

/* ===== Helpers ===== */

static int file_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static long long file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void hex(const unsigned char *md, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
}

/* SHA-256 of a file, as 64 hex digits in out[65]. Returns 0 or -1. */
static int sha256_file(const char *path, char *out)
{
	unsigned char md[EVP_MAX_MD_SIZE], buf[1 << 16];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = NULL;
	FILE *f = fopen(path, "rb");
	size_t n;
	int rc = -1;

	if (!f || !(ctx = EVP_MD_CTX_new()) || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL))
		goto out;
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		if (!EVP_DigestUpdate(ctx, buf, n))
			goto out;
	if (ferror(f) || !EVP_DigestFinal_ex(ctx, md, &mdlen))
		goto out;
	hex(md, mdlen, out);
	rc = 0;
out:
	EVP_MD_CTX_free(ctx);
	if (f)
		fclose(f);
	return rc;
}

static void sha256_mem(const void *data, size_t len, char *out)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
	hex(md, mdlen, out);
}

static int write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	int rc = 0;
	if (!f)
		return -1;
	if (fwrite(data, 1, len, f) != len)
		rc = -1;
	if (fclose(f))
		rc = -1;
	return rc;
}

static int read_exact(const char *path, void *data, size_t len)
{
	FILE *f = fopen(path, "rb");
	int rc = 0;
	if (!f)
		return -1;
	if (fread(data, 1, len, f) != len || fgetc(f) != EOF)
		rc = -1;
	fclose(f);
	return rc;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The photos: *.png, *.jpg, *.jpeg in photos_dir, sorted. Returns the count. */
static int list_photos(char **names, int max)
{
	DIR *d = opendir(photos_dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)) && n < max) {
		const char *dot = strrchr(e->d_name, '.');
		if (e->d_name[0] == '.' || !dot)
			continue;
		if (strcasecmp(dot, ".png") && strcasecmp(dot, ".jpg") && strcasecmp(dot, ".jpeg"))
			continue;
		if ((names[n] = strdup(e->d_name)))
			n++;
	}
	closedir(d);
	qsort(names, n, sizeof *names, cmp_str);
	return n;
}

/* ===== Input tensor ===== */

/* Makes ISNet's input for a photo: 3 x 1024 x 1024 planar RGB floats,
 * v / 255 - 0.5, the photo resized to 1024 x 1024 without keeping its aspect
 * ratio. Returns a malloc'd array, or NULL with a message printed. */
static float *photo_tensor(const char *path)
{
	VipsImage *img = NULL, *t = NULL;
	unsigned char *px = NULL;
	float *x = NULL;
	size_t len = 0;

	/* thumbnail with VIPS_SIZE_FORCE: exact 1024 x 1024, up or down,
	 * converted to sRGB. */
	if (vips_thumbnail(path, &img, SIDE, "height", SIDE, "size", VIPS_SIZE_FORCE, NULL))
		goto fail;
	if (img->Bands == 4 || img->Bands == 2) {
		if (vips_flatten(img, &t, NULL))
			goto fail;
		g_object_unref(img);
		img = t;
		t = NULL;
	}
	if (img->Bands == 1) {
		VipsImage *three[3] = {img, img, img};
		if (vips_bandjoin(three, &t, 3, NULL))
			goto fail;
		g_object_unref(img);
		img = t;
		t = NULL;
	}
	if (vips_cast_uchar(img, &t, NULL))
		goto fail;
	g_object_unref(img);
	img = t;
	t = NULL;
	if (img->Xsize != SIDE || img->Ysize != SIDE || img->Bands != 3) {
		fprintf(stderr, "%s: resized to %dx%d with %d bands, expected %dx%dx3\n", path, img->Xsize,
			img->Ysize, img->Bands, SIDE, SIDE);
		g_object_unref(img);
		return NULL;
	}
	px = vips_image_write_to_memory(img, &len);
	g_object_unref(img);
	img = NULL;
	if (!px || len != PLANE * 3)
		goto fail;
	x = malloc(PLANE * 3 * sizeof *x);
	if (x)
		for (size_t i = 0; i < PLANE; i++)
			for (int c = 0; c < 3; c++)
				x[c * PLANE + i] = px[i * 3 + c] / 255.0f - 0.5f;
	g_free(px);
	return x;
fail:
	fprintf(stderr, "%s: cannot make the input tensor: %s\n", path, vips_error_buffer());
	vips_error_clear();
	if (img)
		g_object_unref(img);
	g_free(px);
	return NULL;
}

/* ===== Reference (ONNX Runtime) ===== */

/* Runs tests/ref/ort_run.js on the tensor x for model_path; writes the output
 * "output" to out_path. Returns 0 or -1 (Node's own message went to stderr). */
static int ort_run(const char *model_path, const float *x, const char *out_path)
{
	char in_path[2200], shape[64];
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int status, rc = -1, spawned;

	snprintf(in_path, sizeof in_path, "%s/tmp-input-%d.f32", ref_dir, (int)getpid());
	snprintf(shape, sizeof shape, "1,3,%d,%d", SIDE, SIDE);
	if (write_file(in_path, x, PLANE * 3 * sizeof *x)) {
		fprintf(stderr, "cannot write %s: %s\n", in_path, strerror(errno));
		goto out;
	}
	char *argv[] = {"node", ort_script, (char *)model_path, in_path, shape, (char *)out_path, "output", NULL};
	setenv("PETCUT_ORT_DIR", ort_dir, 1);
	fflush(stdout);
	/* Node's stdout (its timing) is not wanted here; its errors are. */
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
	spawned = posix_spawnp(&pid, "node", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (spawned) {
		fprintf(stderr, "cannot start node: %s\n", strerror(spawned));
		goto out;
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "node %s failed (status %d)\n", ort_script, status);
		goto out;
	}
	rc = file_size(out_path) == (long long)(PLANE * sizeof(float)) ? 0 : -1;
	if (rc)
		fprintf(stderr, "%s: not a 1x1x%dx%d float32 output\n", out_path, SIDE, SIDE);
out:
	unlink(in_path);
	return rc;
}

/* Path of the cached reference for a model, photo and input tensor. */
static void ref_path(char *out, size_t len, const char *model, const char *model_sha, const char *photo,
		     const char *in_sha)
{
	snprintf(out, len, "%s/isnet-%s-%.16s-%s-%.16s.f32", ref_dir, model, model_sha, photo, in_sha);
}

/* ===== Comparison ===== */

struct agreement {
	double iou, mean_diff, max_diff;
};

static struct agreement agree(const float *a, const float *b, size_t n)
{
	struct agreement r = {0};
	size_t inter = 0, uni = 0;
	double sum = 0;

	for (size_t i = 0; i < n; i++) {
		int fa = a[i] >= 0.5f, fb = b[i] >= 0.5f;
		double d = fabs((double)a[i] - b[i]);
		inter += fa && fb;
		uni += fa || fb;
		sum += d;
		if (d > r.max_diff || isnan(d))
			r.max_diff = isnan(d) ? INFINITY : d;
	}
	r.iou = uni ? (double)inter / uni : 1.0;
	r.mean_diff = isnan(sum) ? INFINITY : sum / n;
	return r;
}

/* ===== Main ===== */

/* Resolves build_dir and the paths under it; the build folder is the parent of
 * the folder holding this program unless $PETCUT_BUILD says otherwise. */
static void resolve_paths(const char *argv0)
{
	const char *env = getenv("PETCUT_BUILD"), *home = getenv("HOME");
	char tmp[2048];

	if (env && env[0]) {
		snprintf(build_dir, sizeof build_dir, "%s", env);
	} else {
		snprintf(tmp, sizeof tmp, "%s", argv0);
		snprintf(build_dir, sizeof build_dir, "%s", dirname(dirname(tmp)));
	}
	snprintf(photos_dir, sizeof photos_dir, "%s/testdata/photos", build_dir);
	snprintf(ref_dir, sizeof ref_dir, "%s/testdata/ref", build_dir);
	snprintf(ort_dir, sizeof ort_dir, "%s/ort", build_dir);
	snprintf(ort_script, sizeof ort_script, "tests/ref/ort_run.js");
	if (!file_exists(ort_script))
		snprintf(ort_script, sizeof ort_script, "%s/../tests/ref/ort_run.js", build_dir);
	env = getenv("PETCUT_MODELS");
	if (env && env[0])
		snprintf(models_dir, sizeof models_dir, "%s", env);
	else
		snprintf(models_dir, sizeof models_dir, "%s/.cache/petcut/models", home ? home : ".");
}

/* Checks one model on every photo. Returns the number of photos out of
 * bounds or not compared (0 = all good). With prepare set, only makes sure
 * the references exist. */
/* petcut's reduced-precision mask against its own fp32 one (fp32_mask) for
 * the same input. Returns 1 if out of bounds; a CPU without the precision is
 * a printed skip. */
static int check_reduced(nn_model *m, nn_precision prec, const struct nn_tensor *in, const char *photo,
			 const float *fp32_mask, double min_iou)
{
	const char *name = prec == NN_PRECISION_BF16 ? "bf16" : "int8";
	struct nn_tensor out = {0};
	double t = now_s();
	nn_status st = nn_run_at(m, prec, in, 1, &out, 1);

	t = now_s() - t;
	if (st == NN_ERR_UNSUPPORTED) {
		printf("  %-16s %s skipped: %s\n", photo, name, nn_errmsg());
		return 0;
	}
	if (st || nn_tensor_numel(&out) != (int64_t)PLANE) {
		printf("  %-16s %s FAIL: %s\n", photo, name, st ? nn_errmsg() : "wrong output size");
		nn_tensor_free(&out);
		return 1;
	}
	struct agreement a = agree(out.data, fp32_mask, PLANE);
	int ok = a.iou >= min_iou;
	printf("  %-16s %s against fp32: IoU %.5f  mean|diff| %.6f  max|diff| %.4f  nn %.2f s  %s\n", photo, name,
	       a.iou, a.mean_diff, a.max_diff, t, ok ? "ok" : "FAIL (out of bounds)");
	nn_tensor_free(&out);
	return !ok;
}

/* int8 ranges measured on every other photo (0, 2, ...): the rest are
 * photos the calibration never saw. */
static void calibrate(nn_model *m, char **photos, int n_photos)
{
	struct nn_tensor in = {.dtype = NN_DTYPE_F32, .rank = 4, .dims = {1, 3, SIDE, SIDE}};
	char path[4400];
	int used = 0;

	for (int p = 0; p < n_photos; p += 2) {
		snprintf(path, sizeof path, "%s/%s", photos_dir, photos[p]);
		if (!(in.data = photo_tensor(path)))
			continue;
		used += nn_model_observe(m, &in, 1) == NN_OK;
		free(in.data);
	}
	printf("  int8 calibrated on %d photo%s (every other one)\n", used, used == 1 ? "" : "s");
}

static int check_model(const struct model_case *mc, char **photos, int n_photos, int prepare)
{
	char model_path[2200], sha[65], ref[4400], in_sha[65];
	nn_model *m = NULL;
	float *got_ref = NULL;
	int bad = 0;
	nn_status st;

	snprintf(model_path, sizeof model_path, "%s/isnet-%s.onnx", models_dir, mc->name);
	if (!file_exists(model_path)) {
		printf("%-7s missing %s (fetch it with: petcut model fetch)\n", mc->name, model_path);
		return n_photos ? n_photos : 1;
	}
	if (sha256_file(model_path, sha)) {
		printf("%-7s cannot read %s\n", mc->name, model_path);
		return n_photos;
	}
	if (!prepare) {
		const char *want[] = {"output"};
		double t0 = now_s();
		if ((st = nn_model_load_file(model_path, &m)) || (st = nn_model_select_outputs(m, want, 1))) {
			printf("%-7s FAIL: cannot load %s: %s: %s\n", mc->name, model_path, nn_strerror(st),
			       nn_errmsg());
			nn_model_free(m);
			return n_photos;
		}
		printf("%-7s %s (sha256 %.16s), loaded in %.2f s; bounds: IoU@0.5 >= %g, mean |diff| <= %g\n",
		       mc->name, model_path, sha, now_s() - t0, mc->min_iou, mc->max_mean_diff);
	}
	got_ref = malloc(PLANE * sizeof *got_ref);
	if (!got_ref) {
		nn_model_free(m);
		return n_photos;
	}
	if (!prepare && mc->int8_min_iou > 0)
		calibrate(m, photos, n_photos);
	for (int p = 0; p < n_photos; p++) {
		char photo_path[4400];
		struct nn_tensor in = {0}, out = {0};
		double t_ort = 0, t_nn;
		float *x;

		snprintf(photo_path, sizeof photo_path, "%s/%s", photos_dir, photos[p]);
		if (!(x = photo_tensor(photo_path))) {
			printf("  %-16s FAIL: no input tensor\n", photos[p]);
			bad++;
			continue;
		}
		sha256_mem(x, PLANE * 3 * sizeof *x, in_sha);
		ref_path(ref, sizeof ref, mc->name, sha, photos[p], in_sha);
		if (!file_exists(ref)) {
			double t0 = now_s();
			if (ort_run(model_path, x, ref)) {
				printf("  %-16s FAIL: ONNX Runtime did not produce a reference\n", photos[p]);
				bad++;
				free(x);
				continue;
			}
			t_ort = now_s() - t0;
			refs_computed++;
		} else {
			refs_cached++;
		}
		if (prepare) {
			if (t_ort > 0)
				printf("  %-7s %-16s reference computed in %.1f s\n", mc->name, photos[p], t_ort);
			free(x);
			continue;
		}
		if (read_exact(ref, got_ref, PLANE * sizeof *got_ref)) {
			printf("  %-16s FAIL: cannot read %s\n", photos[p], ref);
			bad++;
			free(x);
			continue;
		}
		in.dtype = NN_DTYPE_F32;
		in.rank = 4;
		in.dims[0] = 1;
		in.dims[1] = 3;
		in.dims[2] = SIDE;
		in.dims[3] = SIDE;
		in.data = x;
		t_nn = now_s();
		st = nn_run(m, &in, 1, &out, 1);
		t_nn = now_s() - t_nn;
		if (st) {
			free(x);
			printf("  %-16s FAIL: nn_run: %s: %s\n", photos[p], nn_strerror(st), nn_errmsg());
			bad++;
			continue;
		}
		if (out.dtype != NN_DTYPE_F32 || nn_tensor_numel(&out) != (int64_t)PLANE || out.rank != 4 ||
		    out.dims[1] != 1) {
			printf("  %-16s FAIL: output is not a 1x1x%dx%d float32 tensor\n", photos[p], SIDE, SIDE);
			nn_tensor_free(&out);
			free(x);
			bad++;
			continue;
		}
		struct agreement a = agree(out.data, got_ref, PLANE);
		int ok = a.iou >= mc->min_iou && a.mean_diff <= mc->max_mean_diff;
		printf("  %-16s IoU %.5f  mean|diff| %.6f  max|diff| %.4f  nn %.2f s  %s\n", photos[p], a.iou,
		       a.mean_diff, a.max_diff, t_nn, ok ? "ok" : "FAIL (out of bounds)");
		fflush(stdout);
		bad += !ok;
		if (mc->bf16_min_iou > 0)
			bad += check_reduced(m, NN_PRECISION_BF16, &in, photos[p], out.data, mc->bf16_min_iou);
		if (mc->int8_min_iou > 0 && nn_model_has_calibration(m))
			bad += check_reduced(m, NN_PRECISION_INT8, &in, photos[p], out.data, mc->int8_min_iou);
		nn_tensor_free(&out);
		free(x);
	}
	free(got_ref);
	nn_model_free(m);
	return bad;
}

int main(int argc, char **argv)
{
	int prepare = argc > 1 && !strcmp(argv[1], "--prepare");
	char *photos[MAX_PHOTOS], check[2200];
	int n_photos, bad = 0;

	setvbuf(stdout, NULL, _IOLBF, 0); /* progress shows even if the test is killed */
	if (argc > 1 && !prepare) {
		fprintf(stderr, "usage: %s [--prepare]\n", argv[0]);
		return 2;
	}
	resolve_paths(argv[0]);
	snprintf(check, sizeof check, "%s/node_modules/onnxruntime-node/package.json", ort_dir);
	if (!file_exists(check) || system("node --version >/dev/null 2>&1") != 0) {
		printf("SKIP: ONNX Runtime for Node is not installed in %s (scripts/test-setup.sh %s installs it)\n",
		       ort_dir, build_dir);
		return 77;
	}
	if (!file_exists(ort_script)) {
		printf("FAIL: %s not found (run from the repository root)\n", ort_script);
		return 1;
	}
	n_photos = list_photos(photos, MAX_PHOTOS);
	if (!n_photos) {
		printf("SKIP: no photos in %s (scripts/test-setup.sh %s fetches them)\n", photos_dir, build_dir);
		return 77;
	}
	mkdir(ref_dir, 0755);
	if (VIPS_INIT(argv[0])) {
		printf("FAIL: libvips: %s\n", vips_error_buffer());
		return 1;
	}
	if (!prepare)
		printf("%d photos in %s; petcut's nn against ONNX Runtime, 1x3x%dx%d input\n", n_photos,
		       photos_dir, SIDE, SIDE);
	for (size_t i = 0; i < sizeof models / sizeof models[0]; i++)
		bad += check_model(&models[i], photos, n_photos, prepare);
	for (int p = 0; p < n_photos; p++)
		free(photos[p]);
	vips_shutdown();
	if (prepare) {
		printf("references in %s: %d computed, %d cached%s\n", ref_dir, refs_computed, refs_cached,
		       bad ? ", some missing" : "");
		return bad ? 1 : 0;
	}
	printf("%s: %d comparison%s out of bounds or not made\n", bad ? "FAIL" : "ok", bad, bad == 1 ? "" : "s");
	return bad ? 1 : 0;
}
