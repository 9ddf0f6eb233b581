/*
 * kv.h - the key-value server that several petcut instances share (Redis):
 * a result index and locks with an expiry, so that instances behind one
 * address find each other's results and do identical work once.
 *
 * The server is optional and may go away at any time: every call answers
 * KV_DOWN at once when it cannot be reached, and the caller carries on alone
 * (its local cache, its local single-flight). The connection is made again
 * by itself: a call after a failure reconnects, no more often than every
 * KV_RETRY_MIN_MS to KV_RETRY_MAX_MS (doubling while the server stays down),
 * so a dead server costs requests nothing but a check of the clock.
 *
 * Thread safety: every function may be called from any thread; the calls
 * share one connection, one at a time (each is one short command).
 */
#ifndef PETCUT_KV_H
#define PETCUT_KV_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KV_RETRY_MIN_MS 250
#define KV_RETRY_MAX_MS 2000

typedef enum kv_status {
	KV_OK = 0,
	KV_MISS = 1,	 /* no such key; for kv_lock: another holder has it */
	KV_DOWN = -1,	 /* the server cannot be reached or failed the command */
	KV_NOMEM = -2,
	KV_BAD_URL = -3, /* kv_open: not redis://[:PASSWORD@]HOST[:PORT][/DB] */
} kv_status;

struct kv;

/* Counters since kv_open, for metrics. */
struct kv_stats {
	unsigned long long errors;     /* commands that failed (the server down included) */
	unsigned long long reconnects; /* connections made after a failure */
	int up;			       /* the last command reached the server */
};

/* Parses url (redis://[:PASSWORD@]HOST[:PORT][/DB]; port 6379, db 0) and
 * tries to connect; a server that is down is not an error (calls answer
 * KV_DOWN until it is back). Timeouts: connect_ms for a connection, cmd_ms
 * for one command. The message of a KV_BAD_URL is in errbuf. */
kv_status kv_open(const char *url, int connect_ms, int cmd_ms, struct kv **out, char *errbuf, size_t errlen);
void kv_close(struct kv *kv);

/* PING: KV_OK when the server answers now (it reconnects if it may). */
kv_status kv_ping(struct kv *kv);

/* The value of key into a malloc'd, NUL-terminated buffer (free it); len
 * (may be NULL) receives its length. KV_MISS when there is none. */
kv_status kv_get(struct kv *kv, const char *key, char **val, size_t *len);

/* Sets key to val for ttl_ms (0: no expiry). */
kv_status kv_set(struct kv *kv, const char *key, const void *val, size_t len, long ttl_ms);

/* Sets key to val for ttl_ms (0: no expiry) unless its value now is a JSON
 * object whose member field is one of the strings of stop (NULL-ended):
 * KV_OK when set, KV_MISS when left alone. One command, so nothing comes in
 * between the test and the write: for records with final states (a job done
 * or failed) that a slower writer must never undo. */
kv_status kv_set_unless(struct kv *kv, const char *key, const void *val, size_t len, long ttl_ms, const char *field,
			const char *const *stop);

/* KV_OK when key exists, KV_MISS when not. */
kv_status kv_exists(struct kv *kv, const char *key);

/* Takes the lock key for token if nobody holds it (SET NX PX ttl_ms): KV_OK,
 * or KV_MISS while another holder has it. The lock expires by itself after
 * ttl_ms, so a holder that dies blocks nobody for longer than that. */
kv_status kv_lock(struct kv *kv, const char *key, const char *token, long ttl_ms);

/* Releases the lock key if token still holds it (an expired lock taken
 * since by someone else is left alone). */
kv_status kv_unlock(struct kv *kv, const char *key, const char *token);

/* ----- Streams with a consumer group: a queue where every entry is done
 * at least once (an entry taken by a consumer that dies is taken again). */

/* Makes the group on stream (and the stream) unless it is there. */
kv_status kv_stream_group(struct kv *kv, const char *stream, const char *group);

/* Appends an entry holding one field (XADD stream * field value). */
kv_status kv_stream_add(struct kv *kv, const char *stream, const char *field, const char *value);

/*
 * The next entry for consumer: first one taken by another consumer and not
 * acknowledged for claim_idle_ms (XAUTOCLAIM), else a new one, waiting up to
 * block_ms for it (XREADGROUP ... BLOCK). KV_OK with the entry's id and its
 * first field's value (malloc'd: free it), KV_MISS when there is none. The
 * connection is held while waiting: give a consumer a kv of its own, with a
 * command timeout above block_ms.
 */
kv_status kv_stream_next(struct kv *kv, const char *stream, const char *group, const char *consumer, long block_ms,
			 long claim_idle_ms, char id[64], char **value);

/* Acknowledges entry id and removes it from the stream: done, it is never
 * handed out again, and the stream holds only the entries not yet done (the
 * job's record lives in a key of its own). */
kv_status kv_stream_ack(struct kv *kv, const char *stream, const char *group, const char *id);

void kv_get_stats(struct kv *kv, struct kv_stats *st);

/* "redis://HOST:PORT/DB" of kv, without the password, for logs. */
const char *kv_address(const struct kv *kv);

/* ===== Rate limits =====
 *
 * The counters of per-client limits, shared by the instances so that a
 * limit holds across them: a rate (GCRA, see the http module's quota.c) and
 * the requests in progress. A client's counters live under NAME:rate (the
 * theoretical arrival time, in microseconds of the server's clock) and
 * NAME:conc (a sorted set of the requests in progress, each scored by the
 * time its entry expires), every key with an expiry: a rate left alone is
 * gone once it is whole again, and an entry of a request whose instance died
 * without releasing it stops counting after lease_ms. NAME should carry a
 * hash tag ("prefix:{id}") so both keys share a cluster slot. The decision is
 * one script (EVAL) on the server's clock, so instances whose clocks differ
 * still count the same. */

/* What kv_limit_take decided. */
enum kv_limit_verdict {
	KV_LIMIT_ALLOWED = 0,	  /* counted: the rate spent, a slot held (release it) */
	KV_LIMIT_RATE = 1,	  /* over the rate: nothing taken */
	KV_LIMIT_CONCURRENCY = 2, /* every slot in use: nothing taken */
};

/* One client's limits. */
struct kv_limit {
	long long interval_us; /* one request per interval on average (0: no rate) */
	long long burst;       /* and at most this many at once (the rate's N per N intervals) */
	int concurrency;       /* requests in progress at once (0: no limit) */
	long lease_ms;	       /* an entry in progress that is never released expires after this */
};

/* The state of a client's limits after a decision. */
struct kv_limit_state {
	enum kv_limit_verdict verdict;
	long long rate_left;	/* requests that may follow at once (-1: no rate) */
	long long rate_wait_us; /* KV_LIMIT_RATE: until one is allowed; else until rate_left
				 * grows by one (0: the rate is whole) */
	int concurrency_left;	/* slots free now, this request's taken (-1: no limit) */
};

/* Decides one request of the client NAME under lim, and counts it when
 * allowed: its slot is held as holder (unique among requests in progress,
 * instances included) until kv_limit_release or lease_ms. KV_OK with *st;
 * KV_DOWN when the server cannot decide (the caller chooses to allow). */
kv_status kv_limit_take(struct kv *kv, const char *name, const char *holder, const struct kv_limit *lim,
			struct kv_limit_state *st);

/* Releases the slot holder took (nothing when it expired meanwhile). */
kv_status kv_limit_release(struct kv *kv, const char *name, const char *holder);

/* ===== Delivery queue =====
 *
 * Items (an id and an opaque payload) due at a time, each handed to one
 * claimer at a time: a sorted set QUEUE scored by the due time (Redis' clock,
 * unix ms), the payloads in the hash QUEUE:items and the current claims in
 * QUEUE:claims. A claim moves the item's due time lease_ms ahead, so an item
 * whose claimer dies before it reports back is due again once the lease is
 * over; every call is one script, so two claimers never take the same item
 * at once, and a claimer whose lease ran out (the item taken since by
 * another) changes nothing when it reports back. Items live until done: they
 * survive the restart of every claimer. */

/* Adds item id (at most KV_QUEUE_ID_MAX - 1 bytes) holding payload to queue,
 * due delay_ms from now: KV_OK, or KV_MISS when an item id is there already
 * (left as it is). */
#define KV_QUEUE_ID_MAX 128
kv_status kv_queue_add(struct kv *kv, const char *queue, const char *id, const void *payload, size_t len,
		       long delay_ms);

/* Claims the item of queue due first, if one is due now, for token (a name
 * unique to this claim): KV_OK with its id and its payload (malloc'd and
 * NUL-terminated: free it; *len its length), KV_MISS when none is due. */
kv_status kv_queue_claim(struct kv *kv, const char *queue, long lease_ms, const char *token,
			 char id[KV_QUEUE_ID_MAX], char **payload, size_t *len);

/* Ends token's claim of id: the item is stored with payload and due
 * delay_ms from now (another try). KV_MISS when token no longer holds the
 * claim (nothing is changed). */
kv_status kv_queue_retry(struct kv *kv, const char *queue, const char *id, const char *token, const void *payload,
			 size_t len, long delay_ms);

/* Ends token's claim of id and removes the item (done, or given up).
 * KV_MISS when token no longer holds the claim (nothing is changed). */
kv_status kv_queue_done(struct kv *kv, const char *queue, const char *id, const char *token);

/* The number of items in queue, due or not, claimed or not. */
kv_status kv_queue_size(struct kv *kv, const char *queue, long long *n);

/* ===== Resumable uploads shared by instances =====
 *
 * A record per upload (kv_set/kv_get), a lock on it while a PATCH appends
 * (kv_lock, renewed while bytes flow), and an index: a sorted set of the
 * uploads scored by when they expire, so that any instance finds abandoned
 * ones and removes what they left. */

/* Deletes key (KV_MISS when there was none). */
kv_status kv_del(struct kv *kv, const char *key);

/* Extends lock key to ttl_ms from now if token still holds it: KV_OK, or
 * KV_MISS when it does not (it expired, and maybe another took it). */
kv_status kv_lock_renew(struct kv *kv, const char *key, const char *token, long ttl_ms);

/* Sets member's score in the sorted set key (adding it). */
kv_status kv_zset(struct kv *kv, const char *key, const char *member, double score);

/* Removes member from the sorted set key (KV_MISS when it was not there). */
kv_status kv_zrem(struct kv *kv, const char *key, const char *member);

/* Up to max members of the sorted set key whose score is at most below,
 * lowest first, into out (each at most KV_MEMBER_MAX - 1 bytes; longer ones
 * are skipped); *n receives how many. */
#define KV_MEMBER_MAX 128
kv_status kv_zbelow(struct kv *kv, const char *key, double below, char (*out)[KV_MEMBER_MAX], int max, int *n);

#ifdef __cplusplus
}
#endif
#endif
