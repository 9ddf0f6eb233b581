/*
 * main.c - the petcut command: a thin dispatcher over the command handlers.
 * All logic lives in libpetcut (src/nn, src/img, src/model); each command's
 * handler is in its own file under src/cli/ and declared in cli.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

static const struct cli_command commands[] = {
	{"remove", cmd_remove, "cut the background out of one image"},
	{"remove-dir", cmd_remove_dir, "cut out every image of a folder"},
	{"group", cmd_group, "a group portrait of the pets of several photos"},
	{"convert", cmd_convert, "make a web-displayable thumbnail of an image"},
	{"serve", cmd_serve, "run the HTTP service", 1},
	{"worker", cmd_worker, "do the jobs queued on the shared Redis", 1},
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

/*
 * The service runs the network beside other work: requests' decoding and
 * encoding on libvips' threads, the HTTP threads, and on a shared machine
 * other programs. libgomp's threads, by default, spin for milliseconds at
 * every barrier before they sleep, holding a core that work needs: beside a
 * busy browser on 2 cores, a 512 x 512 pass took 2-3 x its time alone
 * (bench/phone.mjs). Waiting passively, they give the core up at once.
 * libgomp reads its wait policy once, as it loads, before main: so the
 * policy is put in the environment and the program started again, as the
 * same process. A policy the caller chose (OMP_WAIT_POLICY or
 * GOMP_SPINCOUNT) is kept; where the program cannot be started again it
 * goes on as it is.
 */
static void sleep_when_idle(char **argv)
{
	if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT"))
		return;
	if (setenv("OMP_WAIT_POLICY", "passive", 1))
		return;
	execv("/proc/self/exe", argv);
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
		if (!strcmp(argv[1], commands[i].name)) {
			if (commands[i].beside_image_work)
				sleep_when_idle(argv);
			return commands[i].run(argc - 1, argv + 1);
		}
	fprintf(stderr, "petcut: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
