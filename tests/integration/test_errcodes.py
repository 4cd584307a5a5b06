"""The error vocabulary is written once, in src/core/errcode.h's table;
README "Exit codes" and `devbridge --help` must say the same thing: every
code with the table's name (README) and help text (--help), nothing more.
The --json envelope's {"code", "name"} comes from the same table."""

import json
import os
import re
import subprocess

from helpers import REPO_ROOT, devbridge_bin

ROW_RE = re.compile(r'X\((EXIT_\w+),\s*(\d+),\s*"([^"]*)",\s*"([^"]*)",\s*(\w+)\)')


def table():
    with open(os.path.join(REPO_ROOT, "src", "core", "errcode.h")) as f:
        text = re.sub(r"\\\n", " ", f.read())  # the macro's continuation lines
    rows = [(int(num), name, help_, flags != "0")
            for _, num, name, help_, flags in ROW_RE.findall(text)]
    assert rows and len(rows) == text.count("X(EXIT_"), "cannot read errcode.h's table"
    assert len({r[0] for r in rows}) == len(rows), "a number twice in errcode.h"
    return rows


def readme_codes():
    with open(os.path.join(REPO_ROOT, "README.md")) as f:
        text = f.read()
    section = text.split("\n## Exit codes\n", 1)[1].split("\n## ", 1)[0]
    return [(int(m.group(1)), m.group(2))
            for m in re.finditer(r"^\| (\d+) \| (\w+) \| .+\|$", section, re.M)]


def test_readme_lists_every_code_with_its_name():
    want = [(code, name) for code, name, _, _ in table()]
    assert readme_codes() == want


def test_readme_says_which_codes_are_reserved():
    with open(os.path.join(REPO_ROOT, "README.md")) as f:
        rows = {int(m.group(1)): m.group(2) for m in
                re.finditer(r"^\| (\d+) \| \w+ \| (.+)\|$", f.read(), re.M)}
    for code, _, _, reserved in table():
        assert ("reserved for a later version" in rows[code]) == reserved, code


def test_help_lists_every_code():
    r = subprocess.run([devbridge_bin(), "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r
    flat = " ".join(r.stdout.split("Exit codes:", 1)[1].split())
    listed, _, reserved = flat.partition(";")
    want = ", ".join("%d %s" % (code, help_) for code, _, help_, res in table() if not res)
    if not any(res for _, _, _, res in table()):
        assert listed.strip() == want + "." and not reserved, flat
        return
    assert listed.strip() == want
    runs = re.match(r"\s*([\d, -]+) are reserved for a later version", reserved)
    assert runs, reserved
    got = []
    for part in runs.group(1).replace(" ", "").split(","):
        lo, _, hi = part.partition("-")
        got += range(int(lo), int(hi or lo) + 1)
    assert got == [code for code, _, _, res in table() if res]


def test_json_envelope_names_the_code(tmp_path):
    # a usage error and an invalid config, as the envelope reports them
    env = dict(os.environ, DEVBRIDGE_STATE_DIR=str(tmp_path / "state"))
    r = subprocess.run([devbridge_bin(), "--json", "no-such-command"], capture_output=True,
                       text=True, timeout=30, env=env)
    assert r.returncode == 2, r
    assert json.loads(r.stdout)["error"]["name"] == "usage", r
    bad = tmp_path / "bad.yaml"
    bad.write_text("tunnels: [\n")
    r = subprocess.run([devbridge_bin(), "--json", "--config", str(bad), "config", "check"],
                       capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode == 3, r
    assert json.loads(r.stdout)["error"]["name"] == "invalid_config", r
