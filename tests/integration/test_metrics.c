/*
 * Prometheus metrics and the status page against the real mqd: /metrics is
 * parsed line by line with a validator of the text exposition format 0.0.4
 * (written here, not borrowed from the broker) and its figures compared
 * with the control socket's `stats` and `queue NAME`; the HTML page, the
 * JSON API, the HTTP errors, clients that leave before their answer, and
 * the start-up rules (off by default, a port in use refuses to start).
 *
 * HTTP is spoken through a raw socket by a small HTTP/1.0 client of our
 * own, so the test checks the bytes the broker sends.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "lib/harness.h"
#include "lib/expect.h"
#include "mq/mq.h"

#define WAIT_MS 10000 /* wait-until limit for anything asynchronous */
#define PAGE_MAX (10 * 1024)
#define CT_METRICS "text/plain; version=0.0.4; charset=utf-8"

/* ---- the broker ------------------------------------------------------------ */

/* The port of "metrics listening on http://127.0.0.1:PORT/" in the log, or
 * 0 while the (whole) line is not there. */
static uint16_t find_metrics_port(const char *log_path)
{
	static const char needle[] = "metrics listening on http://127.0.0.1:";
	FILE *f = fopen(log_path, "r");
	char line[8192];
	uint16_t port = 0;

	if (f == NULL)
		return 0;
	while (port == 0 && fgets(line, sizeof line, f)) {
		char *p = strstr(line, needle), *end;
		unsigned long v;

		if (p == NULL)
			continue;
		p += sizeof needle - 1;
		errno = 0;
		v = strtoul(p, &end, 10);
		if (end != p && errno == 0 && v > 0 && v <= 65535 &&
		    strcmp(end, "/\n") == 0)
			port = (uint16_t)v;
	}
	fclose(f);
	return port;
}

static uint16_t metrics_port_at(int line, const struct mqt_server *s)
{
	int64_t end = mqt_now_ms() + WAIT_MS;
	uint16_t port;

	while ((port = find_metrics_port(s->log_path)) == 0) {
		if (mqt_now_ms() >= end)
			mqt_server_dump(s);
		ck_assert_msg(mqt_now_ms() < end, "line %d: no 'metrics "
		              "listening on http://127.0.0.1:PORT/' in the log",
		              line);
		sleep_ms(5);
	}
	return port;
}

/* Start a broker with metrics on an ephemeral port; its port. */
static uint16_t start_at(int line, struct mqt_server *s)
{
	ck_assert_msg(mqt_server_start(s, "metrics_listen = 127.0.0.1:0\n") == 0,
	              "line %d: mqd did not start (see stderr)", line);
	return metrics_port_at(line, s);
}
#undef START /* this suite's START returns the metrics port */
#define START(s) start_at(__LINE__, &(s))

/* ---- a tiny HTTP/1.0 client ------------------------------------------------ */

struct resp {
	int status;
	char ctype[256];
	char allow[256];
	long clen;   /* Content-Length, -1 if absent */
	char *body;  /* NUL-terminated; may contain no NUL itself */
	size_t body_len;
};

static void resp_free(struct resp *r)
{
	free(r->body);
	memset(r, 0, sizeof *r);
}

static int tcp_connect(uint16_t port)
{
	struct sockaddr_in sa;
	struct timeval tv = {10, 0};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons(port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0,
	              "connect 127.0.0.1:%u: %s", port, strerror(errno));
	return fd;
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		ck_assert_msg(w > 0, "write: %s", strerror(errno));
		p += w;
		n -= (size_t)w;
	}
}

/* The value of header name (case-insensitive) in the header block, copied
 * into out; false if absent. */
static bool header_value(const char *hdrs, const char *name, char *out,
                         size_t cap)
{
	size_t nl = strlen(name);
	const char *l = hdrs;

	while (l != NULL && *l != '\0') {
		const char *eol = strstr(l, "\r\n");
		size_t len = eol ? (size_t)(eol - l) : strlen(l);

		if (len > nl && strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
			const char *v = l + nl + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			len -= (size_t)(v - l);
			if (len >= cap)
				len = cap - 1;
			memcpy(out, v, len);
			out[len] = '\0';
			return true;
		}
		l = eol ? eol + 2 : NULL;
	}
	return false;
}

/* Send method path as HTTP/1.0 and read the whole answer (the server
 * closes after it). */
static void http_at(int line, uint16_t port, const char *method,
                    const char *path, struct resp *r)
{
	char req[1024], *raw = NULL, *sep, clen[32];
	size_t len = 0, cap = 0;
	int fd = tcp_connect(port);

	memset(r, 0, sizeof *r);
	snprintf(req, sizeof req,
	         "%s %s HTTP/1.0\r\nHost: 127.0.0.1:%u\r\n%s\r\n", method,
	         path, port,
	         strcmp(method, "POST") == 0 ? "Content-Length: 0\r\n" : "");
	write_all(fd, req, strlen(req));
	for (;;) {
		ssize_t n;

		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 65536;
			raw = realloc(raw, cap + 1);
			ck_assert_ptr_nonnull(raw);
		}
		n = read(fd, raw + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		ck_assert_msg(n >= 0, "line %d: %s %s: read: %s", line, method,
		              path, strerror(errno));
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	ck_assert_ptr_nonnull(raw);
	raw[len] = '\0';
	ck_assert_msg(sscanf(raw, "HTTP/1.%*1[01] %d ", &r->status) == 1,
	              "line %d: %s %s: no status line: %.80s", line, method,
	              path, raw);
	sep = strstr(raw, "\r\n\r\n");
	ck_assert_msg(sep != NULL, "line %d: %s %s: headers do not end", line,
	              method, path);
	*sep = '\0';
	header_value(raw, "Content-Type", r->ctype, sizeof r->ctype);
	header_value(raw, "Allow", r->allow, sizeof r->allow);
	r->clen = header_value(raw, "Content-Length", clen, sizeof clen)
	                  ? atol(clen) : -1;
	r->body_len = len - (size_t)(sep + 4 - raw);
	r->body = malloc(r->body_len + 1);
	ck_assert_ptr_nonnull(r->body);
	memcpy(r->body, sep + 4, r->body_len);
	r->body[r->body_len] = '\0';
	free(raw);
	if (r->clen >= 0 && strcmp(method, "HEAD") != 0)
		ck_assert_msg((size_t)r->clen == r->body_len,
		              "line %d: %s %s: Content-Length %ld, body %zu",
		              line, method, path, r->clen, r->body_len);
}
#define HTTP(port, m, path, r) http_at(__LINE__, port, m, path, r)

/* ---- the exposition format ---------------------------------------------- */

struct family {
	char name[128];
	char type[16];
	bool help, typed;
	bool closed; /* its group of samples is over */
	int samples;
};

struct sample {
	char name[128];
	char labels[512]; /* between the braces, as sent */
	double value;
};

struct expo {
	struct family fam[128];
	size_t nfam;
	struct sample *smp;
	size_t nsmp, cap;
	int cur; /* family of the last sample, -1 before any */
};

static bool metric_char(char c, bool first, bool colon)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
		return true;
	if (colon && c == ':')
		return true;
	return !first && c >= '0' && c <= '9';
}

/* A metric name (colon allowed) or a label name at *p; NULL or an error. */
static const char *parse_name(const char **p, char *out, size_t cap,
                              bool colon)
{
	size_t n = 0;

	if (!metric_char(**p, true, colon))
		return colon ? "bad metric name" : "bad label name";
	while (metric_char(**p, n == 0, colon)) {
		if (n + 1 >= cap)
			return "name too long";
		out[n++] = *(*p)++;
	}
	out[n] = '\0';
	return NULL;
}

/* A sample value: a decimal float, NaN, +Inf or -Inf, the whole token. */
static const char *parse_value(const char *t, size_t n, double *v)
{
	char buf[64];
	size_t i = 0, digits = 0;

	if (n == 0 || n >= sizeof buf)
		return "bad value";
	memcpy(buf, t, n);
	buf[n] = '\0';
	if (strcmp(buf, "NaN") == 0 || strcmp(buf, "+Inf") == 0 ||
	    strcmp(buf, "-Inf") == 0) {
		*v = strtod(buf, NULL);
		return NULL;
	}
	if (buf[i] == '+' || buf[i] == '-')
		i++;
	for (; buf[i] >= '0' && buf[i] <= '9'; i++)
		digits++;
	if (buf[i] == '.')
		for (i++; buf[i] >= '0' && buf[i] <= '9'; i++)
			digits++;
	if (digits == 0)
		return "bad value";
	if (buf[i] == 'e' || buf[i] == 'E') {
		size_t ed = 0;
		i++;
		if (buf[i] == '+' || buf[i] == '-')
			i++;
		for (; buf[i] >= '0' && buf[i] <= '9'; i++)
			ed++;
		if (ed == 0)
			return "bad exponent";
	}
	if (buf[i] != '\0')
		return "bad value";
	*v = strtod(buf, NULL);
	return NULL;
}

/* {name="value",...} at *p (after the name): checks names, escapes and
 * repeats; copies the inside into out. */
static const char *parse_labels(const char **p, char *out, size_t cap)
{
	const char *start = *p + 1, *s = *p + 1;
	char names[16][64];
	size_t nn = 0;

	for (;;) {
		const char *err;

		if (*s == '}')
			break; /* {} or a trailing comma */
		if (nn == 16)
			return "too many labels";
		err = parse_name(&s, names[nn], sizeof names[nn], false);
		if (err)
			return err;
		if (strncmp(names[nn], "__", 2) == 0)
			return "reserved label name";
		for (size_t i = 0; i < nn; i++)
			if (strcmp(names[i], names[nn]) == 0)
				return "repeated label";
		nn++;
		if (*s++ != '=' || *s++ != '"')
			return "label without =\"";
		while (*s != '"') {
			if (*s == '\0' || *s == '\n')
				return "unterminated label value";
			if (*s == '\\') {
				s++;
				if (*s != '\\' && *s != '"' && *s != 'n')
					return "bad escape in label value";
			}
			s++;
		}
		s++;
		if (*s == ',')
			s++;
		else if (*s != '}')
			return "expected , or } after a label";
	}
	if ((size_t)(s - start) >= cap)
		return "labels too long";
	memcpy(out, start, (size_t)(s - start));
	out[s - start] = '\0';
	*p = s + 1;
	return NULL;
}

static struct family *find_family(struct expo *e, const char *name)
{
	for (size_t i = 0; i < e->nfam; i++)
		if (strcmp(e->fam[i].name, name) == 0)
			return &e->fam[i];
	return NULL;
}

static struct family *add_family(struct expo *e, const char *name)
{
	struct family *f = find_family(e, name);

	if (f != NULL)
		return f;
	ck_assert_uint_lt(e->nfam, sizeof e->fam / sizeof e->fam[0]);
	f = &e->fam[e->nfam++];
	memset(f, 0, sizeof *f);
	snprintf(f->name, sizeof f->name, "%s", name);
	return f;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* "# HELP name text" / "# TYPE name type" / another comment. */
static const char *parse_comment(struct expo *e, const char *l)
{
	char name[128];
	const char *p = l + 2, *err;
	struct family *f;
	bool help;

	if (strncmp(l, "# HELP ", 7) != 0 && strncmp(l, "# TYPE ", 7) != 0)
		return NULL; /* a plain comment */
	help = l[2] == 'H';
	p = l + 7;
	err = parse_name(&p, name, sizeof name, true);
	if (err)
		return err;
	f = add_family(e, name);
	if (help) {
		if (*p != ' ' && *p != '\0')
			return "junk after the name in HELP";
		if (f->help)
			return "second HELP for a family";
		for (p = *p ? p + 1 : p; *p; p++)
			if (*p == '\\' && p[1] != '\\' && p[1] != 'n')
				return "bad escape in HELP";
			else if (*p == '\\')
				p++;
		f->help = true;
		return NULL;
	}
	if (*p++ != ' ')
		return "TYPE without a type";
	if (f->typed)
		return "second TYPE for a family";
	if (f->samples > 0)
		return "TYPE after the family's samples";
	if (strcmp(p, "counter") != 0 && strcmp(p, "gauge") != 0)
		return "type is not counter or gauge";
	snprintf(f->type, sizeof f->type, "%s", p);
	f->typed = true;
	if (strcmp(p, "counter") == 0 && !ends_with(name, "_total"))
		return "a counter's name does not end in _total";
	if (strcmp(p, "gauge") == 0 && ends_with(name, "_total"))
		return "a gauge's name ends in _total";
	return NULL;
}

static const char *parse_sample(struct expo *e, const char *l)
{
	struct sample sm;
	const char *p = l, *err, *vs;
	struct family *f;
	int idx;

	memset(&sm, 0, sizeof sm);
	err = parse_name(&p, sm.name, sizeof sm.name, true);
	if (err)
		return err;
	if (*p == '{' && (err = parse_labels(&p, sm.labels,
	                                     sizeof sm.labels)) != NULL)
		return err;
	if (*p++ != ' ')
		return "no space before the value";
	vs = p;
	while (*p && *p != ' ')
		p++;
	err = parse_value(vs, (size_t)(p - vs), &sm.value);
	if (err)
		return err;
	if (*p == ' ') { /* a timestamp: an integer (ms) */
		p++;
		if (*p == '-')
			p++;
		if (*p < '0' || *p > '9')
			return "bad timestamp";
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p != '\0')
		return "junk after the value";
	f = find_family(e, sm.name);
	if (f == NULL || !f->typed)
		return "sample without a TYPE line before it";
	idx = (int)(f - e->fam);
	if (idx != e->cur) {
		if (f->closed)
			return "the family's samples are not one group";
		if (e->cur >= 0)
			e->fam[e->cur].closed = true;
		e->cur = idx;
	}
	if (strcmp(f->type, "counter") == 0 && !(sm.value >= 0))
		return "a counter below 0";
	for (size_t i = 0; i < e->nsmp; i++)
		if (strcmp(e->smp[i].name, sm.name) == 0 &&
		    strcmp(e->smp[i].labels, sm.labels) == 0)
			return "the same series twice";
	if (e->nsmp == e->cap) {
		e->cap = e->cap ? e->cap * 2 : 64;
		e->smp = realloc(e->smp, e->cap * sizeof *e->smp);
		ck_assert_ptr_nonnull(e->smp);
	}
	e->smp[e->nsmp++] = sm;
	f->samples++;
	return NULL;
}

/* Validate text line by line; every failure names the line. */
static void expo_parse(struct expo *e, char *text, size_t len)
{
	char *l = text;
	int lineno = 0;

	memset(e, 0, sizeof *e);
	e->cur = -1;
	ck_assert_msg(len > 0 && text[len - 1] == '\n',
	              "the exposition does not end with a line end");
	for (size_t i = 0; i < len; i++)
		ck_assert_msg(text[i] != '\0' && text[i] != '\r' &&
		              (unsigned char)text[i] < 0x80,
		              "byte %zu is NUL, CR or not ASCII", i);
	while (*l != '\0') {
		char *nl = strchr(l, '\n');
		const char *err;

		*nl = '\0';
		lineno++;
		if (*l == '\0')
			err = NULL; /* empty lines are ignored */
		else if (*l == '#')
			err = parse_comment(e, l);
		else
			err = parse_sample(e, l);
		ck_assert_msg(err == NULL, "exposition line %d: %s: '%s'",
		              lineno, err, l);
		l = nl + 1;
	}
	for (size_t i = 0; i < e->nfam; i++)
		ck_assert_msg(e->fam[i].help && e->fam[i].typed,
		              "family %s lacks %s", e->fam[i].name,
		              e->fam[i].help ? "TYPE" : "HELP");
}

static void expo_free(struct expo *e)
{
	free(e->smp);
	memset(e, 0, sizeof *e);
}

static double value_at(int line, const struct expo *e, const char *name,
                       const char *labels)
{
	for (size_t i = 0; i < e->nsmp; i++)
		if (strcmp(e->smp[i].name, name) == 0 &&
		    strcmp(e->smp[i].labels, labels) == 0)
			return e->smp[i].value;
	ck_abort_msg("line %d: no sample %s{%s}", line, name, labels);
	return 0;
}
#define VAL(e, name, labels) value_at(__LINE__, e, name, labels)

/* Fetch and validate /metrics. */
static void scrape_at(int line, uint16_t port, struct expo *e)
{
	struct resp r;

	http_at(line, port, "GET", "/metrics", &r);
	ck_assert_msg(r.status == 200, "line %d: /metrics: status %d", line,
	              r.status);
	ck_assert_msg(strcmp(r.ctype, CT_METRICS) == 0,
	              "line %d: /metrics: Content-Type '%s'", line, r.ctype);
	expo_parse(e, r.body, r.body_len);
	resp_free(&r);
}
#define SCRAPE(port, e) scrape_at(__LINE__, port, e)

/* ---- the control socket -------------------------------------------------- */

static json_t *ctl_at(int line, const struct mqt_server *s, const char *cmd)
{
	static char out[1 << 20];
	json_t *j;

	ck_assert_msg(mqt_control(s, cmd, out, sizeof out) == 0,
	              "line %d: no reply to '%s'", line, cmd);
	j = json_loads(out, 0, NULL);
	ck_assert_msg(json_is_true(json_object_get(j, "ok")),
	              "line %d: '%s' failed: %s", line, cmd, out);
	return j;
}
#define CTL(s, cmd) ctl_at(__LINE__, &(s), cmd)

/* An integer at a path of object keys (NULL-terminated). */
static json_int_t jint_at(int line, const json_t *o, ...)
{
	va_list ap;
	const char *k;

	va_start(ap, o);
	while ((k = va_arg(ap, const char *)) != NULL)
		o = json_object_get(o, k);
	va_end(ap);
	ck_assert_msg(json_is_integer(o), "line %d: not an integer", line);
	return json_integer_value(o);
}
#define JINT(o, ...) jint_at(__LINE__, o, __VA_ARGS__, (const char *)NULL)

/* The control socket may come up after the listeners' log lines: wait
 * (bounded) until it answers. */
static void ctl_wait(const struct mqt_server *s)
{
	char out[4096];
	int64_t end = mqt_now_ms() + WAIT_MS;

	while (mqt_control(s, "version", out, sizeof out) != 0) {
		ck_assert_msg(mqt_now_ms() < end, "control socket silent");
		sleep_ms(5);
	}
}

static void send_n(mq_conn *c, const char *queue, int n)
{
	for (int i = 0; i < n; i++) {
		char body[32];
		int len = snprintf(body, sizeof body, "msg %d", i);
		int rc = mq_send(c, queue, body, (size_t)len, NULL, NULL);
		ck_assert_msg(rc == MQ_OK, "send to %s: %s", queue,
		              mq_strerror(rc));
	}
}

/* Take n messages from queue and acknowledge them. */
static void get_ack_n(mq_conn *c, const char *queue, int n)
{
	for (int i = 0; i < n; i++) {
		struct mq_message *m = NULL;
		int rc = mq_get(c, queue, 1000, 0, &m);

		ck_assert_msg(rc == MQ_OK, "get from %s: %s", queue,
		              mq_strerror(rc));
		rc = mq_ack(c, &m->id, 1, 0, NULL);
		ck_assert_msg(rc == MQ_OK, "ack: %s", mq_strerror(rc));
		mq_message_free(m);
	}
}

/* ======================================================================= */

/* Every family the issue names, with its type. */
static const struct {
	const char *name, *type;
} required[] = {
	{ "mqd_up", "gauge" },
	{ "mqd_uptime_seconds", "gauge" },
	{ "mqd_connections", "gauge" },
	{ "mqd_workers", "gauge" },
	{ "mqd_queues", "gauge" },
	{ "mqd_memory_resident_bytes", "gauge" },
	{ "mqd_memory_accounted_bytes", "gauge" },
	{ "mqd_memory_limit_bytes", "gauge" },
	{ "mqd_queue_ready", "gauge" },
	{ "mqd_queue_held", "gauge" },
	{ "mqd_queue_delayed", "gauge" },
	{ "mqd_queue_bytes", "gauge" },
	{ "mqd_queue_consumers", "gauge" },
	{ "mqd_queue_messages_sent_total", "counter" },
	{ "mqd_queue_messages_delivered_total", "counter" },
	{ "mqd_queue_messages_acked_total", "counter" },
	{ "mqd_queue_messages_redelivered_total", "counter" },
	{ "mqd_queue_messages_expired_total", "counter" },
	{ "mqd_queue_messages_dead_lettered_total", "counter" },
	{ "mqd_queue_messages_dropped_total", "counter" },
	{ "mqd_queue_messages_purged_total", "counter" },
	{ "mqd_worker_queues", "gauge" },
	{ "mqd_worker_connections", "gauge" },
	{ "mqd_worker_mails_total", "counter" },
	{ "mqd_worker_frames_total", "counter" },
};

START_TEST(test_metrics_format_and_values)
{
	struct mqt_server s;
	uint16_t port = START(s);
	mq_conn *c;
	struct expo e;
	json_t *st, *qa, *qb;
	const json_t *workers;
	double wq = 0;

	ctl_wait(&s);
	c = CONNECT(s);
	send_n(c, "metrics.a", 7);
	send_n(c, "metrics.b", 5);
	get_ack_n(c, "metrics.b", 2);

	SCRAPE(port, &e);
	for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
		struct family *f = find_family(&e, required[i].name);
		ck_assert_msg(f != NULL, "no family %s", required[i].name);
		ck_assert_msg(strcmp(f->type, required[i].type) == 0,
		              "%s is a %s", f->name, f->type);
	}
	st = CTL(s, "stats");
	qa = CTL(s, "queue metrics.a");
	qb = CTL(s, "queue metrics.b");

	/* Queues, against `queue NAME`. */
	ck_assert_int_eq(JINT(qa, "queue", "ready"), 7);
	ck_assert_int_eq(VAL(&e, "mqd_queue_ready", "queue=\"metrics.a\""),
	                 JINT(qa, "queue", "ready"));
	ck_assert_int_eq(VAL(&e, "mqd_queue_messages_sent_total",
	                     "queue=\"metrics.a\""), JINT(qa, "queue", "sent"));
	ck_assert_int_eq(VAL(&e, "mqd_queue_ready", "queue=\"metrics.b\""),
	                 JINT(qb, "queue", "ready"));
	ck_assert_int_eq(VAL(&e, "mqd_queue_ready", "queue=\"metrics.b\""), 3);
	ck_assert_int_eq(VAL(&e, "mqd_queue_messages_sent_total",
	                     "queue=\"metrics.b\""), JINT(qb, "queue", "sent"));
	ck_assert_int_eq(VAL(&e, "mqd_queue_messages_delivered_total",
	                     "queue=\"metrics.b\""),
	                 JINT(qb, "queue", "delivered"));
	ck_assert_int_eq(VAL(&e, "mqd_queue_messages_acked_total",
	                     "queue=\"metrics.b\""), 2);
	ck_assert_int_eq(VAL(&e, "mqd_queue_bytes", "queue=\"metrics.a\""),
	                 JINT(qa, "queue", "bytes"));

	/* The server, against `stats`. */
	ck_assert_int_eq(VAL(&e, "mqd_up", ""), 1);
	ck_assert(VAL(&e, "mqd_uptime_seconds", "") >= 0);
	ck_assert_int_eq(VAL(&e, "mqd_workers", ""), 4);
	workers = json_object_get(st, "workers");
	ck_assert_msg(json_is_array(workers), "stats has no \"workers\" array");
	ck_assert_int_eq(VAL(&e, "mqd_workers", ""), json_array_size(workers));
	ck_assert_int_eq(VAL(&e, "mqd_queues", ""), JINT(st, "queues"));
	ck_assert_int_eq(VAL(&e, "mqd_connections", ""),
	                 JINT(st, "connections"));
	ck_assert_int_eq(VAL(&e, "mqd_memory_accounted_bytes", ""),
	                 JINT(st, "memory", "accounted_bytes"));
	ck_assert_int_eq(VAL(&e, "mqd_memory_limit_bytes", ""),
	                 JINT(st, "memory", "max_memory"));
	ck_assert(VAL(&e, "mqd_memory_resident_bytes", "") > 0);

	/* One row per worker, as `stats` sees them (queues and connections
	 * hold still while nothing happens; mails and frames do not: every
	 * query is mail); the owners account for every queue. */
	for (int w = 0; w < 4; w++) {
		const json_t *row = json_array_get(workers, (size_t)w);
		char l[32];

		snprintf(l, sizeof l, "worker=\"%d\"", w);
		ck_assert_int_eq(JINT(row, "index"), w);
		ck_assert_int_eq(VAL(&e, "mqd_worker_queues", l),
		                 JINT(row, "queues"));
		ck_assert_int_eq(VAL(&e, "mqd_worker_connections", l),
		                 JINT(row, "connections"));
		wq += VAL(&e, "mqd_worker_queues", l);
		(void)VAL(&e, "mqd_worker_connections", l);
		(void)VAL(&e, "mqd_worker_mails_total", l);
		(void)VAL(&e, "mqd_worker_frames_total", l);
	}
	ck_assert_int_eq(wq, JINT(st, "queues"));

	json_decref(st);
	json_decref(qa);
	json_decref(qb);
	expo_free(&e);
	mq_close(c);
	STOP(s);
}
END_TEST

START_TEST(test_counters_follow_traffic)
{
	struct mqt_server s;
	uint16_t port = START(s);
	mq_conn *c = CONNECT(s);
	struct expo e;

	send_n(c, "metrics.c", 4);
	SCRAPE(port, &e);
	ck_assert_int_eq(VAL(&e, "mqd_queue_messages_sent_total",
	                     "queue=\"metrics.c\""), 4);
	ck_assert_int_eq(VAL(&e, "mqd_queue_ready", "queue=\"metrics.c\""), 4);
	expo_free(&e);

	send_n(c, "metrics.c", 6);
	get_ack_n(c, "metrics.c", 3);
	SCRAPE(port, &e);
	ck_assert_int_eq(VAL(&e, "mqd_queue_messages_sent_total",
	                     "queue=\"metrics.c\""), 10);
	ck_assert_int_eq(VAL(&e, "mqd_queue_ready", "queue=\"metrics.c\""), 7);
	ck_assert_int_eq(VAL(&e, "mqd_queue_messages_acked_total",
	                     "queue=\"metrics.c\""), 3);
	expo_free(&e);
	mq_close(c);
	STOP(s);
}
END_TEST

START_TEST(test_status_page)
{
	struct mqt_server s;
	uint16_t port = START(s);
	struct resp r;

	HTTP(port, "GET", "/", &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_msg(strncmp(r.ctype, "text/html", 9) == 0,
	              "Content-Type '%s'", r.ctype);
	ck_assert_uint_gt(r.body_len, 0);
	ck_assert_msg(r.body_len < PAGE_MAX, "the page is %zu bytes",
	              r.body_len);
	ck_assert_ptr_nonnull(strstr(r.body, "<table"));
	ck_assert_ptr_nonnull(strstr(r.body, "<svg"));
	ck_assert_ptr_nonnull(strstr(r.body, "api/queues"));
	/* Self-contained: nothing fetched from anywhere else. */
	ck_assert_ptr_null(strstr(r.body, "http://"));
	ck_assert_ptr_null(strstr(r.body, "https://"));
	ck_assert_ptr_null(strstr(r.body, "<link"));
	ck_assert_ptr_null(strstr(r.body, " src="));
	resp_free(&r);

	HTTP(port, "HEAD", "/", &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_uint_eq(r.body_len, 0);
	ck_assert_int_gt(r.clen, 0);
	resp_free(&r);
	STOP(s);
}
END_TEST

START_TEST(test_json_api)
{
	struct mqt_server s;
	uint16_t port = START(s);
	mq_conn *c = CONNECT(s);
	struct resp r;
	json_t *j, *row, *found = NULL;
	json_error_t err;
	size_t i;

	send_n(c, "metrics.json", 6);
	HTTP(port, "GET", "/api/queues", &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_msg(strncmp(r.ctype, "application/json", 16) == 0,
	              "Content-Type '%s'", r.ctype);
	j = json_loads(r.body, 0, &err);
	ck_assert_msg(json_is_array(j), "/api/queues is not a JSON array "
	              "(%s): %s", err.text, r.body);
	json_array_foreach(j, i, row) {
		const char *n = json_string_value(json_object_get(row, "name"));
		ck_assert_ptr_nonnull(n);
		if (strcmp(n, "metrics.json") == 0)
			found = row;
	}
	ck_assert_ptr_nonnull(found);
	ck_assert_int_eq(JINT(found, "ready"), 6);
	ck_assert_int_eq(JINT(found, "sent"), 6);
	ck_assert_int_eq(JINT(found, "held"), 0);
	ck_assert_int_eq(JINT(found, "consumers"), 0);
	/* The control socket's row, flags and settings aside. */
	ck_assert(json_is_integer(json_object_get(found, "purged")));
	json_decref(j);
	resp_free(&r);

	HTTP(port, "GET", "/api/stats", &r);
	ck_assert_int_eq(r.status, 200);
	j = json_loads(r.body, 0, &err);
	ck_assert_msg(json_is_object(j), "/api/stats is not a JSON object "
	              "(%s): %s", err.text, r.body);
	/* The shape of the control socket's stats. */
	ck_assert_int_ge(JINT(j, "queues"), 1);
	ck_assert_int_eq(json_array_size(json_object_get(j, "workers")), 4);
	ck_assert_int_ge(JINT(j, "messages", "ready"), 6);
	ck_assert_int_ge(JINT(j, "totals", "sent"), 6);
	ck_assert_int_gt(JINT(j, "memory", "rss_bytes"), 0);
	ck_assert(json_is_number(json_object_get(
		json_object_get(j, "rates"), "in")));
	json_decref(j);
	resp_free(&r);
	mq_close(c);
	STOP(s);
}
END_TEST

START_TEST(test_http_errors)
{
	struct mqt_server s;
	uint16_t port = START(s);
	struct resp r;

	HTTP(port, "GET", "/nope", &r);
	ck_assert_int_eq(r.status, 404);
	resp_free(&r);
	HTTP(port, "GET", "/metrics/extra", &r);
	ck_assert_int_eq(r.status, 404);
	resp_free(&r);

	HTTP(port, "POST", "/metrics", &r);
	ck_assert_int_eq(r.status, 405);
	ck_assert_msg(strstr(r.allow, "GET") != NULL, "Allow '%s'", r.allow);
	resp_free(&r);
	HTTP(port, "PUT", "/", &r);
	ck_assert_int_eq(r.status, 405);
	resp_free(&r);
	HTTP(port, "DELETE", "/api/queues", &r);
	ck_assert_int_eq(r.status, 405);
	resp_free(&r);

	/* A query string does not change the page. */
	HTTP(port, "GET", "/metrics?debug=1", &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.ctype, CT_METRICS);
	resp_free(&r);

	/* HEAD: the headers of GET, no body. */
	HTTP(port, "HEAD", "/metrics", &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.ctype, CT_METRICS);
	ck_assert_uint_eq(r.body_len, 0);
	ck_assert_int_gt(r.clen, 0);
	resp_free(&r);

	/* Garbage instead of HTTP: answered or dropped, never a crash. */
	{
		int fd = tcp_connect(port);
		char buf[4096];
		write_all(fd, "\x01\x02 nonsense\r\n\r\n", 15);
		while (read(fd, buf, sizeof buf) > 0)
			;
		close(fd);
	}
	HTTP(port, "GET", "/metrics", &r);
	ck_assert_int_eq(r.status, 200);
	resp_free(&r);
	STOP(s);
}
END_TEST

/* Clients that send a request and leave before the answer (plainly or
 * with a reset), and one that never finishes its request: the broker keeps
 * serving and stops cleanly. */
START_TEST(test_clients_leave_early)
{
	struct mqt_server s;
	uint16_t port = START(s);
	mq_conn *c = CONNECT(s);
	static const char *const paths[] = {"/metrics", "/api/queues",
	                                    "/api/stats"};
	struct expo e;
	int idle;

	send_n(c, "metrics.early", 3);
	for (int i = 0; i < 60; i++) {
		char req[128];
		int fd = tcp_connect(port);

		snprintf(req, sizeof req, "GET %s HTTP/1.0\r\n\r\n",
		         paths[i % 3]);
		write_all(fd, req, strlen(req));
		if (i % 2) {
			struct linger lg = {1, 0}; /* close with RST */
			setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
		}
		close(fd);
	}
	idle = tcp_connect(port);
	write_all(idle, "GET /metrics HTTP/1.0\r\n", 23); /* never ends */

	SCRAPE(port, &e);
	ck_assert_int_eq(VAL(&e, "mqd_queue_ready", "queue=\"metrics.early\""),
	                 3);
	expo_free(&e);
	ck_assert(mqt_server_alive(&s));
	mq_close(c);
	STOP(s); /* with the idle client still connected */
	close(idle);
}
END_TEST

START_TEST(test_off_by_default)
{
	struct mqt_server s;
	char line[8192];
	FILE *f;

	ck_assert_msg(mqt_server_start(&s, NULL) == 0, "mqd did not start");
	ctl_wait(&s);
	f = fopen(s.log_path, "r");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof line, f))
		ck_assert_msg(strstr(line, "metrics listening") == NULL,
		              "metrics on without metrics_listen: %s", line);
	fclose(f);
	STOP(s);
}
END_TEST

/* A metrics port another socket listens on: mqd refuses to run. */
START_TEST(test_port_in_use)
{
	struct mqt_server s;
	struct sockaddr_in sa;
	socklen_t len = sizeof sa;
	char extra[64];
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int rc;

	ck_assert_int_ge(fd, 0);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(listen(fd, 1), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	snprintf(extra, sizeof extra, "metrics_listen = 127.0.0.1:%u\n",
	         ntohs(sa.sin_port));

	fprintf(stderr, "test_port_in_use: a failed start is expected "
	        "below\n");
	rc = mqt_server_start(&s, extra);
	if (rc == 0) {
		/* It got as far as its main listeners: it must still exit. */
		int64_t end = mqt_now_ms() + WAIT_MS;
		while (mqt_server_alive(&s) && mqt_now_ms() < end)
			sleep_ms(10);
		ck_assert_msg(!mqt_server_alive(&s),
		              "mqd runs without its metrics port");
		ck_assert_int_ne(mqt_server_stop(&s), 0);
	}
	close(fd);
}
END_TEST

/* ======================================================================= */

static Suite *metrics_suite(void)
{
	Suite *su = suite_create("metrics");

	ADD(su, test_metrics_format_and_values);
	ADD(su, test_counters_follow_traffic);
	ADD(su, test_status_page);
	ADD(su, test_json_api);
	ADD(su, test_http_errors);
	ADD(su, test_clients_leave_early);
	ADD(su, test_off_by_default);
	ADD(su, test_port_in_use);
	return su;
}

int main(void)
{
	return mqt_run_suite(metrics_suite());
}
