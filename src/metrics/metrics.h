/*
 * metrics.h - counters, gauges and histograms, gathered cheaply and rendered
 * in the Prometheus text format on scrape.
 *
 * A registry holds families (a metric name with its help text, type and
 * label names); a family holds series, one per set of label values. Hot
 * paths look a series up once and then update it with atomic operations:
 * no lock is taken to count. Rendering walks everything under the families'
 * locks, so a scrape sees each series whole. A family holds at most
 * METRICS_MAX_SERIES series: past that, lookups return NULL and updates of
 * NULL do nothing, so hostile label values cannot grow memory.
 *
 * Thread safety: every function may be called from any thread.
 */
#ifndef PETCUT_METRICS_H
#define PETCUT_METRICS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum metrics_type {
	METRICS_COUNTER,
	METRICS_GAUGE,
	METRICS_HISTOGRAM,
};

#define METRICS_MAX_LABELS 4
#define METRICS_MAX_BUCKETS 24
#define METRICS_MAX_SERIES 512

struct metrics;
struct metrics_family;
struct metrics_series;

/* Latency buckets in seconds, 0.5 ms to 60 s. */
extern const double metrics_latency_buckets[];
extern const int metrics_latency_buckets_n;

struct metrics *metrics_new(void);
void metrics_free(struct metrics *r);

/* Registers a family. label_names is a comma-separated list ("route,status")
 * or NULL; buckets (ascending upper bounds, +Inf implied) only for
 * histograms. Names follow Prometheus rules ([a-zA-Z_:][a-zA-Z0-9_:]*).
 * Returns NULL on a bad name, a duplicate or no memory. */
struct metrics_family *metrics_family(struct metrics *r, enum metrics_type type, const char *name, const char *help,
				      const char *label_names, const double *buckets, int n_buckets);

/* The series for these label values (as many as the family has names;
 * NULL when it has none), made on first use. NULL past METRICS_MAX_SERIES. */
struct metrics_series *metrics_series(struct metrics_family *f, const char *const *label_values);

/* Counters and gauges: add v (counters: v >= 0). Gauges: set. Histograms:
 * observe one value. Each does nothing with a NULL series. */
void metrics_add(struct metrics_series *s, double v);
void metrics_set(struct metrics_series *s, double v);
void metrics_observe(struct metrics_series *s, double v);

/* Current value of a counter or gauge; a histogram's count. */
double metrics_value(const struct metrics_series *s);

/* Estimate of quantile q (0..1) of a histogram, by linear interpolation
 * inside its bucket (as Prometheus' histogram_quantile); NaN when empty. */
double metrics_quantile(const struct metrics_series *s, double q);

/* A function run before each render, to set gauges that are read rather
 * than counted (queue depth, RSS). */
void metrics_on_scrape(struct metrics *r, void (*fn)(void *ctx), void *ctx);

/* Renders every family as Prometheus text (version 0.0.4). Returns a
 * malloc'd string (free it), its length in *len; NULL on no memory. */
char *metrics_render(struct metrics *r, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
