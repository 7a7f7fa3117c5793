/* server.c and server.h are one node, "server". */
#include "worker/worker.h"
