#include "store/queue.h"
