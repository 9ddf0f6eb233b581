/*
 * args.c - small helpers shared by the command handlers.
 */
#include <errno.h>
#include <stdlib.h>

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
