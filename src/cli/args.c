/*
 * args.c - small helpers shared by the command handlers.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"

int cli_parse_int(const char *s, long lo, long hi, int *n)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -1;
	*n = (int)v;
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

struct list {
	char **v;
	int n, cap;
};

/* Adds the regular files under root/rel (rel "" for root itself) to l as
 * paths relative to root, and with recursive those of its folders (not
 * through symlinks to folders, which could loop). 0, or -1 with errno. */
static int walk(const char *root, const char *rel, int recursive, int depth, struct list *l)
{
	char *dir = NULL, *path = NULL, *name = NULL;
	DIR *d;
	struct dirent *e;
	struct stat sb, lsb;
	int rc = -1;

	if (asprintf(&dir, "%s%s%s", root, *rel ? "/" : "", rel) < 0)
		return -1;
	if (!(d = opendir(dir))) {
		free(dir);
		return -1;
	}
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if (asprintf(&path, "%s/%s", dir, e->d_name) < 0 ||
		    asprintf(&name, "%s%s%s", rel, *rel ? "/" : "", e->d_name) < 0)
			goto out;
		if (recursive && depth < 64 && !lstat(path, &lsb) && S_ISDIR(lsb.st_mode)) {
			if (walk(root, name, recursive, depth + 1, l))
				goto out;
		} else if (!stat(path, &sb) && S_ISREG(sb.st_mode)) {
			if (l->n == l->cap) {
				char **grown = realloc(l->v, sizeof *l->v * (size_t)(l->cap = l->cap ? 2 * l->cap : 64));
				if (!grown)
					goto out;
				l->v = grown;
			}
			l->v[l->n++] = name;
			name = NULL;
		}
		free(path);
		free(name);
		path = name = NULL;
	}
	rc = 0;
out:
	if (rc)
		errno = errno ? errno : ENOMEM;
	free(path);
	free(name);
	free(dir);
	closedir(d);
	return rc;
}

int cli_list_files(const char *dir, int recursive, char ***names)
{
	struct list l = {0};

	*names = NULL;
	if (walk(dir, "", recursive, 0, &l)) {
		int err = errno;
		while (l.n > 0)
			free(l.v[--l.n]);
		free(l.v);
		errno = err;
		return -1;
	}
	qsort(l.v, (size_t)l.n, sizeof *l.v, cmp_names);
	*names = l.v;
	return l.n;
}
