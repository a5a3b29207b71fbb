#!/usr/bin/env python3
"""Runs every fenced code block of README.md, docs/*.md and the DocC articles
(Sources/GPTEmbedding/GPTEmbedding.docc/*.md) and checks what their comments say they print.

    python3 Tests/docs/run_snippets.py [--list] [FILTER ...]

FILTER keeps the blocks whose "file:line" contains it. Needs the built library and tool
(`make lib cli`); `make test-docs` builds them first and runs this.

The convention (docs/architecture.md repeats it for writers of documentation):

* Fences that run: ```c, ```cpp, ```python, ```swift, ```sh / ```bash / ```shell.
* Fences that do not run: ```text (output listings, formulas, file trees), and any block
  whose fence follows the line `<!-- not run: REASON -->` (blank lines may sit between).
  Both are counted and listed. Any other fence (none, json, ...) is a failure: say what
  the block is.
* Expectations. A trailing comment `# -> TEXT` (python, sh) or `// -> TEXT` (c, cpp,
  swift; `/* -> TEXT */` in C too) says what the line prints: the block's standard output
  must contain, after the lines matched by the expectations before it, a line that ends
  with TEXT. `...` inside TEXT matches anything. In Python, on a bare expression that is
  not a call to print (`layer.weight_dtype  # -> 'q4_k'`), TEXT is the expression's value
  instead: its repr() or its str() must equal TEXT, and the line becomes an assertion.
  Other comments are prose and checked by nobody.
* Where a block runs: in a fresh temporary folder holding links to the repository's
  top-level entries, so `Tests/fixtures/...`, `examples/...` and `include/` resolve while
  the files a block writes stay in the temporary folder.
  - C / C++: `cc -std=c11` / `c++ -std=c++17` with -Wall -Wextra -Werror and -Iinclude,
    linked to .build/release/libgpt_embedding.so with an rpath, and -lm. A block without
    a `main(` is the body of `int main(void)`, after includes of math.h, stdint.h,
    stdio.h, stdlib.h, string.h and gpt_embedding.h. A block that includes <mpi.h> is
    built with mpicc and run by `mpirun -n 2`. (Blocks that need OpenMPI or mpi4py are
    skipped, and reported so, where mpicc / mpirun are missing; CI installs them.)
  - Python: python3 with PYTHONPATH=bindings/python (the package then loads
    .build/release/libgpt_embedding.so). A block that imports torch or gpt_embedding.nn is
    skipped when torch is missing, unless GPT_EMBEDDING_REQUIRE_TORCH is set (CI sets it):
    then it runs and fails. A block that imports mpi4py runs under `mpirun -n 2`.
  - Swift: every Swift block goes into one executable of a client package in
    .build/docs-snippets that depends on this package by path (as a Swift user's package
    does), each block in its own `do { } catch { }` scope, `import` lines hoisted; built
    once with `-c release` (a second run recompiles only the snippets).
  - Shell: `bash -e -o pipefail` with .build/release (the gpt-embedding tool) first on
    PATH, `make` running this repository's Makefile (`make -C <root>`), and HOME set to the
    temporary folder (so `make install PREFIX="$HOME/.local"` installs there).

Prints one line per block (ok / FAIL / not run / skipped) and a summary; exits 1 on any
failure.
"""
from __future__ import annotations

import argparse
import ast
import io
import os
import re
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import time
import tokenize
from dataclasses import dataclass, field
from typing import List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, ".build", "release")
SWIFT_PACKAGE = os.path.join(ROOT, ".build", "docs-snippets")
TIMEOUT = 180  # seconds per block; a block that hangs fails instead of stalling CI

RUN_LANGS = {"c", "cpp", "python", "swift", "sh", "bash", "shell"}
NOT_RUN_RE = re.compile(r"^\s*<!--\s*not run:\s*(.+?)\s*-->\s*$")
FENCE_RE = re.compile(r"^(\s*)(```+)\s*([^\s`]*)\s*$")


@dataclass
class Block:
    path: str          # relative to ROOT
    line: int          # line of the opening fence (1-based)
    lang: str
    code: str
    not_run: Optional[str] = None
    status: str = ""   # ok, FAIL, not run, skipped
    detail: str = ""
    seconds: float = 0.0
    expectations: List[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.path}:{self.line}"


def doc_files() -> List[str]:
    files = ["README.md"]
    for folder in ("docs", os.path.join("Sources", "GPTEmbedding", "GPTEmbedding.docc")):
        full = os.path.join(ROOT, folder)
        if os.path.isdir(full):
            files += sorted(os.path.join(folder, f) for f in os.listdir(full) if f.endswith(".md"))
    return files


def extract(path: str) -> List[Block]:
    lines = open(os.path.join(ROOT, path), encoding="utf-8").read().split("\n")
    blocks: List[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE_RE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, ticks, lang = m.group(1), m.group(2), m.group(3).lower()
        start = i
        body = []
        i += 1
        while i < len(lines) and lines[i].strip() != ticks:
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        i += 1
        j = start - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        marker = NOT_RUN_RE.match(lines[j]) if j >= 0 else None
        blocks.append(Block(path, start + 1, lang, "\n".join(body) + "\n",
                            not_run=marker.group(1) if marker else None))
    return blocks


# -- expectations --------------------------------------------------------------------------

def pattern(text: str) -> str:
    return ".*".join(re.escape(part) for part in text.split("..."))


def check_stdout(expectations: List[str], stdout: str) -> Optional[str]:
    """None when every expectation finds its line in order, else what is missing."""
    lines = [l.rstrip() for l in stdout.splitlines()]
    at = 0
    for text in expectations:
        rx = re.compile(pattern(text) + r"\Z")
        while at < len(lines) and not rx.search(lines[at]):
            at += 1
        if at == len(lines):
            return f"no line ending with {text!r} (in order)"
        at += 1
    return None


EXPECT_HELPER = '''\
import re as _re
def expect_value(value, text):
    rx = ".*".join(_re.escape(p) for p in text.split("..."))
    if not (_re.fullmatch(rx, repr(value)) or _re.fullmatch(rx, str(value))):
        raise AssertionError(f"value {value!r} is not {text!r}")
    return value
'''


def python_expectations(code: str):
    """The code with value expectations turned into assertions, and the stdout ones."""
    lines = code.split("\n")
    stdout: List[str] = []
    comments = []
    for tok in tokenize.generate_tokens(io.StringIO(code).readline):
        if tok.type == tokenize.COMMENT:
            m = re.match(r"#\s*->\s*(.*\S)\s*$", tok.string)
            if m:
                comments.append((tok.start[0] - 1, tok.start[1], m.group(1)))
    for row, col, text in comments:
        src = lines[row][:col].rstrip()
        stmt = src.strip()
        value = False
        try:
            tree = ast.parse(stmt)
            if len(tree.body) == 1 and isinstance(tree.body[0], ast.Expr):
                call = tree.body[0].value
                value = not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
                             and call.func.id == "print")
        except SyntaxError:
            pass  # part of a statement spanning lines: an output expectation
        if value:
            indent = src[:len(src) - len(src.lstrip())]
            lines[row] = f"{indent}__doc_expect(({stmt}), {text!r})"
        else:
            stdout.append(text)
    return "from _doc_snippet import expect_value as __doc_expect\n" + "\n".join(lines), stdout


def comment_expectations(code: str, lang: str) -> List[str]:
    out = []
    for line in code.split("\n"):
        if lang in ("sh", "bash", "shell", "python"):
            m = re.search(r"(?:^|\s)#\s*->\s*(.*\S)\s*$", line)
        else:
            m = re.search(r"//\s*->\s*(.*\S)\s*$", line) or re.search(r"/\*\s*->\s*(.*?)\s*\*/\s*$", line)
        if m:
            out.append(m.group(1))
    return out


# -- running -------------------------------------------------------------------------------

def workdir() -> str:
    tmp = tempfile.mkdtemp(prefix="gpte-doc-")
    for entry in os.listdir(ROOT):
        if entry != ".git":
            os.symlink(os.path.join(ROOT, entry), os.path.join(tmp, entry))
    with open(os.path.join(tmp, "_doc_snippet.py"), "w") as f:
        f.write(EXPECT_HELPER)
    return tmp


def base_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "GPT_EMBEDDING_LIB"}
    env["PYTHONPATH"] = os.path.join(ROOT, "bindings", "python")
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    # mpirun refuses root without these (as Tests/mpi/run.sh sets them).
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    return env


def run(cmd, cwd, env, timeout=TIMEOUT):
    # A session of its own, so that a timeout ends the block's children too (make, mpirun).
    p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
        return p.returncode, out, err
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        return -1, out or "", (err or "") + f"\ntimed out after {timeout} s"


def mpirun() -> List[str]:
    return ["mpirun", "-n", "2", "--oversubscribe"]


def finish(block: Block, rc: int, out: str, err: str, what: str) -> None:
    if rc != 0:
        block.status, block.detail = "FAIL", f"{what} exited {rc}\n{tail(out, err)}"
        return
    missing = check_stdout(block.expectations, out)
    if missing:
        block.status, block.detail = "FAIL", f"{missing}\n{tail(out, err)}"
    else:
        block.status = "ok"


def tail(out: str, err: str, n: int = 25) -> str:
    text = ("stdout:\n" + out if out.strip() else "") + ("\nstderr:\n" + err if err.strip() else "")
    return "\n".join(text.strip().split("\n")[-n:])


def run_c(block: Block, env: dict) -> None:
    block.expectations = comment_expectations(block.code, block.lang)
    tmp = workdir()
    try:
        cpp = block.lang == "cpp"
        code = block.code
        if not re.search(r"\bmain\s*\(", code):
            code = ("#include <math.h>\n#include <stdint.h>\n#include <stdio.h>\n#include <stdlib.h>\n"
                    "#include <string.h>\n#include \"gpt_embedding.h\"\n\nint main(void) {\n"
                    f"#line 1 \"{block.name}\"\n{code}\nreturn 0;\n}}\n")
        else:
            code = f"#line 1 \"{block.name}\"\n{code}"
        src = os.path.join(tmp, "snippet.cpp" if cpp else "snippet.c")
        open(src, "w").write(code)
        mpi = "<mpi.h>" in code
        if mpi and not (shutil.which("mpicc") and shutil.which("mpirun")):
            block.status, block.detail = "skipped", "needs mpicc and mpirun (OpenMPI)"
            return
        cc = ["mpicc"] if mpi else (["c++", "-std=c++17"] if cpp else ["cc", "-std=c11"])
        if mpi:
            cc.append("-std=c11")
        cmd = cc + ["-Wall", "-Wextra", "-Werror", "-I" + os.path.join(ROOT, "include"), src,
                    "-L" + BIN, "-lgpt_embedding", "-Wl,-rpath," + BIN, "-lm", "-o", "snippet"]
        rc, out, err = run(cmd, tmp, env)
        if rc != 0:
            block.status, block.detail = "FAIL", "does not compile\n" + tail(out, err)
            return
        rc, out, err = run((mpirun() if mpi else []) + ["./snippet"], tmp, env)
        finish(block, rc, out, err, "program")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


TORCH_RE = re.compile(r"^\s*(import torch|from torch\b|from gpt_embedding\.nn\b|from gpt_embedding import nn\b|"
                      r"import gpt_embedding\.nn\b)", re.M)


def have_torch() -> bool:
    r = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True)
    return r.returncode == 0


def run_python(block: Block, env: dict, torch_ok: bool) -> None:
    if TORCH_RE.search(block.code) and not torch_ok and not os.environ.get("GPT_EMBEDDING_REQUIRE_TORCH"):
        block.status, block.detail = "skipped", "needs torch (GPT_EMBEDDING_REQUIRE_TORCH unset)"
        return
    code, block.expectations = python_expectations(block.code)
    tmp = workdir()
    try:
        open(os.path.join(tmp, "snippet.py"), "w").write(code)
        cmd = [sys.executable, "snippet.py"]
        if re.search(r"^\s*(from mpi4py|import mpi4py)", block.code, re.M):
            if not shutil.which("mpirun"):
                block.status, block.detail = "skipped", "needs mpirun (OpenMPI) and mpi4py"
                return
            cmd = mpirun() + cmd
        rc, out, err = run(cmd, tmp, env)
        finish(block, rc, out, err, "python3")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


SHELL_PRELUDE = f'''\
make() {{ command make --no-print-directory -C {ROOT!r} "$@"; }}
'''


def run_shell(block: Block, env: dict) -> None:
    if re.search(r"\bmpi(run|cc)\b", block.code) and not (shutil.which("mpicc") and shutil.which("mpirun")):
        block.status, block.detail = "skipped", "needs mpicc and mpirun (OpenMPI)"
        return
    block.expectations = comment_expectations(block.code, "sh")
    tmp = workdir()
    try:
        open(os.path.join(tmp, "snippet.sh"), "w").write(SHELL_PRELUDE + block.code)
        senv = dict(env)
        senv["PYTHONUSERBASE"] = site.getuserbase()  # HOME moves; the user's packages stay
        senv["HOME"] = tmp
        rc, out, err = run(["bash", "-e", "-o", "pipefail", "snippet.sh"], tmp, senv)
        finish(block, rc, out, err, "bash")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- Swift: one client package, one executable, one build ----------------------------------

SEPARATOR = "\u241e snippet "


def swift_sources(blocks: List[Block]) -> str:
    imports, body = ["import GPTEmbedding"], []
    for n, b in enumerate(blocks):
        b.expectations = comment_expectations(b.code, "swift")
        lines = []
        for line in b.code.split("\n"):
            if re.match(r"^\s*import\s+\w+\s*$", line):
                if line.strip() not in imports:
                    imports.append(line.strip())
            else:
                lines.append("    " + line if line.strip() else "")
        body.append(f'print("{SEPARATOR}{n}")\n'
                    f'do {{\n' + "\n".join(lines).rstrip() + "\n"
                    f'}} catch {{\n    print("{SEPARATOR}{n} threw: \\(error)")\n}}\n')
    return "\n".join(imports) + "\n\n" + "\n".join(body)


def swift_package(identity_path: str) -> str:
    return f'''// swift-tools-version:6.0
// Generated by Tests/docs/run_snippets.py: every Swift block of the documentation.
import PackageDescription
let package = Package(
    name: "docs-snippets",
    dependencies: [.package(name: "gpt-embedding", path: {identity_path!r})],
    targets: [.executableTarget(name: "snippets",
                                dependencies: [.product(name: "GPTEmbedding", package: "gpt-embedding")])]
)
'''.replace("'", '"')


def start_swift(blocks: List[Block]) -> Optional[subprocess.Popen]:
    if not blocks:
        return None
    src = os.path.join(SWIFT_PACKAGE, "Sources", "snippets")
    os.makedirs(src, exist_ok=True)
    pkg = swift_package(ROOT)
    manifest = os.path.join(SWIFT_PACKAGE, "Package.swift")
    if not os.path.exists(manifest) or open(manifest).read() != pkg:
        open(manifest, "w").write(pkg)
    main = os.path.join(src, "main.swift")
    text = swift_sources(blocks)
    if not os.path.exists(main) or open(main).read() != text:  # keep the build incremental
        open(main, "w").write(text)
    log = open(os.path.join(SWIFT_PACKAGE, "build.log"), "w")
    return subprocess.Popen(["swift", "build", "-c", "release", "--product", "snippets"],
                            cwd=SWIFT_PACKAGE, stdout=log, stderr=subprocess.STDOUT)


def finish_swift(blocks: List[Block], build: subprocess.Popen, env: dict) -> None:
    t0 = time.time()
    rc = build.wait()
    build_seconds = time.time() - t0
    if rc != 0:
        log = open(os.path.join(SWIFT_PACKAGE, "build.log")).read()
        errors = "\n".join(l for l in log.splitlines() if "error:" in l) or log[-3000:]
        for b in blocks:
            b.status, b.detail = "FAIL", "the Swift snippets do not build\n" + errors
        return
    tmp = workdir()
    try:
        exe = os.path.join(SWIFT_PACKAGE, ".build", "release", "snippets")
        t0 = time.time()
        rc, out, err = run([exe], tmp, env)
        seconds = time.time() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    parts = {}
    current = None
    for line in out.splitlines(keepends=True):
        if line.startswith(SEPARATOR):
            rest = line[len(SEPARATOR):].strip()
            n, _, threw = rest.partition(" threw: ")
            current = int(n)
            parts.setdefault(current, ["", None])
            if threw:
                parts[current][1] = threw
            continue
        if current is not None:
            parts[current][0] += line
    for n, b in enumerate(blocks):
        b.seconds = seconds / len(blocks)
        if n not in parts:
            b.status, b.detail = "FAIL", f"not reached: the snippets program exited {rc}\n{tail('', err)}"
            continue
        text, threw = parts[n]
        if threw:
            b.status, b.detail = "FAIL", f"threw: {threw}\n{tail(text, '')}"
            continue
        missing = check_stdout(b.expectations, text)
        b.status, b.detail = ("FAIL", f"{missing}\n{tail(text, '')}") if missing else ("ok", "")
    if build_seconds > 1:
        print(f"(Swift snippets: waited {build_seconds:.0f} s for the build)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("filters", nargs="*")
    ap.add_argument("--list", action="store_true", help="list the blocks without running them")
    args = ap.parse_args()

    blocks = [b for f in doc_files() for b in extract(f)]
    if args.filters:
        blocks = [b for b in blocks if any(f in b.name for f in args.filters)]
    if args.list:
        for b in blocks:
            print(f"{b.name:45} {b.lang or '(none)':8} {'not run: ' + b.not_run if b.not_run else ''}")
        return 0
    if not os.path.exists(os.path.join(BIN, "libgpt_embedding.so")):
        print(f"{BIN}/libgpt_embedding.so is missing: run `make lib cli` first", file=sys.stderr)
        return 2

    env = base_env()
    torch_ok = have_torch()
    t_start = time.time()
    for b in blocks:
        if b.not_run:
            b.status, b.detail = "not run", b.not_run
        elif b.lang == "text":
            b.status, b.detail = "not run", "text"
        elif b.lang not in RUN_LANGS:
            b.status = "FAIL"
            b.detail = (f"fence language {b.lang or '(none)'!r}: fence it as text, or mark it "
                        "<!-- not run: reason -->")
    swift = [b for b in blocks if not b.status and b.lang == "swift"]
    build = start_swift(swift)  # compiles while the other blocks run
    for b in blocks:
        if b.status or b.lang == "swift":
            continue
        t0 = time.time()
        if b.lang in ("c", "cpp"):
            run_c(b, env)
        elif b.lang == "python":
            run_python(b, env, torch_ok)
        else:
            run_shell(b, env)
        b.seconds = time.time() - t0
        report(b)
    if build:
        finish_swift(swift, build, env)
        for b in swift:
            report(b)
    for b in blocks:
        if b.status == "not run" or (b.status == "FAIL" and b.lang not in RUN_LANGS):
            report(b)

    count = {s: sum(1 for b in blocks if b.status == s) for s in ("ok", "FAIL", "not run", "skipped")}
    text = sum(1 for b in blocks if b.status == "not run" and b.detail == "text")
    print(f"{len(blocks)} blocks: {count['ok']} ok, {count['FAIL']} failed, {count['skipped']} skipped, "
          f"{count['not run']} not run ({text} text, {count['not run'] - text} marked not run) "
          f"in {time.time() - t_start:.0f} s")
    return 1 if count["FAIL"] else 0


def report(b: Block) -> None:
    if b.status == "ok":
        print(f"ok       {b.name} {b.lang} ({b.seconds:.1f} s)")
    elif b.status == "not run":
        print(f"not run  {b.name} {b.lang}: {b.detail}")
    elif b.status == "skipped":
        print(f"skipped  {b.name} {b.lang}: {b.detail}")
    else:
        print(f"FAIL     {b.name} {b.lang}: " + b.detail.replace("\n", "\n         "))
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
