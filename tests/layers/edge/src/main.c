/* check-layers fixture "edge": proto -> core is the one include not
 * allowed; there is no cycle and no long file. */
#include "core/log.h"
