#!/usr/bin/env python3
"""json_pack's varargs are read by the format: "i" reads an int, "I" a
json_int_t (64 bits).  A json_int_t (or a size_t) given to "i", or an int
given to "I", is undefined behaviour that happens to work on x86-64 (every
vararg takes an 8-byte slot there) and shifts every later argument on a
32-bit ABI.  The compiler cannot see it (the format is not printf's), so
this reads each json_pack call of the C files named (all tracked ones by
default) and prints FILE:LINE: for:

- "i" given a value cast to a 64-bit type, or a count (n_*, ->n,
  dropped) not cast to int;
- "I" given anything but a (json_int_t) cast (the one way to be sure).

Exit 1 when there is one.  Run by `make format-check`."""

import re
import subprocess
import sys

WIDE = re.compile(r"\((json_int_t|size_t|ssize_t|off_t|u?int64_t|long( long)?|unsigned long)\)"
                  r"|\bn_\w+\b|->n\b|\.n\b|\bdropped\b")
TOKEN = re.compile(r"s[#%+]|[sbiIfFoOn][?*]?")


def call_args(src, start):
    """The arguments of the call whose '(' ends at start, as text."""
    args, cur, depth, i, quote = [], "", 0, start, None
    while i < len(src):
        c = src[i]
        if quote:
            cur += c
            if c == "\\":
                cur += src[i + 1]
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'":
            quote = c
            cur += c
        elif c in "([{":
            depth += 1
            cur += c
        elif c in ")]}":
            if depth == 0:
                args.append(cur)
                return args
            depth -= 1
            cur += c
        elif c == "," and depth == 0:
            args.append(cur)
            cur = ""
        else:
            cur += c
        i += 1
    return args


def check(path):
    src = open(path, encoding="utf-8").read()
    bad = 0
    for m in re.finditer(r"\bjson_pack\s*\(", src):
        args = call_args(src, m.end())
        if not args or not args[0].strip().startswith('"'):
            continue  # a format built elsewhere: not ours to read
        fmt = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', args[0]))
        line = src.count("\n", 0, m.start()) + 1
        ai = 1
        for tok in TOKEN.findall(re.sub(r"[\s:,{}\[\]]", "", fmt)):
            if tok[0] == "n":
                continue
            if ai >= len(args):
                break
            a = " ".join(args[ai].split())
            if tok[0] == "i" and WIDE.search(a) and not a.startswith("(int)"):
                print("%s:%d: json_pack \"i\" reads an int, given %s: use \"I\"" % (path, line, a))
                bad = 1
            elif tok[0] == "I" and "(json_int_t)" not in a:
                print("%s:%d: json_pack \"I\" reads a json_int_t, given %s: cast it" % (path, line, a))
                bad = 1
            ai += 2 if tok in ("s#", "s%") else 1
    return bad


def main():
    files = sys.argv[1:] or subprocess.run(
        ["git", "ls-files", "*.c"], capture_output=True, text=True, check=True).stdout.split()
    bad = 0
    for f in files:
        bad |= check(f)
    return bad


if __name__ == "__main__":
    sys.exit(main())
