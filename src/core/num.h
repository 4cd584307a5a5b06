/* num.h - the one parser of unsigned decimal numbers, for the config file
 * (ports, counts, durations in whole units), the command line and the
 * environment.
 *
 * Rules: ASCII digits only (no sign, no spaces, no "0x", no "1_000", no
 * trailing junk), overflow-checked, within [lo, hi].  Leading zeros are
 * refused unless NUM_LEADING_ZEROS is given: YAML 1.1 reads "010" as
 * octal 8, so a config loader that took it as ten would disagree with
 * every other YAML tool; on a command line or in an environment variable
 * there is no such reading, and "08080" means 8080 to ssh -p and kubectl
 * alike.  Pure: no allocation, no errno, no locale. */
#ifndef DEVBRIDGE_CORE_NUM_H
#define DEVBRIDGE_CORE_NUM_H

#include <stddef.h>
#include <stdint.h>

/* Flags for parse_uint_range. */
#define NUM_LEADING_ZEROS 1u /* "007" is 7 (command line, environment) */

/* Parse the `len` bytes at `s` (no NUL needed) as a decimal number in
 * [lo, hi].  Returns 0 and stores it in *ret; -EINVAL when the bytes are
 * not a decimal number by the rules above (empty included); -ERANGE when
 * they are one but outside [lo, hi] (overflow included).  *ret is set only
 * on success. */
int parse_uint_range(const char *s, size_t len, uint64_t lo, uint64_t hi, unsigned flags,
		     uint64_t *ret);

#endif
