/*
 * cmd_remove_dir.c - `petcut remove-dir IN_DIR OUT_DIR [options]`: every
 * file of a folder through `petcut remove`'s options and photo work
 * (cmd_remove.c), with the model loaded once, a progress bar on a terminal,
 * and a count of what was written, skipped and refused.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/remove.h"

/* Draws "[=====     ] done/total name" over the current line of stderr. */
static void progress_draw(int done, int total, const char *name)
{
	enum { WIDTH = 30 };
	int fill = total ? done * WIDTH / total : WIDTH;

	fprintf(stderr, "\r\033[K[%.*s%*s] %d/%d %.40s", fill, "==============================", WIDTH - fill, "",
		done, total, name);
	fflush(stderr);
	bar_shown = 1;
}

int cmd_remove_dir(int argc, char **argv)
{
	struct remove_opts o;
	struct pipe_engine *e = NULL;
	struct img *bg = NULL;
	char **names = NULL, *in = NULL, *out = NULL, why[256];
	int n = 0, rc, written = 0, skipped = 0, refused = 0;
	int bar = isatty(STDERR_FILENO);

	if ((rc = remove_parse_args(argc, argv, &o)))
		return rc < 0 ? 0 : rc;
	if (pipe_check_format(&o.req, o.req.save.format, why, sizeof why)) {
		say("petcut remove-dir: %s", why);
		return 2;
	}
	if ((rc = remove_start(&o, &bg)))
		goto out;
	if ((n = cli_list_files(o.in, &names)) < 0) {
		say("petcut: %s: %s", o.in, strerror(errno));
		rc = errno == ENOMEM ? 1 : 2;
		goto out;
	}
	if (mkdir(o.outs[0], 0777) && errno != EEXIST) {
		say("petcut: %s: %s", o.outs[0], strerror(errno));
		rc = 1;
		goto out;
	}
	for (int i = 0; i < n; i++) {
		const char *dot = strrchr(names[i], '.');
		int len = dot ? (int)(dot - names[i]) : (int)strlen(names[i]);

		if (bar)
			progress_draw(i, n, names[i]);
		if (asprintf(&in, "%s/%s", o.in, names[i]) < 0 ||
		    asprintf(&out, "%s/%.*s.%s", o.outs[0], len, names[i], img_format_ext(o.req.save.format)) < 0) {
			in = out = NULL;
			say("petcut: out of memory");
			rc = 1;
			goto out;
		}
		if (access(out, F_OK) == 0) {
			skipped++;
		} else {
			int one = remove_photo(&e, &o, in, (const char *const[]){out}, &o.req.save.format, 1);
			if (one == 1) {
				rc = 1;
				goto out;
			}
			refused += one == 2;
			written += one == 0;
		}
		free(in);
		free(out);
		in = out = NULL;
	}
	if (bar) {
		progress_draw(n, n, "");
		fputc('\n', stderr);
		bar_shown = 0;
	}
	/* with --json, stdout holds JSON lines only */
	fprintf(o.json ? stderr : stdout, "%d written, %d skipped (already there), %d refused\n", written, skipped,
		refused);
	rc = refused ? 2 : 0;
out:
	free(in);
	free(out);
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	pipe_engine_close(e);
	img_free(bg);
	return rc;
}
