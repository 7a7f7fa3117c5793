/* check-layers fixture "cycle": store -> core -> route -> store. */
#include "store/queue.h"
#include "core/log.h"
