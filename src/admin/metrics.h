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
 * the admin API (admin/api.h: query_queues, query_workers), so a scrape
 * never stops the message path.
 */
#ifndef MQD_METRICS_H
#define MQD_METRICS_H

struct event_base;
struct mqd_admin_api;
struct mqd_metrics;

/*
 * Main thread: when the config in force (api->config) has metrics_on, bind
 * its metrics_listen and start serving on base; logs
 * "metrics listening on http://HOST:PORT/" with the port actually bound.
 * api is copied; its ctx must live until mqd_metrics_stop.  Returns 0 with
 * *out set (NULL when metrics are off: nothing is done), or -1 after
 * logging why (*out NULL).
 */
int mqd_metrics_start(struct event_base *base, const struct mqd_admin_api *api,
                      struct mqd_metrics **out)
	__attribute__((warn_unused_result));

/*
 * Main thread, once the server has stopped and before base is freed: close
 * the listener and every HTTP connection; *m becomes NULL.  A scrape still
 * gathering its figures is dropped; the query answers that come back later
 * are discarded.  A no-op when *m is NULL (metrics off, start failed), so
 * safe to call twice.
 */
void mqd_metrics_stop(struct mqd_metrics **m);

#endif
