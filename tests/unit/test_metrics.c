/*
 * test_metrics.c - the metrics registry: exact Prometheus text, exact counts
 * under concurrent updates, label escaping, quantiles, bounded series.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics.h"

#include "check.h"


static struct metrics_series *hot;

static void *hammer(void *arg)
{
	(void)arg;
	for (int i = 0; i < 100000; i++)
		metrics_add(hot, 1);
	return NULL;
}

static void scrape_hook(void *ctx)
{
	metrics_set(ctx, 42);
}

int main(void)
{
	struct metrics *r = metrics_new();
	const double b3[] = {0.1, 1, 10};
	size_t len;

	struct metrics_family *req = metrics_family(r, METRICS_COUNTER, "petcut_requests_total", "Requests served.",
						   "route,status", NULL, 0);
	struct metrics_family *lat = metrics_family(r, METRICS_HISTOGRAM, "petcut_latency_seconds", "Latency.", "route",
						   b3, 3);
	struct metrics_family *q = metrics_family(r, METRICS_GAUGE, "petcut_queue_depth", "Waiting.", NULL, NULL, 0);
	CHECK(req && lat && q, "families register");
	CHECK(!metrics_family(r, METRICS_GAUGE, "petcut_queue_depth", "", NULL, NULL, 0), "a duplicate name is refused");
	CHECK(!metrics_family(r, METRICS_GAUGE, "9bad name", "", NULL, NULL, 0), "a bad name is refused");
	CHECK(!metrics_family(r, METRICS_HISTOGRAM, "h", "", NULL, (const double[]){2, 1}, 2),
	      "descending buckets are refused");

	struct metrics_series *ok = metrics_series(req, (const char *const[]){"/v1/images", "201"});
	CHECK(ok == metrics_series(req, (const char *const[]){"/v1/images", "201"}), "a series is found again");
	metrics_add(ok, 2);
	metrics_add(ok, -1); /* counters never go down */
	metrics_add(metrics_series(req, (const char *const[]){"a\"b\\c\nd", "400"}), 1);
	struct metrics_series *l = metrics_series(lat, (const char *const[]){"/v1/images"});
	metrics_observe(l, 0.05);
	metrics_observe(l, 0.5);
	metrics_observe(l, 0.5);
	metrics_observe(l, 50);
	struct metrics_series *depth = metrics_series(q, NULL);
	metrics_on_scrape(r, scrape_hook, depth);

	char *text = metrics_render(r, &len);
	const char *want =
		"# HELP petcut_requests_total Requests served.\n"
		"# TYPE petcut_requests_total counter\n"
		"petcut_requests_total{route=\"/v1/images\",status=\"201\"} 2\n"
		"petcut_requests_total{route=\"a\\\"b\\\\c\\nd\",status=\"400\"} 1\n"
		"# HELP petcut_latency_seconds Latency.\n"
		"# TYPE petcut_latency_seconds histogram\n"
		"petcut_latency_seconds_bucket{route=\"/v1/images\",le=\"0.1\"} 1\n"
		"petcut_latency_seconds_bucket{route=\"/v1/images\",le=\"1\"} 3\n"
		"petcut_latency_seconds_bucket{route=\"/v1/images\",le=\"10\"} 3\n"
		"petcut_latency_seconds_bucket{route=\"/v1/images\",le=\"+Inf\"} 4\n"
		"petcut_latency_seconds_sum{route=\"/v1/images\"} 51.05\n"
		"petcut_latency_seconds_count{route=\"/v1/images\"} 4\n"
		"# HELP petcut_queue_depth Waiting.\n"
		"# TYPE petcut_queue_depth gauge\n"
		"petcut_queue_depth 42\n";
	CHECK(text && !strcmp(text, want) && len == strlen(want), "renders the exact Prometheus text");
	if (text && strcmp(text, want))
		printf("# got:\n%s", text);
	free(text);

	double p50 = metrics_quantile(l, 0.5);
	CHECK(fabs(p50 - 0.55) < 1e-9, "p50 interpolates inside its bucket (%g)", p50);
	CHECK(isnan(metrics_quantile(metrics_series(lat, (const char *const[]){"empty"}), 0.5)),
	      "an empty histogram has no quantile");

	hot = metrics_series(req, (const char *const[]){"/hot", "200"});
	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, hammer, NULL);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	CHECK(metrics_value(hot) == 400000, "4 threads x 100000 increments count exactly (%.0f)", metrics_value(hot));

	int made = 0;
	char name[32];
	for (int i = 0; i < METRICS_MAX_SERIES + 10; i++) {
		snprintf(name, sizeof name, "r%d", i);
		made += metrics_series(lat, (const char *const[]){name}) != NULL;
	}
	CHECK(made < METRICS_MAX_SERIES + 10, "series stop at the cap (%d made)", made);
	metrics_observe(NULL, 1); /* no-op */

	metrics_free(r);
	printf("%s\n", failures ? "FAILED" : "all passed");
	return failures ? 1 : 0;
}
