"""The README's PyTorch quick start runs exactly as written and prints what its comments say."""
import os
import re
import subprocess
import sys

import pytest

if os.environ.get("GPT_EMBEDDING_REQUIRE_TORCH") != "1":
    pytest.importorskip("torch")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_pytorch_quick_start_runs_as_written(tmp_path):
    text = open(os.path.join(ROOT, "README.md")).read()
    section = re.search(r"<!-- BEGIN pytorch-quickstart -->\n```python\n(.*?)```", text, re.S)
    assert section, "no PyTorch quick start block in README.md"
    script = tmp_path / "torch_quickstart.py"
    script.write_text(section.group(1))
    env = {k: v for k, v in os.environ.items() if k != "GPT_EMBEDDING_LIB"}
    env["PYTHONPATH"] = os.path.join(ROOT, "bindings", "python")
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "Output shape: torch.Size([2, 10, 768])"
    assert re.fullmatch(r"Gradient norm: \d+\.\d{4}", lines[1]), lines[1]
    assert float(lines[1].split(": ")[1]) > 0
    assert lines[2] == "torch.Size([50257, 768])"
    assert lines[3] == "torch.Size([1, 1, 768])"
    assert len(lines) == 4
