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

/* Waits for a result in seconds: the preview's targets (0.5 s on Wi-Fi, 2 s
 * on 3G, 6 s for the slowest) fall on bucket bounds. */
static const double wait_buckets[] = {0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 60, 120};

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
	s->client_wait_preview = metrics_family(
		m, METRICS_HISTOGRAM, "petcut_client_pick_to_preview_seconds",
		"What customers waited from picking a photo to its preview cut-out on screen, as browsers measured "
		"it, by network type and device class.",
		"network,device", wait_buckets, (int)(sizeof wait_buckets / sizeof wait_buckets[0]));
	s->client_wait_full = metrics_family(
		m, METRICS_HISTOGRAM, "petcut_client_pick_to_full_seconds",
		"What customers waited from picking a photo to its full-quality cut-out on screen, as browsers "
		"measured it, by network type and device class.",
		"network,device", wait_buckets, (int)(sizeof wait_buckets / sizeof wait_buckets[0]));
	return s->client_uploads && s->client_duration && s->client_bytes && s->client_tries && s->client_rejected &&
			       s->client_wait_preview && s->client_wait_full
		       ? 0
		       : -1;
}

/* The labels every report has: network and device, from their closed sets. */
static int check_labels(const char *network, const char *device, struct client_report *out, char *why, size_t wl)
{
	if (!one_of(network, networks, sizeof networks / sizeof *networks)) {
		snprintf(why, wl, "network is slow-2g, 2g, 3g, 4g or unknown");
		return 400;
	}
	if (!one_of(device, devices, sizeof devices / sizeof *devices)) {
		snprintf(why, wl, "device is phone, tablet, desktop or unknown");
		return 400;
	}
	out->network = network;
	out->device = device;
	return 0;
}

/* A wait in ms: absent (-1), or a number from 0 to an hour. */
static int wait_ms(json_t *v, const char *name, double *out, char *why, size_t wl)
{
	*out = -1;
	if (!v)
		return 0;
	double ms = json_number_value(v);
	if (!json_is_number(v) || !(ms >= 0 && ms <= CLIENT_MAX_DURATION_MS)) {
		snprintf(why, wl, "%s is a number from 0 to %.0f", name, CLIENT_MAX_DURATION_MS);
		return 400;
	}
	*out = ms;
	return 0;
}

/* {"kind":"wait", "preview_ms", "full_ms", "network", "device"} */
static int parse_wait(json_t *j, struct client_report *out, char *why, size_t wl)
{
	const char *kind, *network = "unknown", *device = "unknown";
	json_t *preview = NULL, *full = NULL;
	json_error_t err;

	if (json_unpack_ex(j, &err, JSON_STRICT, "{s:s,s?o,s?o,s?s,s?s}", "kind", &kind, "preview_ms", &preview,
			   "full_ms", &full, "network", &network, "device", &device)) {
		snprintf(why, wl, "bad report: %s", err.text);
		return 400;
	}
	out->kind = CLIENT_REPORT_WAIT;
	if (wait_ms(preview, "preview_ms", &out->preview_ms, why, wl) || wait_ms(full, "full_ms", &out->full_ms, why, wl))
		return 400;
	if (out->preview_ms < 0 && out->full_ms < 0) {
		snprintf(why, wl, "a wait report has preview_ms, full_ms or both");
		return 400;
	}
	return check_labels(network, device, out, why, wl);
}

int http_client_report_parse(json_t *j, struct client_report *out, char *why, size_t wl)
{
	const char *outcome, *kind_text, *network = "unknown", *device = "unknown";
	json_t *bytes = NULL, *duration = NULL, *kind = json_object_get(j, "kind");
	json_int_t tries = 1;
	int resumable = 0;
	json_error_t err;

	memset(out, 0, sizeof *out);
	out->preview_ms = out->full_ms = -1;
	if (kind && (!json_is_string(kind) ||
		     (strcmp(json_string_value(kind), "wait") && strcmp(json_string_value(kind), "upload")))) {
		snprintf(why, wl, "kind is upload or wait");
		return 400;
	}
	if (kind && !strcmp(json_string_value(kind), "wait"))
		return parse_wait(j, out, why, wl);
	if (json_unpack_ex(j, &err, JSON_STRICT, "{s?s,s:s,s:o,s:o,s?I,s?s,s?s,s?b}", "kind", &kind_text, "outcome",
			   &outcome, "bytes", &bytes, "duration_ms", &duration, "tries", &tries, "network", &network,
			   "device", &device, "resumable", &resumable)) {
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
	if (check_labels(network, device, out, why, wl))
		return 400;
	out->outcome = outcome;
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
	if (cr->kind == CLIENT_REPORT_WAIT) {
		if (cr->preview_ms >= 0)
			metrics_observe(metrics_series(s->client_wait_preview, nd), cr->preview_ms / 1e3);
		if (cr->full_ms >= 0)
			metrics_observe(metrics_series(s->client_wait_full, nd), cr->full_ms / 1e3);
		return;
	}
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
