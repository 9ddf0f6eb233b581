/*
 * cmd_model.c - `petcut model`: fetch the segmentation models once, and tell
 * scripts where a model file is.
 *
 *   petcut model fetch [--variant medium|small|all] [--dir DIR]
 *   petcut model path [medium|small]
 *   petcut model calibrate --images DIR [--model NAME|PATH] [--size N]
 *
 * `fetch` prints one line per model on stdout; `path` prints only the path, so
 * that scripts can write MODEL=$(petcut model path small). Errors are one line
 * on stderr.
 */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "img/img.h"
#include "model/model.h"
#include "nn/nn.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: petcut model fetch [--variant medium|small|all] [--dir DIR]\n"
		"       petcut model path [medium|small]\n"
		"       petcut model calibrate --images DIR [--model NAME|PATH] [--size N]\n"
		"\n"
		"fetch  downloads, verifies and stores the models (default: all) in DIR\n"
		"       (default: $PETCUT_MODELS, else ~/.cache/petcut/models); models\n"
		"       already there with the right SHA-256 are kept as they are\n"
		"path   prints the path of a fetched model (default: %s);\n"
		"       exits 1 if it has not been fetched\n"
		"calibrate  measures the range of each convolution's input on the photos\n"
		"       in DIR (any format petcut reads; at N x N, default 1024) and saves\n"
		"       them beside the model, keyed by its SHA-256, for --precision int8\n"
		"\nexit status: 0 done; 1 failure while working (download, checksum, writing); 2 bad\n"
		"usage, or no usable photo to calibrate on\n",
		MODEL_DEFAULT_VARIANT);
}

static int is_help(const char *s)
{
	return !strcmp(s, "--help") || !strcmp(s, "-h");
}

static int model_fetch_cmd(int argc, char **argv)
{
	const char *dir = NULL;
	unsigned mask = MODEL_MASK_ALL;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (is_help(argv[i])) {
			usage(stdout);
			return 0;
		}
		if ((!strcmp(argv[i], "--variant") || !strcmp(argv[i], "--dir")) && i + 1 >= argc) {
			fprintf(stderr, "petcut model fetch: %s needs a value\n", argv[i]);
			return 2;
		}
		if (!strcmp(argv[i], "--variant")) {
			const char *name = argv[++i];
			int v = model_variant_from_name(name);

			if (!strcmp(name, "all")) {
				mask = MODEL_MASK_ALL;
			} else if (v >= 0) {
				mask = MODEL_MASK(v);
			} else {
				fprintf(stderr, "petcut model fetch: unknown variant '%s' "
						"(medium, small or all)\n", name);
				return 2;
			}
		} else if (!strcmp(argv[i], "--dir")) {
			dir = argv[++i];
		} else {
			fprintf(stderr, "petcut model fetch: unexpected argument '%s'\n", argv[i]);
			return 2;
		}
	}
	rc = model_fetch(dir, mask, stdout);
	if (rc) {
		fflush(stdout);
		fprintf(stderr, "petcut model fetch: %s\n", model_errmsg());
		return 1;
	}
	return 0;
}

static int model_path_cmd(int argc, char **argv)
{
	char path[PATH_MAX];
	const char *variant = NULL;
	int rc;

	if (argc > 1 && is_help(argv[1])) {
		usage(stdout);
		return 0;
	}
	if (argc > 2) {
		fprintf(stderr, "petcut model path: expected at most one variant\n");
		return 2;
	}
	if (argc == 2) {
		variant = argv[1];
		if (model_variant_from_name(variant) < 0) {
			fprintf(stderr, "petcut model path: unknown variant '%s' (medium or small)\n",
				variant);
			return 2;
		}
	}
	rc = model_path(variant, path, sizeof path);
	if (rc) {
		fprintf(stderr, "petcut model path: %s\n", model_errmsg());
		return 1;
	}
	printf("%s\n", path);
	return 0;
}

/* Runs the model at fp32 on one photo, widening the observed ranges.
 * Returns 0, or 1 after saying why the photo was skipped. */
static int observe_photo(nn_model *m, const char *path, int size, float *x)
{
	struct nn_tensor in = {.dtype = NN_DTYPE_F32, .rank = 4, .dims = {1, 3, size, size}, .data = x};
	struct img *im = NULL;

	if (img_load_file(path, &im) != IMG_OK || img_to_tensor(im, size, size, x) != IMG_OK) {
		fprintf(stderr, "petcut model calibrate: %s: skipped: %s\n", path, img_errmsg());
		img_free(im);
		return 1;
	}
	img_free(im);
	if (nn_model_observe(m, &in, 1) != NN_OK) {
		fprintf(stderr, "petcut model calibrate: %s: %s\n", path, nn_errmsg());
		return 1;
	}
	return 0;
}

static int model_calibrate_cmd(int argc, char **argv)
{
	static const char *const outputs[] = {"output"};
	const char *dir = NULL, *model = MODEL_DEFAULT_VARIANT;
	char path[PATH_MAX], calib[PATH_MAX + 64], photo[PATH_MAX + 256];
	struct dirent **names = NULL;
	nn_model *m = NULL;
	float *x = NULL;
	int size = 1024, n = 0, used = 0, rc = 1;

	for (int i = 1; i < argc; i++) {
		if (is_help(argv[i])) {
			usage(stdout);
			return 0;
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "petcut model calibrate: %s needs a value\n", argv[i]);
			return 2;
		}
		if (!strcmp(argv[i], "--images"))
			dir = argv[++i];
		else if (!strcmp(argv[i], "--model"))
			model = argv[++i];
		else if (!strcmp(argv[i], "--size")) {
			if (cli_parse_int(argv[++i], 32, 4096, &size)) {
				fprintf(stderr, "petcut model calibrate: --size needs a number from 32 to 4096\n");
				return 2;
			}
		} else {
			fprintf(stderr, "petcut model calibrate: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	if (!dir) {
		fprintf(stderr, "petcut model calibrate: --images DIR is needed\n");
		return 2;
	}
	if (model_variant_from_name(model) < 0)
		snprintf(path, sizeof path, "%s", model);
	else if (model_path(model, path, sizeof path) != MODEL_OK) {
		fprintf(stderr, "petcut model calibrate: %s\n", model_errmsg());
		return 1;
	}
	if ((n = scandir(dir, &names, NULL, alphasort)) < 0) {
		fprintf(stderr, "petcut model calibrate: %s: cannot read the folder\n", dir);
		return 2;
	}
	if (img_init() != IMG_OK || model_calibration_path(path, calib, sizeof calib) != MODEL_OK ||
	    nn_model_load_file(path, &m) != NN_OK || nn_model_select_outputs(m, outputs, 1) != NN_OK) {
		fprintf(stderr, "petcut model calibrate: %s\n", m || *nn_errmsg() ? nn_errmsg() : model_errmsg());
		goto out;
	}
	if (!(x = malloc(sizeof *x * 3 * (size_t)size * (size_t)size))) {
		fprintf(stderr, "petcut model calibrate: out of memory\n");
		goto out;
	}
	nn_set_threads(0);
	for (int i = 0; i < n; i++) {
		if (names[i]->d_name[0] == '.')
			continue;
		snprintf(photo, sizeof photo, "%s/%s", dir, names[i]->d_name);
		if (!observe_photo(m, photo, size, x))
			used++;
	}
	if (!used) {
		fprintf(stderr, "petcut model calibrate: no usable photo in %s\n", dir);
		rc = 2;
		goto out;
	}
	if (nn_model_save_calibration(m, calib) != NN_OK) {
		fprintf(stderr, "petcut model calibrate: %s\n", nn_errmsg());
		goto out;
	}
	printf("%s (%d photo%s)\n", calib, used, used == 1 ? "" : "s");
	rc = 0;
out:
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(x);
	nn_model_free(m);
	return rc;
}

int cmd_model(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (is_help(argv[1]) || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "fetch"))
		return model_fetch_cmd(argc - 1, argv + 1);
	if (!strcmp(argv[1], "path"))
		return model_path_cmd(argc - 1, argv + 1);
	if (!strcmp(argv[1], "calibrate"))
		return model_calibrate_cmd(argc - 1, argv + 1);
	fprintf(stderr, "petcut model: unknown subcommand '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
