#include "server.h"
#include "store/queue.h"
