/*
 * client_report_fuzzer.c - fuzz target for the upload reports browsers send
 * to POST /v1/client-metrics: any bytes, read as JSON the way the route
 * reads them, go through http_client_report_parse. A report it accepts
 * must hold what parse.h promises (label values from their closed sets,
 * numbers within their ranges), since each becomes a metrics series; and
 * the fields must be the ones the report gave. Anything else aborts.
 *
 * Built with libFuzzer by `make fuzz`, and with replay.c as a plain program
 * that `make test` runs over the committed corpus.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                 \
	do {                        \
		if (!(cond))        \
			abort();    \
	} while (0)

static int one_of(const char *v, const char *const *set)
{
	for (; *set; set++)
		if (!strcmp(v, *set))
			return 1;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const outcomes[] = {"success", "failure", "cancelled", NULL};
	static const char *const networks[] = {"slow-2g", "2g", "3g", "4g", "unknown", NULL};
	static const char *const devices[] = {"phone", "tablet", "desktop", "unknown", NULL};
	json_t *j = json_loadb((const char *)data, size, 0, NULL);
	struct client_report cr;
	char why[200];
	int st;

	if (!json_is_object(j)) {
		json_decref(j);
		return 0;
	}
	st = http_client_report_parse(j, &cr, why, sizeof why);
	CHECK(st == 0 || st == 400);
	if (st) {
		CHECK(why[0]);
		json_decref(j);
		return 0;
	}
	CHECK(cr.network && one_of(cr.network, networks));
	CHECK(cr.device && one_of(cr.device, devices));
	if (cr.kind == CLIENT_REPORT_WAIT) {
		/* a wait: one or both waits, each within range, and the report's own */
		json_t *pv = json_object_get(j, "preview_ms"), *fv = json_object_get(j, "full_ms");
		CHECK(!strcmp(json_string_value(json_object_get(j, "kind")), "wait"));
		CHECK(cr.preview_ms >= 0 || cr.full_ms >= 0);
		CHECK(pv ? cr.preview_ms == json_number_value(pv) : cr.preview_ms == -1);
		CHECK(fv ? cr.full_ms == json_number_value(fv) : cr.full_ms == -1);
		CHECK(cr.preview_ms <= CLIENT_MAX_DURATION_MS && cr.full_ms <= CLIENT_MAX_DURATION_MS);
		CHECK(!cr.outcome);
		json_decref(j);
		return 0;
	}
	CHECK(cr.kind == CLIENT_REPORT_UPLOAD);
	CHECK(cr.outcome && one_of(cr.outcome, outcomes));
	CHECK(cr.bytes >= 0 && cr.bytes <= CLIENT_MAX_BYTES_SENT && cr.bytes == floor(cr.bytes));
	CHECK(isfinite(cr.duration_ms) && cr.duration_ms >= 0 && cr.duration_ms <= CLIENT_MAX_DURATION_MS);
	CHECK(cr.tries >= 1 && cr.tries <= CLIENT_MAX_TRIES);
	CHECK(cr.resumable == 0 || cr.resumable == 1);
	/* the report's own values, not others */
	CHECK(!strcmp(cr.outcome, json_string_value(json_object_get(j, "outcome"))));
	CHECK(cr.bytes == (double)json_integer_value(json_object_get(j, "bytes")));
	CHECK(cr.duration_ms == json_number_value(json_object_get(j, "duration_ms")));
	CHECK(!json_object_get(j, "tries") || cr.tries == json_integer_value(json_object_get(j, "tries")));
	json_decref(j);
	return 0;
}
