/*
 * auth.c - optional API keys.
 *
 * With --api-key-file, every /v1 route asks for one of the file's keys, in
 * X-Api-Key or Authorization: Bearer. The file holds one key per line (blank
 * lines and lines starting with # are skipped; a key is 16 to 256 printable
 * characters), so keys rotate by listing the new one beside the old, then
 * dropping the old. After the key a line may give its limits, separated by
 * spaces ("KEY rate=120/min concurrency=4": quota.c); a line the server
 * cannot read keeps it from starting, naming the file and the line. The same
 * key on two lines must have the same limits. Only the keys' SHA-256
 * digests are kept, and a presented
 * key is hashed and compared with every digest in constant time, so neither
 * its length nor the position of a first difference shows in the timing.
 *
 * Stored images and results stay readable by their URL without a key: their
 * ids are SHA-256 sums, known only to whoever uploaded the bytes or was given
 * the result, so the browser can show them in an <img>.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "http/http_int.h"

#define KEY_MIN 16
#define KEY_MAX 256
#define LINE_MAX_LEN (KEY_MAX + 256) /* a key and its settings */

static int digest(const char *key, size_t len, unsigned char out[32])
{
	unsigned int n = 0;
	return EVP_Digest(key, len, out, &n, EVP_sha256(), NULL) && n == 32 ? 0 : -1;
}

int http_auth_init(struct http_server *s, char *errbuf, size_t errlen)
{
	char line[LINE_MAX_LEN + 2], why[200];
	int lineno = 0;
	FILE *f;

	if (!s->cfg.api_key_file)
		return 0;
	if (!(f = fopen(s->cfg.api_key_file, "r"))) {
		snprintf(errbuf, errlen, "%s: %s", s->cfg.api_key_file, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof line, f)) {
		size_t len = strcspn(line, "\r\n"), klen;
		struct http_limits lim;
		unsigned char d[32];
		int dup = -1;

		lineno++;
		if (line[len] == 0 && !feof(f)) {
			snprintf(errbuf, errlen, "%s:%d: a line is at most %d characters", s->cfg.api_key_file, lineno,
				 LINE_MAX_LEN);
			goto fail;
		}
		line[len] = 0;
		if (!len || line[0] == '#')
			continue;
		klen = strcspn(line, " \t");
		for (size_t i = 0; i < len; i++)
			if (!isgraph((unsigned char)line[i]) && line[i] != ' ' && line[i] != '\t') {
				snprintf(errbuf, errlen, "%s:%d: a key is printable characters without spaces",
					 s->cfg.api_key_file, lineno);
				goto fail;
			}
		if (klen < KEY_MIN || klen > KEY_MAX) {
			snprintf(errbuf, errlen, "%s:%d: a key is %d to %d characters", s->cfg.api_key_file, lineno,
				 KEY_MIN, KEY_MAX);
			goto fail;
		}
		if (http_limits_parse(line + klen, &lim, why, sizeof why)) {
			snprintf(errbuf, errlen, "%s:%d: %s", s->cfg.api_key_file, lineno, why);
			goto fail;
		}
		if (digest(line, klen, d)) {
			snprintf(errbuf, errlen, "cannot hash a key");
			goto fail;
		}
		for (int i = 0; i < s->n_api_keys; i++)
			if (!memcmp(d, s->api_keys[i], sizeof d))
				dup = i;
		if (dup >= 0) { /* listed twice: harmless if it says the same */
			OPENSSL_cleanse(d, sizeof d);
			if (memcmp(&lim, &s->api_limits[dup], sizeof lim)) {
				snprintf(errbuf, errlen, "%s:%d: this key is on an earlier line with other limits",
					 s->cfg.api_key_file, lineno);
				goto fail;
			}
			continue;
		}
		unsigned char (*k)[32] = realloc(s->api_keys, sizeof *k * (size_t)(s->n_api_keys + 1));
		if (k)
			s->api_keys = k;
		struct http_limits *l = realloc(s->api_limits, sizeof *l * (size_t)(s->n_api_keys + 1));
		if (l)
			s->api_limits = l;
		if (!k || !l) {
			snprintf(errbuf, errlen, "out of memory");
			goto fail;
		}
		memcpy(s->api_keys[s->n_api_keys], d, sizeof d);
		OPENSSL_cleanse(d, sizeof d);
		s->api_limits[s->n_api_keys] = lim;
		s->n_api_keys++;
	}
	OPENSSL_cleanse(line, sizeof line);
	fclose(f);
	if (!s->n_api_keys) {
		snprintf(errbuf, errlen, "%s holds no key", s->cfg.api_key_file);
		return -1;
	}
	return 0;
fail:
	OPENSSL_cleanse(line, sizeof line);
	fclose(f);
	return -1;
}

void http_auth_fini(struct http_server *s)
{
	if (s->api_keys)
		OPENSSL_cleanse(s->api_keys, sizeof *s->api_keys * (size_t)s->n_api_keys);
	free(s->api_keys);
	free(s->api_limits);
	s->api_keys = NULL;
	s->api_limits = NULL;
	s->n_api_keys = 0;
}

int http_auth_key(const struct http_server *s, struct MHD_Connection *c)
{
	const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Api-Key");
	const char *bearer = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	unsigned char d[32];
	int found = -1;

	if (!key && bearer && !strncasecmp(bearer, "Bearer ", 7))
		for (key = bearer + 7; *key == ' '; key++)
			;
	if (!key || !*key || strlen(key) > KEY_MAX || digest(key, strlen(key), d))
		return -1;
	for (int i = 0; i < s->n_api_keys; i++) { /* every key, whatever matched before */
		int eq = !CRYPTO_memcmp(d, s->api_keys[i], sizeof d);
		found = eq ? i : found;
	}
	return found;
}

int http_auth_ok(const struct http_server *s, struct MHD_Connection *c)
{
	return http_auth_key(s, c) >= 0;
}
