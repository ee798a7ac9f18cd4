#!/usr/bin/env python3
"""Checks that the docs name only flags the programs have.

Every command line in the docs that runs `nomnom` or `nomnomd` (in Markdown
code: fenced blocks and `inline` spans; systemd ExecStart= lines; the
containers of the Kubernetes and compose manifests) is split into words, and
each --flag on it must appear in the --help of that program and subcommand
(`nomnom load --help`, `nomnom gen tpch --help`, `nomnomd --help`, ...).

Usage: check-docs.py NOMNOM_BIN NOMNOMD_BIN FILE...
Prints file:line: the command and the unknown flag for each miss, then a
count; exits 1 on a miss. scripts/test.sh runs it on README.md, docs/,
deploy/ and the systemd and kustomize files.
"""
import re
import shlex
import subprocess
import sys

import yaml

NOMNOM, NOMNOMD = sys.argv[1], sys.argv[2]
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
help_cache = {}


def help_of(argv):
    """The set of --flags, and the subcommands, that `argv --help` lists."""
    key = tuple(argv)
    if key not in help_cache:
        out = subprocess.run(argv + ["--help"], capture_output=True, text=True, timeout=30)
        text = out.stdout + out.stderr
        subs = set()
        in_subs = False
        for line in text.splitlines():
            if line.startswith("Subcommands:"):
                in_subs = True
                continue
            if in_subs:
                m = re.match(r"^  ([a-z][a-z0-9-]*)\s", line)
                if m:
                    subs.add(m.group(1))
                elif line.strip() and not line.startswith(" "):
                    in_subs = False
        help_cache[key] = (set(FLAG.findall(text)) | {"--help", "--version"}, subs, out.returncode)
    return help_cache[key]


def program(word):
    base = word.rsplit("/", 1)[-1]
    if base == "nomnom":
        return NOMNOM
    if base == "nomnomd":
        return NOMNOMD
    return None


def commands(words):
    """Splits words at shell operators; yields the word lists that run nomnom(d)."""
    cmd = []
    for w in words + [";"]:
        if w in ("|", "||", "&&", ";", "&", "(", ")") or w.endswith(";"):
            if w.endswith(";") and w != ";":
                cmd.append(w[:-1])
            # skip env assignments, sudo, exec, time, nohup before the program
            i = 0
            while i < len(cmd) and (re.match(r"^[A-Z_][A-Z0-9_]*=", cmd[i]) or cmd[i] in ("sudo", "exec", "time", "nohup", "$", "env")):
                i += 1
            if i < len(cmd) and program(cmd[i]):
                yield [program(cmd[i])] + cmd[i + 1:]
            cmd = []
        else:
            cmd.append(w)


def check(argv_words, where, misses):
    """argv_words: [binary, args...]. Finds the deepest subcommand, checks flags."""
    prog = [argv_words[0]]
    rest = argv_words[1:]
    while rest:
        flags, subs, _ = help_of(prog)
        if rest[0] in subs:
            prog.append(rest[0])
            rest = rest[1:]
        else:
            break
    flags, _, _ = help_of(prog)
    for w in rest:
        if w.startswith("#"):
            break  # a shell comment
        for f in FLAG.findall(w.split("=", 1)[0] if w.startswith("--") else ""):
            if f not in flags:
                misses.append(f"{where}: `{' '.join(['nomnom' if prog[0] == NOMNOM else 'nomnomd'] + prog[1:])}` has no {f}")


def words_of(text):
    try:
        return shlex.split(text, comments=True)
    except ValueError:
        return text.split()


def markdown(path, misses):
    lines = open(path, encoding="utf-8").read().splitlines()
    in_fence = False
    pending, start = "", 0
    for no, line in enumerate(lines, 1):
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        if in_fence:
            if not pending:
                start = no
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            text, pending = pending + line, ""
            for cmd in commands(words_of(text)):
                check(cmd, f"{path}:{start}", misses)
        else:
            for span in re.findall(r"`([^`]+)`", line):
                for cmd in commands(words_of(span)):
                    check(cmd, f"{path}:{no}", misses)


def systemd(path, misses):
    for no, line in enumerate(open(path, encoding="utf-8").read().splitlines(), 1):
        m = re.match(r"^Exec\w*=-?(.*)$", line)
        if m:
            for cmd in commands(words_of(m.group(1))):
                check(cmd, f"{path}:{no}", misses)


def manifests(path, misses):
    text = open(path, encoding="utf-8").read()
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError:
        return

    def containers(node):
        if isinstance(node, dict):
            if "image" in node and ("args" in node or "command" in node):
                yield node
            for v in node.values():
                yield from containers(v)
        elif isinstance(node, list):
            for v in node:
                yield from containers(v)

    for doc in docs:
        for c in containers(doc):
            if "nomnom" not in str(c.get("image", "")):
                continue
            cmd = c.get("command") or ["nomnomd"]
            if isinstance(cmd, str):
                cmd = words_of(cmd)
            args = c.get("args") or []
            if isinstance(args, str):
                args = words_of(args)
            words = [str(w) for w in list(cmd) + list(args)]
            for run in commands(words):
                check(run, f"{path} ({c.get('name', 'container')})", misses)


misses = []
for f in sys.argv[3:]:
    if f.endswith(".md"):
        markdown(f, misses)
    elif f.endswith((".service", ".socket")):
        systemd(f, misses)
    elif f.endswith((".yaml", ".yml")):
        manifests(f, misses)
for m in misses:
    print(m)
print(f"check-docs: {len(misses)} unknown flag(s) in {len(sys.argv) - 3} files")
sys.exit(1 if misses else 0)
