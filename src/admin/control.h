/*
 * The control socket: a Unix stream socket where an operator (mqctl, a
 * script, `nc -U`) sends one command per line and reads one JSON object per
 * reply line, {"ok":true,...} or {"ok":false,"error":"..."}.
 *
 * It lives on the main thread's event loop and never touches a queue: what
 * it reports it asks of the broker through the admin API (admin/api.h),
 * whose queries go to the queues' owners through the workers' mailboxes,
 * so an admin command never stops the message path.  Replies go back in
 * command order per client.  The commands and their replies are
 * documented in doc/CONTROL.md.
 */
#ifndef MQD_CONTROL_H
#define MQD_CONTROL_H

/* Control clients served at once; one more is refused.  The server
 * counts them in the descriptors it reserves (server/fdlimit.c). */
#define MQD_CONTROL_CLIENTS_MAX 64

struct event_base;
struct mqd_admin_api;
struct mqd_control;

/*
 * Main thread, before the broker's listeners are bound: create the socket
 * at the config's control_socket with mode control_socket_mode (0600 by
 * default), both read through api->config, and accept on base.  api is
 * copied; its ctx must live until mqd_control_stop.  A stale socket file
 * (nothing listens on it) is replaced; a live one (another mqd) or a path
 * that cannot be used makes it fail.  Returns 0 with *out set, or -1 after
 * logging why (*out NULL).
 */
int mqd_control_start(struct event_base *base, const struct mqd_admin_api *api,
                      struct mqd_control **out)
	__attribute__((warn_unused_result));

/*
 * Main thread, once the server has stopped (its queries answered) and
 * before base is freed: close the listener and every control client, and
 * unlink the socket file (only if it is still the one we made); *ctl
 * becomes NULL.  A no-op when *ctl is NULL, so safe to call twice.  A
 * query still in flight is answered into the void when it returns.
 */
void mqd_control_stop(struct mqd_control **ctl);

#endif
