/*
 * mqctl's printers: each command whose reply shape mqctl knows is printed
 * for a person (a table, a key/value block, a sentence); any other reply
 * as indented JSON.
 */
#ifndef MQCTL_PRINT_H
#define MQCTL_PRINT_H

#include <jansson.h>

/* A successful reply r to the command argv[0] (argv[1..argc-1] its
 * arguments), on standard output. */
void print_reply(const json_t *r, int argc, char **argv);

#endif
