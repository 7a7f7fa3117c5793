/*
 * Prometheus metrics and the status page (see metrics.h for the contract).
 *
 * Everything here runs on the main thread, on the base it was started
 * on.  A request that needs queue or worker figures becomes a "scrape": it
 * asks the owners through the admin API and is answered when every query has called back
 * (each calls back exactly once, on the main thread).  Per-queue and
 * per-worker lines are rendered inside those callbacks, because the rows
 * are valid only during the call; the server-wide lines, which the main
 * thread can read at once, are put in front when the reply is sent.
 *
 * Lifetime: a scrape is reference-counted, one reference per query in
 * flight plus one held by the handler while it starts them, so it outlives
 * whatever it waits for.  The client may leave meanwhile: a close callback
 * on its connection forgets the request (evhttp frees it), and stop forgets
 * every request and the server (m) before evhttp_free.  A scrape that has
 * lost either only waits for its queries and frees itself.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <netdb.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <jansson.h>

#include "admin/api.h"
#include "admin/metrics.h"
#include "admin/report.h"
#include "core/log.h"

#define HTTP_TIMEOUT_S 10         /* a client that stalls is dropped */
#define HTTP_HEADERS_MAX 8192     /* bytes of request line and headers */
#define HTTP_BODY_MAX 4096        /* we read no bodies; refuse big ones */
#define SCRAPES_MAX 64            /* gathering at once; then 503 */
#define LISTEN_BACKLOG 64

#define CT_METRICS "text/plain; version=0.0.4; charset=utf-8"
#define CT_JSON "application/json"
#define CT_HTML "text/html; charset=utf-8"
#define CT_TEXT "text/plain; charset=utf-8"

struct scrape;

struct mqd_metrics {
	struct mqd_admin_api api; /* what we may ask of the broker */
	struct evhttp *http;
	struct scrape *scrapes; /* gathering now, doubly linked */
	unsigned nscrapes;
	char name[300];         /* "HOST:PORT" bound, for messages */
};

/* What a scrape gathers and how it answers. */
enum page { PAGE_METRICS, PAGE_API_QUEUES, PAGE_API_STATS };

struct scrape {
	struct scrape *prev, *next;
	struct mqd_metrics *m;           /* NULL once stop ran */
	struct evhttp_request *req;      /* NULL once the client is gone */
	struct evhttp_connection *evcon; /* req's, while req != NULL */
	enum page page;
	bool head;                       /* HEAD: headers only */
	bool unasked;                    /* a query could not be started */
	bool oom;                        /* a line or a row was lost */
	unsigned refs;
	size_t nqueues;
	struct mqd_queue_info sum;       /* PAGE_API_STATS: every queue's */
	struct evbuffer *queue_lines;    /* PAGE_METRICS */
	struct evbuffer *worker_lines;   /* PAGE_METRICS */
	json_t *rows;                    /* PAGE_API_QUEUES */
	json_t *workers;                 /* PAGE_API_STATS */
};

/* ---- replies ------------------------------------------------------------ */

/* Send body (may be NULL) with the usual headers; for HEAD the length is
 * stated and the body left out. */
static void send_reply(struct evhttp_request *req, bool head, int code,
                       const char *reason, const char *ctype,
                       struct evbuffer *body)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "Content-Type", ctype);
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	if (head && body != NULL) {
		char len[32];
		size_t n = evbuffer_get_length(body);

		snprintf(len, sizeof len, "%zu", n);
		evhttp_add_header(h, "Content-Length", len);
		evbuffer_drain(body, n);
	}
	evhttp_send_reply(req, code, reason, body);
}

static void send_text(struct evhttp_request *req, bool head, int code,
                      const char *reason, const char *text)
{
	struct evbuffer *b = evbuffer_new();

	if (b != NULL && evbuffer_add_printf(b, "%s\n", text) < 0) {
		evbuffer_free(b);
		b = NULL;
	}
	send_reply(req, head, code, reason, CT_TEXT, b);
	if (b != NULL)
		evbuffer_free(b);
}

/* obj (reference stolen) as the body; 500 if it cannot be built. */
static void send_json(struct evhttp_request *req, bool head, json_t *obj)
{
	char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
	struct evbuffer *b = text ? evbuffer_new() : NULL;

	json_decref(obj);
	if (b == NULL || evbuffer_add_printf(b, "%s\n", text) < 0)
		send_text(req, head, 500, "Internal Server Error",
		          "out of memory");
	else
		send_reply(req, head, 200, "OK", CT_JSON, b);
	if (b != NULL)
		evbuffer_free(b);
	free(text);
}

/* ---- exposition format -------------------------------------------------- */

static void put(struct scrape *sc, struct evbuffer *b, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void put(struct scrape *sc, struct evbuffer *b, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = evbuffer_add_vprintf(b, fmt, ap);
	va_end(ap);
	if (rc < 0)
		sc->oom = true;
}

/* "# HELP" and "# TYPE" of a family (help texts need no escaping). */
static void family(struct scrape *sc, struct evbuffer *b, const char *name,
                   const char *type, const char *help)
{
	put(sc, b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value as the format wants it: \ " and newline escaped. */
static void put_label_value(struct scrape *sc, struct evbuffer *b,
                            const char *s, size_t max)
{
	size_t i, start = 0;

	for (i = 0; i < max && s[i] != '\0'; i++) {
		const char *esc = s[i] == '\\' ? "\\\\"
		                : s[i] == '"'  ? "\\\""
		                : s[i] == '\n' ? "\\n" : NULL;
		if (esc == NULL)
			continue;
		if (evbuffer_add(b, s + start, i - start) < 0 ||
		    evbuffer_add(b, esc, 2) < 0)
			sc->oom = true;
		start = i + 1;
	}
	if (evbuffer_add(b, s + start, i - start) < 0)
		sc->oom = true;
}

/* A family for each figure the report table exports. */
static void queue_lines(struct scrape *sc, const struct mqd_queue_info *rows,
                        size_t n)
{
	struct evbuffer *b = sc->queue_lines;

	for (size_t f = 0; f < mqd_report_nqueue_fields; f++) {
		const struct mqd_report_field *fd = &mqd_report_queue_fields[f];

		if (fd->metric == NULL)
			continue;
		family(sc, b, fd->metric, fd->type, fd->help);
		for (size_t i = 0; i < n; i++) {
			put(sc, b, "%s{queue=\"", fd->metric);
			put_label_value(sc, b, rows[i].name,
			                sizeof rows[i].name);
			put(sc, b, "\"} %llu\n",
			    (unsigned long long)mqd_report_value(&rows[i], fd));
		}
	}
}

static void worker_lines(struct scrape *sc,
                         const struct mqd_worker_info *rows, size_t n)
{
	struct evbuffer *b = sc->worker_lines;

	for (size_t f = 0; f < mqd_report_nworker_fields; f++) {
		const struct mqd_report_field *fd = &mqd_report_worker_fields[f];

		if (fd->metric == NULL)
			continue;
		family(sc, b, fd->metric, fd->type, fd->help);
		for (size_t i = 0; i < n; i++)
			put(sc, b, "%s{worker=\"%u\"} %llu\n", fd->metric,
			    rows[i].index,
			    (unsigned long long)mqd_report_value(&rows[i], fd));
	}
}

/* The server-wide families, read now. */
static void server_lines(struct scrape *sc, struct evbuffer *b)
{
	struct mqd_server_stats st;

	memset(&st, 0, sizeof st);
	sc->m->api.stats(sc->m->api.ctx, &st);
	family(sc, b, "mqd_build_info", "gauge",
	       "Always 1; the version is in the label.");
	put(sc, b, "mqd_build_info{version=\"%s\"} 1\n", PACKAGE_VERSION);
	family(sc, b, "mqd_up", "gauge", "Always 1 while mqd answers.");
	put(sc, b, "mqd_up 1\n");
	family(sc, b, "mqd_uptime_seconds", "gauge",
	       "Seconds since mqd started.");
	put(sc, b, "mqd_uptime_seconds %.3f\n", (double)st.uptime_ms / 1000.0);
	family(sc, b, "mqd_connections", "gauge", "Client connections open.");
	put(sc, b, "mqd_connections %u\n", st.connections);
	family(sc, b, "mqd_workers", "gauge", "Worker threads.");
	put(sc, b, "mqd_workers %u\n", st.workers);
	family(sc, b, "mqd_queues", "gauge", "Queues that exist.");
	put(sc, b, "mqd_queues %zu\n", sc->nqueues);
	family(sc, b, "mqd_memory_resident_bytes", "gauge",
	       "Resident set size of the process.");
	put(sc, b, "mqd_memory_resident_bytes %llu\n",
	    (unsigned long long)mqd_report_rss_bytes());
	family(sc, b, "mqd_memory_accounted_bytes", "gauge",
	       "Bytes held by messages, all queues (what max_memory limits).");
	put(sc, b, "mqd_memory_accounted_bytes %llu\n",
	    (unsigned long long)st.mem_accounted);
	family(sc, b, "mqd_memory_limit_bytes", "gauge",
	       "The max_memory setting; 0 means no limit.");
	put(sc, b, "mqd_memory_limit_bytes %llu\n",
	    (unsigned long long)st.max_memory);
}

/* ---- JSON -------------------------------------------------------------- */

/* The control socket's `stats` object, without its "ok". */
static json_t *stats_json(struct scrape *sc)
{
	struct mqd_report_stats in;

	memset(&in, 0, sizeof in);
	sc->m->api.stats(sc->m->api.ctx, &in.server);
	sc->m->api.rates(sc->m->api.ctx, &in.rates);
	in.rss_bytes = mqd_report_rss_bytes();
	in.nqueues = sc->nqueues;
	in.sum = sc->sum;
	return mqd_report_stats_json(&in, json_incref(sc->workers));
}

/* ---- scrapes ------------------------------------------------------------ */

/* Whether anyone still waits for this scrape's answer. */
static bool scrape_live(const struct scrape *sc)
{
	return sc->m != NULL && sc->req != NULL;
}

static void scrape_unlink(struct scrape *sc)
{
	struct mqd_metrics *m = sc->m;

	if (m == NULL)
		return;
	if (sc->prev)
		sc->prev->next = sc->next;
	else
		m->scrapes = sc->next;
	if (sc->next)
		sc->next->prev = sc->prev;
	m->nscrapes--;
	sc->prev = sc->next = NULL;
	sc->m = NULL;
}

/* Forget the request (evhttp frees it with its connection). */
static void scrape_forget_req(struct scrape *sc)
{
	if (sc->req == NULL)
		return;
	evhttp_connection_set_closecb(sc->evcon, NULL, NULL);
	sc->req = NULL;
	sc->evcon = NULL;
}

/* The client's connection is going away before we answered. */
static void conn_close_cb(struct evhttp_connection *evcon, void *arg)
{
	struct scrape *sc = arg;

	(void)evcon;
	mqd_log_debug("metrics: client left before its reply");
	/* A request evhttp detached from its failed connection is ours to
	 * free; one still attached is freed with the connection. */
	if (sc->req != NULL && evhttp_request_get_connection(sc->req) == NULL)
		evhttp_request_free(sc->req);
	sc->req = NULL;
	sc->evcon = NULL;
}

static void scrape_finish(struct scrape *sc)
{
	struct evhttp_request *req = sc->req;
	struct evbuffer *b;

	scrape_forget_req(sc); /* before the reply can free the connection */
	if (sc->unasked) {
		send_text(req, sc->head, 503, "Service Unavailable",
		          "cannot query the workers (shutting down?)");
		return;
	}
	switch (sc->page) {
	case PAGE_METRICS:
		b = evbuffer_new();
		if (b != NULL) {
			server_lines(sc, b);
			if (evbuffer_add_buffer(b, sc->queue_lines) < 0 ||
			    evbuffer_add_buffer(b, sc->worker_lines) < 0)
				sc->oom = true;
		}
		if (b == NULL || sc->oom)
			send_text(req, sc->head, 500, "Internal Server Error",
			          "out of memory");
		else
			send_reply(req, sc->head, 200, "OK", CT_METRICS, b);
		if (b != NULL)
			evbuffer_free(b);
		break;
	case PAGE_API_QUEUES:
		send_json(req, sc->head, sc->oom ? NULL : json_incref(sc->rows));
		break;
	case PAGE_API_STATS:
		send_json(req, sc->head, sc->oom ? NULL : stats_json(sc));
		break;
	}
}

static void scrape_unref(struct scrape *sc)
{
	if (--sc->refs > 0)
		return;
	if (scrape_live(sc))
		scrape_finish(sc);
	scrape_forget_req(sc);
	scrape_unlink(sc);
	if (sc->queue_lines)
		evbuffer_free(sc->queue_lines);
	if (sc->worker_lines)
		evbuffer_free(sc->worker_lines);
	json_decref(sc->rows);
	json_decref(sc->workers);
	free(sc);
}

static void queues_cb(void *arg, const struct mqd_queue_info *rows, size_t n)
{
	struct scrape *sc = arg;

	if (scrape_live(sc)) {
		sc->nqueues = n;
		for (size_t i = 0; i < n; i++)
			mqd_report_add_queue(&sc->sum, &rows[i]);
		if (sc->page == PAGE_METRICS)
			queue_lines(sc, rows, n);
		for (size_t i = 0; sc->rows != NULL && i < n; i++)
			if (json_array_append_new(sc->rows,
			                          mqd_report_queue_json(&rows[i],
			                                                false)) < 0)
				sc->oom = true;
	}
	scrape_unref(sc);
}

static void workers_cb(void *arg, const struct mqd_worker_info *rows,
                       size_t n)
{
	struct scrape *sc = arg;

	if (scrape_live(sc) && sc->page == PAGE_METRICS)
		worker_lines(sc, rows, n);
	for (size_t i = 0; scrape_live(sc) && sc->workers != NULL && i < n; i++)
		if (json_array_append_new(sc->workers,
		                          mqd_report_worker_json(&rows[i])) < 0)
			sc->oom = true;
	scrape_unref(sc);
}

/* Gather what page needs and answer req when it is in. */
static void scrape_start(struct mqd_metrics *m, struct evhttp_request *req,
                         enum page page, bool head)
{
	struct scrape *sc;

	if (m->nscrapes >= SCRAPES_MAX) {
		send_text(req, head, 503, "Service Unavailable",
		          "too many requests in progress");
		return;
	}
	sc = calloc(1, sizeof *sc);
	if (sc == NULL)
		goto oom;
	sc->page = page;
	sc->head = head;
	if (page == PAGE_METRICS &&
	    ((sc->queue_lines = evbuffer_new()) == NULL ||
	     (sc->worker_lines = evbuffer_new()) == NULL))
		goto oom;
	if (page == PAGE_API_QUEUES && (sc->rows = json_array()) == NULL)
		goto oom;
	if (page == PAGE_API_STATS && (sc->workers = json_array()) == NULL)
		goto oom;
	sc->m = m;
	sc->req = req;
	sc->evcon = evhttp_request_get_connection(req);
	sc->refs = 1; /* ours, until every query is started */
	sc->next = m->scrapes;
	if (m->scrapes)
		m->scrapes->prev = sc;
	m->scrapes = sc;
	m->nscrapes++;
	evhttp_connection_set_closecb(sc->evcon, conn_close_cb, sc);

	sc->refs++;
	if (m->api.query_queues(m->api.ctx, NULL, queues_cb, sc) < 0) {
		sc->refs--;
		sc->unasked = true;
	}
	if (page != PAGE_API_QUEUES && !sc->unasked) {
		sc->refs++;
		if (m->api.query_workers(m->api.ctx, workers_cb, sc) < 0) {
			sc->refs--;
			sc->unasked = true;
		}
	}
	scrape_unref(sc); /* answers now if every query already has */
	return;
oom:
	if (sc != NULL) {
		if (sc->queue_lines)
			evbuffer_free(sc->queue_lines);
		if (sc->worker_lines)
			evbuffer_free(sc->worker_lines);
		json_decref(sc->rows);
		json_decref(sc->workers);
		free(sc);
	}
	send_text(req, head, 500, "Internal Server Error", "out of memory");
}

/* ---- the status page ------------------------------------------------------ */

/* Self-contained: no external asset, no URL of another site.  It polls
 * api/queues and api/stats (relative, so it works behind a path prefix)
 * and keeps the last N depths per queue for the sparklines; the SVG is
 * built as markup so the page needs no namespace URL. */
static const char status_page[] =
"<!doctype html>\n"
"<html lang='en'><head><meta charset='utf-8'>\n"
"<meta name='viewport' content='width=device-width,initial-scale=1'>\n"
"<title>mqd status</title>\n"
"<style>\n"
"body{font:14px system-ui,sans-serif;margin:1.5em;color:#222;"
"background:#fafafa}\n"
"h1{font-size:1.3em;margin:0 0 .4em}\n"
"#st{color:#555;margin-bottom:1em}#err{color:#b00}\n"
"table{border-collapse:collapse;background:#fff}\n"
"th,td{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:right;"
"white-space:nowrap}\n"
"th{background:#eee;font-weight:600}\n"
"td:first-child,th:first-child{text-align:left;font-family:monospace}\n"
"svg{display:block}polyline{fill:none;stroke:#2a6fdb;stroke-width:1.5}\n"
"</style></head><body>\n"
"<h1>mqd</h1><div id='st'>loading...</div><div id='err'></div>\n"
"<table><thead><tr><th>queue</th><th>ready</th><th>held</th>"
"<th>delayed</th><th>consumers</th><th>in/s</th><th>out/s</th>"
"<th>depth, last 2 min</th></tr></thead><tbody id='q'></tbody></table>\n"
"<script>\n"
"'use strict';\n"
"var N=60,hist={},prev={},prevT=0;\n"
"function $(i){return document.getElementById(i)}\n"
"function num(x){return x>=1e9?(x/1e9).toFixed(1)+'G':x>=1e6?"
"(x/1e6).toFixed(1)+'M':x>=1e4?(x/1e3).toFixed(1)+'k':String(Math.round(x))}\n"
"function rate(x){return x<10?x.toFixed(1):num(x)}\n"
"function size(x){var u=['B','KiB','MiB','GiB','TiB'],i=0;"
"while(x>=1024&&i<4){x/=1024;i++}return(i?x.toFixed(1):x)+' '+u[i]}\n"
"function dur(s){var d=Math.floor(s/86400),h=Math.floor(s%86400/3600),"
"m=Math.floor(s%3600/60);return d?d+'d '+h+'h':h?h+'h '+m+'m':m+'m '+s%60+'s'}\n"
"function spark(a){var w=120,h=24,mx=1,p=[],i;\n"
" for(i=0;i<a.length;i++)if(a[i]>mx)mx=a[i];\n"
" for(i=0;i<a.length;i++)p.push((w-(a.length-1-i)*w/(N-1)).toFixed(1)+','+"
"(h-1-a[i]*(h-2)/mx).toFixed(1));\n"
" return '<svg width='+w+' height='+h+' viewBox=\"0 0 '+w+' '+h+'\">'+"
"'<polyline points=\"'+p.join(' ')+'\"/></svg>'}\n"
"function cell(tr,t){var td=document.createElement('td');"
"td.textContent=t;tr.appendChild(td);return td}\n"
"function queues(rows){var now=Date.now(),dt=prevT?(now-prevT)/1000:0,"
"tb=$('q'),seen={},np={};\n"
" tb.textContent='';\n"
" rows.forEach(function(r){var h=hist[r.name]||[],p=prev[r.name],"
"tr=document.createElement('tr');\n"
"  h.push(r.ready+r.held+r.delayed);if(h.length>N)h.shift();\n"
"  hist[r.name]=h;seen[r.name]=1;np[r.name]=r;\n"
"  cell(tr,r.name);cell(tr,num(r.ready));cell(tr,num(r.held));"
"cell(tr,num(r.delayed));cell(tr,num(r.consumers));\n"
"  cell(tr,p&&dt?rate(Math.max(0,r.sent-p.sent)/dt):'-');\n"
"  cell(tr,p&&dt?rate(Math.max(0,r.delivered-p.delivered)/dt):'-');\n"
"  cell(tr,'').innerHTML=spark(h);tb.appendChild(tr)});\n"
" for(var k in hist)if(!seen[k])delete hist[k];\n"
" prev=np;prevT=now}\n"
"function stats(s){$('st').textContent='mqd '+s.version+' \\u00b7 up '+"
"dur(s.uptime_s)+' \\u00b7 '+s.connections+' connections \\u00b7 '+"
"s.queues+' queues \\u00b7 '+num(s.messages.ready)+' ready, '+"
"num(s.messages.held)+' held \\u00b7 in '+rate(s.rates.in)+'/s, out '+"
"rate(s.rates.out)+'/s \\u00b7 memory '+size(s.memory.rss_bytes)+' RSS'}\n"
"function get(u){return fetch(u,{cache:'no-store'}).then(function(r){"
"if(!r.ok)throw new Error(u+': '+r.status);return r.json()})}\n"
"function tick(){Promise.all([get('api/queues'),get('api/stats')])"
".then(function(v){queues(v[0]);stats(v[1]);$('err').textContent=''})\n"
" .catch(function(e){$('err').textContent='cannot reach mqd: '+e.message})\n"
" .then(function(){setTimeout(tick,2000)})}\n"
"tick();\n"
"</script></body></html>\n";

static void serve_page(struct mqd_metrics *m, struct evhttp_request *req,
                       bool head)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evbuffer *b = evbuffer_new();

	(void)m;
	if (b == NULL ||
	    evbuffer_add_reference(b, status_page, sizeof status_page - 1,
	                           NULL, NULL) < 0) {
		if (b != NULL)
			evbuffer_free(b);
		send_text(req, head, 500, "Internal Server Error",
		          "out of memory");
		return;
	}
	/* Inline script and style only; it talks to this server alone. */
	evhttp_add_header(h, "Content-Security-Policy",
	                  "default-src 'none'; script-src 'unsafe-inline'; "
	                  "style-src 'unsafe-inline'; connect-src 'self'");
	send_reply(req, head, 200, "OK", CT_HTML, b);
	evbuffer_free(b);
}

/* ---- routing ------------------------------------------------------------ */

static void serve_metrics(struct mqd_metrics *m, struct evhttp_request *req,
                          bool head)
{
	scrape_start(m, req, PAGE_METRICS, head);
}

static void serve_api_queues(struct mqd_metrics *m,
                             struct evhttp_request *req, bool head)
{
	scrape_start(m, req, PAGE_API_QUEUES, head);
}

static void serve_api_stats(struct mqd_metrics *m, struct evhttp_request *req,
                            bool head)
{
	scrape_start(m, req, PAGE_API_STATS, head);
}

static const struct route {
	const char *path;
	/* Must answer req exactly once, now or later. */
	void (*serve)(struct mqd_metrics *m, struct evhttp_request *req,
	              bool head);
} routes[] = {
	{ "/", serve_page },
	{ "/metrics", serve_metrics },
	{ "/api/queues", serve_api_queues },
	{ "/api/stats", serve_api_stats },
};

static void request_cb(struct evhttp_request *req, void *arg)
{
	struct mqd_metrics *m = arg;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	bool head = cmd == EVHTTP_REQ_HEAD;

	if (cmd != EVHTTP_REQ_GET && !head) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		                  "Allow", "GET, HEAD");
		send_text(req, false, 405, "Method Not Allowed",
		          "only GET and HEAD");
		return;
	}
	if (path == NULL || path[0] == '\0')
		path = "/";
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		if (strcmp(routes[i].path, path) == 0) {
			routes[i].serve(m, req, head);
			return;
		}
	}
	send_text(req, head, 404, "Not Found", "not found");
}

/* ---- start and stop ------------------------------------------------------ */

/* "HOST:PORT", "[HOST]:PORT" for IPv6, of a bound socket. */
static void sock_name(evutil_socket_t fd, char *out, size_t cap)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	char host[NI_MAXHOST], serv[NI_MAXSERV];

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0 ||
	    getnameinfo((struct sockaddr *)&ss, len, host, sizeof host, serv,
	                sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		snprintf(out, cap, "?");
		return;
	}
	snprintf(out, cap, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s",
	         host, serv);
}

/* A listening socket on a, disabled until evhttp takes it; NULL (logged)
 * on failure. */
static struct evconnlistener *bind_addr(struct event_base *base,
                                        const struct mqd_listen_addr *a)
{
	struct addrinfo hints, *res = NULL, *ai;
	struct evconnlistener *lev = NULL;
	char port[8];
	int rc, err = 0;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(port, sizeof port, "%u", a->port);
	rc = getaddrinfo(a->host[0] ? a->host : NULL, port, &hints, &res);
	if (rc != 0) {
		mqd_log_error("metrics_listen %s:%u: %s", a->host, a->port,
		              gai_strerror(rc));
		return NULL;
	}
	for (ai = res; ai != NULL && lev == NULL; ai = ai->ai_next) {
		lev = evconnlistener_new_bind(
			base, NULL, NULL,
			LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
				LEV_OPT_CLOSE_ON_EXEC,
			LISTEN_BACKLOG, ai->ai_addr, (int)ai->ai_addrlen);
		if (lev == NULL)
			err = EVUTIL_SOCKET_ERROR();
	}
	freeaddrinfo(res);
	if (lev == NULL)
		mqd_log_error("metrics_listen %s:%u: %s", a->host, a->port,
		              evutil_socket_error_to_string(err));
	return lev;
}

int mqd_metrics_start(struct event_base *base,
                      const struct mqd_admin_api *api,
                      struct mqd_metrics **out)
{
	const struct mqd_config *cfg = api->config(api->ctx);
	struct mqd_metrics *m;
	struct evconnlistener *lev;

	*out = NULL;
	if (!cfg->metrics_on)
		return 0;
	m = calloc(1, sizeof *m);
	if (m == NULL || (m->http = evhttp_new(base)) == NULL) {
		mqd_log_error("metrics: out of memory");
		free(m);
		return -1;
	}
	m->api = *api;
	evhttp_set_timeout(m->http, HTTP_TIMEOUT_S);
	evhttp_set_max_headers_size(m->http, HTTP_HEADERS_MAX);
	evhttp_set_max_body_size(m->http, HTTP_BODY_MAX);
	/* Every method reaches request_cb, which answers 405 itself (with
	 * Allow) for all but GET and HEAD. */
	evhttp_set_allowed_methods(
		m->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
		EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
		EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_default_content_type(m->http, NULL);
	evhttp_set_gencb(m->http, request_cb, m);
	lev = bind_addr(base, &cfg->metrics_listen);
	if (lev == NULL) {
		evhttp_free(m->http);
		free(m);
		return -1;
	}
	sock_name(evconnlistener_get_fd(lev), m->name, sizeof m->name);
	/* From here the listener is the http server's to free. */
	if (evhttp_bind_listener(m->http, lev) == NULL) {
		mqd_log_error("metrics %s: cannot serve HTTP", m->name);
		evconnlistener_free(lev);
		evhttp_free(m->http);
		free(m);
		return -1;
	}
	*out = m;
	mqd_log_info("metrics listening on http://%s/", m->name);
	return 0;
}

void mqd_metrics_stop(struct mqd_metrics **pm)
{
	struct mqd_metrics *m = *pm;

	if (m == NULL)
		return;
	*pm = NULL;
	/* Scrapes still gathering lose their request and their server;
	 * each frees itself when its last query answers. */
	while (m->scrapes != NULL) {
		struct scrape *sc = m->scrapes;

		scrape_forget_req(sc);
		scrape_unlink(sc);
	}
	evhttp_free(m->http); /* its connections, requests and listener */
	mqd_log_debug("metrics %s closed", m->name);
	free(m);
}
