/*
 * The owner's core (owner.h): its mails, its peers, and the output batches
 * that carry deliveries to connections, one mail per connection per pass.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdlib.h>
#include <string.h>

#include "owner/ops.h"
#include "owner/owner.h"
#include "owner/policy.h"
#include "owner/pubsub.h"

int mqd_owner_init(struct mqd_owner *ow, unsigned index, unsigned nworkers,
                   const struct mqd_config *cfg, struct event_base *base,
                   struct mqd_dlgraph *dlgraph, const struct mqd_outbox *out)
{
	memset(ow, 0, sizeof *ow);
	ow->index = index;
	ow->nworkers = nworkers;
	ow->cfg = cfg;
	ow->base = base;
	ow->dlgraph = dlgraph;
	ow->out = *out;
	mqd_qtable_init(&ow->queues);
	mqd_idmap_init(&ow->held);
	mqd_idmap_init(&ow->peers);
	mqd_timers_init(&ow->timers);
	return mqd_pubsub_init(ow);
}

void mqd_owner_free(struct mqd_owner *ow)
{
	while (ow->batches) { /* connections are gone: drop their output */
		struct mqd_peer *p = ow->batches;
		ow->batches = p->batch_next;
		free(p->batch);
		p->batch = NULL;
	}
	mqd_ops_free_all(ow);
	mqd_pubsub_free(ow);
	mqd_wbuf_free(&ow->scratch);
}

bool mqd_owner_handle(struct mqd_owner *ow, struct mqd_mail *m)
{
	switch (m->type) {
	case MQD_MAIL_REQ:
		mqd_ops_exec(ow, (struct mqd_req *)m);
		return true;
	case MQD_MAIL_CREDIT: {
		struct mqd_mail_credit *c = (struct mqd_mail_credit *)m;
		mqd_ops_credit(ow, c->conn_id, c->tag, c->n);
		free(c);
		return true;
	}
	case MQD_MAIL_CLOSE: {
		struct mqd_mail_close *c = (struct mqd_mail_close *)m;
		mqd_ops_peer_closed(ow, c->conn_id, c);
		return true;
	}
	case MQD_MAIL_DEAD:
		mqd_policy_receive_dead(ow, (struct mqd_mail_dead *)m);
		return true;
	case MQD_MAIL_ROUTE:
	case MQD_MAIL_ROUTE_DONE:
		mqd_pubsub_mail(ow, m);
		return true;
	default:
		return false;
	}
}

void mqd_owner_send(struct mqd_owner *ow, unsigned to, struct mqd_mail *m)
{
	if (to == ow->index && mqd_owner_handle(ow, m))
		return;
	ow->out.send(ow->out.ctx, to, m);
}

void mqd_owner_timer(struct mqd_owner *ow)
{
	mqd_ops_timer(ow);
}

/* ---- output batches ---------------------------------------------------- */

#define BATCH_MIN 4096
#define BATCH_MAX (64 * 1024) /* a fuller batch goes at once */

static void post_output(struct mqd_owner *ow, struct mqd_peer *p,
                        struct mqd_mail_output *o)
{
	o->conn = p->conn;
	ow->out.send(ow->out.ctx, p->home, &o->mail);
}

void mqd_owner_flush_peer(struct mqd_owner *ow, struct mqd_peer *p)
{
	struct mqd_mail_output *o = p->batch;

	if (o == NULL)
		return;
	for (struct mqd_peer **pp = &ow->batches; *pp; pp = &(*pp)->batch_next) {
		if (*pp == p) {
			*pp = p->batch_next;
			break;
		}
	}
	p->batch = NULL;
	p->batch_next = NULL;
	post_output(ow, p, o);
}

void mqd_owner_flush(struct mqd_owner *ow)
{
	while (ow->batches)
		mqd_owner_flush_peer(ow, ow->batches);
}

/* The batch for connection conn_id, if this owner is filling one (the
 * list is short: the connections served in this pass). */
static void flush_conn(struct mqd_owner *ow, uint64_t conn_id)
{
	for (struct mqd_peer *p = ow->batches; p; p = p->batch_next) {
		if (p->conn_id == conn_id) {
			mqd_owner_flush_peer(ow, p);
			return;
		}
	}
}

int mqd_owner_push_frame(struct mqd_owner *ow, struct mqd_peer *p,
                         uint32_t tag, uint64_t sub_id, uint32_t credit,
                         const void *head, size_t hlen, const void *body,
                         size_t blen)
{
	struct mqd_mail_output *o = p->batch;
	size_t need = hlen + blen;

	/* Frames of several acknowledging consumers of one connection (a
	 * consumer of many queues) share a batch with tag 0: the home worker
	 * then keeps them behind any pending reply, which orders them after
	 * their CONSUMEs' OKs, and there is no credit to return. */
	if (o != NULL && o->tag != tag && sub_id == 0 && credit == 0 &&
	    o->sub_id == 0 && o->credit == 0 && o->len + need <= BATCH_MAX)
		o->tag = 0;
	else if (o != NULL && (o->tag != tag || o->sub_id != sub_id ||
	                       o->len + need > BATCH_MAX)) {
		mqd_owner_flush_peer(ow, p);
		o = NULL;
	}
	if (o == NULL) {
		size_t cap = need > BATCH_MIN ? need : BATCH_MIN;
		o = malloc(sizeof *o + cap);
		if (o == NULL)
			return -1;
		memset(o, 0, sizeof *o);
		o->mail.type = MQD_MAIL_OUTPUT;
		o->owner = ow->index;
		o->tag = tag;
		o->sub_id = sub_id;
		o->cap = cap;
		if (ow->batches == NULL)
			ow->out.flush_soon(ow->out.ctx);
		p->batch = o;
		p->batch_next = ow->batches;
		ow->batches = p;
	} else if (o->len + need > o->cap) {
		size_t cap = o->cap * 2 >= o->len + need ? o->cap * 2 : o->len + need;
		struct mqd_mail_output *n = realloc(o, sizeof *o + cap);
		if (n == NULL)
			return -1;
		n->cap = cap;
		p->batch = o = n;
	}
	memcpy(o->data + o->len, head, hlen);
	memcpy(o->data + o->len + hlen, body, blen);
	o->len += need;
	o->frames++;
	o->credit += credit;
	return 0;
}

void mqd_owner_answer(struct mqd_owner *ow, struct mqd_req *r)
{
	/* Deliveries made before this answer reach the connection first. */
	if (ow->batches)
		flush_conn(ow, r->conn_id);
	r->mail.type = MQD_MAIL_REPLY;
	ow->out.send(ow->out.ctx, r->home, &r->mail);
}

void mqd_owner_push(struct mqd_owner *ow, struct mqd_peer *p,
                    struct mqd_mail_output *o)
{
	mqd_owner_flush_peer(ow, p);
	post_output(ow, p, o);
}

void mqd_owner_close_done(struct mqd_owner *ow, struct mqd_mail_close *c)
{
	/* Reuse the mail for the answer: every mail this owner sent the
	 * connection before now is already ahead of it. */
	if (ow->batches)
		flush_conn(ow, c->conn_id);
	c->mail.type = MQD_MAIL_CLOSE_DONE;
	ow->out.post(ow->out.ctx, c->home, &c->mail);
}

void mqd_owner_wait_done(struct mqd_owner *ow, struct mqd_peer *p)
{
	if (--p->waits > 0 || p->close == NULL)
		return;
	/* The connection closed while this was out: now it may go. */
	mqd_owner_close_done(ow, p->close);
	free(p);
}

struct mqd_peer *mqd_owner_peer(struct mqd_owner *ow, const struct mqd_req *r)
{
	struct mqd_peer *p = mqd_idmap_get(&ow->peers, r->conn_id);

	if (p != NULL)
		return p;
	p = calloc(1, sizeof *p);
	if (p == NULL)
		return NULL;
	p->conn_id = r->conn_id;
	p->conn = r->conn;
	p->home = r->home;
	if (mqd_idmap_put(&ow->peers, r->conn_id, p) < 0) {
		free(p);
		return NULL;
	}
	return p;
}
