#!/usr/bin/env python3
"""Checks that the documentation matches the code (ctest docs_check, label unit).

For README.md and docs/*.md (or the files given):

  * flags: every command line that runs a lotteryfl program -- lotteryfl-server,
    lotteryfl-client, lotteryfl-sim, lotteryfl-partition, named as build/bin/X, X or any
    path ending in /X, or as the role of the lotteryfl image (`docker run ... lotteryfl:TAG
    sim ...`) -- uses only flags that program's `--help` lists. Flags handed through
    scripts/sweep.py to lotteryfl-sim (after `--`, inside `--run "label:FLAGS"`, the name of
    `--vary NAME=...`) count as lotteryfl-sim's. Command lines come from the fenced code
    blocks (lines continued with a backslash are joined; heredoc bodies and comments are
    skipped) and from inline code spans that start with a program name;
  * paths: every repository path a doc names -- a token in a code block or an inline code
    span whose first component is a top-level entry of the repository, and every relative
    Markdown link -- exists (globs and {a,b} braces expanded, <placeholder> matches
    anything, a :LINE suffix is dropped). Placeholders for files the reader makes are in
    ALLOWED_MISSING below, each with its reason.

Each finding names file:line, the program and the flag (or the path). Exit 0 when there are
none, 1 otherwise, 2 on bad usage.

  check_docs.py --bin-dir BUILD/bin [--root REPO] [--self-test] [FILE.md...]

--self-test first runs the checker on a small generated repository (a wrong flag on a
continued line, a missing path, a wrong flag in an inline span and in a docker role, a broken
link, and correct uses of each) and fails unless it reports exactly the planted errors.
Python 3 standard library only.
"""

import argparse
import glob
import os
import re
import shlex
import subprocess
import sys
import tempfile

PROGRAMS = ("lotteryfl-server", "lotteryfl-client", "lotteryfl-sim", "lotteryfl-partition")
IMAGE_ROLES = {"server": "lotteryfl-server", "client": "lotteryfl-client", "sim": "lotteryfl-sim"}

# Repository paths the docs name that do not exist in a checkout, by design.
ALLOWED_MISSING = {
    "deploy/certs/out": "made by scripts/gen-certs.sh in the Compose steps (ignored by git)",
    "deploy/k8s/secrets": "made by the Kubernetes steps' mkdir (ignored by git)",
    "deploy/lotteryfl-server": "a kubectl resource (the Deployment lotteryfl-server), not a file",
}

FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([\w+-]*)")
HEREDOC = re.compile(r"<<-?\s*['\"]?([A-Za-z_][A-Za-z0-9_]*)['\"]?")
SPAN = re.compile(r"(`+)(.+?)\1", re.S)
LINK = re.compile(r"\]\(([^)\s]+)\)")
SEPARATORS = {"|", "||", "&&", ";", "&", "(", ")", ";;", "|&"}
PATH_CHARS = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_./<>{},*+@-]*$")


class Doc:
    """One Markdown file split into fenced code blocks and prose."""

    def __init__(self, path, rel):
        self.rel = rel
        with open(path, encoding="utf-8") as f:
            self.lines = f.read().split("\n")
        self.blocks = []  # (lang, [(line number, text)])
        self.prose = []  # paragraphs: [(line number, text)]
        block = None
        fence = None
        para = []
        for n, line in enumerate(self.lines, 1):
            m = FENCE.match(line)
            if block is None and m:
                if para:
                    self.prose.append(para)
                    para = []
                fence, block = m.group(1), (m.group(2).lower(), [])
                continue
            if block is not None:
                if line.strip().startswith(fence[0] * len(fence)) and not line.strip().strip(fence[0]):
                    self.blocks.append(block)
                    block = None
                else:
                    block[1].append((n, line))
                continue
            if line.strip():
                para.append((n, line))
            elif para:
                self.prose.append(para)
                para = []
        if para:
            self.prose.append(para)
        if block is not None:
            self.blocks.append(block)


def logical_lines(lines):
    """Joins backslash-continued lines of a shell block and drops heredoc bodies.
    Yields ([(line number, text), ...], joined text)."""
    i = 0
    while i < len(lines):
        parts = []
        while i < len(lines):
            n, text = lines[i]
            i += 1
            if text.rstrip().endswith("\\"):
                parts.append((n, text.rstrip()[:-1]))
                continue
            parts.append((n, text))
            break
        joined = " ".join(t for _, t in parts)
        yield parts, joined
        m = HEREDOC.search(joined)
        if m:
            word = m.group(1)
            while i < len(lines) and lines[i][1].strip() != word:
                i += 1
            i += 1


def shell_tokens(text):
    """Shell words of one command line, comments dropped; separators are their own tokens."""
    try:
        lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        return list(lexer)
    except ValueError:  # unbalanced quotes: fall back to whitespace
        return text.split("#")[0].split()


def program_of(token):
    base = token.rstrip("/").rsplit("/", 1)[-1]
    return base if base in PROGRAMS else None


def flag_name(token):
    if not token.startswith("--") or len(token) <= 2 or not re.match(r"--[A-Za-z0-9]", token):
        return None
    return token.split("=", 1)[0]


def commands(tokens):
    """Yields (program, [flags]) for every lotteryfl program a token list runs."""
    segment = []
    for tok in tokens + [";"]:
        if tok in SEPARATORS:
            yield from segment_commands(segment)
            segment = []
        else:
            segment.append(tok)


WRAPPERS = {"nice", "env", "sudo", "time", "exec", "nohup", "setsid", "command"}


def segment_commands(seg):
    """The program a command runs is its command word (after VAR=value assignments and
    wrappers such as nice, env, sudo, timeout N), so a program name given as an argument
    (a certificate name, a kubectl resource) is not a command."""
    i = 0
    while i < len(seg):
        tok = seg[i]
        if re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", tok) or tok in WRAPPERS or (
                i > 0 and seg[i - 1] in WRAPPERS and tok.startswith("-")):
            i += 1
        elif tok == "timeout":
            i += 2
        else:
            break
    if i >= len(seg):
        return
    word = seg[i]
    prog = program_of(word)
    if prog:
        yield prog, [f for f in map(flag_name, seg[i + 1:]) if f]
    elif word.endswith("scripts/sweep.py"):
        yield "lotteryfl-sim", sweep_flags(seg[i + 1:])
    elif word == "docker":
        for j in range(i + 1, len(seg) - 1):
            if re.match(r"^lotteryfl(:[\w.-]+)?$", seg[j]) and seg[j + 1] in IMAGE_ROLES:
                yield IMAGE_ROLES[seg[j + 1]], [f for f in map(flag_name, seg[j + 2:]) if f]
                return


def sweep_flags(args):
    """lotteryfl-sim flags that a scripts/sweep.py command line hands through."""
    flags = []
    rest = False
    for j, a in enumerate(args):
        if rest:
            f = flag_name(a)
            if f:
                flags.append(f)
        elif a == "--":
            rest = True
        elif a == "--run" and j + 1 < len(args) and ":" in args[j + 1]:
            flags += [f for f in map(flag_name, args[j + 1].split(":", 1)[1].split()) if f]
        elif a == "--vary" and j + 1 < len(args) and "=" in args[j + 1]:
            flags.append("--" + args[j + 1].split("=", 1)[0])
    return flags


def line_of(parts, needle):
    """The physical line of a joined command where `needle` first appears."""
    for n, text in parts:
        if re.search(re.escape(needle) + r"(?![A-Za-z0-9-])", text):
            return n
    return parts[0][0]


class Checker:
    def __init__(self, root, bin_dir, allowed=None):
        self.root = root
        self.bin_dir = bin_dir
        self.allowed = ALLOWED_MISSING if allowed is None else allowed
        self.helps = {}
        self.findings = []
        self.counts = {"commands": 0, "flags": 0, "paths": 0}
        self.top = self.top_level()

    def top_level(self):
        try:
            out = subprocess.run(["git", "-C", self.root, "ls-files"], capture_output=True,
                                 text=True, check=True, timeout=60).stdout
            names = {p.split("/", 1)[0] for p in out.split("\n") if p}
            if names:
                return names
        except (OSError, subprocess.SubprocessError):
            pass
        return {n for n in os.listdir(self.root) if not n.startswith(".") and not n.startswith("build")}

    def flags_of(self, prog):
        """The flags `prog --help` lists, or None (with a finding) if it cannot run."""
        if prog not in self.helps:
            exe = os.path.join(self.bin_dir, prog)
            flags = None
            if not os.access(exe, os.X_OK):
                self.findings.append(("-", 0, f"{prog}: cannot check its flags: {exe} is missing (build it)"))
            else:
                env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
                r = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120, env=env)
                if r.returncode != 0:
                    self.findings.append(("-", 0, f"{prog}: `{exe} --help` exited {r.returncode}: "
                                          f"{(r.stderr or r.stdout).strip()[:200]}"))
                else:
                    flags = set()
                    for line in r.stdout.split("\n"):
                        m = re.match(r"^\s{1,6}((?:-[A-Za-z0-9],)?--[A-Za-z0-9][\w-]*(?:,--?[\w-]+)*)", line)
                        if m:
                            flags.update(f for f in m.group(1).split(",") if f.startswith("--"))
            self.helps[prog] = flags
        return self.helps[prog]

    def check_command(self, doc, parts, tokens):
        for prog, flags in commands(tokens):
            self.counts["commands"] += 1
            known = self.flags_of(prog)
            if known is None:
                continue
            for f in flags:
                self.counts["flags"] += 1
                if f not in known:
                    self.findings.append((doc.rel, line_of(parts, f),
                                          f"{prog}: flag {f} is not listed by `{prog} --help`"))

    def exists(self, path):
        pattern = re.sub(r"<[^<>]*>", "*", path)
        alternatives = [pattern]
        while any("{" in p and "}" in p for p in alternatives):
            nxt = []
            for p in alternatives:
                m = re.search(r"\{([^{}]*)\}", p)
                if not m:
                    nxt.append(p)
                    continue
                nxt += [p[:m.start()] + alt + p[m.end():] for alt in m.group(1).split(",")]
            alternatives = nxt
        for p in alternatives:
            if any(ch in p for ch in "*?["):
                if glob.glob(os.path.join(self.root, p)):
                    return True
            elif os.path.exists(os.path.join(self.root, p)):
                return True
        return False

    def check_path_token(self, doc, n, token):
        tok = token.strip("\"'`(),;")
        if "=" in tok:
            tok = tok.split("=", 1)[1]
        tok = re.sub(r":\d+(-\d+)?$", "", tok).rstrip(".:").rstrip("/")
        if "/" not in tok or "://" in tok or not PATH_CHARS.match(tok):
            return
        if tok.split("/", 1)[0] not in self.top:
            return
        self.counts["paths"] += 1
        if any(tok == a or tok.startswith(a + "/") for a in self.allowed):
            return
        if not self.exists(tok):
            self.findings.append((doc.rel, n, f"path {tok} does not exist in the repository"))

    def check_doc(self, doc):
        for lang, lines in doc.blocks:
            shell = lang in ("", "sh", "bash", "shell", "console")
            if shell:
                for parts, joined in logical_lines(lines):
                    toks = shell_tokens(joined)
                    self.check_command(doc, parts, toks)
            for n, text in lines:
                for tok in text.split():
                    self.check_path_token(doc, n, tok)
        for para in doc.prose:
            text = "\n".join(t for _, t in para)
            starts = []
            pos = 0
            for n, t in para:
                starts.append((pos, n))
                pos += len(t) + 1
            def line_at(offset):
                return max((n for p, n in starts if p <= offset), default=para[0][0])
            for m in SPAN.finditer(text):
                span = m.group(2).replace("\n", " ").strip()
                n = line_at(m.start())
                toks = span.split()
                if toks and (program_of(toks[0]) or toks[0].endswith("scripts/sweep.py")):
                    self.check_command(doc, [(n, span)], shell_tokens(span))
                for tok in toks:
                    self.check_path_token(doc, n, tok)
            for m in LINK.finditer(text):
                target = m.group(1).split("#", 1)[0]
                if not target or re.match(r"^[a-z]+:", target) or target.startswith("/"):
                    continue
                self.counts["paths"] += 1
                full = os.path.normpath(os.path.join(os.path.dirname(os.path.join(self.root, doc.rel)), target))
                if not os.path.exists(full):
                    self.findings.append((doc.rel, line_at(m.start()), f"link target {target} does not exist"))

    def run(self, files):
        for rel in files:
            self.check_doc(Doc(os.path.join(self.root, rel), rel))
        return self.findings


def default_files(root):
    files = ["README.md"] if os.path.exists(os.path.join(root, "README.md")) else []
    files += sorted(os.path.relpath(p, root) for p in glob.glob(os.path.join(root, "docs", "*.md")))
    return files


def report(findings, counts, label):
    for rel, n, msg in findings:
        print(f"{rel}:{n}: {msg}" if n else f"{rel}: {msg}")
    print(f"{label}: {counts['commands']} commands, {counts['flags']} flags, {counts['paths']} paths checked; "
          f"{len(findings)} problem(s)")


SELF_TEST_HELP = """#!/bin/sh
cat <<'EOF'
fake: a lotteryfl program for check_docs.py --self-test
Options:
  -h,--help                   Print this help message and exit
  --rounds INT=10             number of rounds (see lotteryfl-client --not-mine)
  --out TEXT                  output directory
  --quant TEXT                quantizer
EOF
"""

SELF_TEST_README = """# Fake

```sh
build/bin/lotteryfl-sim --rounds 2 \\
    --bogus-flag 1 --out runs/x   # a comment --also-not-a-flag
scripts/real.sh && scripts/missing.sh
scripts/real.sh lotteryfl-sim --an-argument-not-a-command
docker run --rm lotteryfl:latest sim --rounds 1 --wrong-role-flag
cat > /tmp/x.toml <<'EOF'
lotteryfl-sim --inside-heredoc
EOF
deploy/certs/out/ca.crt scripts/*.sh scripts/{real,other}.sh scripts/host-<h>.sh
scripts/sweep.py --vary quant=none,bsq --run "a:--rounds 3" -- --sweep-bad 1
```

Prose: `lotteryfl-sim --out DIR
--inline-bad` and `scripts/real.sh:12`, `scripts/gone.py`, [a link](docs/missing.md),
[good](scripts/real.sh), [web](https://example.invalid/x).
"""

SELF_TEST_EXPECTED = {
    ("README.md", 5, "lotteryfl-sim: flag --bogus-flag is not listed by `lotteryfl-sim --help`"),
    ("README.md", 6, "path scripts/missing.sh does not exist in the repository"),
    ("README.md", 8, "lotteryfl-sim: flag --wrong-role-flag is not listed by `lotteryfl-sim --help`"),
    ("README.md", 13, "lotteryfl-sim: flag --sweep-bad is not listed by `lotteryfl-sim --help`"),
    ("README.md", 16, "lotteryfl-sim: flag --inline-bad is not listed by `lotteryfl-sim --help`"),
    ("README.md", 17, "path scripts/gone.py does not exist in the repository"),
    ("README.md", 17, "link target docs/missing.md does not exist"),
}


def self_test():
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "repo")
        bin_dir = os.path.join(tmp, "bin")
        os.makedirs(os.path.join(root, "scripts"))
        os.makedirs(os.path.join(root, "docs"))
        os.makedirs(bin_dir)
        for name in ("real.sh", "other.sh", "host-0.sh", "sweep.py"):
            open(os.path.join(root, "scripts", name), "w").close()
        with open(os.path.join(root, "README.md"), "w") as f:
            f.write(SELF_TEST_README)
        with open(os.path.join(root, "docs", "clean.md"), "w") as f:
            f.write("```sh\nlotteryfl-sim --rounds 1 --out=runs/y  # fine\n```\n")
        exe = os.path.join(bin_dir, "lotteryfl-sim")
        with open(exe, "w") as f:
            f.write(SELF_TEST_HELP)
        os.chmod(exe, 0o755)
        checker = Checker(root, bin_dir, allowed={"deploy/certs/out": "generated"})
        checker.top = {"scripts", "docs", "README.md", "deploy"}
        found = set(checker.run(["README.md", "docs/clean.md"]))
        if found != SELF_TEST_EXPECTED:
            print("check_docs self-test FAILED")
            for f in sorted(SELF_TEST_EXPECTED - found):
                print("  not reported:", f)
            for f in sorted(found - SELF_TEST_EXPECTED):
                print("  reported wrongly:", f)
            return False
        # A program that cannot be run is a finding, not a pass.
        missing = Checker(root, os.path.join(tmp, "nobin"), allowed={})
        missing.top = checker.top
        if not any("is missing" in msg for _, _, msg in missing.run(["docs/clean.md"])):
            print("check_docs self-test FAILED: a missing binary was not reported")
            return False
    print(f"check_docs self-test: the {len(SELF_TEST_EXPECTED)} planted errors reported, nothing else")
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin-dir", required=True, help="directory of the built lotteryfl programs")
    ap.add_argument("--root", default=os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..")))
    ap.add_argument("--self-test", action="store_true")
    ap.add_argument("files", nargs="*", help="Markdown files relative to --root (default README.md docs/*.md)")
    args = ap.parse_args()
    if args.self_test and not self_test():
        return 1
    checker = Checker(os.path.abspath(args.root), os.path.abspath(args.bin_dir))
    files = args.files or default_files(checker.root)
    findings = checker.run(files)
    report(findings, checker.counts, "check_docs " + " ".join(files))
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
