/*
 * The control socket: a Unix stream socket where an operator (mqctl, a
 * script, `nc -U`) sends one command per line and reads one JSON object per
 * reply line, {"ok":true,...} or {"ok":false,"error":"..."}.
 *
 * It lives on the main thread's event loop and never touches a queue: what
 * it reports about queues it asks their owners for through the workers'
 * mailboxes (mqd_server_query_queues and the other mqd_server_* admin
 * calls), so an admin command never stops the message path.  Replies go
 * back in command order per client.  The commands and their replies are
 * documented in doc/CONTROL.md.
 */
#ifndef MQD_CONTROL_H
#define MQD_CONTROL_H

struct mqd_server;
struct mqd_control;

/*
 * Main thread, after the listeners are bound: create the socket at
 * s->cfg.control_socket with mode s->cfg.control_socket_mode (0600 by
 * default) and start accepting.  A stale socket
 * file (nothing listens on it) is replaced; a live one (another mqd) or a
 * path that cannot be used makes it fail.  Returns 0, or -1 after logging
 * why (s->control stays NULL).
 */
int mqd_control_start(struct mqd_server *s) __attribute__((warn_unused_result));

/*
 * Main thread, before s->base is freed: close the listener and every
 * control client, and unlink the socket file (only if it is still the one
 * we made).  A no-op when start failed or never ran; safe to call twice.
 * A queue query still in flight is answered into the void when it returns.
 */
void mqd_control_stop(struct mqd_server *s);

#endif
