#include "route/topics.h"
