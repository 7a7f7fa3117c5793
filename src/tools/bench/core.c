#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

/*
 * The services every mq-bench driver shares: bodies, checks, windows,
 * the lag bound, the start barrier and failure.  Keeping these here, not in
 * the drivers, is what makes the systems comparable: the same bytes go
 * out, the same checks and the same clock judge what comes back.
 *
 * Threads: each role runs on its own thread.  Counters other roles read
 * (sent_total, recv_total, each role's received) are atomics with relaxed
 * order: they are statistics and bounds, never used to publish data.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tools/bench/bench.h"

uint64_t mqb_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void mqb_queue_name(const struct mqb_run *run, unsigned q, char *buf, size_t n)
{
	snprintf(buf, n, "%s.%u", run->o.prefix, q);
}

unsigned mqb_queue_for(const struct mqb_role *r, uint64_t seq)
{
	unsigned nq = r->run->o.queues;

	return (unsigned)((r->id + seq) % nq);
}

void mqb_consumer_queues(const struct mqb_role *r,
                         void (*fn)(void *arg, unsigned q), void *arg)
{
	const struct mqb_opts *o = &r->run->o;

	if (o->mode == MQB_FANOUT) {
		for (unsigned q = 0; q < o->queues; q++)
			fn(arg, q);
	} else if (o->queues >= o->consumers) {
		for (unsigned q = r->id; q < o->queues; q += o->consumers)
			fn(arg, q);
	} else {
		fn(arg, r->id % o->queues);
	}
}

/* What the slowest receiver has got: the lag bound is measured from it. */
static uint64_t received_floor(const struct mqb_run *run)
{
	if (run->o.mode != MQB_FANOUT)
		return atomic_load_explicit(&run->recv_total, memory_order_relaxed);
	uint64_t lo = UINT64_MAX;
	for (unsigned i = 0; i < run->nroles; i++) {
		const struct mqb_role *s = &run->roles[i];
		if (s->sender)
			continue;
		uint64_t v = atomic_load_explicit(&s->received, memory_order_relaxed);
		if (v < lo)
			lo = v;
	}
	return lo == UINT64_MAX ? 0 : lo;
}

static uint64_t lag_room(const struct mqb_run *run)
{
	if (run->o.lag == 0)
		return UINT64_MAX;
	uint64_t sent = atomic_load_explicit(&run->sent_total, memory_order_relaxed);
	uint64_t got = received_floor(run);
	uint64_t out = sent > got ? sent - got : 0;
	return out >= run->o.lag ? 0 : run->o.lag - out;
}

uint64_t mqb_budget(struct mqb_role *r, uint64_t inflight)
{
	const struct mqb_opts *o = &r->run->o;
	uint64_t left = o->count - r->next_seq;
	uint64_t room = inflight >= o->window ? 0 : o->window - inflight;
	uint64_t n = left < room ? left : room;

	if (n > 0 && o->lag) {
		uint64_t lr = lag_room(r->run);
		if (lr < n)
			n = lr;
	}
	return n;
}

/* Wait on cv for at most a tick, so the stop flag is seen promptly. */
static void wait_tick(pthread_cond_t *cv, pthread_mutex_t *mu)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += 100 * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(cv, mu, &ts);
}

bool mqb_wait_lag(struct mqb_role *r)
{
	struct mqb_run *run = r->run;

	pthread_mutex_lock(&run->lag_mu);
	atomic_fetch_add(&run->lag_waiters, 1);
	while (!mqb_stopping(run) && lag_room(run) == 0) {
		wait_tick(&run->lag_cv, &run->lag_mu);
	}
	atomic_fetch_sub(&run->lag_waiters, 1);
	pthread_mutex_unlock(&run->lag_mu);
	return !mqb_stopping(run);
}

uint64_t mqb_make_body(struct mqb_role *r, uint8_t *body)
{
	uint64_t seq = r->next_seq++;

	mqb_body_fill(&r->run->check, body, r->id, seq, mqb_now_ns());
	atomic_fetch_add_explicit(&r->run->sent_total, 1, memory_order_relaxed);
	return seq;
}

static void note_progress(struct mqb_run *run, _Atomic uint64_t *last)
{
	uint64_t now = mqb_now_ns();

	atomic_store_explicit(&run->progress_ns, now, memory_order_relaxed);
	atomic_store_explicit(last, now, memory_order_relaxed);
}

void mqb_confirmed(struct mqb_role *r, uint64_t n)
{
	if (n == 0)
		return;
	r->confirmed += n;
	note_progress(r->run, &r->run->t_sent_ns);
}

void mqb_received(struct mqb_role *r, const uint8_t *body, size_t len)
{
	struct mqb_run *run = r->run;
	struct mqb_check *c = r->own ? r->own : &run->check;
	uint64_t sent_ns = 0;

	/* Everything arrived: what still comes is a redelivery of messages a
	 * finished consumer held when it closed, which at-least-once allows. */
	if (mqb_receivers_done(run, r))
		return;
	if (mqb_body_check(c, body, len, &sent_ns) != MQB_BODY_OK)
		return; /* counted in c; the run stalls and reports it */
	uint64_t now = mqb_now_ns();
	mqb_hist_record(&r->hist, now > sent_ns ? now - sent_ns : 0);
	atomic_store_explicit(&r->received,
	                      atomic_load_explicit(&r->received, memory_order_relaxed) + 1,
	                      memory_order_relaxed);
	atomic_fetch_add_explicit(&run->recv_total, 1, memory_order_relaxed);
	atomic_store_explicit(&run->progress_ns, now, memory_order_relaxed);
	atomic_store_explicit(&run->t_recv_ns, now, memory_order_relaxed);
	uint64_t zero = 0;
	atomic_compare_exchange_strong(&run->t_first_ns, &zero, now);
	if (atomic_load_explicit(&run->lag_waiters, memory_order_relaxed) > 0) {
		pthread_mutex_lock(&run->lag_mu);
		pthread_cond_broadcast(&run->lag_cv);
		pthread_mutex_unlock(&run->lag_mu);
	}
}

bool mqb_receivers_done(const struct mqb_run *run, const struct mqb_role *r)
{
	if (mqb_stopping(run))
		return true;
	if (r->own)
		return atomic_load_explicit(&r->received, memory_order_relaxed) >=
		       r->own->count * r->own->producers;
	return atomic_load_explicit(&run->recv_total, memory_order_relaxed) >=
	       run->expect_total;
}

bool mqb_serving(const struct mqb_run *run)
{
	return !mqb_stopping(run) &&
	       !atomic_load_explicit(&run->senders_done, memory_order_relaxed);
}

bool mqb_ready(struct mqb_role *r)
{
	struct mqb_run *run = r->run;

	pthread_mutex_lock(&run->lag_mu);
	run->nready++;
	if (run->nready == run->nroles) {
		run->t_start_ns = mqb_now_ns();
		atomic_store(&run->progress_ns, run->t_start_ns);
		pthread_cond_broadcast(&run->ready_cv);
	}
	while (run->nready < run->nroles && !mqb_stopping(run)) {
		wait_tick(&run->ready_cv, &run->lag_mu);
	}
	pthread_mutex_unlock(&run->lag_mu);
	return !mqb_stopping(run);
}

int mqb_fail(struct mqb_role *r, const char *fmt, ...)
{
	va_list ap;

	if (!r->failed) {
		va_start(ap, fmt);
		vsnprintf(r->err, sizeof r->err, fmt, ap);
		va_end(ap);
		r->failed = 1;
	}
	atomic_store(&r->run->stop, true);
	return -1;
}
