#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <string.h>

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "core/log.h"
#include "core/notify.h"

void mqd_notify(const char *state)
{
#ifdef HAVE_SYSTEMD
	int r = sd_notify(0, state);

	if (r < 0)
		mqd_log_warn("sd_notify %s: %s", state, strerror(-r));
#else
	(void)state;
#endif
}
