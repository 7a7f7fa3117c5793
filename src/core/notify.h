/*
 * Telling a service manager how things go (systemd's Type=notify):
 * "READY=1" once every socket is bound, "RELOADING=1" then "READY=1"
 * around a reload, "STOPPING=1" when a stop begins.  Without libsystemd,
 * or when systemd did not start us (no $NOTIFY_SOCKET), it does nothing.
 */
#ifndef MQD_NOTIFY_H
#define MQD_NOTIFY_H

void mqd_notify(const char *state);

#endif
