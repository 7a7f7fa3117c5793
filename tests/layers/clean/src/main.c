/* check-layers fixture "clean": main -> server, core (allowed); <...>,
 * "config.h" and a header outside src/ ("mq/mq.h") are not nodes. */
#include "config.h"
#include <stdio.h>
#include "mq/mq.h"
#include "server.h"
#include "core/log.h"
