#include "proto/proto.h"
