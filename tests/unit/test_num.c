/* Unit tests for core/num: the one decimal parser of config, command line
 * and environment. */
#include "core/num.h"
#include "test.h"

#include <errno.h>
#include <stdint.h>

static int p(const char *s, uint64_t lo, uint64_t hi, unsigned flags, uint64_t *v)
{
	return parse_uint_range(s, strlen(s), lo, hi, flags, v);
}

static void test_accepts(void)
{
	uint64_t v = 77;
	ASSERT_EQ(p("0", 0, 10, 0, &v), 0);
	ASSERT_EQ(v, 0);
	ASSERT_EQ(p("8080", 1, 65535, 0, &v), 0);
	ASSERT_EQ(v, 8080);
	ASSERT_EQ(p("65535", 1, 65535, 0, &v), 0);
	ASSERT_EQ(v, 65535);
	ASSERT_EQ(p("18446744073709551615", 0, UINT64_MAX, 0, &v), 0);
	ASSERT(v == UINT64_MAX);
	/* Only `len` bytes count: a substring of a larger spec. */
	ASSERT_EQ(parse_uint_range("80:90", 2, 1, 65535, 0, &v), 0);
	ASSERT_EQ(v, 80);
}

static void test_refuses_what_is_not_a_number(void)
{
	static const char *const bad[] = {"",	  "-1",	   "+1",	  " 1",	 "1 ",
					  "0x10", "1_000", "1e3",	  "1.0", "8080abc",
					  "abc",  "١",	   "\xef\xbc\x91"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		uint64_t v = 77;
		if (p(bad[i], 0, UINT64_MAX, NUM_LEADING_ZEROS, &v) != -EINVAL)
			TEST_FAIL_("'%s' was accepted", bad[i]);
		ASSERT_EQ(v, 77); /* untouched */
	}
	uint64_t v = 77;
	ASSERT_EQ(parse_uint_range(NULL, 0, 0, 1, 0, &v), -EINVAL);
	/* An embedded NUL is not a digit. */
	ASSERT_EQ(parse_uint_range("1\0002", 3, 0, 1000, 0, &v), -EINVAL);
	/* Overflow with junk after it is junk first. */
	ASSERT_EQ(p("99999999999999999999999x", 0, UINT64_MAX, 0, &v), -EINVAL);
}

static void test_range_and_overflow(void)
{
	uint64_t v = 77;
	ASSERT_EQ(p("0", 1, 65535, 0, &v), -ERANGE);
	ASSERT_EQ(p("65536", 1, 65535, 0, &v), -ERANGE);
	ASSERT_EQ(p("18446744073709551616", 0, UINT64_MAX, 0, &v), -ERANGE);
	ASSERT_EQ(p("99999999999999999999999", 0, UINT64_MAX, 0, &v), -ERANGE);
	ASSERT_EQ(v, 77);
}

static void test_leading_zeros(void)
{
	uint64_t v = 77;
	/* Config (YAML 1.1 would read octal): refused. */
	ASSERT_EQ(p("010", 0, 100, 0, &v), -EINVAL);
	ASSERT_EQ(p("00", 0, 100, 0, &v), -EINVAL);
	ASSERT_EQ(v, 77);
	/* Command line and environment: decimal, as ssh -p and kubectl read it. */
	ASSERT_EQ(p("010", 0, 100, NUM_LEADING_ZEROS, &v), 0);
	ASSERT_EQ(v, 10);
	ASSERT_EQ(p("08080", 1, 65535, NUM_LEADING_ZEROS, &v), 0);
	ASSERT_EQ(v, 8080);
	ASSERT_EQ(p("000", 0, 1, NUM_LEADING_ZEROS, &v), 0);
	ASSERT_EQ(v, 0);
	ASSERT_EQ(p("0000000000000000000000065535", 1, 65535, NUM_LEADING_ZEROS, &v), 0);
	ASSERT_EQ(v, 65535);
}

int main(void)
{
	RUN(test_accepts);
	RUN(test_refuses_what_is_not_a_number);
	RUN(test_range_and_overflow);
	RUN(test_leading_zeros);
	return 0;
}
