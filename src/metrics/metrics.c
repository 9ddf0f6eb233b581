/*
 * metrics.c - the registry, lock-free updates and the Prometheus text
 * rendering. See metrics.h.
 *
 * Values are doubles stored as their bits in 64-bit atomics, updated by
 * compare-and-swap; histogram buckets are plain atomic counts.
 */
#include <math.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics.h"

const double metrics_latency_buckets[] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1,
					  0.25,	  0.5,	 1,     2.5,   5,    10,    30,	   60};
const int metrics_latency_buckets_n = sizeof metrics_latency_buckets / sizeof metrics_latency_buckets[0];

struct metrics_series {
	struct metrics_family *f;
	char *labels[METRICS_MAX_LABELS];
	_Atomic uint64_t value; /* double bits: counter or gauge value, histogram sum */
	_Atomic uint64_t count; /* histogram: observations */
	_Atomic uint64_t buckets[METRICS_MAX_BUCKETS];
};

struct metrics_family {
	enum metrics_type type;
	char *name, *help;
	int n_labels;
	char *label_names[METRICS_MAX_LABELS];
	double bounds[METRICS_MAX_BUCKETS];
	int n_bounds;
	pthread_mutex_t lock; /* guards the series list */
	struct metrics_series **series;
	int n_series, cap_series;
	struct metrics_family *next;
};

struct scrape_hook {
	void (*fn)(void *);
	void *ctx;
	struct scrape_hook *next;
};

struct metrics {
	pthread_mutex_t lock; /* guards the family list and hooks */
	struct metrics_family *families, *last;
	struct scrape_hook *hooks;
};

/* ===== Atomic doubles ===== */

static double load_d(const _Atomic uint64_t *a)
{
	uint64_t bits = atomic_load_explicit(a, memory_order_relaxed);
	double d;
	memcpy(&d, &bits, sizeof d);
	return d;
}

static void store_d(_Atomic uint64_t *a, double d)
{
	uint64_t bits;
	memcpy(&bits, &d, sizeof bits);
	atomic_store_explicit(a, bits, memory_order_relaxed);
}

static void add_d(_Atomic uint64_t *a, double v)
{
	uint64_t old = atomic_load_explicit(a, memory_order_relaxed), neu;
	do {
		double d;
		memcpy(&d, &old, sizeof d);
		d += v;
		memcpy(&neu, &d, sizeof neu);
	} while (!atomic_compare_exchange_weak_explicit(a, &old, neu, memory_order_relaxed, memory_order_relaxed));
}

/* ===== Registry ===== */

struct metrics *metrics_new(void)
{
	struct metrics *r = calloc(1, sizeof *r);
	if (r)
		pthread_mutex_init(&r->lock, NULL);
	return r;
}

static void family_free(struct metrics_family *f)
{
	for (int i = 0; i < f->n_series; i++) {
		for (int k = 0; k < f->n_labels; k++)
			free(f->series[i]->labels[k]);
		free(f->series[i]);
	}
	for (int k = 0; k < f->n_labels; k++)
		free(f->label_names[k]);
	free(f->series);
	free(f->name);
	free(f->help);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

void metrics_free(struct metrics *r)
{
	if (!r)
		return;
	for (struct metrics_family *f = r->families, *next; f; f = next) {
		next = f->next;
		family_free(f);
	}
	for (struct scrape_hook *h = r->hooks, *next; h; h = next) {
		next = h->next;
		free(h);
	}
	pthread_mutex_destroy(&r->lock);
	free(r);
}

static int valid_name(const char *s, int colon_ok)
{
	if (!s || !*s || (*s >= '0' && *s <= '9'))
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
		      (colon_ok && *s == ':')))
			return 0;
	return 1;
}

struct metrics_family *metrics_family(struct metrics *r, enum metrics_type type, const char *name, const char *help,
				      const char *label_names, const double *buckets, int n_buckets)
{
	struct metrics_family *f;

	if (!r || !valid_name(name, 1) || (type == METRICS_HISTOGRAM && (n_buckets < 1 || n_buckets > METRICS_MAX_BUCKETS)))
		return NULL;
	for (int i = 1; type == METRICS_HISTOGRAM && i < n_buckets; i++)
		if (!(buckets[i] > buckets[i - 1]))
			return NULL;
	if (!(f = calloc(1, sizeof *f)))
		return NULL;
	f->type = type;
	f->name = strdup(name);
	f->help = strdup(help ? help : "");
	pthread_mutex_init(&f->lock, NULL);
	if (!f->name || !f->help)
		goto fail;
	if (label_names && *label_names) {
		const char *p = label_names;
		while (*p) {
			size_t n = strcspn(p, ",");
			if (f->n_labels == METRICS_MAX_LABELS || !(f->label_names[f->n_labels] = strndup(p, n)) ||
			    !valid_name(f->label_names[f->n_labels++], 0))
				goto fail;
			p += n + (p[n] == ',');
		}
	}
	if (type == METRICS_HISTOGRAM) {
		memcpy(f->bounds, buckets, sizeof *buckets * (size_t)n_buckets);
		f->n_bounds = n_buckets;
	}
	pthread_mutex_lock(&r->lock);
	for (struct metrics_family *g = r->families; g; g = g->next)
		if (!strcmp(g->name, name)) {
			pthread_mutex_unlock(&r->lock);
			goto fail;
		}
	if (r->last)
		r->last->next = f;
	else
		r->families = f;
	r->last = f;
	pthread_mutex_unlock(&r->lock);
	return f;
fail:
	family_free(f);
	return NULL;
}

struct metrics_series *metrics_series(struct metrics_family *f, const char *const *label_values)
{
	struct metrics_series *s = NULL;

	if (!f)
		return NULL;
	pthread_mutex_lock(&f->lock);
	for (int i = 0; i < f->n_series; i++) {
		int same = 1;
		for (int k = 0; same && k < f->n_labels; k++)
			same = !strcmp(f->series[i]->labels[k], label_values[k] ? label_values[k] : "");
		if (same) {
			s = f->series[i];
			goto out;
		}
	}
	if (f->n_series == METRICS_MAX_SERIES)
		goto out;
	if (f->n_series == f->cap_series) {
		int cap = f->cap_series ? 2 * f->cap_series : 8;
		struct metrics_series **n = realloc(f->series, sizeof *n * (size_t)cap);
		if (!n)
			goto out;
		f->series = n;
		f->cap_series = cap;
	}
	if (!(s = calloc(1, sizeof *s)))
		goto out;
	s->f = f;
	for (int k = 0; k < f->n_labels; k++)
		if (!(s->labels[k] = strdup(label_values[k] ? label_values[k] : ""))) {
			for (int j = 0; j < k; j++)
				free(s->labels[j]);
			free(s);
			s = NULL;
			goto out;
		}
	f->series[f->n_series++] = s;
out:
	pthread_mutex_unlock(&f->lock);
	return s;
}

/* ===== Updates ===== */

void metrics_add(struct metrics_series *s, double v)
{
	if (s && s->f->type != METRICS_HISTOGRAM && !(s->f->type == METRICS_COUNTER && v < 0))
		add_d(&s->value, v);
}

void metrics_set(struct metrics_series *s, double v)
{
	if (s && s->f->type == METRICS_GAUGE)
		store_d(&s->value, v);
}

void metrics_observe(struct metrics_series *s, double v)
{
	if (!s || s->f->type != METRICS_HISTOGRAM || isnan(v))
		return;
	for (int i = 0; i < s->f->n_bounds; i++)
		if (v <= s->f->bounds[i]) {
			atomic_fetch_add_explicit(&s->buckets[i], 1, memory_order_relaxed);
			break;
		}
	add_d(&s->value, v);
	atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
}

double metrics_value(const struct metrics_series *s)
{
	if (!s)
		return 0;
	return s->f->type == METRICS_HISTOGRAM ? (double)atomic_load(&s->count) : load_d(&s->value);
}

double metrics_quantile(const struct metrics_series *s, double q)
{
	uint64_t total, seen = 0;

	if (!s || s->f->type != METRICS_HISTOGRAM || !(total = atomic_load(&s->count)))
		return NAN;
	double rank = q * (double)total;
	for (int i = 0; i < s->f->n_bounds; i++) {
		uint64_t c = atomic_load(&s->buckets[i]);
		if ((double)(seen + c) >= rank && c) {
			double lo = i ? s->f->bounds[i - 1] : 0, hi = s->f->bounds[i];
			return lo + (hi - lo) * (rank - (double)seen) / (double)c;
		}
		seen += c;
	}
	return s->f->bounds[s->f->n_bounds - 1]; /* in the +Inf bucket */
}

void metrics_on_scrape(struct metrics *r, void (*fn)(void *ctx), void *ctx)
{
	struct scrape_hook *h = calloc(1, sizeof *h);
	if (!h)
		return;
	h->fn = fn;
	h->ctx = ctx;
	pthread_mutex_lock(&r->lock);
	h->next = r->hooks;
	r->hooks = h;
	pthread_mutex_unlock(&r->lock);
}

/* ===== Rendering ===== */

struct buf {
	char *p;
	size_t len, cap;
	int oom;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = 1;
			return;
		}
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap * 2 + (size_t)n + 1;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
}

/* A label value or help text, escaped as the format asks. */
static void put_escaped(struct buf *b, const char *s, int quotes)
{
	for (; *s; s++) {
		if (*s == '\\')
			put(b, "\\\\");
		else if (*s == '\n')
			put(b, "\\n");
		else if (quotes && *s == '"')
			put(b, "\\\"");
		else
			put(b, "%c", *s);
	}
}

/* The shortest decimal that reads back as v (0.1, not 0.10000000000000001). */
static void shortest(char *out, size_t n, double v)
{
	if (v == floor(v) && fabs(v) < 1e15) {
		snprintf(out, n, "%.0f", v);
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(out, n, "%.*g", prec, v);
		if (strtod(out, NULL) == v)
			return;
	}
}

static void put_num(struct buf *b, double v)
{
	char num[32];

	if (isinf(v))
		put(b, v > 0 ? "+Inf" : "-Inf");
	else if (isnan(v))
		put(b, "NaN");
	else {
		shortest(num, sizeof num, v);
		put(b, "%s", num);
	}
}

/* name{labels[,extra]} */
static void put_head(struct buf *b, const struct metrics_series *s, const char *suffix, const char *extra)
{
	const struct metrics_family *f = s->f;
	put(b, "%s%s", f->name, suffix);
	if (!f->n_labels && !extra)
		return;
	put(b, "{");
	for (int k = 0; k < f->n_labels; k++) {
		put(b, "%s%s=\"", k ? "," : "", f->label_names[k]);
		put_escaped(b, s->labels[k], 1);
		put(b, "\"");
	}
	if (extra)
		put(b, "%s%s", f->n_labels ? "," : "", extra);
	put(b, "}");
}

char *metrics_render(struct metrics *r, size_t *len)
{
	static const char *const types[] = {"counter", "gauge", "histogram"};
	struct buf b = {malloc(4096), 0, 4096, 0};

	if (!b.p)
		return NULL;
	b.p[0] = 0;
	pthread_mutex_lock(&r->lock);
	for (struct scrape_hook *h = r->hooks; h; h = h->next)
		h->fn(h->ctx);
	for (struct metrics_family *f = r->families; f; f = f->next) {
		pthread_mutex_lock(&f->lock);
		put(&b, "# HELP %s ", f->name);
		put_escaped(&b, f->help, 0);
		put(&b, "\n# TYPE %s %s\n", f->name, types[f->type]);
		for (int i = 0; i < f->n_series; i++) {
			const struct metrics_series *s = f->series[i];
			if (f->type != METRICS_HISTOGRAM) {
				put_head(&b, s, "", NULL);
				put(&b, " ");
				put_num(&b, load_d(&s->value));
				put(&b, "\n");
				continue;
			}
			uint64_t cum = 0;
			char le[64], num[32];
			for (int k = 0; k < f->n_bounds; k++) {
				cum += atomic_load(&s->buckets[k]);
				shortest(num, sizeof num, f->bounds[k]);
				snprintf(le, sizeof le, "le=\"%s\"", num);
				put_head(&b, s, "_bucket", le);
				put(&b, " %llu\n", (unsigned long long)cum);
			}
			uint64_t count = atomic_load(&s->count);
			if (count < cum) /* an observation between the two reads */
				count = cum;
			put_head(&b, s, "_bucket", "le=\"+Inf\"");
			put(&b, " %llu\n", (unsigned long long)count);
			put_head(&b, s, "_sum", NULL);
			put(&b, " ");
			put_num(&b, load_d(&s->value));
			put(&b, "\n");
			put_head(&b, s, "_count", NULL);
			put(&b, " %llu\n", (unsigned long long)count);
		}
		pthread_mutex_unlock(&f->lock);
	}
	pthread_mutex_unlock(&r->lock);
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	if (len)
		*len = b.len;
	return b.p;
}
