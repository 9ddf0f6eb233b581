/*
 * cmd_version.c - `petcut version [--json]` and `petcut --version`: the
 * version and the commit this petcut was built from, and (with --json) the
 * libraries doing its work.
 */
#include <stdio.h>
#include <string.h>

#include <dnnl.h>
#include <jansson.h>
#include <vips/vips.h>

#include "cli/cli.h"
#include "util/util.h"

int cmd_version(int argc, char **argv)
{
	int json = argc == 2 && !strcmp(argv[1], "--json");

	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("usage: petcut version [--json]\n\n"
		       "Prints petcut's version and the commit it was built from; with --json, as one\n"
		       "JSON object with the versions of libvips and oneDNN too.\n"
		       "\nexit status: 0 done; 2 bad usage\n");
		return 0;
	}
	if (argc > 2 || (argc == 2 && !json)) {
		fprintf(stderr, "usage: petcut version [--json]\n");
		return 2;
	}
	if (!json) {
		printf("petcut %s (commit %s)\n", petcut_version, petcut_commit);
		return 0;
	}
	const dnnl_version_t *d = dnnl_version();
	char onednn[32];
	snprintf(onednn, sizeof onednn, "%d.%d.%d", d->major, d->minor, d->patch);
	json_t *j = json_pack("{s:s, s:s, s:s, s:s}", "version", petcut_version, "commit", petcut_commit, "libvips",
			      vips_version_string(), "onednn", onednn);
	if (!j)
		return 1;
	json_dumpf(j, stdout, JSON_COMPACT);
	fputc('\n', stdout);
	json_decref(j);
	return 0;
}
