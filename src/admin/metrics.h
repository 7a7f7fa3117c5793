/*
 * Prometheus metrics and the status page, over HTTP (libevent's evhttp) on
 * [server] metrics_listen:
 *
 *   GET /metrics      the text exposition format 0.0.4: server, per-queue
 *                     and per-worker gauges and counters
 *   GET /             a small self-contained HTML page (queue table, depth
 *                     sparklines) that polls /api/queues
 *   GET /api/queues   every queue, one JSON object each, sorted by name
 *   GET /api/stats    server totals as JSON (like the control socket's stats)
 *
 * HEAD is answered like GET without the body; other methods get 405, other
 * paths 404.  Like the control socket it lives on the main thread's event
 * loop and never touches a queue: the figures come from the owners through
 * the query API (mqd_server_query_queues / _workers), so a scrape never
 * stops the message path.
 */
#ifndef MQD_METRICS_H
#define MQD_METRICS_H

struct mqd_server;
struct mqd_metrics;

/*
 * Main thread, once s->base exists: when s->cfg.metrics_on, bind
 * s->cfg.metrics_listen and start serving; logs
 * "metrics listening on http://HOST:PORT/" with the port actually bound.
 * Returns 0 (also when metrics are off: nothing is done), or -1 after
 * logging why (s->metrics stays NULL).
 */
int mqd_metrics_start(struct mqd_server *s) __attribute__((warn_unused_result));

/*
 * Main thread, before s->base is freed: close the listener and every HTTP
 * connection.  A scrape still gathering its figures is dropped; the query
 * answers that come back later are discarded.  A no-op when metrics are off
 * or start failed; safe to call twice.
 */
void mqd_metrics_stop(struct mqd_server *s);

#endif
