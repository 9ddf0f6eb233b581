/*
 * cmd_model.c - `petcut model`: fetch the segmentation models once, and tell
 * scripts where a model file is.
 *
 *   petcut model fetch [--variant medium|small|all] [--dir DIR]
 *   petcut model path [medium|small]
 *
 * `fetch` prints one line per model on stdout; `path` prints only the path, so
 * that scripts can write MODEL=$(petcut model path small). Errors are one line
 * on stderr.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "model/model.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: petcut model fetch [--variant medium|small|all] [--dir DIR]\n"
		"       petcut model path [medium|small]\n"
		"\n"
		"fetch  downloads, verifies and stores the models (default: all) in DIR\n"
		"       (default: $PETCUT_MODELS, else ~/.cache/petcut/models); models\n"
		"       already there with the right SHA-256 are kept as they are\n"
		"path   prints the path of a fetched model (default: %s);\n"
		"       exits 1 if it has not been fetched\n",
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
	fprintf(stderr, "petcut model: unknown subcommand '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
