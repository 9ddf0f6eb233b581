/*
 * cmd_remove_dir.c - `petcut remove-dir IN_DIR OUT_DIR [options]`: every
 * file of a folder through `petcut remove`'s options and photo work
 * (cmd_remove.c), with the model loaded once, a progress bar on a terminal,
 * and a count of what was written, skipped and refused.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/remove.h"
#include "util/util.h"

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

/* Makes the folders of path past its first skip characters (OUT_DIR,
 * there already): 0, or -1 with errno. */
static int make_parents(char *path, size_t skip)
{
	for (char *p = path + skip + 1; (p = strchr(p, '/')); p++) {
		*p = '\0';
		int bad = mkdir(path, 0777) && errno != EEXIST;
		*p = '/';
		if (bad)
			return -1;
	}
	return 0;
}

/* One run over a folder: its options and what became of its files. */
struct dir_run {
	struct remove_opts *o;
	struct pipe_engine *e;
	int written, skipped, refused;
};

/* The file name (relative to IN_DIR) into its output, unless that exists.
 * 0, or 1 when the work fails (the run stops). */
static int one_file(struct dir_run *d, const char *name)
{
	const struct remove_opts *o = d->o;
	const char *base = strrchr(name, '/'), *dot = strrchr(base ? base : name, '.');
	int len = dot ? (int)(dot - name) : (int)strlen(name), rc = 0;
	char *in = NULL, *out = NULL;

	if (asprintf(&in, "%s/%s", o->in, name) < 0 ||
	    asprintf(&out, "%s/%.*s.%s", o->outs[0], len, name, img_format_ext(o->req.save.format)) < 0) {
		in = out = NULL;
		say("petcut: out of memory");
		rc = 1;
	} else if (access(out, F_OK) == 0) {
		d->skipped++;
	} else if (make_parents(out, strlen(o->outs[0]))) { /* --recursive: the tree kept */
		say("petcut: %s: %s", out, strerror(errno));
		rc = 1;
	} else {
		int one = remove_photo(&d->e, o, in, (const char *const[]){out}, &o->req.save.format, 1);
		rc = one == 1;
		d->refused += one == 2;
		d->written += one == 0;
		if (one == 0 && o->watch && !o->json)
			printf("%s\n", out), fflush(stdout);
	}
	free(in);
	free(out);
	return rc;
}

/* ===== --watch ===== */

/* A file is taken once it has stayed the same (size and time) this long:
 * one still being written (a copy, an upload in pieces) is left alone. */
#define SETTLE_MS 1000
#define WATCH_MAX 4096 /* files waiting to settle */

static volatile sig_atomic_t stop_watch;

static void on_stop(int sig)
{
	(void)sig;
	stop_watch = 1;
}

struct pending {
	char *name;
	off_t size;
	struct timespec mtime;
	double since; /* when it was last seen to change */
};

/* Starts watching IN_DIR (before it is listed, so that nothing falls
 * between): the inotify descriptor, or -1 after saying why not. */
static int watch_start(const char *dir)
{
	int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);

	if (fd < 0 || inotify_add_watch(fd, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_MODIFY) < 0) {
		say("petcut: cannot watch %s: %s", dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Takes each file that comes into IN_DIR (written and closed, or moved in)
 * once it has settled, until SIGINT or SIGTERM. 0, or 1 when the work
 * fails. Closes fd. */
static int watch(struct dir_run *d, int fd)
{
	struct pending *p = calloc(WATCH_MAX, sizeof *p);
	int n = 0, rc = 0;
	struct sigaction sa = {.sa_handler = on_stop};
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));

	if (!p) {
		say("petcut: out of memory");
		close(fd);
		return 1;
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	say("petcut: watching %s (Ctrl-C to stop)", d->o->in);
	while (!stop_watch && !rc) {
		struct pollfd pf = {fd, POLLIN, 0};
		if (poll(&pf, 1, 200) > 0) {
			ssize_t len;
			while ((len = read(fd, buf, sizeof buf)) > 0)
				for (char *q = buf; q < buf + len;) {
					struct inotify_event *ev = (struct inotify_event *)q;
					q += sizeof *ev + ev->len;
					if (!ev->len || ev->name[0] == '.') /* hidden: temporary files, as in the listing */
						continue;
					int k = 0;
					while (k < n && strcmp(p[k].name, ev->name))
						k++;
					if (k == n && (n == WATCH_MAX || !(p[n].name = strdup(ev->name))))
						continue; /* a later event brings it again */
					n += k == n;
					p[k].since = util_now_ms();
				}
		}
		/* the settled ones, in the order they came */
		for (int k = 0; k < n && !rc;) {
			struct stat sb;
			char *path = NULL;
			int gone = asprintf(&path, "%s/%s", d->o->in, p[k].name) < 0 || stat(path, &sb) || !S_ISREG(sb.st_mode);
			free(path);
			if (!gone && (sb.st_size != p[k].size || sb.st_mtim.tv_sec != p[k].mtime.tv_sec ||
				      sb.st_mtim.tv_nsec != p[k].mtime.tv_nsec)) {
				p[k].size = sb.st_size;
				p[k].mtime = sb.st_mtim;
				p[k].since = util_now_ms();
			}
			if (!gone && util_now_ms() - p[k].since < SETTLE_MS) {
				k++;
				continue;
			}
			if (!gone)
				rc = one_file(d, p[k].name);
			free(p[k].name);
			memmove(&p[k], &p[k + 1], sizeof *p * (size_t)(n - k - 1));
			n--;
		}
	}
	for (int k = 0; k < n; k++)
		free(p[k].name);
	free(p);
	close(fd);
	return rc;
}

int cmd_remove_dir(int argc, char **argv)
{
	struct remove_opts o;
	struct dir_run d = {&o, NULL, 0, 0, 0};
	struct img *bg = NULL;
	char **names = NULL, why[256];
	int n = 0, rc, wfd = -1;
	int bar = isatty(STDERR_FILENO);

	if ((rc = remove_parse_args(argc, argv, &o)))
		return rc < 0 ? 0 : rc;
	if (pipe_check_format(&o.req, o.req.save.format, why, sizeof why)) {
		say("petcut remove-dir: %s", why);
		return 2;
	}
	if ((rc = remove_start(&o, &bg)))
		goto out;
	if (o.watch && (wfd = watch_start(o.in)) < 0) {
		rc = 2;
		goto out;
	}
	if ((n = cli_list_files(o.in, o.recursive, &names)) < 0) {
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
		if (bar)
			progress_draw(i, n, names[i]);
		if ((rc = one_file(&d, names[i])))
			goto out;
	}
	if (bar) {
		progress_draw(n, n, "");
		fputc('\n', stderr);
		bar_shown = 0;
	}
	if (o.watch) {
		rc = watch(&d, wfd);
		wfd = -1;
		if (rc)
			goto out;
	}
	/* with --json, stdout holds JSON lines only */
	fprintf(o.json ? stderr : stdout, "%d written, %d skipped (already there), %d refused\n", d.written, d.skipped,
		d.refused);
	rc = d.refused ? 2 : 0;
out:
	if (wfd >= 0)
		close(wfd);
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	pipe_engine_close(d.e);
	img_free(bg);
	return rc;
}
