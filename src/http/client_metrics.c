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

/* Upload durations in seconds: a small photo on Wi-Fi to a large one on 2G. */
static const double duration_buckets[] = {0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60, 120, 300};

/* Waits for a result in seconds: the preview's targets (0.5 s on Wi-Fi, 2 s
 * on 3G, 6 s for the slowest) fall on bucket bounds. */
static const double wait_buckets[] = {0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 60, 120};

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

enum MHD_Result http_client_metrics(struct MHD_Connection *c, struct req *r, const char *id, const char *data, size_t *size)
{
	struct http_server *s = r->srv;
	char why[200];

	if (*size) { /* gather the body, up to the bound */
		http_gather_body(r, data, size, MAX_REPORT_BYTES);
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
