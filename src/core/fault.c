/*
 * Fault injection (fault.h).  Linked into the daemon only, and only in a
 * build configured with --enable-fault-injection.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "core/fault.h"
#include "core/log.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
int __real_evbuffer_write(struct evbuffer *buf, evutil_socket_t fd);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
int __wrap_evbuffer_write(struct evbuffer *buf, evutil_socket_t fd);

struct plan {
	const char *env;
	atomic_bool armed;
	uint64_t first, every; /* fail the first-th call, then every every-th */
	uint64_t most;         /* at most this many failures (0: no bound) */
	atomic_uint_least64_t calls, failed;
};

static struct plan alloc_plan = {.env = "MQD_FAULT_ALLOC"};
static struct plan write_plan = {.env = "MQD_FAULT_WRITE"};

static void plan_read(struct plan *p)
{
	const char *v = getenv(p->env);
	unsigned long long first = 0, every = 0, most = 0;

	if (v == NULL || sscanf(v, "%llu,%llu,%llu", &first, &every, &most) < 1 ||
	    first == 0)
		return;
	p->first = first;
	p->every = every;
	p->most = most;
	atomic_store(&p->calls, 0);
	atomic_store(&p->armed, true);
	mqd_log_info("fault injection: %s=%llu,%llu,%llu", p->env, first, every,
	             most);
}

/* Whether this call is one to fail. */
static bool plan_hit(struct plan *p)
{
	uint64_t n;

	if (!atomic_load_explicit(&p->armed, memory_order_relaxed))
		return false;
	n = atomic_fetch_add(&p->calls, 1) + 1;
	if (n < p->first)
		return false;
	if (n != p->first && (p->every == 0 || (n - p->first) % p->every != 0))
		return false;
	/* Count it, unless the budget is spent (exactly: workers race). */
	uint64_t f = atomic_load(&p->failed);
	do {
		if (p->most != 0 && f >= p->most)
			return false;
	} while (!atomic_compare_exchange_weak(&p->failed, &f, f + 1));
	return true;
}

void mqd_fault_arm(void)
{
	plan_read(&alloc_plan);
	plan_read(&write_plan);
}

void mqd_fault_report(void)
{
	if (atomic_load(&alloc_plan.armed) || atomic_load(&write_plan.armed))
		mqd_log_info("fault injection: %llu allocations and %llu "
		             "writes failed on purpose",
		             (unsigned long long)atomic_load(&alloc_plan.failed),
		             (unsigned long long)atomic_load(&write_plan.failed));
}

void *__wrap_malloc(size_t n)
{
	if (plan_hit(&alloc_plan)) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
	if (plan_hit(&alloc_plan)) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
	/* realloc(p, 0) frees: never "fails". */
	if (n != 0 && plan_hit(&alloc_plan)) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_realloc(p, n);
}

int __wrap_evbuffer_write(struct evbuffer *buf, evutil_socket_t fd)
{
	if (plan_hit(&write_plan)) {
		errno = ECONNRESET;
		return -1;
	}
	return __real_evbuffer_write(buf, fd);
}

void mqd_fault_wrap_libevent(void)
{
	/* Under --wrap these names are the wrappers above. */
	event_set_mem_functions(malloc, realloc, free);
}
