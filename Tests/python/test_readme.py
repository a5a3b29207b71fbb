"""The Python quick start in bindings/python/README.md runs exactly as written and prints
what its comments say."""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
README = os.path.join(ROOT, "bindings", "python", "README.md")


def test_quick_start_runs_as_written(tmp_path):
    block = re.search(r"```python\n(.*?)```", open(README).read(), re.S)
    assert block, "no ```python block in bindings/python/README.md"
    script = tmp_path / "quickstart.py"
    script.write_text(block.group(1))
    env = {k: v for k, v in os.environ.items() if k != "GPT_EMBEDDING_LIB"}
    env["PYTHONPATH"] = os.path.join(ROOT, "bindings", "python")
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "Output shape: (2, 10, 768)"
    assert lines[1].startswith("token grad norm: ")
    assert lines[2] == "(1, 1, 768)"
    assert lines[3] == "GPT-2 small embedding parameters: 39,385,344"
    assert lines[4] == "gpt_embedding_forward_i64: token id 50300 at [0, 1] is out of range [0, 50257)"
    assert r.stderr == ""


def test_precision_block_runs_as_written(tmp_path):
    """The second Python block: bf16 tables, a checkpoint saved and opened mapped, typed
    outputs and a bf16 backward."""
    blocks = re.findall(r"```python\n(.*?)```", open(README).read(), re.S)
    assert len(blocks) >= 2, "no second ```python block (checkpoints at their own precision)"
    script = tmp_path / "precision.py"
    script.write_text(blocks[1])
    env = {k: v for k, v in os.environ.items() if k != "GPT_EMBEDDING_LIB"}
    env["PYTHONPATH"] = os.path.join(ROOT, "bindings", "python")
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["bfloat16", "bfloat16 True", "bfloat16 (1, 3, 64)", "float32"]
    assert r.stderr == ""
    # docs/checkpoints.md carries this block too (with "# -> " expectations, which
    # Tests/docs/run_snippets.py checks); the code is the same once comments are dropped.
    guide = re.findall(r"```python\n(.*?)```", open(os.path.join(ROOT, "docs", "checkpoints.md")).read(), re.S)
    assert _code(blocks[1]) in [_code(b) for b in guide]


def _code(block):
    """A block's statements without comments and blank lines."""
    lines = (re.sub(r"\s*#.*$", "", line) for line in block.splitlines())
    return [line for line in lines if line.strip()]
