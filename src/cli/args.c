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

int cli_list_files(const char *dir, char ***names)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **v = NULL, **grown, *path = NULL;
	int n = 0, cap = 0, err = ENOMEM;
	struct stat sb;

	*names = NULL;
	if (!d)
		return -1;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if (asprintf(&path, "%s/%s", dir, e->d_name) < 0)
			goto fail;
		int regular = !stat(path, &sb) && S_ISREG(sb.st_mode);
		free(path);
		if (!regular)
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			if (!(grown = realloc(v, sizeof *v * (size_t)cap)))
				goto fail;
			v = grown;
		}
		if (!(v[n] = strdup(e->d_name)))
			goto fail;
		n++;
	}
	closedir(d);
	qsort(v, (size_t)n, sizeof *v, cmp_names);
	*names = v;
	return n;
fail:
	while (n > 0)
		free(v[--n]);
	free(v);
	closedir(d);
	errno = err;
	return -1;
}
