/*
 * A main for a fuzz target built without libFuzzer: make check runs it,
 * and it feeds LLVMFuzzerTestOneInput every file of the target's seed
 * corpus and regression inputs (tests/fuzz/corpus/T/, tests/fuzz/regress/T/
 * under $MQD_SRCDIR, else $srcdir, else "."), each once, in name order.
 * So every input that ever found a bug runs again on every make check, and
 * under the sanitizer build in CI.  Arguments, if given, name the files or
 * folders to run instead (to replay one crash: replay_T crash-1234).
 *
 * Each input is read into a buffer of exactly its size, so that a read
 * past its end is caught by AddressSanitizer, as under libFuzzer.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz/fuzz.h"

#ifndef FUZZ_TARGET
#error "FUZZ_TARGET: the target's name, as in tests/fuzz/corpus/NAME"
#endif

static size_t ran;

/* Run one file; -1 if it cannot be read. */
static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long size;
	size_t got;

	if (f == NULL) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0) {
		fprintf(stderr, "%s: cannot size it\n", path);
		fclose(f);
		return -1;
	}
	buf = malloc(size > 0 ? (size_t)size : 1);
	if (buf == NULL) {
		fclose(f);
		return -1;
	}
	got = fread(buf, 1, (size_t)size, f);
	fclose(f);
	if (got != (size_t)size) {
		fprintf(stderr, "%s: short read\n", path);
		free(buf);
		return -1;
	}
	LLVMFuzzerTestOneInput(buf, got);
	free(buf);
	ran++;
	return 0;
}

/* Run every file in dir (not recursively), in name order; hidden files
 * (".gitignore") are left out.  A missing dir is -1 only when required. */
static int run_dir(const char *dir, int required)
{
	struct dirent **names;
	char path[4096];
	int n, i, rc = 0;

	n = scandir(dir, &names, NULL, alphasort);
	if (n < 0) {
		if (!required && errno == ENOENT)
			return 0;
		fprintf(stderr, "%s: %s\n", dir, strerror(errno));
		return -1;
	}
	for (i = 0; i < n; i++) {
		struct stat st;

		if (names[i]->d_name[0] != '.' &&
		    snprintf(path, sizeof path, "%s/%s", dir,
		             names[i]->d_name) < (int)sizeof path &&
		    stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
		    run_file(path) < 0)
			rc = -1;
		free(names[i]);
	}
	free(names);
	return rc;
}

static int run_path(const char *path)
{
	struct stat st;

	if (stat(path, &st) != 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	return S_ISDIR(st.st_mode) ? run_dir(path, 1) : run_file(path);
}

int main(int argc, char **argv)
{
	const char *top = getenv("MQD_SRCDIR");
	char dir[4096];
	int rc = 0, i;

	if (argc > 1) {
		for (i = 1; i < argc; i++)
			if (run_path(argv[i]) < 0)
				rc = 1;
	} else {
		if (top == NULL || *top == '\0')
			top = getenv("srcdir");
		if (top == NULL || *top == '\0')
			top = ".";
		snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus/%s", top,
		         FUZZ_TARGET);
		if (run_dir(dir, 1) < 0)
			rc = 1;
		snprintf(dir, sizeof dir, "%s/tests/fuzz/regress/%s", top,
		         FUZZ_TARGET);
		if (run_dir(dir, 0) < 0)
			rc = 1;
	}
	printf("%s: %zu inputs replayed\n", FUZZ_TARGET, ran);
	/* No input at all means the corpus was not found: a hard error. */
	return rc != 0 ? 1 : ran == 0 ? 99 : 0;
}
