#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdlib.h>
#include <string.h>

#include "store/message.h"

static const uint8_t no_headers[2] = {0, 0};

struct mqd_msg *mqd_msg_new(const void *headers, size_t headers_len,
                            uint16_t nheaders, const void *body,
                            size_t body_len)
{
	struct mqd_msg *m;

	if (headers == NULL || headers_len < 2) {
		headers = no_headers;
		headers_len = 2;
		nheaders = 0;
	}
	if (headers_len > UINT32_MAX || body_len > UINT32_MAX)
		return NULL;
	m = malloc(sizeof *m + headers_len + body_len);
	if (m == NULL)
		return NULL;
	memset(m, 0, sizeof *m);
	m->nheaders = nheaders;
	m->headers_len = (uint32_t)headers_len;
	m->body_len = (uint32_t)body_len;
	memcpy(m->data, headers, headers_len);
	if (body_len)
		memcpy(m->data + headers_len, body, body_len);
	return m;
}

void mqd_msg_free(struct mqd_msg *m)
{
	free(m);
}
