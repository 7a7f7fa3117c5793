/* check-layers fixture "long": store/big.c has 1,501 lines. */
#include "core/log.h"
