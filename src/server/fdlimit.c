/*
 * The descriptor limit (RLIMIT_NOFILE) that max_connections needs.
 *
 * Every client connection is a descriptor, and a shell or a service
 * manager often starts mqd with a soft limit of 1024: the default
 * max_connections = 10000 could then never be reached, and the clients
 * past the limit would wait in the listen backlog (the listener pauses on
 * EMFILE, net/listener.c) instead of being served or told LIMIT.  So, as
 * Redis does for maxclients, mqd raises its soft limit to what
 * max_connections needs, as far as the hard limit allows, at start-up and
 * whenever a reload raises max_connections.  It never touches the hard
 * limit, which is the operator's (ulimit -Hn, systemd's LimitNOFILE=), and
 * never lowers the soft limit.  When the hard limit is too low it says how
 * many connections fit.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <string.h>
#include <sys/resource.h>

#include "admin/control.h"
#include "core/log.h"
#include "server/internal.h"

/*
 * Descriptors mqd needs besides its client connections:
 *  - FIXED: stdin, stdout, stderr, the log file or syslog socket, the main
 *    thread's epoll, eventfd and signal pipe, the control and metrics
 *    listeners, a pidfile or a configuration file being read, and room;
 *  - per worker: its epoll, its mailbox's eventfd and libevent's
 *    notification pipe (4);
 *  - per listen address: its socket;
 *  - the control socket's clients, and the metrics page's when it is on.
 */
#define FD_FIXED 32
#define FD_PER_WORKER 4
#define FD_METRICS_CLIENTS 64

static uint64_t fd_reserve(const struct mqd_config *cfg, unsigned nworkers)
{
	return FD_FIXED + (uint64_t)FD_PER_WORKER * nworkers + cfg->nlisten +
	       MQD_CONTROL_CLIENTS_MAX +
	       (cfg->metrics_on ? FD_METRICS_CLIENTS : 0);
}

int mqd_server_fd_limit(const struct mqd_config *cfg, unsigned nworkers)
{
	uint64_t reserve = fd_reserve(cfg, nworkers);
	uint64_t need = (uint64_t)cfg->max_connections + reserve, want;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		mqd_log_warn("cannot read the descriptor limit: %s",
		             strerror(errno));
		return -1;
	}
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
		return 0;
	want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need
	       ? need : rl.rlim_max;
	if (want > rl.rlim_cur) {
		rlim_t old = rl.rlim_cur;
		rl.rlim_cur = (rlim_t)want;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
			mqd_log_warn("cannot raise the descriptor limit from "
			             "%llu to %llu: %s", (unsigned long long)old,
			             (unsigned long long)want, strerror(errno));
			rl.rlim_cur = old;
		} else {
			mqd_log_info("descriptor limit (RLIMIT_NOFILE) raised "
			             "from %llu to %llu for max_connections = %u",
			             (unsigned long long)old,
			             (unsigned long long)want,
			             cfg->max_connections);
		}
	}
	if (rl.rlim_cur >= need)
		return 0;
	mqd_log_warn("max_connections = %u needs %llu descriptors, but the "
	             "limit is %llu (hard limit %llu): room for %llu client "
	             "connections (%llu descriptors kept for mqd itself); "
	             "clients beyond that wait to be accepted.  Raise the hard "
	             "limit (ulimit -Hn, LimitNOFILE= in the systemd unit) or "
	             "lower max_connections",
	             cfg->max_connections, (unsigned long long)need,
	             (unsigned long long)rl.rlim_cur,
	             (unsigned long long)rl.rlim_max,
	             (unsigned long long)(rl.rlim_cur > reserve
	                                  ? rl.rlim_cur - reserve : 0),
	             (unsigned long long)reserve);
	return 1;
}
