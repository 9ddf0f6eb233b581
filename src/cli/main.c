/*
 * main.c - the petcut command: a thin dispatcher over the command handlers.
 * All logic lives in libpetcut (src/nn, src/img, src/model); each command's
 * handler is in its own file under src/cli/ and declared in cli.h.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const struct cli_command commands[] = {
	{"remove", cmd_remove, "cut the background out of one image"},
	{"remove-dir", cmd_remove_dir, "cut out every image of a folder"},
	{"group", cmd_group, "a group portrait of the pets of several photos"},
	{"convert", cmd_convert, "make a web-displayable thumbnail of an image"},
	{"serve", cmd_serve, "run the HTTP service"},
	{"worker", cmd_worker, "do the jobs queued on the shared Redis"},
	{"infer", cmd_infer, "run a model on raw float32 tensors"},
	{"model", cmd_model, "fetch or locate the segmentation models"},
	{"version", cmd_version, "print petcut's version and commit (--json: and its libraries')"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: petcut COMMAND [ARGS]   (petcut COMMAND --help for details)\n\ncommands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--version") && argc == 2)
		return cmd_version(1, argv + 1);
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "petcut: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
