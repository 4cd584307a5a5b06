/* test.h - minimal assertions for devbridge unit tests (after libuv's
 * ASSERT_EQ): a failure prints both values, the expression and the line,
 * then aborts so meson reports the test as failed. */
#ifndef DEVBRIDGE_TEST_H
#define DEVBRIDGE_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEST_FAIL_(fmt, ...)                                                                       \
	do {                                                                                       \
		fprintf(stderr, "%s:%d: " fmt "\n", __FILE__, __LINE__, __VA_ARGS__);              \
		abort();                                                                           \
	} while (0)

#define ASSERT(e)                                                                                  \
	do {                                                                                       \
		if (!(e))                                                                          \
			TEST_FAIL_("assertion failed: %s", #e);                                    \
	} while (0)

#define ASSERT_INT_(a, op, b)                                                                      \
	do {                                                                                       \
		long long a_ = (long long)(a), b_ = (long long)(b);                                \
		if (!(a_ op b_))                                                                   \
			TEST_FAIL_("%s %s %s: %lld vs %lld", #a, #op, #b, a_, b_);                 \
	} while (0)

#define ASSERT_EQ(a, b) ASSERT_INT_(a, ==, b)
#define ASSERT_NE(a, b) ASSERT_INT_(a, !=, b)
#define ASSERT_LT(a, b) ASSERT_INT_(a, <, b)
#define ASSERT_LE(a, b) ASSERT_INT_(a, <=, b)
#define ASSERT_GT(a, b) ASSERT_INT_(a, >, b)
#define ASSERT_GE(a, b) ASSERT_INT_(a, >=, b)

#define ASSERT_STR_EQ(a, b)                                                                        \
	do {                                                                                       \
		const char *a_ = (a), *b_ = (b);                                                   \
		if (!a_ || !b_ || strcmp(a_, b_) != 0)                                             \
			TEST_FAIL_("%s == %s: \"%s\" vs \"%s\"", #a, #b, a_ ? a_ : "(null)",       \
				   b_ ? b_ : "(null)");                                            \
	} while (0)

#define ASSERT_STR_CONTAINS(hay, needle)                                                           \
	do {                                                                                       \
		const char *h_ = (hay), *n_ = (needle);                                            \
		if (!h_ || !strstr(h_, n_))                                                        \
			TEST_FAIL_("%s contains %s: \"%s\" lacks \"%s\"", #hay, #needle,           \
				   h_ ? h_ : "(null)", n_);                                        \
	} while (0)

#define RUN(fn)                                                                                    \
	do {                                                                                       \
		fn();                                                                              \
		printf("ok - %s\n", #fn);                                                          \
	} while (0)

#endif
