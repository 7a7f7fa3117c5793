/*
 * mkcorpus DIR: write the fuzz targets' seed corpora into DIR/<target>/
 * (tests/fuzz/corpus/ in the source tree: "make fuzz-corpus").  The binary
 * seeds are made with the codec's own encoders, so they are valid frames
 * of the protocol as it is; the text seeds are written out as they are.
 * A seed is a starting point, not a test: the fuzzer mutates them, and
 * make check replays them.  Running it again rewrites the same files.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "proto/proto.h"

static const char *root;
static int failed;

static void put(const char *target, const char *name, const void *p,
                size_t n)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", root, target);
	if (mkdir(path, 0777) != 0 && errno != EEXIST) {
		fprintf(stderr, "mkcorpus: %s: %s\n", path, strerror(errno));
		failed = 1;
		return;
	}
	snprintf(path, sizeof path, "%s/%s/%s", root, target, name);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
		fprintf(stderr, "mkcorpus: %s: cannot write\n", path);
		failed = 1;
	}
}

static void put_text(const char *target, const char *name, const char *text)
{
	put(target, name, text, strlen(text));
}

/* Write w as a seed, then empty it for the next. */
static void put_wbuf(const char *target, const char *name,
                     struct mqd_wbuf *w)
{
	if (w->oom) {
		fprintf(stderr, "mkcorpus: %s/%s: out of memory\n", target,
		        name);
		failed = 1;
	}
	put(target, name, w->data, w->len);
	mqd_wbuf_reset(w);
}

static struct mqd_span span(const char *s)
{
	struct mqd_span x = { (const uint8_t *)s, (uint32_t)strlen(s) };

	return x;
}

/* A headers field of n pairs: key0=v0, key1=v1, ... */
static void headers_n(struct mqd_wbuf *h, int n)
{
	char key[16], val[16];

	mqd_headers_init(h);
	for (int i = 0; i < n; i++) {
		snprintf(key, sizeof key, "key%d", i);
		snprintf(val, sizeof val, "v%d", i);
		mqd_headers_add(h, key, val, strlen(val));
	}
}

static void message(struct mqd_wbuf *w, uint8_t op, uint32_t tag,
                    uint64_t id, const char *source, const struct mqd_wbuf *h,
                    const char *body)
{
	struct mqd_message m;

	memset(&m, 0, sizeof m);
	m.id = id;
	m.source = span(source);
	m.attempts = 1;
	m.timestamp_ms = 1700000000000ull;
	m.priority = 4;
	if (h != NULL) {
		m.nheaders = mqd_load16(h->data);
		m.headers.p = h->data;
		m.headers.len = (uint32_t)h->len;
	}
	m.body = span(body);
	mqd_enc_message(w, op, tag, &m);
}

static void proto_seeds(void)
{
	struct mqd_wbuf w, h;
	struct mqd_declare d;
	uint64_t ids[3] = { 1, 0x0102030405060708ull, 256 };
	uint8_t raw[8] = { 0, 0, 0, 0, 0, 0, 0, 1 };

	mqd_wbuf_init(&w);
	mqd_wbuf_init(&h);

	mqd_enc_hello(&w, 1, "cli", "", "");
	mqd_enc_hello(&w, 2, "bench-1", "admin", "s3cret");
	put_wbuf("proto", "hello", &w);

	memset(&d, 0, sizeof d);
	d.queue = span("jobs");
	d.max_length = 1000;
	d.max_bytes = 1 << 20;
	d.overflow = 2;
	d.message_ttl_ms = 30000;
	d.ack_timeout_ms = 5000;
	d.max_attempts = 3;
	d.dead_letter = span("jobs.dead");
	mqd_enc_declare(&w, MQD_F_EXCLUSIVE | MQD_F_AUTO_DELETE, 3, &d);
	memset(&d, 0, sizeof d);
	mqd_enc_declare(&w, 0, 4, &d); /* a server-named queue */
	mqd_enc_queue_op(&w, MQD_OP_DELETE, MQD_F_IF_EMPTY, 5, "jobs");
	mqd_enc_queue_op(&w, MQD_OP_PURGE, 0, 6, "jobs");
	put_wbuf("proto", "queues", &w);

	headers_n(&h, 2);
	mqd_enc_send(&w, MQD_OP_SEND, 0, 7, "jobs", 0, 0, 0, NULL, 0, "hello",
	             5);
	mqd_enc_send(&w, MQD_OP_SEND, MQD_F_QUIET, 8, "jobs", 60000, 250, 9,
	             h.data, h.len, "with headers", 12);
	mqd_enc_send(&w, MQD_OP_PUBLISH, 0, 9, "orders.eu.paid", 0, 0, 1,
	             h.data, h.len, "", 0);
	put_wbuf("proto", "send", &w);

	headers_n(&h, 20); /* over 16: keys are sorted to find a repeat */
	mqd_enc_send(&w, MQD_OP_SEND, 0, 10, "jobs", 0, 0, 0, h.data, h.len,
	             "x", 1);
	put_wbuf("proto", "many-headers", &w);

	mqd_headers_init(&h);
	mqd_headers_add(&h, "k", "1", 1);
	mqd_headers_add(&h, "k", "2", 1); /* refused: a repeated key */
	mqd_enc_send(&w, MQD_OP_SEND, 0, 11, "jobs", 0, 0, 0, h.data, h.len,
	             "x", 1);
	put_wbuf("proto", "repeated-header", &w);

	mqd_enc_get(&w, MQD_F_AUTO_ACK, 12, "jobs", 1000);
	mqd_enc_consume(&w, 0, 13, "jobs", 100);
	mqd_enc_cancel(&w, MQD_OP_CANCEL, 14, 13);
	mqd_enc_ack(&w, MQD_OP_ACK, 0, 15, 0, 0, ids, 3);
	mqd_enc_ack(&w, MQD_OP_NACK, MQD_F_QUIET, 16, 1, 500, ids, 2);
	put_wbuf("proto", "consume", &w);

	mqd_enc_bind(&w, MQD_OP_BIND, 17, "audit", "orders.*.paid");
	mqd_enc_bind(&w, MQD_OP_UNBIND, 18, "audit", "orders.>");
	mqd_enc_subscribe(&w, 19, "bits.*.>");
	mqd_enc_cancel(&w, MQD_OP_UNSUBSCRIBE, 20, 19);
	mqd_enc_raw(&w, MQD_OP_PING, 0, 21, raw, sizeof raw);
	put_wbuf("proto", "pubsub", &w);

	headers_n(&h, 1);
	mqd_enc_welcome(&w, 1, "mqd/0.1.0", 1 << 20, 42);
	mqd_enc_ok(&w, 2);
	mqd_enc_ok_u32(&w, 3, 7);
	mqd_enc_ok_u64(&w, 4, 0x100);
	mqd_enc_raw(&w, MQD_OP_PONG, 0, 5, raw, sizeof raw);
	mqd_enc_declared(&w, 6, "tmp.1", 5, 10, 2);
	message(&w, MQD_OP_MESSAGE, 7, 0x101, "jobs", &h, "body");
	mqd_enc_raw(&w, MQD_OP_EMPTY, 0, 8, NULL, 0);
	message(&w, MQD_OP_DELIVER, 9, 0x201, "orders.eu.paid", NULL, "");
	mqd_enc_queue_op(&w, MQD_OP_CANCELLED, 0, 9, "jobs");
	mqd_enc_error(&w, 10, MQD_ERR_NOT_FOUND, "no queue 'x'");
	put_wbuf("proto", "server", &w);

	/* Framing errors and a frame cut short. */
	put("proto", "short-length", "\0\0\0\5\x80\0\0\0\0\1", 10);
	put("proto", "too-large", "\xff\xff\xff\xff\x01", 5);
	mqd_enc_hello(&w, 1, "cli", "", "");
	w.len -= 3;
	put_wbuf("proto", "partial", &w);
	/* An unknown op, and flags an op does not allow. */
	mqd_enc_raw(&w, 0x7f, 0, 1, "x", 1);
	mqd_enc_queue_op(&w, MQD_OP_PURGE, MQD_F_QUIET, 2, "jobs");
	put_wbuf("proto", "unknown-op", &w);

	mqd_wbuf_free(&w);
	mqd_wbuf_free(&h);
}

/* The answers to PURGE, DELETE, BIND and CANCEL, from tag first on. */
static void admin_oks(struct mqd_wbuf *w, uint32_t first)
{
	mqd_enc_ok_u64(w, first, 2);
	mqd_enc_ok(w, first + 1);
	mqd_enc_ok(w, first + 2);
	mqd_enc_ok(w, first + 3);
}

/* What a server answers fuzz_client.c's script, call by call. */
static void client_seeds(void)
{
	struct mqd_wbuf w, h, r;
	uint8_t ping[8] = { 0, 0, 0, 0, 0, 0, 0, 1 };

	mqd_wbuf_init(&w);
	mqd_wbuf_init(&h);
	mqd_wbuf_init(&r);
	mqd_headers_init(&h);
	mqd_headers_add(&h, "reply-to", "rq", 2);
	mqd_headers_add(&h, "correlation-id", "c-7", 3);
	mqd_headers_init(&r);
	mqd_headers_add(&r, "correlation-id", "1", 1);

	mqd_enc_declared(&w, 1, "q", 1, 3, 0);
	message(&w, MQD_OP_MESSAGE, 2, 0x100, "q", &h, "request");
	mqd_enc_ok(&w, 3);
	message(&w, MQD_OP_DELIVER, 3, 0x200, "q", NULL, "pushed");
	mqd_enc_ok(&w, 4);
	mqd_enc_ok_u32(&w, 5, 1);
	message(&w, MQD_OP_DELIVER, 4, 0x300, "t.x", NULL, "p");
	mqd_enc_raw(&w, MQD_OP_PONG, 0, 6, ping, sizeof ping);
	ping[7] = 2;
	mqd_enc_raw(&w, MQD_OP_PONG, 0, 8, ping, sizeof ping);
	admin_oks(&w, 9);
	mqd_enc_ok_u64(&w, 13, 0x400);           /* mq_reply's SEND */
	mqd_enc_ok_u32(&w, 14, 1);               /* the ACK */
	mqd_enc_declared(&w, 15, "tmp.1", 5, 0, 0); /* mq_request */
	mqd_enc_ok(&w, 16);
	mqd_enc_ok_u64(&w, 17, 0x500);
	message(&w, MQD_OP_DELIVER, 16, 0x600, "tmp.1", &r, "answer");
	mqd_enc_queue_op(&w, MQD_OP_CANCELLED, 0, 3, "q");
	message(&w, MQD_OP_DELIVER, 4, 0x700, "t.y", NULL, "late");
	put_wbuf("client", "happy", &w);

	/* Errors: a failed DECLARE, an empty GET, the quiet SEND refused
	 * (seen by the sync), then the server closing with tag 0. */
	mqd_enc_error(&w, 1, MQD_ERR_CONFLICT, "settings differ");
	mqd_enc_raw(&w, MQD_OP_EMPTY, 0, 2, NULL, 0);
	mqd_enc_ok(&w, 3);
	mqd_enc_ok(&w, 4);
	mqd_enc_ok_u32(&w, 5, 0);
	ping[7] = 1;
	mqd_enc_raw(&w, MQD_OP_PONG, 0, 6, ping, sizeof ping);
	mqd_enc_error(&w, 7, MQD_ERR_QUEUE_FULL, "queue q is full");
	ping[7] = 2;
	mqd_enc_raw(&w, MQD_OP_PONG, 0, 8, ping, sizeof ping);
	mqd_enc_ok_u64(&w, 9, 0);
	mqd_enc_error(&w, 10, MQD_ERR_CONFLICT, "queue q is not empty");
	mqd_enc_error(&w, 0, MQD_ERR_SHUTTING_DOWN, "bye");
	put_wbuf("client", "errors", &w);

	/* A reply of the wrong kind, and a frame that does not parse. */
	mqd_enc_ok(&w, 1);
	mqd_enc_raw(&w, MQD_OP_DELIVER, 0, 3, "\0\0", 2);
	put_wbuf("client", "wrong-reply", &w);

	/* The request's reply queue deleted under it. */
	mqd_enc_declared(&w, 1, "q", 1, 0, 0);
	mqd_enc_raw(&w, MQD_OP_EMPTY, 0, 2, NULL, 0);
	mqd_enc_ok(&w, 3);
	mqd_enc_ok(&w, 4);
	mqd_enc_ok_u32(&w, 5, 0);
	ping[7] = 1;
	mqd_enc_raw(&w, MQD_OP_PONG, 0, 6, ping, sizeof ping);
	ping[7] = 2;
	mqd_enc_raw(&w, MQD_OP_PONG, 0, 8, ping, sizeof ping);
	admin_oks(&w, 9);
	mqd_enc_declared(&w, 13, "tmp.2", 5, 0, 0);
	mqd_enc_ok(&w, 14);
	mqd_enc_queue_op(&w, MQD_OP_CANCELLED, 0, 14, "tmp.2");
	mqd_enc_ok_u64(&w, 15, 0x800);
	put_wbuf("client", "reply-queue-gone", &w);

	put("client", "empty", "", 0);

	mqd_wbuf_free(&w);
	mqd_wbuf_free(&h);
	mqd_wbuf_free(&r);
}

static void config_seeds(void)
{
	put_text("config", "minimal", "[server]\nlisten = 127.0.0.1:7400\n");
	put_text("config", "server",
	         "; every [server] key\n"
	         "[server]\n"
	         "listen = 127.0.0.1:0, [::1]:7401, localhost:7402\n"
	         "control_socket = run/mqd.sock\n"
	         "control_socket_mode = 0660\n"
	         "metrics_listen = [::1]:9400\n"
	         "workers = 4\n"
	         "max_connections = 100\n"
	         "max_frame = 64K\n"
	         "auto_create = off\n"
	         "idle_timeout = 5m\n"
	         "log_level = debug\n"
	         "log_file = syslog\n"
	         "pidfile = /run/mqd.pid\n"
	         "max_memory = 2G\n"
	         "slow_consumer_bytes = 1M\n");
	put_text("config", "queues",
	         "[defaults]\n"
	         "prefetch = 50\n"
	         "max_length = 1000\n"
	         "max_bytes = 64M\n"
	         "overflow = drop_head\n"
	         "message_ttl = 1h\n"
	         "ack_timeout = 250ms\n"
	         "max_attempts = 5\n"
	         "dead_letter = dead\n"
	         "\n"
	         "[queue dead]\n"
	         "dead_letter =\n"
	         "[queue jobs]\n"
	         "max_length = 10   ; a comment\n"
	         "[queue jobs.eu:1]\n"
	         "dead_letter = jobs\n");
	put_text("config", "loop",
	         "[queue a]\ndead_letter = b\n[queue b]\ndead_letter = a\n");
	put_text("config", "errors",
	         "\xEF\xBB\xBF# a BOM, CRLF lines\r\n"
	         "[server]\r\n"
	         "workers = 2\r\n"
	         "workers: 3\r\n");
	put_text("config", "bad-section", "[queue]\n[server] x\nkey = 1\n");
}

static void control_seeds(void)
{
	put_text("control", "reads",
	         "help\nversion\nstats\nqueues\nqueue jobs\nconnections\n"
	         "config\n");
	put_text("control", "declare",
	         "declare jobs max_length=10 max_bytes=64M overflow=drop_head "
	         "message_ttl=30s ack_timeout=1m max_attempts=5 "
	         "dead_letter=dead\n"
	         "declare jobs dead_letter=jobs\n"
	         "declare jobs max_length=1 max_length=2\n"
	         "declare bad/name\n");
	put_text("control", "admin",
	         "delete jobs --if-empty\r\npurge jobs\nkill 12\n"
	         "shutdown 30s\nloglevel debug\nreload\nlogreopen\n");
	put_text("control", "errors",
	         "bogus\n\n \t \nqueue\nkill x\n"
	         "declare a b c d e f g h i j k l m n o p q r s\n"
	         "delete jobs --force\n");
	put("control", "nul", "stats\0x\n", 8);
}

static void topics_seeds(void)
{
	char buf[2048];
	size_t n = 0;

	put_text("topics", "protocol",
	         "+a orders.*.paid\n+b orders.>\n+c orders.eu.paid\n"
	         "?orders.eu.paid\n?orders\n?orders.eu\n?orders.us.paid.late\n"
	         "-b orders.>\n?orders.eu.paid\n-b orders.>\n");
	put_text("topics", "wildcards-first",
	         "+a *.x\n+b >\n+c *\n+d *.*.>\n?a.x\n?q\n?a.b.c\n-c *\n?q\n");
	put_text("topics", "repeats",
	         "+a x.y\n+a x.y\n+b x.y\n-a x.y\n?x.y\n-a x.y\n-a x.y\n"
	         "-b x.y\n?x.y\n");
	put_text("topics", "faults",
	         "!3\n+a a.b.c.d\n+b a.b.x\n!\n+a a.b.c.d\n?a.b.c.d\n"
	         "!0\n-a a.b.c.d\n!\n?a.b.c.d\n");
	/* Enough children to grow a table, then remove them to shrink it. */
	for (int i = 0; i < 24; i++)
		n += (size_t)snprintf(buf + n, sizeof buf - n, "+%c r.t%d\n",
		                      'a' + i % 3, i);
	for (int i = 0; i < 24; i += 2)
		n += (size_t)snprintf(buf + n, sizeof buf - n, "-%c r.t%d\n",
		                      'a' + i % 3, i);
	snprintf(buf + n, sizeof buf - n, "?r.t5\n?r.t6\n");
	put_text("topics", "table", buf);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: mkcorpus DIR\n");
		return 2;
	}
	root = argv[1];
	if (mkdir(root, 0777) != 0 && errno != EEXIST) {
		fprintf(stderr, "mkcorpus: %s: %s\n", root, strerror(errno));
		return 1;
	}
	proto_seeds();
	client_seeds();
	config_seeds();
	control_seeds();
	topics_seeds();
	return failed;
}
