/*
 * tus_headers_fuzzer.c - fuzz target for the headers of resumable uploads
 * (tus.c). The input is header lines, "Name: value" each; the values of
 * Tus-Resumable, Upload-Length, Upload-Defer-Length, Upload-Offset,
 * Upload-Metadata, Upload-Checksum, Content-Type and Content-Length (and of
 * "Id:", the upload id of the URL) go through the checks of a creation and
 * of a PATCH as the route makes them. What they accept must hold what
 * parse.h promises: lengths within bounds and equal to their digits,
 * metadata that can be kept in the upload's info file and whose values are
 * base64, a checksum that is the canonical base64 of the digest. Anything
 * else aborts.
 *
 * Built with libFuzzer by `make fuzz`, and with replay.c as a plain program
 * that `make test` runs over the committed corpus.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "http/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                 \
	do {                        \
		if (!(cond))        \
			abort();    \
	} while (0)

#define MAX_BYTES ((uint64_t)1 << 30)

/* v is the decimal n, leading zeros aside. */
static int same_number(const char *v, uint64_t n)
{
	char buf[24];
	while (v[0] == '0' && v[1])
		v++;
	snprintf(buf, sizeof buf, "%" PRIu64, n);
	return !strcmp(v, buf);
}

static void check_metadata(const char *m)
{
	json_t *j = json_string(m); /* the info file keeps it as JSON text */
	const char *p = m;

	CHECK(strlen(m) <= TUS_MAX_METADATA);
	CHECK(j);
	json_decref(j);
	while (*p) {
		size_t key = strcspn(p, " ,"), val;
		CHECK(key > 0);
		p += key;
		if (*p == ' ') {
			unsigned char raw[TUS_MAX_METADATA];
			val = strcspn(++p, ",");
			CHECK(val > 0 && val % 4 == 0);
			CHECK(EVP_DecodeBlock(raw, (const unsigned char *)p, (int)val) >= 0);
			p += val;
		}
		if (*p == ',')
			p++;
		while (*p == ' ')
			p++;
	}
}

static void check_creation(const struct tus_headers *h)
{
	struct tus_parsed out;
	const char *code = NULL;
	char why[200];
	int st = http_tus_check_creation(h, MAX_BYTES, &out, &code, why, sizeof why);

	if (st) {
		CHECK((st == 400 || st == 413) && code && why[0]);
		return;
	}
	CHECK(!h->defer_length);
	CHECK(out.length >= 1 && out.length <= MAX_BYTES);
	CHECK(h->length && same_number(h->length, out.length));
	if (h->metadata)
		check_metadata(h->metadata);
}

static void check_patch(const struct tus_headers *h)
{
	struct tus_parsed out;
	const char *code = NULL;
	char why[200];
	int st = http_tus_check_patch(h, &out, &code, why, sizeof why);

	if (st) {
		CHECK((st == 400 || st == 415) && code && why[0]);
		return;
	}
	CHECK(h->content_type && !strcasecmp(h->content_type, "application/offset+octet-stream"));
	CHECK(h->offset && same_number(h->offset, out.offset));
	CHECK(!out.has_content_length || same_number(h->content_length, out.content_length));
	CHECK(out.has_checksum == !!h->checksum);
	if (out.has_checksum) {
		char b64[48];
		EVP_EncodeBlock((unsigned char *)b64, out.want, 32);
		CHECK(!strcmp(h->checksum + 7, b64));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), *line, *next;
	struct tus_headers h = {0};
	const char *id = NULL;
	uint64_t n;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = 0;
	for (line = text; line; line = next) {
		char *colon, *v;
		if ((next = strchr(line, '\n')))
			*next++ = 0;
		if (!(colon = strchr(line, ':')))
			continue;
		*colon = 0;
		for (v = colon + 1; *v == ' '; v++)
			;
		if (!strcasecmp(line, "Tus-Resumable"))
			h.resumable = v;
		else if (!strcasecmp(line, "Upload-Length"))
			h.length = v;
		else if (!strcasecmp(line, "Upload-Defer-Length"))
			h.defer_length = v;
		else if (!strcasecmp(line, "Upload-Offset"))
			h.offset = v;
		else if (!strcasecmp(line, "Upload-Metadata"))
			h.metadata = v;
		else if (!strcasecmp(line, "Upload-Checksum"))
			h.checksum = v;
		else if (!strcasecmp(line, "Content-Type"))
			h.content_type = v;
		else if (!strcasecmp(line, "Content-Length"))
			h.content_length = v;
		else if (!strcasecmp(line, "Id"))
			id = v;
	}
	if (http_tus_version_ok(h.resumable))
		CHECK(!strcmp(h.resumable, TUS_VERSION));
	if (http_tus_id_valid(id))
		CHECK(strlen(id) == TUS_ID_LEN && strspn(id, "0123456789abcdef") == TUS_ID_LEN);
	if (h.length && !http_tus_parse_u64(h.length, &n))
		CHECK(same_number(h.length, n));
	check_creation(&h);
	check_patch(&h);
	free(text);
	return 0;
}
