/*
 * util.c - see util.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "util/util.h"

int util_vfail(struct util_err *e, int st, const char *fmt, va_list ap)
{
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	return st;
}

int util_fail(struct util_err *e, int st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	util_vfail(e, st, fmt, ap);
	va_end(ap);
	return st;
}

const char *util_status_text(const char *const *texts, size_t n, int st)
{
	return st <= 0 && (size_t)-(long)st < n ? texts[-st] : "unknown error";
}

void util_hex(const unsigned char *d, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 15];
	}
	out[2 * n] = '\0';
}

int util_file_sha256(const char *path, unsigned char out[32], long long *size)
{
	enum { BLOCK = 1 << 20 };
	EVP_MD_CTX *ctx = NULL;
	unsigned char *buf = NULL;
	unsigned int len = 0;
	long long total = 0;
	ssize_t n;
	int fd, rc = -1, err = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (!(ctx = EVP_MD_CTX_new()) || !(buf = malloc(BLOCK)) || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
		err = ENOMEM;
		goto out;
	}
	while ((n = read(fd, buf, BLOCK)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = errno;
			goto out;
		}
		if (!EVP_DigestUpdate(ctx, buf, (size_t)n)) {
			err = ENOMEM;
			goto out;
		}
		total += n;
	}
	if (!EVP_DigestFinal_ex(ctx, out, &len) || len != 32) {
		err = ENOMEM;
		goto out;
	}
	if (size)
		*size = total;
	rc = 0;
out:
	free(buf);
	EVP_MD_CTX_free(ctx);
	close(fd);
	if (rc)
		errno = err;
	return rc;
}

double util_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void *util_alloc_big(size_t n)
{
	void *p;

	if (n >= UTIL_BIG_BYTES)
		return util_alloc_huge(n);
	return posix_memalign(&p, 64, n ? n : 1) ? NULL : p;
}

void *util_alloc_huge(size_t n)
{
	const size_t huge = UTIL_HUGE_PAGE;
	void *p;

	if (posix_memalign(&p, huge, n ? n : 1))
		return NULL;
	madvise(p, n / huge * huge, MADV_HUGEPAGE); /* advice: without it, small pages */
	return p;
}
