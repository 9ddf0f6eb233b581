/*
 * group.c - a group portrait over HTTP: POST /v1/remove-background with
 * "images" (2 to 8 ids of uploaded images) in place of one image. Each
 * photo's mask is a stored one, or made with the others that are missing:
 * one thread per photo, meeting at a gate before queueing, so the worker
 * runs them as one forward pass. The portrait is then rendered by the
 * pipeline (pipe_group_output) and kept as any result is (remove.c).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_int.h"
#include "http/parse.h"
#include "util/util.h"

struct member {
	struct http_server *s;
	struct remove_params p; /* the group's, with this photo's id */
	const struct img *photo;
	float *mask;
	struct pipe_mask_info info;
	int hit, status, passed, started;
	char why[256];
	pthread_t thread;
};

static void *member_main(void *arg)
{
	struct member *m = arg;

	m->status = http_get_mask(m->s, &m->p, m->photo, &m->mask, &m->info, &m->hit, m->why, sizeof m->why);
	pipe_gate_pass(m->p.gate, &m->passed); /* a stored mask never queued */
	return NULL;
}

static const char *mask_code(int status)
{
	return status == 429 ? "overloaded" : status == 504 ? "timeout" : status == 422 ? "undecodable"
					  : status == 503 ? "model_unavailable" : "internal";
}

int http_group_make(struct http_server *s, struct remove_params *p, const struct img_load_opts *lo, void **enc,
		    size_t *enclen, struct img **out, struct img_subject *subj, json_t **subjects,
		    struct http_group_times *t, const char **code, char *why, size_t wl)
{
	int n = p->req.group_n, status = 0;
	struct img *photos[IMG_GROUP_MAX] = {0}, *alphas[IMG_GROUP_MAX] = {0};
	struct img_subject each[IMG_GROUP_MAX];
	struct member *m = calloc((size_t)n, sizeof *m);
	struct pipe_gate gate;
	double t0 = util_now_ms(), t1;

	*subjects = NULL;
	if (!m) {
		*code = "overloaded";
		snprintf(why, wl, "out of memory");
		return 503;
	}
	for (int i = 0; i < n && !status; i++) {
		void *buf;
		size_t len;
		store_status st = store_get(s->store, NS_IMAGES, p->group_ids[i], &buf, &len);
		if (st != STORE_OK) {
			*code = st == STORE_NOT_FOUND ? "not_found" : "storage_unavailable";
			snprintf(why, wl, st == STORE_NOT_FOUND ? "no image %s" : "the store cannot be read (%s)",
				 p->group_ids[i]);
			status = st == STORE_NOT_FOUND ? 404 : 503;
			break;
		}
		if (img_load_buffer_opts(buf, len, lo, &photos[i]) != IMG_OK) {
			*code = "undecodable";
			snprintf(why, wl, "images[%d]: %s", i, img_errmsg());
			status = 422;
		}
		free(buf);
	}
	if (status)
		goto out;
	t1 = util_now_ms();
	t->decode_ms = t1 - t0;

	/* the masks: every photo's thread meets the others at the gate */
	pipe_gate_init(&gate, n);
	for (int i = 0; i < n; i++) {
		m[i].s = s;
		m[i].p = *p;
		memcpy(m[i].p.image_id, p->group_ids[i], sizeof m[i].p.image_id);
		m[i].p.gate = &gate;
		m[i].p.passed = &m[i].passed;
		m[i].photo = photos[i];
		if (!(m[i].started = !pthread_create(&m[i].thread, NULL, member_main, &m[i]))) {
			m[i].status = 503;
			snprintf(m[i].why, sizeof m[i].why, "cannot start a thread");
			pipe_gate_drop(&gate);
		}
	}
	for (int i = 0; i < n; i++) {
		if (m[i].started)
			pthread_join(m[i].thread, NULL);
		if (m[i].status && !status) {
			status = m[i].status;
			*code = mask_code(status);
			snprintf(why, wl, "images[%d]: %s", i, m[i].why);
		}
		t->masks_stored += m[i].hit;
	}
	pipe_gate_destroy(&gate);
	if (status)
		goto out;
	t->mask = m[0].info;
	t->mask_ms = util_now_ms() - t1;

	for (int i = 0; i < n; i++)
		if (pipe_alpha(photos[i], m[i].mask, p->req.side, &p->req, &alphas[i]) != IMG_OK) {
			*code = "internal";
			snprintf(why, wl, "images[%d]: %s", i, img_errmsg());
			status = 500;
			goto out;
		}
	t->encode_ms = -1;
	if (pipe_group_output((const struct img *const *)photos, (const struct img *const *)alphas, n, &p->req,
			      p->req.save.format, enc, enclen, each, subj, out, &t->compose_ms, &t->encode_ms) != IMG_OK) {
		/* a photo without a subject, or an output the format cannot hold */
		*code = t->encode_ms < 0 ? "no_subject" : "unencodable";
		snprintf(why, wl, "%s", img_errmsg());
		status = 422;
		goto out;
	}
	*subjects = json_array();
	for (int i = 0; *subjects && i < n; i++)
		json_array_append_new(*subjects, json_pack("[i,i,i,i]", each[i].x, each[i].y, each[i].w, each[i].h));
out:
	for (int i = 0; i < n; i++) {
		free(m[i].mask);
		img_free(photos[i]);
		img_free(alphas[i]);
	}
	free(m);
	return status;
}
