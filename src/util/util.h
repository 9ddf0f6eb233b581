/*
 * util.h - small helpers more than one module needs: a module's message
 * about its last failure, bytes as lowercase hex, the SHA-256 of a file, and
 * large buffers on huge pages.
 */
#ifndef PETCUT_UTIL_H
#define PETCUT_UTIL_H

#include <stdarg.h>
#include <stddef.h>

/* A module's message about its last failure, one per thread:
 *
 *	_Thread_local struct util_err mod_err;
 *	#define mod_fail(st, ...) util_fail(&mod_err, (st), __VA_ARGS__)
 *	...
 *	return mod_fail(MOD_ERR_IO, "cannot open %s", path);
 */
struct util_err {
	char msg[512];
};

/* Writes the message into e and returns st, so that a failure is one return. */
int util_fail(struct util_err *e, int st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int util_vfail(struct util_err *e, int st, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));

/* The text of a status from a module's table of texts. A module's statuses
 * are 0 (ok) and then -1, -2, ...: texts[-st] describes st. A status outside
 * the table is an "unknown error". */
const char *util_status_text(const char *const *texts, size_t n, int st);
#define UTIL_STATUS_TEXT(texts, st) util_status_text((texts), sizeof(texts) / sizeof *(texts), (st))

/* The n bytes of d as 2n lowercase hex digits and a NUL in out. */
void util_hex(const unsigned char *d, size_t n, char *out);

/* Milliseconds on the monotonic clock (for durations only). */
double util_now_ms(void);

/* The SHA-256 of the file at path into out, and its size into *size (if
 * not NULL). Returns 0; -1 with errno set when it cannot be opened (ENOENT
 * when it does not exist) or read, or ENOMEM. */
int util_file_sha256(const char *path, unsigned char out[32], long long *size);

/* n bytes (not cleared) to be free()d, or NULL, aligned to 64 bytes (a
 * cache line, an AVX-512 vector). A buffer of 4 MiB or more is aligned to
 * 2 MiB and laid on huge pages where the kernel has them
 * (transparent huge pages, "madvise" or "always"): a large buffer written
 * soon after it is made (a pass's activations, a model's weights, a PNG's
 * rows) then takes a page fault every 2 MiB rather than every 4 KiB. */
void *util_alloc_big(size_t n);
#define UTIL_BIG_BYTES ((size_t)4 << 20) /* from which util_alloc_big lays huge pages */
#define UTIL_HUGE_PAGE ((size_t)2 << 20) /* a huge page (a PMD's worth on x86-64) */

/* util_alloc_big's large buffer at any size: aligned to 2 MiB, its whole
 * huge pages laid as such (a tail short of one stays in small pages), for
 * buffers of 2-4 MiB written as soon as they are made. */
void *util_alloc_huge(size_t n);

/* petcut's version (the VERSION file's) and the commit it was built from
 * (git describe; "unknown" outside a checkout): build/gen/version.c. */
extern const char petcut_version[];
extern const char petcut_commit[];

#endif
