#include "worker.h" /* its own folder */
#include "core/log.h"
