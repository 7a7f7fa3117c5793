#include "proto/proto.h"
#include "mq/mq.h"
