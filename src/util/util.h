/*
 * util.h - small helpers more than one module needs: bytes as lowercase
 * hex, and the SHA-256 of a file.
 */
#ifndef PETCUT_UTIL_H
#define PETCUT_UTIL_H

#include <stddef.h>

/* The n bytes of d as 2n lowercase hex digits and a NUL in out. */
void util_hex(const unsigned char *d, size_t n, char *out);

/* The SHA-256 of the file at path into out, and its size into *size (if
 * not NULL). Returns 0; -1 with errno set when it cannot be opened (ENOENT
 * when it does not exist) or read, or ENOMEM. */
int util_file_sha256(const char *path, unsigned char out[32], long long *size);

#endif
