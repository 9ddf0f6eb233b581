/*
 * client_metrics.c - POST /v1/client-metrics: what browsers report about
 * their uploads (outcome, bytes, duration, tries, network type and device
 * class), checked and folded into /metrics.
 *
 * Reports come from anyone, so they are held to a small body, a closed set
 * of fields and label values (the series a family can grow to are few and
 * known), and plausible ranges; anything else is refused with 400 and
 * counted, and nothing of it is kept.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/http_int.h"
#include "http/parse.h"

#define MAX_REPORT_BYTES 2048

static const char *const networks[] = {"slow-2g", "2g", "3g", "4g", "unknown"};
static const char *const devices[] = {"phone", "tablet", "desktop", "unknown"};
static const char *const outcomes[] = {"success", "failure", "cancelled"};

/* Upload durations in seconds: a small photo on Wi-Fi to a large one on 2G. */
static const double duration_buckets[] = {0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60, 120, 300};

static int one_of(const char *v, const char *const *set, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v, set[i]))
			return 1;
	return 0;
}

int http_client_metrics_init(struct http_server *s)
{
	struct metrics *m = s->metrics;
	s->client_uploads = metrics_family(m, METRICS_COUNTER, "petcut_client_uploads_total",
					   "Uploads reported by browsers, by network type, device class and outcome.",
					   "network,device,outcome", NULL, 0);
	s->client_duration = metrics_family(m, METRICS_HISTOGRAM, "petcut_client_upload_duration_seconds",
					    "Time browsers took to upload a photo (successful uploads, all tries), by network type and device class.",
					    "network,device", duration_buckets,
					    (int)(sizeof duration_buckets / sizeof duration_buckets[0]));
	s->client_bytes = metrics_family(m, METRICS_COUNTER, "petcut_client_upload_bytes_total",
					 "Bytes browsers reported sending, by network type and device class.", "network,device",
					 NULL, 0);
	s->client_tries = metrics_family(m, METRICS_COUNTER, "petcut_client_upload_retries_total",
					 "Tries after the first that browsers reported, by network type and device class.",
					 "network,device", NULL, 0);
	s->client_rejected = metrics_family(m, METRICS_COUNTER, "petcut_client_reports_rejected_total",
					    "Client reports refused as malformed or implausible.", NULL, NULL, 0);
	return s->client_uploads && s->client_duration && s->client_bytes && s->client_tries && s->client_rejected
		       ? 0
		       : -1;
}

int http_client_report_parse(json_t *j, struct client_report *out, char *why, size_t wl)
{
	const char *outcome, *network = "unknown", *device = "unknown";
	json_t *bytes = NULL, *duration = NULL;
	json_int_t tries = 1;
	int resumable = 0;
	json_error_t err;

	memset(out, 0, sizeof *out);
	if (json_unpack_ex(j, &err, JSON_STRICT, "{s:s,s:o,s:o,s?I,s?s,s?s,s?b}", "outcome", &outcome, "bytes", &bytes,
			   "duration_ms", &duration, "tries", &tries, "network", &network, "device", &device,
			   "resumable", &resumable)) {
		snprintf(why, wl, "bad report: %s", err.text);
		return 400;
	}
	double b = json_number_value(bytes), ms = json_number_value(duration);
	if (!json_is_integer(bytes) || b < 0 || b > CLIENT_MAX_BYTES_SENT) {
		snprintf(why, wl, "bytes is an integer from 0 to %.0f", CLIENT_MAX_BYTES_SENT);
		return 400;
	}
	if (!json_is_number(duration) || !(ms >= 0 && ms <= CLIENT_MAX_DURATION_MS)) {
		snprintf(why, wl, "duration_ms is a number from 0 to %.0f", CLIENT_MAX_DURATION_MS);
		return 400;
	}
	if (tries < 1 || tries > CLIENT_MAX_TRIES) {
		snprintf(why, wl, "tries is 1 to %d", CLIENT_MAX_TRIES);
		return 400;
	}
	if (!one_of(outcome, outcomes, sizeof outcomes / sizeof *outcomes)) {
		snprintf(why, wl, "outcome is success, failure or cancelled");
		return 400;
	}
	if (!one_of(network, networks, sizeof networks / sizeof *networks)) {
		snprintf(why, wl, "network is slow-2g, 2g, 3g, 4g or unknown");
		return 400;
	}
	if (!one_of(device, devices, sizeof devices / sizeof *devices)) {
		snprintf(why, wl, "device is phone, tablet, desktop or unknown");
		return 400;
	}
	out->outcome = outcome;
	out->network = network;
	out->device = device;
	out->bytes = b;
	out->duration_ms = ms;
	out->tries = (int)tries;
	out->resumable = resumable;
	return 0;
}

/* Folds a checked report into the metrics. */
static void record(struct http_server *s, const struct client_report *cr)
{
	const char *const nd[] = {cr->network, cr->device};
	metrics_add(metrics_series(s->client_uploads, (const char *const[]){cr->network, cr->device, cr->outcome}), 1);
	metrics_add(metrics_series(s->client_bytes, nd), cr->bytes);
	metrics_add(metrics_series(s->client_tries, nd), (double)(cr->tries - 1));
	if (!strcmp(cr->outcome, "success"))
		metrics_observe(metrics_series(s->client_duration, nd), cr->duration_ms / 1e3);
}

enum MHD_Result http_client_metrics(struct MHD_Connection *c, struct req *r, const char *data, size_t *size)
{
	struct http_server *s = r->srv;
	char why[200];

	if (*size) { /* gather the body, up to the bound */
		if (!r->error_status) {
			char *b;
			if (r->body_len + *size > MAX_REPORT_BYTES) {
				r->error_status = 413;
			} else if (!(b = realloc(r->body, r->body_len + *size + 1))) {
				r->error_status = 503;
			} else {
				r->body = b;
				memcpy(r->body + r->body_len, data, *size);
				r->body_len += *size;
			}
		}
		*size = 0;
		return MHD_YES;
	}
	if (!r->began) { /* the headers */
		r->began = 1;
		return MHD_YES;
	}
	if (r->error_status) {
		metrics_add(metrics_series(s->client_rejected, NULL), 1);
		return r->error_status == 413
			       ? http_reply_error(c, r, 413, "too_large", "a report is at most %d bytes", MAX_REPORT_BYTES)
			       : http_reply_error(c, r, 503, "overloaded", "out of memory");
	}
	/* text/plain too: what navigator.sendBeacon sends a string as */
	const char *type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	if (!type || (strncasecmp(type, "application/json", 16) && strncasecmp(type, "text/plain", 10))) {
		metrics_add(metrics_series(s->client_rejected, NULL), 1);
		return http_reply_error(c, r, 415, "unsupported_media_type", "send the report as application/json");
	}
	json_error_t err;
	json_t *j = r->body ? json_loadb(r->body, r->body_len, 0, &err) : NULL;
	if (!j || !json_is_object(j)) {
		json_decref(j);
		metrics_add(metrics_series(s->client_rejected, NULL), 1);
		return http_reply_error(c, r, 400, "bad_json", "the report must be a JSON object");
	}
	struct client_report cr;
	int bad = http_client_report_parse(j, &cr, why, sizeof why);
	if (!bad)
		record(s, &cr);
	json_decref(j);
	if (bad) {
		metrics_add(metrics_series(s->client_rejected, NULL), 1);
		return http_reply_error(c, r, 400, "bad_report", "%s", why);
	}
	return http_queue(c, r, 204, MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT));
}
