/*
 * test_quota_gcra.c - the API keys' limits as decided in the process
 * (src/http/quota.c; the shared kv's script does the same arithmetic, which
 * tests/sh/test_quota.sh drives through two instances): the key file's
 * settings, accepted and refused; the rate's GCRA on a clock the test
 * moves (a whole burst, then one per interval, the wait a refusal names),
 * that RateLimit's t is honest (no more than r requests pass within it,
 * one more right after), that a client keeping within N per window is
 * never refused while no window ever sees 2N; and the concurrency count.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_int.h"

#include "check.h"

static int parses(const char *text, struct http_limits *l)
{
	char why[200];
	return !http_limits_parse(text, l, why, sizeof why);
}

static void settings(void)
{
	struct http_limits l;
	static const char *const refused[] = {
		"rate=5",     "rate=5/d",   "rate=0/s",	    "rate=-1/s",       "rate=1000001/s", "rate=/s",
		"rate=5/m",   "rate=5/sec", "rate=5/hour",  "rate=1e3/s",      "rate=5/min/h",	 "concurrency=",
		"concurrency=0", "concurrency=x", "concurrency=100001", "rate=1/s rate=1/s", "burst=2",
		"rate=5/h,concurrency=2", "another-key-0123456789",
	};

	CHECK(parses("", &l) && !l.rate && !l.concurrency, "no settings: no limits");
	CHECK(parses("  rate=120/min\tconcurrency=4 ", &l) && l.rate == 120 && l.window_s == 60 && l.concurrency == 4,
	      "'rate=120/min concurrency=4' (spaces and tabs around): 120 per 60 s, 4 at once");
	CHECK(parses("rate=7/s", &l) && l.rate == 7 && l.window_s == 1 && !l.concurrency, "rate=7/s");
	CHECK(parses("concurrency=1 rate=1000000/h", &l) && l.rate == 1000000 && l.window_s == 3600 &&
		      l.concurrency == 1,
	      "either order; rate up to 1000000");
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
		CHECK(!parses(refused[i], &l), "refused: '%s'", refused[i]);
}

static struct kv_limit limit_of(long long n, int window_s, int concurrency)
{
	struct kv_limit l = {.concurrency = concurrency, .lease_ms = 1000};
	if (n) {
		l.interval_us = (long long)window_s * 1000000 / n;
		l.burst = n;
	}
	return l;
}

static void rate(void)
{
	struct kv_limit l = limit_of(120, 60, 0);
	struct kv_limit_state st;
	long long tat = 0, now = 1000000000; /* any start */
	int inp = 0, ok = 1;

	for (int i = 0; i < 120; i++) {
		http_limit_decide(&l, &tat, &inp, now, &st);
		ok &= st.verdict == KV_LIMIT_ALLOWED && st.rate_left == 119 - i && st.concurrency_left == -1;
	}
	CHECK(ok, "120/min: 120 at once, r going 119 .. 0");
	http_limit_decide(&l, &tat, &inp, now, &st);
	CHECK(st.verdict == KV_LIMIT_RATE && st.rate_left == 0 && st.rate_wait_us == 500000,
	      "the 121st: refused, one allowed in 0.5 s (60 s / 120): waits %lld us", st.rate_wait_us);
	long long before = tat;
	http_limit_decide(&l, &tat, &inp, now + 499999, &st);
	CHECK(st.verdict == KV_LIMIT_RATE && tat == before, "a microsecond early: refused, and nothing counted");
	http_limit_decide(&l, &tat, &inp, now + 500000, &st);
	CHECK(st.verdict == KV_LIMIT_ALLOWED && st.rate_left == 0 && st.rate_wait_us == 500000,
	      "at 0.5 s: allowed, r=0, the next in 0.5 s");
	ok = 1;
	for (int i = 2; i <= 240; i++) { /* one every 0.5 s, then one more at once each time */
		http_limit_decide(&l, &tat, &inp, now + i * 500000LL, &st);
		ok &= st.verdict == KV_LIMIT_ALLOWED;
		http_limit_decide(&l, &tat, &inp, now + i * 500000LL, &st);
		ok &= st.verdict == KV_LIMIT_RATE;
	}
	CHECK(ok, "sending on: exactly one every 0.5 s for two minutes");
	tat = 0;
	http_limit_decide(&l, &tat, &inp, now + 3600000000LL, &st);
	CHECK(st.verdict == KV_LIMIT_ALLOWED && st.rate_left == 119, "a key left alone gets its whole burst back");

	/* a window that does not divide evenly: 7 per second */
	l = limit_of(7, 1, 0);
	tat = 0;
	ok = 1;
	for (int i = 0; i < 7; i++) {
		http_limit_decide(&l, &tat, &inp, now, &st);
		ok &= st.verdict == KV_LIMIT_ALLOWED && st.rate_left == 6 - i;
	}
	http_limit_decide(&l, &tat, &inp, now, &st);
	CHECK(ok && st.verdict == KV_LIMIT_RATE && st.rate_wait_us == 142857,
	      "7/s: 7 at once, the 8th waits 142857 us (%lld)", st.rate_wait_us);
}

/* t of RateLimit: within it no more than r requests pass, and one more
 * passes at its end */
static void honest_t(void)
{
	struct kv_limit l = limit_of(10, 60, 0);
	struct kv_limit_state st, probe;
	long long tat = 0, now = 5000000;
	int inp = 0, ok = 1;

	srand(7);
	for (int round = 0; round < 200; round++) {
		now += rand() % 9000000;
		http_limit_decide(&l, &tat, &inp, now, &st);
		if (st.verdict != KV_LIMIT_ALLOWED)
			continue;
		long long r = st.rate_left, t = st.rate_wait_us;
		long long copy = tat;
		int passed = 0;
		for (int i = 0; i <= r + 1; i++) {
			http_limit_decide(&l, &copy, &inp, now + t - 1, &probe);
			passed += probe.verdict == KV_LIMIT_ALLOWED;
		}
		ok &= passed == r;
		if (t > 0) {
			copy = tat;
			passed = 0;
			for (int i = 0; i <= r + 1; i++) {
				http_limit_decide(&l, &copy, &inp, now + t, &probe);
				passed += probe.verdict == KV_LIMIT_ALLOWED;
			}
			ok &= passed == r + 1;
		}
	}
	CHECK(ok, "RateLimit's r and t: just before t exactly r pass, at t exactly r + 1 (200 random moments)");
}

/* a client that never sends more than N in any window is never refused;
 * a greedy one never gets 2N in a window */
static void windows(void)
{
	enum { N = 20, W = 60000000, STEPS = 20000 };
	struct kv_limit l = limit_of(N, W / 1000000, 0);
	struct kv_limit_state st;
	static long long sent[STEPS];
	long long tat = 0, now = 0, greedy_tat = 0;
	int inp = 0, n = 0, refused = 0, worst = 0, g = 0;
	static long long got[STEPS * 4];

	srand(11);
	for (int i = 0; i < STEPS; i++) {
		now += rand() % 4000000;
		int in_window = 0;
		for (int j = n - 1; j >= 0 && sent[j] > now - W; j--)
			in_window++;
		if (in_window < N) { /* the polite client's own rule */
			http_limit_decide(&l, &tat, &inp, now, &st);
			refused += st.verdict != KV_LIMIT_ALLOWED;
			sent[n++] = now;
		}
		for (int k = 0; k < 4; k++) { /* the greedy one tries 4 at every moment */
			http_limit_decide(&l, &greedy_tat, &inp, now, &st);
			if (st.verdict == KV_LIMIT_ALLOWED)
				got[g++] = now;
		}
	}
	for (int i = 0, j = 0; i < g; i++) {
		while (got[j] <= got[i] - W)
			j++;
		worst = i - j + 1 > worst ? i - j + 1 : worst;
	}
	CHECK(!refused, "a client keeping within %d per window is never refused (%d of %d refused)", N, refused, n);
	CHECK(worst >= N && worst < 2 * N, "a greedy client gets at most %d in any window (%d)", 2 * N - 1, worst);
}

static void concurrency(void)
{
	struct kv_limit l = limit_of(0, 0, 2);
	struct kv_limit_state st;
	long long tat = 0;
	int inp = 0;

	http_limit_decide(&l, &tat, &inp, 1, &st);
	CHECK(st.verdict == KV_LIMIT_ALLOWED && st.concurrency_left == 1 && st.rate_left == -1 && inp == 1,
	      "concurrency=2: the first takes a slot, one left, no rate");
	http_limit_decide(&l, &tat, &inp, 1, &st);
	CHECK(st.verdict == KV_LIMIT_ALLOWED && st.concurrency_left == 0 && inp == 2, "the second takes the last");
	http_limit_decide(&l, &tat, &inp, 1, &st);
	CHECK(st.verdict == KV_LIMIT_CONCURRENCY && st.concurrency_left == 0 && inp == 2,
	      "the third: refused, nothing taken");
	inp--;
	http_limit_decide(&l, &tat, &inp, 1, &st);
	CHECK(st.verdict == KV_LIMIT_ALLOWED && inp == 2, "one released: the next is allowed");

	l = limit_of(3, 1, 1);
	inp = 1;
	tat = 0;
	http_limit_decide(&l, &tat, &inp, 1000000, &st);
	CHECK(st.verdict == KV_LIMIT_CONCURRENCY && tat == 0 && st.rate_left == 3 && st.rate_wait_us == 0,
	      "refused for concurrency: the rate is not spent (r=3, whole)");
	inp = 0;
	tat = 0;
	for (int i = 0; i < 3; i++) {
		http_limit_decide(&l, &tat, &inp, 1000000, &st);
		inp = 0;
	}
	inp = 1;
	http_limit_decide(&l, &tat, &inp, 1000000, &st);
	CHECK(st.verdict == KV_LIMIT_RATE && inp == 1, "over both: the rate is named (it says when to come back)");
}

int main(void)
{
	settings();
	rate();
	honest_t();
	windows();
	concurrency();
	return failures ? 1 : 0;
}
