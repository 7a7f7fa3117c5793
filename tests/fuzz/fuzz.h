/*
 * What the fuzz targets share.  Each tests/fuzz/fuzz_T.c defines
 * LLVMFuzzerTestOneInput and is built twice: against libFuzzer by
 * "make fuzz", and with driver.c as its main by make check, which then
 * replays tests/fuzz/corpus/T/ and tests/fuzz/regress/T/ (doc/FUZZING.md).
 */
#ifndef MQD_FUZZ_H
#define MQD_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken promise is a finding as much as a crash is: say which, and
 * abort, so that libFuzzer keeps the input and make check fails. */
static inline void fuzz_fail(const char *file, int line, const char *what)
{
	fprintf(stderr, "%s:%d: fuzz check failed: %s\n", file, line, what);
	abort();
}

#define FUZZ_CHECK(cond) \
	((cond) ? (void)0 : fuzz_fail(__FILE__, __LINE__, #cond))

#endif
