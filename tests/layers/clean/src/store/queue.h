#  include "core/log.h"
