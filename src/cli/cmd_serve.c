/*
 * cmd_serve.c - `petcut serve`: the HTTP service, until SIGTERM or SIGINT,
 * then a graceful stop (new connections refused, requests in flight finish
 * within --drain-seconds, exit status 0).
 * `petcut worker` is the same service with threads that do the jobs queued
 * on the shared Redis (it still answers /healthz, /readyz and /metrics).
 */
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "pipeline/pipeline.h"
#include "http/http.h"

static void usage(FILE *f, const struct http_config *d)
{
	fprintf(f,
		"usage: petcut serve [options]\n"
		"  --listen ADDR:PORT    where to listen (PETCUT_LISTEN; default %s; port 0 picks a free one)\n"
		"  --data DIR            local state: resumable uploads, temporary files, and the store unless\n"
		"                        --store says otherwise (PETCUT_DATA; default %s)\n"
		"  --store SPEC          where images and results are stored (PETCUT_STORE): a folder, or\n"
		"                        s3://BUCKET/PREFIX on any S3-compatible server (keys from\n"
		"                        AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, region from AWS_REGION)\n"
		"  --s3-endpoint URL     the S3 server, http(s)://HOST[:PORT] (AWS_ENDPOINT_URL; default AWS)\n"
		"  --allow-fetch-host LIST HOST,... that image_url may fetch from (PETCUT_ALLOW_FETCH_HOST; default\n"
		"                        none: only this server's images); private addresses are refused unless\n"
		"  --allow-fetch-private yes|no  the listed hosts may be at loopback or private addresses (default no)\n"
		"  --min-body-rate N     bytes/s a request body must average once past its first 10 s, else the\n"
		"                        connection is closed (PETCUT_MIN_BODY_RATE; default 8192; 0 off)\n"
		"  --cors-origins LIST   ORIGIN,... (https://shop.example) whose pages may call the API from a\n"
		"                        browser (PETCUT_CORS_ORIGINS; default *: any, never with credentials)\n"
		"  --api-key-file FILE   the API keys the /v1 routes ask for, one a line, in X-Api-Key or\n"
		"                        Authorization: Bearer (PETCUT_API_KEY_FILE; default none: open); a key\n"
		"                        may be followed by its limits: KEY rate=N/s|N/min|N/h concurrency=N\n"
		"                        (over one: 429 with Retry-After; answers carry RateLimit-Policy and\n"
		"                        RateLimit; counted in --redis when given, shared by the instances)\n"
		"  --callback-allow LIST HOST[:PORT],... that a job's callback_url may name (PETCUT_CALLBACK_ALLOW;\n"
		"                        default none: jobs with a callback_url are refused)\n"
		"  --webhook-secret-file FILE  secrets that sign callbacks as Standard Webhooks do (webhook-id,\n"
		"                        webhook-timestamp, webhook-signature: v1,BASE64 of the HMAC-SHA256 of\n"
		"                        ID.TIMESTAMP.BODY, one per secret), one a line: whsec_ and the base64 of\n"
		"                        24 to 64 random bytes (PETCUT_WEBHOOK_SECRET_FILE; default none: unsigned)\n"
		"  --webhook-retry-seconds N  a callback not answered 2xx is tried again after pauses of 1 s to\n"
		"                        2^tries s (full jitter; at most 10 min) for this long, then given up\n"
		"                        (PETCUT_WEBHOOK_RETRY_SECONDS; default %d)\n"
		"  --redis URL           redis://[:PASSWORD@]HOST[:PORT][/DB] shared by the instances of one store\n"
		"                        (PETCUT_REDIS): result index and identical work done once among them;\n"
		"                        while it is down each instance works alone and /readyz says degraded\n"
		"  --memory-cache-mb N   hot masks and results kept in memory in front of the store, in MB\n"
		"                        (PETCUT_MEMORY_CACHE_MB; default 128 with an s3:// store, 0 with a\n"
		"                        folder, whose hot files the kernel keeps; 0 off)\n"
		"  --threads N           connection threads (PETCUT_THREADS; default %d)\n"
		"  --idle-timeout-s N    a connection (kept alive or new) idle this long is closed (default %d)\n"
		"  --per-ip-connections N  connections one client address may hold at once (default %d)\n"
		"  --max-upload-mb N     largest upload (PETCUT_MAX_UPLOAD_MB; default %zu)\n"
		"  --max-megapixels N    largest image, checked from its header (default %lld)\n"
		"  --model NAME|PATH     medium or small, as fetched by `petcut model fetch`, or the path of an\n"
		"                        .onnx file (PETCUT_MODEL; default medium; without it petcut does not\n"
		"                        start); none: images are stored and served, nothing is cut out\n"
		"  --max-batch N         requests per forward pass (PETCUT_MAX_BATCH; default %d)\n"
		"  --max-delay-ms N      wait for a batch to fill (PETCUT_MAX_DELAY_MS; default %d)\n"
		"  --max-queue N         inference requests waiting before 429 (PETCUT_MAX_QUEUE; default %d)\n"
		"  --request-timeout-ms N  deadline of a request's inference, then 504 (PETCUT_REQUEST_TIMEOUT_MS; default %d)\n"
		"  --drain-seconds N     on SIGTERM or SIGINT, new connections are refused and requests in flight\n"
		"                        get this long to finish (PETCUT_DRAIN_SECONDS; default %d)\n"
		"  --precision fp32|bf16|int8 the network's arithmetic (PETCUT_PRECISION; default bf16 where the CPU\n"
		"                        has AVX512_BF16, else fp32); bf16 takes a third of fp32's memory; int8\n"
		"                        needs `petcut model calibrate` (without it: bf16)\n"
		"  --fallback auto|fp32|none  rerun a mask at fp32 when it is unsure (PETCUT_FALLBACK): auto (default)\n"
		"                        an int8 mask, fp32 a bf16 one too, none never\n"
		"  --fallback-above F    how unsure: the share of pixels between 0.1 and 0.9 among those above 0.1\n"
		"                        (default 0.8)\n"
		"Prints 'listening on http://ADDR:PORT' once it accepts connections.\n"
		"\nexit status: 0 stopped by SIGTERM or SIGINT after draining; 1 it could not start (no\n"
		"model, the address taken, the store unusable, a key file line it cannot read: its\n"
		"file and line on stderr); 2 bad usage\n",
		d->listen, d->data_dir, d->webhook_retry_s, d->threads, d->timeout_s, d->per_ip_connections, d->max_upload_bytes >> 20, d->max_pixels / 1000000, d->max_batch,
		d->max_delay_ms, d->max_queue, d->request_timeout_ms, d->drain_s);
}

/*
 * A store outside the data folder still spools bytes on their way (a put is
 * written to a temporary file before it is sent): they go to DATA/tmp (which
 * the server creates), not to a /tmp that may be small or shared, unless
 * TMPDIR says where.
 */
static int spool_in_data(const struct http_config *cfg)
{
	char dir[PATH_MAX];
	const char *t = getenv("TMPDIR");

	if (!cfg->store || strncmp(cfg->store, "s3:", 3) || (t && *t))
		return 0;
	if ((size_t)snprintf(dir, sizeof dir, "%s/tmp", cfg->data_dir) >= sizeof dir) {
		fprintf(stderr, "petcut serve: --data is too long\n");
		return -1;
	}
	return setenv("TMPDIR", dir, 1);
}

/* name: "serve" or "worker" */
static int run(const char *name, int argc, char **argv)
{
	struct http_config cfg;
	struct http_server *srv;
	char err[256];
	sigset_t set;
	int sig, worker = !strcmp(name, "worker");
	const char *v;

	http_config_defaults(&cfg);
	if (worker) {
		cfg.job_consumers = 2;
		/* beside a serve on the same host: a port of its own by default */
		if (!(v = getenv("PETCUT_LISTEN")) || !*v)
			cfg.listen = "127.0.0.1:0";
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout, &cfg);
			if (worker)
				printf("petcut worker takes the same options, and does the jobs queued on --redis (required):\n"
				       "  --consumers N         jobs at once (default 2)\n"
				       "  --claim-ms N          a job not finished this long by its consumer is taken by another\n"
				       "                        (PETCUT_JOB_CLAIM_MS; default the request timeout + 30 s)\n"
				       "  It listens on 127.0.0.1:0 unless told (/healthz, /readyz, /metrics).\n");
			return 0;
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "petcut %s: %s needs a value (or is unknown)\n", name, a);
			return 2;
		}
		v = argv[++i];
		char *end;
		long n = strtol(v, &end, 10);
		double f;
		int on;
		if (!strcmp(a, "--listen"))
			cfg.listen = v;
		else if (!strcmp(a, "--data"))
			cfg.data_dir = v;
		else if (!strcmp(a, "--store"))
			cfg.store = v;
		else if (!strcmp(a, "--redis"))
			cfg.redis = v;
		else if (!strcmp(a, "--callback-allow"))
			cfg.callback_allow = v;
		else if (!strcmp(a, "--webhook-secret-file"))
			cfg.webhook_secret_file = v;
		else if (!strcmp(a, "--webhook-retry-seconds") && !*end && n >= 0 && n <= 30 * 86400)
			cfg.webhook_retry_s = (int)n;
		else if (!strcmp(a, "--cors-origins"))
			cfg.cors_origins = v;
		else if (!strcmp(a, "--api-key-file"))
			cfg.api_key_file = v;
		else if (!strcmp(a, "--allow-fetch-host"))
			cfg.allow_fetch_hosts = v;
		else if (!strcmp(a, "--allow-fetch-private") && (!strcmp(v, "yes") || !strcmp(v, "no")))
			cfg.allow_fetch_private = !strcmp(v, "yes");
		else if (!strcmp(a, "--min-body-rate") && !*end && n >= 0 && n <= 1 << 30)
			cfg.min_body_rate = (int)n;
		else if (worker && !strcmp(a, "--consumers") && !*end && n > 0 && n <= 64)
			cfg.job_consumers = (int)n;
		else if (worker && !strcmp(a, "--claim-ms") && !*end && n > 0 && n <= 86400000)
			cfg.job_claim_ms = (int)n;
		else if (!strcmp(a, "--s3-endpoint") && (!strncmp(v, "http://", 7) || !strncmp(v, "https://", 8)))
			/* the S3 backend reads its endpoint from the environment; the
			 * flag wins over both of the variables it looks at */
			setenv("AWS_ENDPOINT_URL_S3", v, 1);
		else if (!strcmp(a, "--memory-cache-mb") && !*end && n >= 0 && n <= 1048576)
			cfg.memory_cache_mb = (int)n;
		else if (!strcmp(a, "--threads") && !*end && n > 0 && n <= 1024)
			cfg.threads = (int)n;
		else if (!strcmp(a, "--idle-timeout-s") && !*end && n > 0 && n <= 3600)
			cfg.timeout_s = (int)n;
		else if (!strcmp(a, "--per-ip-connections") && !*end && n > 0 && n <= 100000)
			cfg.per_ip_connections = (int)n;
		else if (!strcmp(a, "--max-upload-mb") && !*end && n > 0 && n <= 4096)
			cfg.max_upload_bytes = (size_t)n << 20;
		else if (!strcmp(a, "--max-megapixels") && !*end && n > 0 && n <= 1000)
			cfg.max_pixels = (long long)n * 1000000;
		else if (!strcmp(a, "--model"))
			cfg.model = v;
		else if (!strcmp(a, "--precision") && !pipe_parse_precision(v, &cfg.precision))
			;
		else if (!strcmp(a, "--fallback") && !pipe_parse_fallback(v, &cfg.fallback_bf16, &on))
			cfg.fallback_above = !on ? 0 : cfg.fallback_above > 0 ? cfg.fallback_above : PIPE_GUARD_ABOVE;
		else if (!strcmp(a, "--fallback-above") && (f = strtod(v, &end)) > 0 && f <= 1 && !*end && end != v)
			cfg.fallback_above = f;
		else if (!strcmp(a, "--max-batch") && !*end && n > 0 && n <= 32)
			cfg.max_batch = (int)n;
		else if (!strcmp(a, "--max-delay-ms") && !*end && n >= 0 && n <= 10000)
			cfg.max_delay_ms = (int)n;
		else if (!strcmp(a, "--max-queue") && !*end && n > 0 && n <= 100000)
			cfg.max_queue = (int)n;
		else if (!strcmp(a, "--request-timeout-ms") && !*end && n >= 0 && n <= 3600000)
			cfg.request_timeout_ms = (int)n;
		else if (!strcmp(a, "--drain-seconds") && !*end && n >= 0 && n <= 3600)
			cfg.drain_s = (int)n;
		else {
			fprintf(stderr, "petcut %s: bad option %s %s\n", name, a, v);
			return 2;
		}
	}
	if (worker && !cfg.redis) {
		fprintf(stderr, "petcut worker: --redis redis://HOST:PORT/DB is required (the jobs are there)\n");
		return 2;
	}
	if (worker && !cfg.job_claim_ms && (v = getenv("PETCUT_JOB_CLAIM_MS")) && atoi(v) > 0)
		cfg.job_claim_ms = atoi(v);
	if (spool_in_data(&cfg))
		return 1;
	/* the signals are taken by sigwait below, in this thread only */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (http_server_start(&cfg, &srv, err, sizeof err)) {
		fprintf(stderr, "petcut %s: %s\n", name, err);
		return 1;
	}
	printf("listening on http://%s\n", http_server_address(srv));
	fflush(stdout);
	sigwait(&set, &sig);
	fprintf(stderr, "petcut %s: %s: finishing requests in flight\n", name, sig == SIGTERM ? "SIGTERM" : "SIGINT");
	if (http_server_stop(srv)) {
		/* work still ran past the drain: leave without tearing down
		 * what it uses */
		fflush(stdout);
		fflush(stderr);
		_exit(0);
	}
	return 0;
}

int cmd_serve(int argc, char **argv)
{
	return run("serve", argc, argv);
}

int cmd_worker(int argc, char **argv)
{
	return run("worker", argc, argv);
}
