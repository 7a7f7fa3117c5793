/*
 * mqd.conf: the file, read through libinih against the table of keys in
 * config_keys.c.
 *
 * Sections are rows of sections[] below; a section that takes a name
 * ([queue NAME]) gets a begin hook that makes room for the instance.
 * A [queue NAME] key the section does not give takes the [defaults] value;
 * since [defaults] may come after the queues, that is resolved once the
 * whole file is read, and so is the dead-letter loop check, which needs
 * every queue.  Relative paths (log_file, pidfile,
 * control_socket) are made absolute as they are read, against the config
 * file's directory, so that "-d" (which changes to /) still finds them.
 *
 * libinih splits lines; we feed it through our own reader so that we always
 * know the line number (Debian builds it without INI_HANDLER_LINENO), can
 * reject a section header even when no key follows it, and can stop at the
 * first error by reporting end of input.  The reader also refuses what inih
 * would quietly accept or mangle: text after "]", "key: value", indented
 * continuation lines, over-long lines (inih would split them in two).
 *
 * A load parses into a fresh struct and copies it out only when the whole
 * file was good, so a caller's config is never left half-updated.
 */
#ifdef HAVE_CONFIG_H
/* autoconf's config.h.  The angle brackets matter: "config.h" would find
 * core/config.h next to this file before the build directory's. */
#include <config.h>
#endif

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ini.h>

#include "core/config.h"
#include "core/config_keys.h"
#include "proto/proto.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* A config file is a few kilobytes; refusing more catches "-c /dev/zero". */
#define CONFIG_MAX_BYTES (1024 * 1024)

struct parse;

struct section {
	const char *name; /* [server] */
	bool takes_arg;   /* [queue NAME] */
	/* Where the keys' offsets point: the struct of the current instance. */
	void *(*base)(struct mqd_config *cfg);
	/* Called at the header (p->line); for sections that take a name it
	 * makes room for the new instance.  0, or -1 with msg. */
	int (*begin)(struct parse *p, const char *arg, char *msg, size_t msglen);
};

static void *server_base(struct mqd_config *cfg)
{
	return cfg;
}

static void *defaults_base(struct mqd_config *cfg)
{
	return &cfg->defaults;
}

/* The instance being read is the last one begun. */
static void *queue_base(struct mqd_config *cfg)
{
	return &cfg->queues[cfg->nqueues - 1];
}

static int defaults_begin(struct parse *p, const char *arg, char *msg,
                          size_t msglen);
static int queue_begin(struct parse *p, const char *arg, char *msg,
                       size_t msglen);

/* Add [tls], [users] here, with their keys in config_keys.c. */
static const struct section sections[] = {
	{ .name = "server", .base = server_base },
	{ .name = "defaults", .base = defaults_base, .begin = defaults_begin },
	{ .name = "queue", .takes_arg = true, .base = queue_base,
	  .begin = queue_begin },
};

#define NSECTIONS ARRAY_LEN(sections)

/* ------------------------------------------------------------ defaults */

static void apply_defaults(struct mqd_config *cfg, const struct section *sec)
{
	void *base = sec->base(cfg);
	char msg[MSG_MAX];
	size_t i;

	for (i = 0; i < mqd_config_nkeys; i++) {
		const struct key *k = &mqd_config_table[i];

		if (strcmp(k->section, sec->name) != 0)
			continue;
		if (mqd_config_set_key(k, base, k->def, msg, sizeof(msg)) < 0) {
			/* A bug in the table, caught by the first test run. */
			fprintf(stderr, "mqd: bad default for %s.%s: %s\n",
			        k->section, k->name, msg);
			abort();
		}
	}
}

void mqd_config_defaults(struct mqd_config *cfg)
{
	size_t i;

	memset(cfg, 0, sizeof(*cfg));
	/* Sections with a name get their defaults when an instance begins. */
	for (i = 0; i < NSECTIONS; i++)
		if (!sections[i].takes_arg)
			apply_defaults(cfg, &sections[i]);
}

void mqd_config_free(struct mqd_config *cfg)
{
	free(cfg->queues);
	cfg->queues = NULL;
	cfg->nqueues = 0;
}

/* ------------------------------------------------------------ the file */

struct parse {
	const char *name;          /* FILE in messages */
	bool is_file;              /* name is the file's path (else a label) */
	const char *text;
	size_t len, pos;           /* text[pos..len) is still to read */
	int line;                  /* of the line last handed to inih */
	struct mqd_config *cfg;
	const struct section *sec; /* NULL before the first header */
	char sec_label[272];       /* the header as written, for messages */
	int sec_line[NSECTIONS];   /* first header of each; 0 = none yet */
	char *err;
	size_t errlen;
	bool failed;
	/* [queue NAME]: room in cfg->queues, which keys each queue gave
	 * (queue_key_bit; the rest come from [defaults] at the end), and an
	 * index of their names (open addressing: queue index + 1, 0 = free). */
	size_t cap;
	uint32_t *given;
	size_t *slots;
	size_t nslots;             /* 0 or a power of two */
	/* Where relative paths go, once a relative path needs it. */
	char dir[4096];
	bool have_dir;
	/* Per row of the table of keys: where set in this section; 0 = not. */
	int key_line[];
};

static void parse_fail(struct parse *p, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void parse_fail(struct parse *p, int line, const char *fmt, ...)
{
	va_list ap;
	int n;

	p->failed = true;
	if (p->err == NULL || p->errlen == 0)
		return;
	n = snprintf(p->err, p->errlen, "%s:%d: ", p->name, line);
	if (n < 0 || (size_t)n >= p->errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
	va_end(ap);
}
static bool is_comment_char(char c)
{
	return c == '#' || c == ';';
}

/* "[kind]" or "[kind name]", with nothing after "]" but a comment. */
static int begin_section(struct parse *p, const char *line)
{
	const char *inner = line + 1, *close = strchr(line, ']'), *e, *t;
	char hdr[sizeof(p->sec_label)], msg[MSG_MAX], *arg;
	size_t i, k;

	if (close == NULL) {
		parse_fail(p, p->line, "section header without ']'");
		return -1;
	}
	for (t = close + 1; isspace((unsigned char)*t); t++)
		;
	if (*t != '\0' && !is_comment_char(*t)) {
		parse_fail(p, p->line, "text after section header: '%s'", t);
		return -1;
	}
	while (inner < close && isspace((unsigned char)*inner))
		inner++;
	for (e = close; e > inner && isspace((unsigned char)e[-1]); e--)
		;
	if ((size_t)(e - inner) >= sizeof(hdr)) {
		parse_fail(p, p->line, "section header too long");
		return -1;
	}
	memcpy(hdr, inner, (size_t)(e - inner));
	hdr[e - inner] = '\0';
	for (arg = hdr; *arg != '\0' && !isspace((unsigned char)*arg); arg++)
		;
	k = (size_t)(arg - hdr);
	while (isspace((unsigned char)*arg))
		arg++;

	for (i = 0; i < NSECTIONS; i++)
		if (strlen(sections[i].name) == k &&
		    strncmp(sections[i].name, hdr, k) == 0)
			break;
	if (i == NSECTIONS || (*arg != '\0' && !sections[i].takes_arg)) {
		parse_fail(p, p->line, "unknown section [%s]", hdr);
		return -1;
	}
	if (sections[i].takes_arg && *arg == '\0') {
		parse_fail(p, p->line, "section [%s] needs a name", hdr);
		return -1;
	}
	if (!sections[i].takes_arg && p->sec_line[i] != 0) {
		parse_fail(p, p->line, "repeated section [%s] (first at line %d)",
		           hdr, p->sec_line[i]);
		return -1;
	}
	if (sections[i].begin != NULL &&
	    sections[i].begin(p, arg, msg, sizeof(msg)) < 0) {
		parse_fail(p, p->line, "%s", msg);
		return -1;
	}
	if (sections[i].takes_arg)
		apply_defaults(p->cfg, &sections[i]);
	if (p->sec_line[i] == 0)
		p->sec_line[i] = p->line;
	p->sec = &sections[i];
	memcpy(p->sec_label, hdr, sizeof(hdr));
	/* Each instance of a named section may set each of its keys once. */
	for (k = 0; k < mqd_config_nkeys; k++)
		if (strcmp(mqd_config_table[k].section, sections[i].name) == 0)
			p->key_line[k] = 0;
	return 0;
}

/* ------------------------------------------------------------ [queue NAME] */

static size_t name_hash(const char *s)
{
	uint64_t h = 14695981039346656037ULL; /* FNV-1a */

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return (size_t)h;
}

/* The index in cfg->queues of the queue called name, or SIZE_MAX. */
static size_t index_find(const struct parse *p, const char *name)
{
	size_t i, s;

	if (p->nslots == 0)
		return SIZE_MAX;
	for (i = name_hash(name) & (p->nslots - 1); (s = p->slots[i]) != 0;
	     i = (i + 1) & (p->nslots - 1))
		if (strcmp(p->cfg->queues[s - 1].name, name) == 0)
			return s - 1;
	return SIZE_MAX;
}

static void index_put(size_t *slots, size_t nslots, const char *name,
                      size_t qi)
{
	size_t i = name_hash(name) & (nslots - 1);

	while (slots[i] != 0)
		i = (i + 1) & (nslots - 1);
	slots[i] = qi + 1;
}

/* Index cfg->queues[qi], whose name is set; the table stays half empty. */
static int index_add(struct parse *p, size_t qi)
{
	if (2 * (qi + 1) > p->nslots) {
		size_t n = p->nslots != 0 ? 2 * p->nslots : 64, j;
		size_t *slots = calloc(n, sizeof(*slots));

		if (slots == NULL)
			return -1;
		for (j = 0; j < qi; j++)
			index_put(slots, n, p->cfg->queues[j].name, j);
		free(p->slots);
		p->slots = slots;
		p->nslots = n;
	}
	index_put(p->slots, p->nslots, p->cfg->queues[qi].name, qi);
	return 0;
}

static int grow_queues(struct parse *p)
{
	size_t n = p->cap != 0 ? 2 * p->cap : 8;
	struct mqd_queue_conf *q;
	uint32_t *g;

	q = realloc(p->cfg->queues, n * sizeof(*q));
	if (q == NULL)
		return -1;
	p->cfg->queues = q;
	g = realloc(p->given, n * sizeof(*g));
	if (g == NULL)
		return -1;
	p->given = g;
	p->cap = n;
	return 0;
}

static int defaults_begin(struct parse *p, const char *arg, char *msg,
                          size_t msglen)
{
	(void)arg;
	(void)msg;
	(void)msglen;
	p->cfg->defaults.queue.line = (unsigned)p->line;
	return 0;
}

/* A new [queue NAME]: its keys' defaults are applied next, and whatever it
 * does not give is overwritten from [defaults] at the end (inherit). */
static int queue_begin(struct parse *p, const char *arg, char *msg,
                       size_t msglen)
{
	struct mqd_config *cfg = p->cfg;
	size_t len = strlen(arg), i;
	struct mqd_queue_conf *q;

	if (!mqd_name_valid((const uint8_t *)arg, len))
		return fail(msg, msglen, "bad queue name '%s' (write %s)", arg,
		            mqd_config_queue_name_rule);
	i = index_find(p, arg);
	if (i != SIZE_MAX)
		return fail(msg, msglen, "repeated section [queue %s] (first at "
		            "line %u)", arg, cfg->queues[i].line);
	if (cfg->nqueues == p->cap && grow_queues(p) < 0)
		return fail(msg, msglen, "out of memory");
	q = &cfg->queues[cfg->nqueues];
	memset(q, 0, sizeof(*q));
	memcpy(q->name, arg, len); /* len <= MQD_NAME_MAX: mqd_name_valid */
	q->line = (unsigned)p->line;
	if (index_add(p, cfg->nqueues) < 0)
		return fail(msg, msglen, "out of memory");
	p->given[cfg->nqueues] = 0;
	cfg->nqueues++;
	return 0;
}

/* What a [queue NAME] does not give, it takes from [defaults]. */
static void inherit(struct parse *p)
{
	struct mqd_config *cfg = p->cfg;
	size_t i, b;

	for (i = 0; i < cfg->nqueues; i++) {
		for (b = 0; b < mqd_config_nkeys; b++) {
			const struct key *k = &mqd_config_table[b];

			if (strcmp(k->section, "queue") != 0 ||
			    (p->given[i] & mqd_config_queue_key_bit(k)))
				continue;
			memcpy(field_of(k, &cfg->queues[i]),
			       field_of(k, &cfg->defaults.queue), k->size);
		}
	}
}

/* buf += s, as far as it fits. */
static void cat(char *buf, size_t size, const char *s)
{
	size_t n = strlen(buf);

	if (n + 1 < size)
		snprintf(buf + n, size - n, "%s", s);
}

/* The loop through queues[at], told from there: "b -> a -> b". */
static void report_loop(struct parse *p, size_t at, const size_t *next)
{
	const struct mqd_queue_conf *q = p->cfg->queues;
	uint32_t dl = mqd_config_queue_key_bit(
		mqd_config_find_key("queue", "dead_letter"));
	char chain[MSG_MAX] = "", hint[MSG_MAX] = "";
	size_t v = at;

	do {
		cat(chain, sizeof(chain), q[v].name);
		cat(chain, sizeof(chain), " -> ");
		if (hint[0] == '\0' && !(p->given[v] & dl))
			snprintf(hint, sizeof(hint), " ([queue %s] takes its "
			         "dead_letter from [defaults])", q[v].name);
		v = next[v];
	} while (v != at);
	cat(chain, sizeof(chain), q[at].name);
	parse_fail(p, (int)q[at].line, "dead-letter chain loops: %s%s", chain,
	           hint);
}

/*
 * Dead-letter chains among the configured queues must end: a message would
 * otherwise go round for ever.  Each queue names at most one other, so each
 * walk either ends or runs into a loop.  Of the loops, report the one whose
 * last-read section (the one that closed it) comes first in the file.
 */
static void check_loops(struct parse *p)
{
	const struct mqd_queue_conf *q = p->cfg->queues;
	size_t n = p->cfg->nqueues, i, v, best = SIZE_MAX;
	size_t *next;
	uint8_t *state; /* 0 = not seen, 1 = on this walk, 2 = done */

	if (n == 0)
		return;
	next = malloc(n * sizeof(*next));
	state = calloc(n, 1);
	if (next == NULL || state == NULL) {
		parse_fail(p, 0, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++)
		next[i] = q[i].dead_letter[0] != '\0'
		        ? index_find(p, q[i].dead_letter) : SIZE_MAX;
	for (i = 0; i < n; i++) {
		for (v = i; v != SIZE_MAX && state[v] == 0; v = next[v])
			state[v] = 1;
		if (v != SIZE_MAX && state[v] == 1) {
			size_t w = v, last = v;

			do {
				if (q[w].line > q[last].line)
					last = w;
				w = next[w];
			} while (w != v);
			if (best == SIZE_MAX || q[last].line < q[best].line)
				best = last;
		}
		for (v = i; v != SIZE_MAX && state[v] == 1; v = next[v])
			state[v] = 2;
	}
	if (best != SIZE_MAX)
		report_loop(p, best, next);
out:
	free(next);
	free(state);
}

/* ------------------------------------------------------------ paths */

/*
 * dir + "/" + rel into out, without "." components or repeated slashes,
 * always starting with "/".  ".." stays: dropping it with the component
 * before would be wrong when that component is a symbolic link.  Returns
 * the length, or SIZE_MAX when out is too small.
 */
static size_t join_path(const char *dir, const char *rel, char *out,
                        size_t outlen)
{
	const char *parts[2] = { dir, rel };
	size_t n = 0, i;

	for (i = 0; i < 2; i++) {
		const char *s = parts[i];

		for (;;) {
			size_t len;

			while (*s == '/')
				s++;
			len = strcspn(s, "/");
			if (len == 0)
				break;
			if (len != 1 || *s != '.') {
				if (n + 1 + len >= outlen)
					return SIZE_MAX;
				out[n++] = '/';
				memcpy(out + n, s, len);
				n += len;
			}
			s += len;
		}
	}
	if (n == 0) {
		if (outlen < 2)
			return SIZE_MAX;
		out[n++] = '/';
	}
	out[n] = '\0';
	return n;
}

/* p->dir: the absolute directory of the file, or the current directory
 * for a string. */
static int find_dir(struct parse *p, char *msg, size_t msglen)
{
	const char *slash = p->is_file ? strrchr(p->name, '/') : NULL;
	char cwd[4096] = "", fdir[4096] = "";

	if (slash == NULL || p->name[0] != '/') {
		if (getcwd(cwd, sizeof(cwd)) == NULL)
			return fail(msg, msglen, "cannot find the current "
			            "directory for a relative path: %s",
			            strerror(errno));
	}
	if (slash != NULL) /* name is shorter than 4096: load_text */
		snprintf(fdir, sizeof(fdir), "%.*s", (int)(slash - p->name),
		         p->name);
	if (join_path(cwd, fdir, p->dir, sizeof(p->dir)) == SIZE_MAX)
		return fail(msg, msglen, "the directory of %s is too long for "
		            "a relative path", p->name);
	p->have_dir = true;
	return 0;
}

/*
 * A relative path is made absolute now, against the directory of the file
 * it was read from: the daemon may chdir("/") before using it, and
 * "control_socket = mqd.sock" should mean next to the config file.
 */
static int resolve_path(struct parse *p, const struct key *k, void *base,
                        char *msg, size_t msglen)
{
	char *f = field_of(k, base), out[8192];
	size_t max = k->max != 0 ? (size_t)k->max : k->size - 1, len;

	if (f[0] == '/' || f[0] == '\0')
		return 0;
	/* log_file = syslog is a word, not a file: write ./syslog for one. */
	if (strcmp(k->name, "log_file") == 0 && strcmp(f, "syslog") == 0)
		return 0;
	if (!p->have_dir && find_dir(p, msg, msglen) < 0)
		return -1;
	len = join_path(p->dir, f, out, sizeof(out));
	if (len == SIZE_MAX || len > max)
		return fail(msg, msglen, "%s is too long once made absolute "
		            "(%zu bytes; at most %zu): %s", k->name,
		            len == SIZE_MAX ? strlen(p->dir) + 1 + strlen(f)
		                            : len, max,
		            len == SIZE_MAX ? f : out);
	memset(f, 0, k->size);
	memcpy(f, out, len);
	return 0;
}

/* Vet one line before inih sees it; it is already stripped on the left. */
static int check_line(struct parse *p, char *line)
{
	char *s = line;

	if (*s == '\0' || is_comment_char(*s))
		return 0;
	if (*s == '[')
		return begin_section(p, line);
	while (isalnum((unsigned char)*s) || *s == '_' || *s == '-' || *s == '.')
		s++;
	while (*s == ' ' || *s == '\t')
		s++;
	if (s == line || *s != '=') {
		parse_fail(p, p->line, "expected 'key = value', '[section]' or "
		           "a comment");
		return -1;
	}
	return 0;
}

/*
 * inih's reader: one line per call, so p->line is the line inih is on.
 * After an error it reports end of input, which stops inih there.
 */
static char *reader_cb(char *str, int num, void *stream)
{
	struct parse *p = stream;
	const char *s, *nl;
	size_t n;

	if (p->failed || p->pos >= p->len)
		return NULL;
	s = p->text + p->pos;
	nl = memchr(s, '\n', p->len - p->pos);
	n = nl != NULL ? (size_t)(nl - s) : p->len - p->pos;
	p->pos += n + (nl != NULL);
	p->line++;

	if (n > 0 && s[n - 1] == '\r')
		n--;
	if (p->line == 1 && n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
		s += 3;
		n -= 3;
	}
	/* No indented continuation lines: indentation is just indentation. */
	while (n > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	if (memchr(s, '\0', n) != NULL) {
		parse_fail(p, p->line, "NUL byte in line");
		return NULL;
	}
	/* inih needs room for "\r\n\0" and would split a longer line. */
	if (num < 4 || n > (size_t)num - 3) {
		parse_fail(p, p->line, "line too long (at most %d characters)",
		           num - 3);
		return NULL;
	}
	memcpy(str, s, n);
	str[n] = '\0';
	if (check_line(p, str) < 0)
		return NULL;
	return str;
}

static int handler_cb(void *user, const char *section, const char *name,
                      const char *value)
{
	struct parse *p = user;
	const struct key *k;
	char msg[MSG_MAX];
	size_t i;
	void *base;

	(void)section; /* the reader tracks it, with the instance's name */
	if (p->failed)
		return 0;
	if (p->sec == NULL) {
		parse_fail(p, p->line, "key '%s' outside any section", name);
		return 0;
	}
	k = mqd_config_find_key(p->sec->name, name);
	if (k == NULL) {
		parse_fail(p, p->line, "unknown key '%s' in [%s]", name,
		           p->sec_label);
		return 0;
	}
	i = (size_t)(k - mqd_config_table);
	if (p->key_line[i] != 0) {
		parse_fail(p, p->line, "repeated key '%s' in [%s] (first at "
		           "line %d)", name, p->sec_label, p->key_line[i]);
		return 0;
	}
	p->key_line[i] = p->line;
	base = p->sec->base(p->cfg);
	if (mqd_config_set_key(k, base, value, msg, sizeof(msg)) < 0 ||
	    (k->path && resolve_path(p, k, base, msg, sizeof(msg)) < 0)) {
		parse_fail(p, p->line, "%s", msg);
		return 0;
	}
	if (strcmp(k->section, "queue") == 0)
		p->given[p->cfg->nqueues - 1] |= mqd_config_queue_key_bit(k);
	return 1;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int load_text(struct mqd_config *cfg, const char *text, size_t len,
                     const char *name, bool is_file, char *err, size_t errlen)
{
	struct parse *p;
	struct mqd_config *fresh;
	int rc;

	if (name == NULL)
		name = "-";
	if (strlen(name) >= sizeof(cfg->path)) {
		set_err(err, errlen, "%.64s...:0: path too long", name);
		return -1;
	}
	fresh = malloc(sizeof(*fresh));
	p = calloc(1, sizeof(*p) + mqd_config_nkeys * sizeof(p->key_line[0]));
	if (fresh == NULL || p == NULL) {
		free(fresh);
		free(p);
		set_err(err, errlen, "%s:0: out of memory", name);
		return -1;
	}
	mqd_config_defaults(fresh);
	memcpy(fresh->path, name, strlen(name) + 1);
	p->name = name;
	p->is_file = is_file;
	p->text = text;
	p->len = len;
	p->cfg = fresh;
	p->err = err;
	p->errlen = errlen;

	rc = ini_parse_stream(reader_cb, p, handler_cb, p);
	if (!p->failed && rc == -2)
		parse_fail(p, 0, "out of memory");
	else if (!p->failed && rc != 0)
		/* Something inih refused that check_line let through. */
		parse_fail(p, rc, "syntax error");
	if (!p->failed) {
		inherit(p);
		check_loops(p);
	}

	rc = p->failed ? -1 : 0;
	if (rc == 0)
		*cfg = *fresh; /* the queues array goes with it */
	else
		mqd_config_free(fresh);
	free(p->given);
	free(p->slots);
	free(p);
	free(fresh);
	return rc;
}

int mqd_config_load_string(struct mqd_config *cfg, const char *text,
                           const char *name, char *err, size_t errlen)
{
	return load_text(cfg, text != NULL ? text : "",
	                 text != NULL ? strlen(text) : 0, name, false, err,
	                 errlen);
}

int mqd_config_load(struct mqd_config *cfg, const char *path, char *err,
                    size_t errlen)
{
	FILE *f;
	char *buf;
	size_t len = 0;
	int rc;

	f = fopen(path, "re");
	if (f == NULL) {
		set_err(err, errlen, "%s:0: cannot open: %s", path,
		        strerror(errno));
		return -1;
	}
	buf = malloc(CONFIG_MAX_BYTES + 1);
	if (buf == NULL) {
		fclose(f);
		set_err(err, errlen, "%s:0: out of memory", path);
		return -1;
	}
	/* One byte more than allowed tells "too large" from "just fits". */
	len = fread(buf, 1, CONFIG_MAX_BYTES + 1, f);
	if (ferror(f)) {
		int e = errno;

		fclose(f);
		free(buf);
		set_err(err, errlen, "%s:0: cannot read: %s", path, strerror(e));
		return -1;
	}
	fclose(f);
	if (len > CONFIG_MAX_BYTES) {
		free(buf);
		set_err(err, errlen, "%s:0: larger than %d bytes", path,
		        CONFIG_MAX_BYTES);
		return -1;
	}
	buf[len] = '\0';
	rc = load_text(cfg, buf, len, path, true, err, errlen);
	free(buf);
	return rc;
}
