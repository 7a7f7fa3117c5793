/*
 * The bodies test_kill sends and ack_consumer checks: "kq SEQ(8 digits)|"
 * then 32 bytes that depend on the sequence number, so a body that is
 * damaged, cut short or swapped with another message's fails the check.
 */
#ifndef MQT_KILL_BODY_H
#define MQT_KILL_BODY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define KILL_BODY_HEAD 12 /* "kq 00000042|" */
#define KILL_BODY_LEN (KILL_BODY_HEAD + 32)

static inline uint8_t kill_body_byte(uint32_t seq, size_t i)
{
	uint32_t x = seq * 2654435761u + (uint32_t)i * 40503u;

	return (uint8_t)(x >> 13);
}

static inline void kill_body_make(uint8_t *b, uint32_t seq)
{
	char head[KILL_BODY_HEAD + 1];

	snprintf(head, sizeof head, "kq %08u|", (unsigned)(seq % 100000000u));
	memcpy(b, head, KILL_BODY_HEAD);
	for (size_t i = KILL_BODY_HEAD; i < KILL_BODY_LEN; i++)
		b[i] = kill_body_byte(seq, i);
}

/* 0 and *seq, or -1 (*seq is then what could be read, else UINT32_MAX). */
static inline int kill_body_check(const uint8_t *b, size_t len, uint32_t *seq)
{
	uint32_t s = 0;

	*seq = UINT32_MAX;
	if (len < KILL_BODY_HEAD || memcmp(b, "kq ", 3) != 0 ||
	    b[KILL_BODY_HEAD - 1] != '|')
		return -1;
	for (size_t i = 3; i < KILL_BODY_HEAD - 1; i++) {
		if (b[i] < '0' || b[i] > '9')
			return -1;
		s = s * 10 + (uint32_t)(b[i] - '0');
	}
	*seq = s;
	if (len != KILL_BODY_LEN)
		return -1;
	for (size_t i = KILL_BODY_HEAD; i < KILL_BODY_LEN; i++)
		if (b[i] != kill_body_byte(s, i))
			return -1;
	return 0;
}

#endif
