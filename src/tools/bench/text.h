#ifndef MQB_TEXT_H
#define MQB_TEXT_H

/*
 * What the drivers for the text protocols (redis, nats, beanstalkd)
 * share: decimal numbers written and read without stdio or locales, a
 * table of per-queue strings formatted once so the send path never
 * formats a name, the list of a consumer's queues, a FIFO of numbers for
 * replies that must be matched to what was sent, and the framing that
 * carries a reply address inside a request for systems whose messages
 * have no headers.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tools/bench/bench.h"
#include "tools/bench/bio.h"

/*
 * Connection plumbing.  sys names the system in error messages.
 */
/* Write out whatever is pending: 0, or -1 after mqb_fail. */
int mqb_text_flush(struct mqb_role *r, struct mqb_bio *b, const char *sys);
/*
 * Read, waiting at most ms: 0 (whatever came, maybe nothing), 1 when the
 * read failed but the role is over anyway (over, or the run stopping),
 * -1 after mqb_fail.
 */
int mqb_text_read(struct mqb_role *r, struct mqb_bio *b, const char *sys,
                  int ms, bool over);
/*
 * Handshakes: call pump(arg), which reads and handles input, until
 * *counter reaches target, for at most MQB_TEXT_WAIT_MS.  0, 1 when the
 * run stopped meanwhile, -1 after mqb_fail.
 */
#define MQB_TEXT_WAIT_MS 10000
int mqb_text_wait(struct mqb_role *r, const char *sys, int (*pump)(void *),
                  void *arg, const uint64_t *counter, uint64_t target,
                  const char *what);

/* Append v in decimal. */
void mqb_put_dec(struct mqb_buf *w, uint64_t v);

/*
 * Parse the unsigned decimal at the start of [p, end): the digits
 * consumed, 0 when there are none or the value does not fit.
 */
size_t mqb_parse_dec(const uint8_t *p, const uint8_t *end, uint64_t *v);

/* Strings numbered in the order they were added; they never move once the
 * table is built, so pointers from mqb_strtab_get stay valid until free. */
struct mqb_strtab {
	char *buf;
	size_t len, cap;
	size_t *off;     /* n + 1 offsets: string i is buf[off[i] .. off[i+1]) */
	unsigned n, max;
};

/* Add one formatted string; 0, or -1 when memory runs out. */
int mqb_strtab_add(struct mqb_strtab *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), warn_unused_result));
static inline const char *mqb_strtab_get(const struct mqb_strtab *t,
                                         unsigned i, size_t *len)
{
	*len = t->off[i + 1] - t->off[i];
	return t->buf + t->off[i];
}
void mqb_strtab_free(struct mqb_strtab *t);

/*
 * The queues consumer r serves, in the order mqb_consumer_queues gives
 * them (malloc'd, *n of them); NULL when memory runs out or there are none.
 */
unsigned *mqb_queue_list(const struct mqb_role *r, unsigned *n);

/*
 * What consumer r will get from each of its queues qs[0..nq): left[i] is
 * how many messages the run's producers send to qs[i], counted with the
 * same mqb_queue_for they use (O(producers x count)).  Returns 1 when no
 * other consumer serves any of these queues, so left[] is exactly what r
 * will receive; 0 when some are shared; -1 when memory runs out.
 */
int mqb_plan(const struct mqb_role *r, const unsigned *qs, unsigned nq,
             uint64_t *left) __attribute__((warn_unused_result));

/* A growing ring of numbers: batch sizes, job ids, kinds of command. */
struct mqb_fifo {
	uint64_t *v;
	size_t cap;   /* a power of two, or 0 */
	size_t head;
	size_t n;
};

int mqb_fifo_push(struct mqb_fifo *f, uint64_t x)
	__attribute__((warn_unused_result));
/* The oldest entry; the FIFO must not be empty. */
uint64_t mqb_fifo_pop(struct mqb_fifo *f);
void mqb_fifo_free(struct mqb_fifo *f);

/*
 * Request framing for systems without headers (redis lists, beanstalkd
 * jobs): a big-endian u16 length, the reply address, then the body the
 * responder echoes.  mqb_rpc_head writes the first two parts (2 + len
 * bytes) and returns their size.
 */
#define MQB_RPC_NAME_MAX 1024
size_t mqb_rpc_head(uint8_t *dst, const char *name, size_t len);
/* Split a framed request; false when it is malformed. */
bool mqb_rpc_split(const uint8_t *p, size_t len, const uint8_t **name,
                   size_t *namelen, const uint8_t **body, size_t *bodylen);

/* A pipeline depth from an option where 0 means "the default, one". */
static inline unsigned mqb_depth(unsigned v)
{
	return v ? v : 1;
}

/* Does the line [p, p+n) start with the word w (followed by end or ' ')?
 * Inline, so the length of a literal w folds away on the hot paths. */
static inline bool mqb_word_is(const uint8_t *p, size_t n, const char *w)
{
	size_t k = strlen(w);

	return n >= k && memcmp(p, w, k) == 0 && (n == k || p[k] == ' ');
}

#endif
