/*
 * The home worker's side of each request: parse the frame, answer what
 * needs no queue (HELLO, PING, errors), and route the rest to the owner of
 * the queue it names.  One table row per op.
 */
#ifndef MQD_DISPATCH_H
#define MQD_DISPATCH_H

#include "proto/proto.h"

struct mqd_conn;

/* f's payload points into the connection's input buffer: it is only valid
 * during this call, so anything that outlives it is copied. */
void mqd_dispatch_frame(struct mqd_conn *c, const struct mqd_frame *f);

#endif
