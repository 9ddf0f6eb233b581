/*
 * check.h - the unit tests' one assertion: prints "ok - ..." or
 * "not ok - ..." and counts failures; a test's main returns
 * failures ? 1 : 0 (or 77 to skip, saying why).
 */
#ifndef PETCUT_TEST_CHECK_H
#define PETCUT_TEST_CHECK_H

#include <stdarg.h>
#include <stdio.h>

static int failures;

static int check(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3), unused));

static int check(int cond, const char *fmt, ...)
{
	va_list ap;

	printf("%s - ", cond ? "ok" : "not ok");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	if (!cond)
		failures++;
	return cond;
}

#define CHECK(cond, ...) check(!!(cond), __VA_ARGS__)

/* What main returns when the rest of a test cannot run (saying why, a
 * "skip:" line): 77, or 1 when a check before it failed, so that a skip
 * never hides a failure. */
static int skip_rest(const char *fmt, ...) __attribute__((format(printf, 1, 2), unused));

static int skip_rest(const char *fmt, ...)
{
	va_list ap;

	printf("skip: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	return failures ? 1 : 77;
}

#endif
