/*
 * Logging: one line per event, with a timestamp and level, to stderr, a file
 * or syslog.  Safe to call from any thread (each line is one write).
 * Messages carry their context (connection id, peer, queue) in the text.
 */
#ifndef MQD_LOG_H
#define MQD_LOG_H

enum mqd_log_level { MQD_LOG_ERROR, MQD_LOG_WARN, MQD_LOG_INFO, MQD_LOG_DEBUG };

/* target: "" = stderr, "syslog" = syslog, else a file path (appended).
 * Returns 0, or -1 with errno set if the file cannot be opened. */
int mqd_log_open(const char *target, enum mqd_log_level level)
	__attribute__((warn_unused_result));
void mqd_log_set_level(enum mqd_log_level level);
enum mqd_log_level mqd_log_get_level(void);
/* Reopen the log file (after rotation); no-op for stderr and syslog. */
int mqd_log_reopen(void);
void mqd_log_close(void);

void mqd_log(enum mqd_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define mqd_log_error(...) mqd_log(MQD_LOG_ERROR, __VA_ARGS__)
#define mqd_log_warn(...) mqd_log(MQD_LOG_WARN, __VA_ARGS__)
#define mqd_log_info(...) mqd_log(MQD_LOG_INFO, __VA_ARGS__)
#define mqd_log_debug(...)                                                    \
	do {                                                                  \
		if (mqd_log_get_level() >= MQD_LOG_DEBUG)                     \
			mqd_log(MQD_LOG_DEBUG, __VA_ARGS__);                  \
	} while (0)

#endif
