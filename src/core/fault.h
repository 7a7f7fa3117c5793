/*
 * Fault injection, for tests only (./configure --enable-fault-injection).
 *
 * In such a build the daemon is linked with -Wl,--wrap for malloc, calloc,
 * realloc and evbuffer_write, so every allocation made by mqd's own code
 * (and, through event_set_mem_functions, by libevent) and every socket
 * write mqd makes itself can be made to fail on purpose:
 *
 *   MQD_FAULT_ALLOC=N[,K[,M]]  fail the Nth allocation counted after
 *                              mqd_fault_arm(), then every Kth after it
 *                              (K = 0 or absent: only the Nth), M
 *                              failures at most (0 or absent: no bound)
 *   MQD_FAULT_WRITE=N[,K[,M]]  the same for socket writes (ECONNRESET)
 *
 * Counting starts when the daemon is ready (main.c arms it), so start-up
 * itself is not what gets tested.  A failed allocation returns NULL with
 * errno ENOMEM, as a real one does.  Without the build option none of this
 * exists and the functions below compile to nothing.
 */
#ifndef MQD_FAULT_H
#define MQD_FAULT_H

#include <stdint.h>

#ifdef MQD_FAULT_INJECTION
/* Read the environment and start counting. */
void mqd_fault_arm(void);
/* Log how many faults were injected (at exit). */
void mqd_fault_report(void);
/* libevent's allocations go through the wrapped functions too. */
void mqd_fault_wrap_libevent(void);
#else
static inline void mqd_fault_arm(void) {}
static inline void mqd_fault_report(void) {}
static inline void mqd_fault_wrap_libevent(void) {}
#endif

#endif
