#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "core/clock.h"
#include "core/log.h"
#include "proto/proto.h"
#include "server/server.h"
#include "store/ops.h"
#include "store/policy.h"
#include "store/queue.h"
#include "core/shard.h"
#include "worker/worker.h"

int mqd_policy_set_timer(struct mqd_worker *w, struct mqd_msg *m, uint64_t at)
{
	if (mqd_timers_set(&w->timers, m, at) < 0)
		return -1;
	if (w->timer_armed == 0 || at < w->timer_armed)
		mqd_policy_rearm(w);
	return 0;
}

int mqd_policy_set_expiry(struct mqd_worker *w, struct mqd_msg *m,
                          uint32_t ttl_ms)
{
	struct mqd_track *k;

	if (ttl_ms == 0)
		return 0;
	if ((k = mqd_track_get(&w->timers, m)) == NULL)
		return -1;
	k->expires_at = mqd_mono_ms() + ttl_ms;
	return 0;
}

int mqd_policy_enqueue(struct mqd_worker *w, struct mqd_queue *q,
                       struct mqd_msg *m, bool head)
{
	uint64_t expires = mqd_msg_expires(m);

	if (expires && mqd_mono_ms() >= expires) {
		mqd_policy_expire(w, q, m);
		return 0;
	}
	if (expires) {
		if (mqd_policy_set_timer(w, m, expires) < 0)
			return -1;
	} else {
		/* Ready with no deadline: out of the heap, and the track goes
		 * unless it keeps past attempts. */
		mqd_timers_cancel(&w->timers, m);
		mqd_track_trim(&w->timers, m);
	}
	if (head)
		mqd_queue_push_head(q, m);
	else
		mqd_queue_push_tail(q, m);
	return 0;
}

int mqd_policy_delay(struct mqd_worker *w, struct mqd_queue *q,
                     struct mqd_msg *m, uint64_t due)
{
	/* Wake at whichever comes first: ready, or expired while waiting. */
	uint64_t expires = mqd_msg_expires(m);
	uint64_t at = expires && expires < due ? expires : due;

	if (mqd_policy_set_timer(w, m, at) < 0)
		return -1;
	mqd_queue_add_delayed(q, m);
	return 0;
}

void mqd_policy_expire(struct mqd_worker *w, struct mqd_queue *q,
                       struct mqd_msg *m)
{
	q->stats.expired++;
	mqd_policy_dead_letter(w, q, m, "expired");
}

/* The original headers without any x-dead-* of an earlier dead-lettering,
 * then reason and origin. */
static int dead_headers(const struct mqd_msg *m, const char *reason,
                        const struct mqd_queue *from, struct mqd_wbuf *h)
{
	struct mqd_span all = {mqd_msg_headers(m), mqd_msg_headers_len(m)};
	struct mqd_span k, v;
	size_t pos = 2;
	char key[256];

	mqd_headers_init(h);
	while (mqd_headers_next(all, &pos, &k, &v)) {
		if ((k.len == 13 && memcmp(k.p, "x-dead-reason", 13) == 0) ||
		    (k.len == 11 && memcmp(k.p, "x-dead-from", 11) == 0))
			continue;
		memcpy(key, k.p, k.len);
		key[k.len] = '\0';
		mqd_headers_add(h, key, v.p, v.len);
	}
	mqd_headers_add(h, "x-dead-reason", reason, strlen(reason));
	mqd_headers_add(h, "x-dead-from", from->name, from->name_len);
	return h->oom ? -1 : 0;
}

static void count_lost(struct mqd_queue *q, const char *reason)
{
	/* Expiry is already counted as such. */
	if (strcmp(reason, "expired") != 0)
		q->stats.dropped++;
}

void mqd_policy_dead_letter(struct mqd_worker *w, struct mqd_queue *q,
                            struct mqd_msg *m, const char *reason)
{
	const char *dl = q->settings.dead_letter;
	struct mqd_wbuf h;
	struct mqd_msg *d;
	size_t len = strlen(dl);

	mqd_track_put(&w->timers, m);
	if (len == 0 || m->dead_hops >= MQD_DEAD_HOPS_MAX) {
		if (len != 0)
			mqd_log_warn("queue %s: message %llu dead-lettered %u "
			             "times (a loop?); dropped",
			             q->name, (unsigned long long)m->id,
			             (unsigned)m->dead_hops);
		count_lost(q, reason);
		mqd_msg_free(m);
		return;
	}
	mqd_wbuf_init(&h);
	d = dead_headers(m, reason, q, &h) < 0
	            ? NULL
	            : mqd_msg_new(h.data, h.len, mqd_load16(h.data),
	                          mqd_msg_body(m), m->body_len);
	mqd_wbuf_free(&h);
	if (d == NULL) {
		mqd_log_warn("queue %s: no memory to dead-letter message %llu "
		             "to %s; dropped",
		             q->name, (unsigned long long)m->id, dl);
		count_lost(q, reason);
		mqd_msg_free(m);
		return;
	}
	d->priority = m->priority;
	d->dead_hops = (uint8_t)(m->dead_hops + 1) & 0xf;
	mqd_msg_free(m);
	q->stats.dead_lettered++;

	unsigned owner = mqd_shard_of(dl, len, w->srv->nworkers);
	struct mqd_mail_dead *mail = malloc(sizeof *mail);
	if (mail == NULL) {
		q->stats.dead_lettered--;
		count_lost(q, reason);
		mqd_msg_free(d);
		return;
	}
	mail->mail.type = MQD_MAIL_DEAD;
	mail->msg = d;
	memcpy(mail->queue, dl, len);
	mail->queue[len] = '\0';
	mail->len = (uint8_t)len;
	if (owner == w->index)
		mqd_policy_receive_dead(w, mail);
	else
		mqd_worker_post(&w->srv->workers[owner], &mail->mail);
}

void mqd_policy_receive_dead(struct mqd_worker *w, struct mqd_mail_dead *d)
{
	struct mqd_msg *m = d->msg;
	struct mqd_queue *q = mqd_ops_queue(w, d->queue, d->len, true);

	if (q == NULL) {
		mqd_log_warn("dead-letter queue %s does not exist "
		             "(auto_create is off); message dropped",
		             d->queue);
		free(d);
		mqd_msg_free(m);
		return;
	}
	free(d);
	while (!mqd_queue_fits(q, mqd_msg_bytes(m))) {
		struct mqd_msg *old;
		if (q->settings.overflow != MQD_OVERFLOW_DROP_HEAD ||
		    (old = mqd_queue_pop_lowest(q)) == NULL) {
			q->stats.dropped++;
			mqd_msg_free(m);
			return;
		}
		mqd_timers_free_msg(&w->timers, old);
		q->stats.dropped++;
	}
	m->id = mqd_worker_new_id(w);
	mqd_msg_set_timestamp(m, mqd_now_ms());
	if (mqd_policy_set_expiry(w, m, q->settings.message_ttl_ms) < 0 ||
	    mqd_policy_enqueue(w, q, m, false) < 0) {
		q->stats.dropped++;
		mqd_msg_free(m);
		return;
	}
	q->stats.sent++;
	w->sent++;
	mqd_ops_dispatch(w, q);
}

void mqd_policy_return(struct mqd_worker *w, struct mqd_queue *q,
                       struct mqd_msg *m, uint32_t delay_ms)
{
	if (q->settings.max_attempts &&
	    mqd_msg_attempts(m) >= q->settings.max_attempts) {
		mqd_policy_dead_letter(w, q, m, "max-attempts");
		return;
	}
	uint64_t expires = mqd_msg_expires(m);

	if (expires && mqd_mono_ms() >= expires) {
		mqd_policy_expire(w, q, m);
		return;
	}
	if (delay_ms && mqd_policy_delay(w, q, m, mqd_mono_ms() + delay_ms) == 0)
		return;
	if (mqd_policy_enqueue(w, q, m, delay_ms == 0) < 0) {
		/* No room for its expiry timer: keep the message all the
		 * same; it is checked for expiry when it is taken. */
		mqd_log_error("queue %s: out of memory for a timer", q->name);
		if (delay_ms == 0)
			mqd_queue_push_head(q, m);
		else
			mqd_queue_push_tail(q, m);
	}
}

void mqd_policy_rearm(struct mqd_worker *w)
{
	struct mqd_track *first = mqd_timers_peek(&w->timers);
	uint64_t now, at;
	struct timeval tv;

	if (first == NULL) {
		if (w->timer_armed) {
			evtimer_del(w->timer_ev);
			w->timer_armed = 0;
		}
		return;
	}
	at = first->timer_at;
	if (w->timer_armed && w->timer_armed <= at)
		return; /* fires no later than needed; it re-arms then */
	now = mqd_mono_ms();
	uint64_t ms = at > now ? at - now : 0;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	if (evtimer_add(w->timer_ev, &tv) == 0)
		w->timer_armed = at;
}
