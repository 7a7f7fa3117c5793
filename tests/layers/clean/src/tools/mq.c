/* src/tools/** is one node, "tools". */
#include "tools/bench/bench.h"
#include "client/client.h"
