/*
 * redis.c - the kv module on hiredis: one blocking connection guarded by a
 * mutex, made again after a failure with a growing pause between tries. See
 * kv.h.
 *
 * Every command is short (GET, SET, EXISTS, a few lines of script), so one
 * connection serves all threads; waits (for a lock held elsewhere) happen in
 * the callers, between commands, never while the connection is held.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "kv/kv.h"
#include "util/util.h"

struct kv {
	char host[256];
	int port, db;
	char password[256];	/* "" for none */
	char address[320];	/* for logs: no password */
	struct timeval connect_tv, cmd_tv;
	pthread_mutex_t lock;	/* guards everything below */
	redisContext *c;	/* NULL while disconnected */
	int ever_connected;
	double next_try_ms;	/* no connection attempt before this */
	long pause_ms;		/* the pause after the next failure */
	struct kv_stats stats;
};

/* Compare-and-delete: only the token that took a lock may drop it. */
static const char unlock_script[] =
	"if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

/* Set unless final: ARGV = value, ttl ms (0: none), field, final values... */
static const char set_unless_script[] =
	"local cur = redis.call('get', KEYS[1]) "
	"if cur then "
	"  local ok, v = pcall(cjson.decode, cur) "
	"  if ok and type(v) == 'table' then "
	"    for i = 4, #ARGV do if v[ARGV[3]] == ARGV[i] then return 0 end end "
	"  end "
	"end "
	"if tonumber(ARGV[2]) > 0 then redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) "
	"else redis.call('set', KEYS[1], ARGV[1]) end "
	"return 1";


/* ===== Set-up ===== */

static kv_status parse_url(struct kv *kv, const char *url, char *errbuf, size_t errlen)
{
	const char *p = url, *at, *end;
	char *num_end;
	long n;

	if (strncmp(p, "redis://", 8)) {
		snprintf(errbuf, errlen, "'%s' is not redis://[:PASSWORD@]HOST[:PORT][/DB]", url);
		return KV_BAD_URL;
	}
	p += 8;
	end = p + strcspn(p, "/");
	if ((at = memchr(p, '@', (size_t)(end - p)))) {
		const char *pw = *p == ':' ? p + 1 : p; /* redis://:PW@ or redis://PW@ */
		if ((size_t)(at - pw) >= sizeof kv->password)
			goto bad;
		memcpy(kv->password, pw, (size_t)(at - pw));
		kv->password[at - pw] = 0;
		p = at + 1;
	}
	size_t hl = strcspn(p, ":/");
	if (!hl || hl >= sizeof kv->host)
		goto bad;
	memcpy(kv->host, p, hl);
	kv->host[hl] = 0;
	p += hl;
	kv->port = 6379;
	if (*p == ':') {
		n = strtol(p + 1, &num_end, 10);
		if (num_end == p + 1 || n < 1 || n > 65535 || (*num_end && *num_end != '/'))
			goto bad;
		kv->port = (int)n;
		p = num_end;
	}
	if (*p == '/' && p[1]) {
		n = strtol(p + 1, &num_end, 10);
		if (*num_end || n < 0 || n > 1000000)
			goto bad;
		kv->db = (int)n;
	}
	snprintf(kv->address, sizeof kv->address, "redis://%s:%d/%d", kv->host, kv->port, kv->db);
	return KV_OK;
bad:
	snprintf(errbuf, errlen, "'%s' is not redis://[:PASSWORD@]HOST[:PORT][/DB]", url);
	return KV_BAD_URL;
}

static struct timeval tv_of(int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	return tv;
}

/* ===== The connection (kv->lock held) ===== */

static void drop(struct kv *kv)
{
	if (kv->c)
		redisFree(kv->c);
	kv->c = NULL;
}

/* A command that must answer "+OK" (AUTH, SELECT): 0 if it did. */
static int expect_ok(redisReply *rep)
{
	int ok = rep && rep->type == REDIS_REPLY_STATUS && !strcmp(rep->str, "OK");
	if (rep)
		freeReplyObject(rep);
	return ok ? 0 : -1;
}

/* Drops the connection after a failure and pauses before the next try: a
 * server that stays down (or hangs, so that every command waits for its
 * timeout) is tried less and less often, up to KV_RETRY_MAX_MS apart. The
 * pause starts again from KV_RETRY_MIN_MS once a command succeeds. */
static void hold_off(struct kv *kv)
{
	drop(kv);
	kv->next_try_ms = util_now_ms() + (double)kv->pause_ms;
	kv->pause_ms = kv->pause_ms * 2 > KV_RETRY_MAX_MS ? KV_RETRY_MAX_MS : kv->pause_ms * 2;
}

/* Connects unless connected or still pausing after a failure: 0 when there
 * is a connection to use. */
static int ensure(struct kv *kv)
{
	if (kv->c)
		return 0;
	if (util_now_ms() < kv->next_try_ms)
		return -1;
	kv->c = redisConnectWithTimeout(kv->host, kv->port, kv->connect_tv);
	if (!kv->c || kv->c->err || redisSetTimeout(kv->c, kv->cmd_tv) != REDIS_OK ||
	    (*kv->password && expect_ok(redisCommand(kv->c, "AUTH %s", kv->password))) ||
	    (kv->db && expect_ok(redisCommand(kv->c, "SELECT %d", kv->db)))) {
		hold_off(kv);
		return -1;
	}
	if (kv->ever_connected)
		kv->stats.reconnects++;
	kv->ever_connected = 1;
	return 0;
}

/* The end of a command: counts it, and drops a connection that failed (the
 * next command reconnects). rep may be NULL. */
static kv_status finish(struct kv *kv, redisReply *rep)
{
	if (rep && rep->type != REDIS_REPLY_ERROR) {
		kv->stats.up = 1;
		kv->pause_ms = KV_RETRY_MIN_MS;
		return KV_OK;
	}
	kv->stats.errors++;
	if (!rep) { /* the connection is broken or timed out: start over */
		kv->stats.up = 0;
		hold_off(kv);
	}
	return KV_DOWN;
}

/* Sends one formatted command under the lock (reconnecting first if need
 * be); *out receives the reply (free it) on KV_OK. */
static kv_status run_formatted(struct kv *kv, redisReply **out, const char *cmd, size_t len)
{
	redisReply *rep = NULL;
	kv_status st;

	pthread_mutex_lock(&kv->lock);
	if (ensure(kv)) {
		kv->stats.errors++;
		kv->stats.up = 0;
		pthread_mutex_unlock(&kv->lock);
		return KV_DOWN;
	}
	if (redisAppendFormattedCommand(kv->c, cmd, len) == REDIS_OK)
		redisGetReply(kv->c, (void **)&rep);
	st = finish(kv, rep);
	pthread_mutex_unlock(&kv->lock);
	if (st == KV_OK)
		*out = rep;
	else if (rep)
		freeReplyObject(rep);
	return st;
}

/* Runs one command under the lock; *out receives the reply (free it) on
 * KV_OK. */
static kv_status run(struct kv *kv, redisReply **out, const char *fmt, ...)
{
	char *cmd;
	int len;
	va_list ap;
	kv_status st;

	*out = NULL;
	va_start(ap, fmt);
	len = redisvFormatCommand(&cmd, fmt, ap);
	va_end(ap);
	if (len < 0)
		return KV_NOMEM;
	st = run_formatted(kv, out, cmd, (size_t)len);
	redisFreeCommand(cmd);
	return st;
}

/* run with the command as arguments (argv[i] of lens[i] bytes). */
static kv_status run_argv(struct kv *kv, redisReply **out, int argc, const char **argv, const size_t *lens)
{
	char *cmd;
	int len = redisFormatCommandArgv(&cmd, argc, argv, lens);
	kv_status st;

	*out = NULL;
	if (len < 0)
		return KV_NOMEM;
	st = run_formatted(kv, out, cmd, (size_t)len);
	redisFreeCommand(cmd);
	return st;
}

/* KV_OK when an integer reply is above 0 (keys removed, members added...),
 * else KV_MISS; frees the reply. */
static kv_status positive_or_miss(redisReply *rep)
{
	kv_status st = rep->type == REDIS_REPLY_INTEGER && rep->integer > 0 ? KV_OK : KV_MISS;
	freeReplyObject(rep);
	return st;
}

/* ===== The contract ===== */

kv_status kv_open(const char *url, int connect_ms, int cmd_ms, struct kv **out, char *errbuf, size_t errlen)
{
	struct kv *kv = calloc(1, sizeof *kv);
	kv_status st;

	*out = NULL;
	if (!kv) {
		snprintf(errbuf, errlen, "out of memory");
		return KV_NOMEM;
	}
	if ((st = parse_url(kv, url, errbuf, errlen)) != KV_OK) {
		free(kv);
		return st;
	}
	kv->connect_tv = tv_of(connect_ms > 0 ? connect_ms : 500);
	kv->cmd_tv = tv_of(cmd_ms > 0 ? cmd_ms : 1000);
	kv->pause_ms = KV_RETRY_MIN_MS;
	pthread_mutex_init(&kv->lock, NULL);
	kv_ping(kv); /* down is fine: the calls will say so */
	*out = kv;
	return KV_OK;
}

void kv_close(struct kv *kv)
{
	if (!kv)
		return;
	drop(kv);
	pthread_mutex_destroy(&kv->lock);
	free(kv);
}

const char *kv_address(const struct kv *kv)
{
	return kv->address;
}

kv_status kv_ping(struct kv *kv)
{
	redisReply *rep;
	kv_status st = run(kv, &rep, "PING");
	if (st == KV_OK)
		freeReplyObject(rep);
	return st;
}

kv_status kv_get(struct kv *kv, const char *key, char **val, size_t *len)
{
	redisReply *rep;
	kv_status st = run(kv, &rep, "GET %s", key);

	if (st != KV_OK)
		return st;
	if (rep->type != REDIS_REPLY_STRING) {
		freeReplyObject(rep);
		return KV_MISS;
	}
	if (!(*val = malloc(rep->len + 1))) {
		freeReplyObject(rep);
		return KV_NOMEM;
	}
	memcpy(*val, rep->str, rep->len);
	(*val)[rep->len] = 0;
	if (len)
		*len = rep->len;
	freeReplyObject(rep);
	return KV_OK;
}

kv_status kv_set(struct kv *kv, const char *key, const void *val, size_t len, long ttl_ms)
{
	redisReply *rep;
	kv_status st = ttl_ms > 0 ? run(kv, &rep, "SET %s %b PX %ld", key, val, len, ttl_ms)
				  : run(kv, &rep, "SET %s %b", key, val, len);
	if (st == KV_OK)
		freeReplyObject(rep);
	return st;
}

kv_status kv_set_unless(struct kv *kv, const char *key, const void *val, size_t len, long ttl_ms, const char *field,
			const char *const *stop)
{
	char ttl[24];
	const char *argv[16] = {"EVAL", set_unless_script, "1", key, val, ttl, field};
	size_t lens[16];
	int argc = 7;
	redisReply *rep;

	snprintf(ttl, sizeof ttl, "%ld", ttl_ms > 0 ? ttl_ms : 0);
	for (int i = 0; stop && stop[i]; i++) {
		if (argc == (int)(sizeof argv / sizeof argv[0]))
			return KV_NOMEM; /* more final values than one call takes */
		argv[argc++] = stop[i];
	}
	for (int i = 0; i < argc; i++)
		lens[i] = i == 4 ? len : strlen(argv[i]);
	kv_status st = run_argv(kv, &rep, argc, argv, lens);
	if (st != KV_OK)
		return st;
	st = rep->type == REDIS_REPLY_INTEGER && rep->integer == 1 ? KV_OK : KV_MISS;
	freeReplyObject(rep);
	return st;
}

kv_status kv_exists(struct kv *kv, const char *key)
{
	redisReply *rep;
	kv_status st = run(kv, &rep, "EXISTS %s", key);
	return st == KV_OK ? positive_or_miss(rep) : st;
}

kv_status kv_lock(struct kv *kv, const char *key, const char *token, long ttl_ms)
{
	redisReply *rep;
	kv_status st = run(kv, &rep, "SET %s %s NX PX %ld", key, token, ttl_ms);

	if (st != KV_OK)
		return st;
	/* "+OK" when taken, a nil reply when someone holds it */
	st = rep->type == REDIS_REPLY_STATUS ? KV_OK : KV_MISS;
	freeReplyObject(rep);
	return st;
}

kv_status kv_unlock(struct kv *kv, const char *key, const char *token)
{
	redisReply *rep;
	kv_status st = run(kv, &rep, "EVAL %s 1 %s %s", unlock_script, key, token);
	if (st == KV_OK)
		freeReplyObject(rep);
	return st;
}

/* ===== Streams ===== */

kv_status kv_stream_group(struct kv *kv, const char *stream, const char *group)
{
	redisReply *rep = NULL;
	kv_status st;

	pthread_mutex_lock(&kv->lock);
	if (ensure(kv)) {
		kv->stats.errors++;
		pthread_mutex_unlock(&kv->lock);
		return KV_DOWN;
	}
	rep = redisCommand(kv->c, "XGROUP CREATE %s %s 0 MKSTREAM", stream, group);
	/* a group already there is what was asked for */
	if (rep && rep->type == REDIS_REPLY_ERROR && !strncmp(rep->str, "BUSYGROUP", 9))
		rep->type = REDIS_REPLY_STATUS;
	st = finish(kv, rep);
	pthread_mutex_unlock(&kv->lock);
	if (rep)
		freeReplyObject(rep);
	return st;
}

kv_status kv_stream_add(struct kv *kv, const char *stream, const char *field, const char *value)
{
	redisReply *rep;
	kv_status st = run(kv, &rep, "XADD %s * %s %s", stream, field, value);
	if (st == KV_OK)
		freeReplyObject(rep);
	return st;
}

/* An entry [id, [field, value, ...]] into id and value. */
static kv_status take_entry(const redisReply *e, char id[64], char **value)
{
	if (!e || e->type != REDIS_REPLY_ARRAY || e->elements < 2 || e->element[0]->type != REDIS_REPLY_STRING ||
	    e->element[0]->len >= 64)
		return KV_MISS;
	const redisReply *f = e->element[1];
	if (f->type != REDIS_REPLY_ARRAY || f->elements < 2 || f->element[1]->type != REDIS_REPLY_STRING)
		return KV_MISS; /* an entry deleted meanwhile */
	memcpy(id, e->element[0]->str, e->element[0]->len + 1);
	if (!(*value = strdup(f->element[1]->str)))
		return KV_NOMEM;
	return KV_OK;
}

kv_status kv_stream_next(struct kv *kv, const char *stream, const char *group, const char *consumer, long block_ms,
			 long claim_idle_ms, char id[64], char **value)
{
	redisReply *rep;
	kv_status st;

	/* [cursor, [entries], (deleted ids)] */
	st = run(kv, &rep, "XAUTOCLAIM %s %s %s %ld 0-0 COUNT 1", stream, group, consumer, claim_idle_ms);
	if (st != KV_OK)
		return st;
	st = rep->type == REDIS_REPLY_ARRAY && rep->elements >= 2 && rep->element[1]->type == REDIS_REPLY_ARRAY &&
			     rep->element[1]->elements
		     ? take_entry(rep->element[1]->element[0], id, value)
		     : KV_MISS;
	freeReplyObject(rep);
	if (st != KV_MISS)
		return st;
	/* [[stream, [entries]]], or nil when none came within block_ms */
	st = run(kv, &rep, "XREADGROUP GROUP %s %s COUNT 1 BLOCK %ld STREAMS %s >", group, consumer, block_ms, stream);
	if (st != KV_OK)
		return st;
	st = rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 && rep->element[0]->type == REDIS_REPLY_ARRAY &&
			     rep->element[0]->elements == 2 && rep->element[0]->element[1]->type == REDIS_REPLY_ARRAY &&
			     rep->element[0]->element[1]->elements
		     ? take_entry(rep->element[0]->element[1]->element[0], id, value)
		     : KV_MISS;
	freeReplyObject(rep);
	return st;
}

kv_status kv_stream_ack(struct kv *kv, const char *stream, const char *group, const char *id)
{
	redisReply *rep;
	kv_status st = run(kv, &rep, "XACK %s %s %s", stream, group, id);
	if (st != KV_OK)
		return st;
	freeReplyObject(rep);
	/* one group reads the stream: once acknowledged, the entry is of no
	 * more use (a consumer that had taken it over finds it gone, and its own
	 * acknowledgement then does nothing) */
	if ((st = run(kv, &rep, "XDEL %s %s", stream, id)) == KV_OK)
		freeReplyObject(rep);
	return st;
}

void kv_get_stats(struct kv *kv, struct kv_stats *st)
{
	pthread_mutex_lock(&kv->lock);
	*st = kv->stats;
	pthread_mutex_unlock(&kv->lock);
}

/* ===== Rate limits ===== */

/*
 * One decision of kv_limit_take, atomic on the server and on its clock.
 * KEYS: NAME:rate, NAME:conc. ARGV: interval_us, burst, concurrency,
 * holder, lease_ms. Returns {verdict, rate_left, rate_wait_us,
 * concurrency_left} as kv.h's struct kv_limit_state.
 *
 * The rate is GCRA: the client's theoretical arrival time (tat) moves on by
 * one interval per request allowed, and a request is allowed while that
 * leaves tat at most burst intervals ahead of now. Nothing is counted
 * unless the request passes both checks.
 */
static const char limit_take_script[] =
	"if redis.replicate_commands then redis.replicate_commands() end "
	"local t = redis.call('time') "
	"local now = tonumber(t[1]) * 1000000 + tonumber(t[2]) "
	"local iv, burst, conc = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]) "
	"local lease = tonumber(ARGV[5]) "
	"local verdict, left, wait, free = 0, -1, 0, -1 "
	"local tat, span = now, iv * burst "
	"if iv > 0 then "
	"  tat = math.max(tonumber(redis.call('get', KEYS[1]) or 0) or 0, now) "
	"  if tat + iv - now > span then verdict = 1; left = 0; wait = tat + iv - span - now end "
	"end "
	"if conc > 0 then "
	"  redis.call('zremrangebyscore', KEYS[2], '-inf', now) "
	"  local used = redis.call('zcard', KEYS[2]) "
	"  if verdict == 0 and used >= conc then verdict = 2 end "
	"  free = math.max(conc - used, 0) "
	"end "
	"if verdict == 0 then "
	"  if iv > 0 then "
	"    tat = tat + iv "
	"    redis.call('set', KEYS[1], string.format('%d', tat), 'PX', math.floor((tat - now) / 1000) + 1000) "
	"  end "
	"  if conc > 0 then "
	"    redis.call('zadd', KEYS[2], string.format('%d', now + lease * 1000), ARGV[4]) "
	"    redis.call('pexpire', KEYS[2], lease + 1000) "
	"    free = free - 1 "
	"  end "
	"end "
	"if iv > 0 and verdict ~= 1 then "
	"  left = math.floor((now + span - tat) / iv) "
	"  if left >= burst then left = burst; wait = 0 else wait = tat - span + (left + 1) * iv - now end "
	"end "
	"return {verdict, left, wait, free}";

kv_status kv_limit_take(struct kv *kv, const char *name, const char *holder, const struct kv_limit *lim,
			struct kv_limit_state *st)
{
	char rate_key[256], conc_key[256], iv[24], burst[24], conc[16], lease[24];
	const char *argv[] = {"EVAL", limit_take_script, "2", rate_key, conc_key, iv, burst, conc, holder, lease};
	size_t lens[sizeof argv / sizeof argv[0]];
	int argc = (int)(sizeof argv / sizeof argv[0]);
	redisReply *rep;
	kv_status ks;

	if (snprintf(rate_key, sizeof rate_key, "%s:rate", name) >= (int)sizeof rate_key ||
	    snprintf(conc_key, sizeof conc_key, "%s:conc", name) >= (int)sizeof conc_key)
		return KV_NOMEM;
	snprintf(iv, sizeof iv, "%lld", lim->interval_us > 0 ? lim->interval_us : 0);
	snprintf(burst, sizeof burst, "%lld", lim->burst > 0 ? lim->burst : 1);
	snprintf(conc, sizeof conc, "%d", lim->concurrency > 0 ? lim->concurrency : 0);
	snprintf(lease, sizeof lease, "%ld", lim->lease_ms > 0 ? lim->lease_ms : 1000);
	for (int i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	if ((ks = run_argv(kv, &rep, argc, argv, lens)) != KV_OK)
		return ks;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 4) {
		freeReplyObject(rep);
		return KV_DOWN;
	}
	for (size_t i = 0; i < 4; i++)
		if (rep->element[i]->type != REDIS_REPLY_INTEGER) {
			freeReplyObject(rep);
			return KV_DOWN;
		}
	long long v = rep->element[0]->integer;
	st->verdict = v == 1 ? KV_LIMIT_RATE : v == 2 ? KV_LIMIT_CONCURRENCY : KV_LIMIT_ALLOWED;
	st->rate_left = rep->element[1]->integer;
	st->rate_wait_us = rep->element[2]->integer;
	st->concurrency_left = (int)rep->element[3]->integer;
	freeReplyObject(rep);
	return KV_OK;
}

kv_status kv_limit_release(struct kv *kv, const char *name, const char *holder)
{
	redisReply *rep;
	kv_status st = run(kv, &rep, "ZREM %s:conc %s", name, holder);
	if (st == KV_OK)
		freeReplyObject(rep);
	return st;
}

/* ===== Delivery queue =====
 *
 * KEYS: QUEUE (sorted set: id -> due, unix ms by Redis' clock), QUEUE:items
 * (hash: id -> payload), QUEUE:claims (hash: id -> the token of its claim).
 * Redis 5 and later replicate a script's effects, so a script may read TIME
 * before it writes.
 */

/* Lua's tostring would write a 13-digit millisecond count in exponent form */
#define QUEUE_NOW                                                                                                     \
	"local t = redis.call('time') "                                                                               \
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "                                     \
	"local function at(ms) return string.format('%.0f', now + tonumber(ms)) end "

/* ARGV: id, payload, delay ms */
static const char queue_add_script[] = QUEUE_NOW
	"if redis.call('hexists', KEYS[2], ARGV[1]) == 1 then return 0 end "
	"redis.call('hset', KEYS[2], ARGV[1], ARGV[2]) "
	"redis.call('zadd', KEYS[1], at(ARGV[3]), ARGV[1]) "
	"return 1";

/* ARGV: lease ms, token. An id whose payload is gone is dropped. */
static const char queue_claim_script[] = QUEUE_NOW
	"local ids = redis.call('zrangebyscore', KEYS[1], '-inf', string.format('%.0f', now), 'LIMIT', 0, 1) "
	"if #ids == 0 then return false end "
	"local id = ids[1] "
	"local p = redis.call('hget', KEYS[2], id) "
	"if not p then redis.call('zrem', KEYS[1], id) redis.call('hdel', KEYS[3], id) return false end "
	"redis.call('zadd', KEYS[1], at(ARGV[1]), id) "
	"redis.call('hset', KEYS[3], id, ARGV[2]) "
	"return {id, p}";

/* ARGV: id, token, "retry" or "done", payload, delay ms */
static const char queue_end_script[] = QUEUE_NOW
	"if redis.call('hget', KEYS[3], ARGV[1]) ~= ARGV[2] then return 0 end "
	"redis.call('hdel', KEYS[3], ARGV[1]) "
	"if ARGV[3] == 'done' then "
	"  redis.call('zrem', KEYS[1], ARGV[1]) redis.call('hdel', KEYS[2], ARGV[1]) "
	"else "
	"  redis.call('hset', KEYS[2], ARGV[1], ARGV[4]) redis.call('zadd', KEYS[1], at(ARGV[5]), ARGV[1]) "
	"end "
	"return 1";

/* Runs script on queue's three keys with args (lens[i] bytes each); *rep
 * receives the reply on KV_OK. */
static kv_status queue_eval(struct kv *kv, const char *script, const char *queue, int nargs, const char **args,
			    const size_t *lens, redisReply **rep)
{
	char items[300], claims[300];
	const char *argv[12] = {"EVAL", script, "3", queue, items, claims};
	size_t alen[12];

	if ((size_t)snprintf(items, sizeof items, "%s:items", queue) >= sizeof items ||
	    (size_t)snprintf(claims, sizeof claims, "%s:claims", queue) >= sizeof claims || nargs > 6)
		return KV_NOMEM;
	for (int i = 0; i < 6; i++)
		alen[i] = strlen(argv[i]);
	for (int i = 0; i < nargs; i++) {
		argv[6 + i] = args[i];
		alen[6 + i] = lens[i];
	}
	return run_argv(kv, rep, 6 + nargs, argv, alen);
}

/* An integer reply of 1: KV_OK, else KV_MISS; frees rep. */
static kv_status one_or_miss(redisReply *rep)
{
	kv_status st = rep->type == REDIS_REPLY_INTEGER && rep->integer == 1 ? KV_OK : KV_MISS;
	freeReplyObject(rep);
	return st;
}

kv_status kv_queue_add(struct kv *kv, const char *queue, const char *id, const void *payload, size_t len,
		       long delay_ms)
{
	char delay[24];
	redisReply *rep;

	if (strlen(id) >= KV_QUEUE_ID_MAX)
		return KV_NOMEM;
	snprintf(delay, sizeof delay, "%ld", delay_ms > 0 ? delay_ms : 0);
	const char *args[] = {id, payload, delay};
	size_t lens[] = {strlen(id), len, strlen(delay)};
	kv_status st = queue_eval(kv, queue_add_script, queue, 3, args, lens, &rep);
	return st == KV_OK ? one_or_miss(rep) : st;
}

kv_status kv_queue_claim(struct kv *kv, const char *queue, long lease_ms, const char *token,
			 char id[KV_QUEUE_ID_MAX], char **payload, size_t *len)
{
	char lease[24];
	redisReply *rep;

	snprintf(lease, sizeof lease, "%ld", lease_ms > 0 ? lease_ms : 0);
	const char *args[] = {lease, token};
	size_t lens[] = {strlen(lease), strlen(token)};
	kv_status st = queue_eval(kv, queue_claim_script, queue, 2, args, lens, &rep);
	if (st != KV_OK)
		return st;
	/* {id, payload}, or nil when none is due */
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 || rep->element[0]->type != REDIS_REPLY_STRING ||
	    rep->element[1]->type != REDIS_REPLY_STRING || rep->element[0]->len >= KV_QUEUE_ID_MAX) {
		freeReplyObject(rep);
		return KV_MISS;
	}
	const redisReply *p = rep->element[1];
	if (!(*payload = malloc(p->len + 1))) {
		freeReplyObject(rep);
		return KV_NOMEM;
	}
	memcpy(id, rep->element[0]->str, rep->element[0]->len + 1);
	memcpy(*payload, p->str, p->len);
	(*payload)[p->len] = 0;
	if (len)
		*len = p->len;
	freeReplyObject(rep);
	return KV_OK;
}

kv_status kv_queue_retry(struct kv *kv, const char *queue, const char *id, const char *token, const void *payload,
			 size_t len, long delay_ms)
{
	char delay[24];
	redisReply *rep;

	snprintf(delay, sizeof delay, "%ld", delay_ms > 0 ? delay_ms : 0);
	const char *args[] = {id, token, "retry", payload, delay};
	size_t lens[] = {strlen(id), strlen(token), 5, len, strlen(delay)};
	kv_status st = queue_eval(kv, queue_end_script, queue, 5, args, lens, &rep);
	return st == KV_OK ? one_or_miss(rep) : st;
}

kv_status kv_queue_done(struct kv *kv, const char *queue, const char *id, const char *token)
{
	redisReply *rep;
	const char *args[] = {id, token, "done", "", "0"};
	size_t lens[] = {strlen(id), strlen(token), 4, 0, 1};
	kv_status st = queue_eval(kv, queue_end_script, queue, 5, args, lens, &rep);
	return st == KV_OK ? one_or_miss(rep) : st;
}

kv_status kv_queue_size(struct kv *kv, const char *queue, long long *n)
{
	redisReply *rep;
	kv_status st = run(kv, &rep, "ZCARD %s", queue);

	if (st != KV_OK)
		return st;
	*n = rep->type == REDIS_REPLY_INTEGER ? rep->integer : 0;
	freeReplyObject(rep);
	return KV_OK;
}

/* ===== Resumable uploads shared by instances ===== */

/* Compare-and-extend: only the token that holds a lock may extend it. */
static const char renew_script[] =
	"if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";

kv_status kv_del(struct kv *kv, const char *key)
{
	redisReply *rep;
	kv_status st = run(kv, &rep, "DEL %s", key);
	return st == KV_OK ? positive_or_miss(rep) : st;
}

kv_status kv_lock_renew(struct kv *kv, const char *key, const char *token, long ttl_ms)
{
	redisReply *rep;
	kv_status st = run(kv, &rep, "EVAL %s 1 %s %s %ld", renew_script, key, token, ttl_ms);
	return st == KV_OK ? positive_or_miss(rep) : st;
}

kv_status kv_zset(struct kv *kv, const char *key, const char *member, double score)
{
	redisReply *rep;
	char sc[32];
	snprintf(sc, sizeof sc, "%.0f", score);
	kv_status st = run(kv, &rep, "ZADD %s %s %s", key, sc, member);
	if (st == KV_OK)
		freeReplyObject(rep);
	return st;
}

kv_status kv_zrem(struct kv *kv, const char *key, const char *member)
{
	redisReply *rep;
	kv_status st = run(kv, &rep, "ZREM %s %s", key, member);
	return st == KV_OK ? positive_or_miss(rep) : st;
}

kv_status kv_zbelow(struct kv *kv, const char *key, double below, char (*out)[KV_MEMBER_MAX], int max, int *n)
{
	redisReply *rep;
	char sc[32], lim[16];
	snprintf(sc, sizeof sc, "%.0f", below);
	snprintf(lim, sizeof lim, "%d", max);
	*n = 0;
	kv_status st = run(kv, &rep, "ZRANGEBYSCORE %s -inf %s LIMIT 0 %s", key, sc, lim);
	if (st != KV_OK)
		return st;
	if (rep->type == REDIS_REPLY_ARRAY)
		for (size_t i = 0; i < rep->elements && *n < max; i++) {
			redisReply *e = rep->element[i];
			if (e->type == REDIS_REPLY_STRING && e->len < KV_MEMBER_MAX)
				snprintf(out[(*n)++], KV_MEMBER_MAX, "%s", e->str);
		}
	freeReplyObject(rep);
	return KV_OK;
}
