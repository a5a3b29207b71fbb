"""``python -m gpt_embedding`` (issue 18, item 9): the seed's built-in checks on the loaded
library. The command passes on this library, and each check fails when the property it
asserts is broken (so the report means something)."""
import io
import os
import subprocess
import sys

import numpy as np
import pytest

import gpt_embedding
from gpt_embedding import GPTEmbedding, selfcheck
from gpt_embedding.__main__ import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAMES = ["forward pass", "gradient flow", "shape consistency", "device handling", "parameter counts",
         "statistical properties", "position encodings"]


def test_python_m_gpt_embedding_passes_and_reports():
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "bindings", "python"))
    res = subprocess.run([sys.executable, "-m", "gpt_embedding"], capture_output=True, text=True, env=env,
                         timeout=300, cwd=ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == f"gpt_embedding {gpt_embedding.__version__} self-check"
    assert lines[1].startswith("library  ") and gpt_embedding.library_version in lines[1]
    assert lines[2].startswith(f"kernels  {gpt_embedding.isa} ")
    results = [line for line in lines if line.startswith(("PASS", "FAIL"))]
    assert [line[6:30].strip() for line in results] == NAMES
    assert all(line.startswith("PASS  ") for line in results), results
    assert lines[-1] == f"{len(NAMES)} checks: {len(NAMES)} passed, 0 failed"


def test_only_and_seed(capsys):
    assert main(["--only", "parameter", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "seed     3" in out and "PASS  parameter counts" in out and "1 checks: 1 passed, 0 failed" in out


def run(only):
    report = io.StringIO()
    failed = selfcheck.run(report, only=[only])
    return failed, report.getvalue()


@pytest.mark.parametrize("check, attribute, broken", [
    ("forward", "forward", lambda real: lambda self, *a, **k: real(self, *a, **k) + np.float32(1e-3)),
    ("gradient", "grads", lambda real: lambda self: {k: v * 2 for k, v in real(self).items()}),
    ("shape", "forward", lambda real: lambda self, ids, *a, **k: real(self, ids, *a, **k)[:, :1]),
    ("parameter", "num_parameters", lambda real: lambda self: real(self) - 1),
    ("statistical", "parameter", lambda real: lambda self, name: real(self, name) * np.float32(1.01)),
])
def test_each_check_fails_when_its_property_breaks(monkeypatch, check, attribute, broken):
    monkeypatch.setattr(GPTEmbedding, attribute, broken(getattr(GPTEmbedding, attribute)))
    failed, report = run(check)
    assert failed == 1 and "FAIL  " in report and "1 checks: 0 passed, 1 failed" in report, report


def test_the_sinusoidal_check_fails_for_a_wrong_table(monkeypatch):
    real = selfcheck.SinusoidalPositionalEmbedding.forward
    monkeypatch.setattr(selfcheck.SinusoidalPositionalEmbedding, "forward",
                        lambda self, *a, **k: real(self, *a, **k) + np.float32(5e-6))
    failed, report = run("position")
    assert failed == 1 and "sinusoidal rows differ" in report, report


def test_dropout_statistics_catch_a_wrong_keep_rate(monkeypatch):
    real = GPTEmbedding.forward

    def forward(self, *a, **k):
        y = real(self, *a, **k)
        if self.training:
            y = y.copy()
            y.reshape(-1)[::50] = 0  # 2% more zeros: far outside 6 standard errors
        return y
    monkeypatch.setattr(GPTEmbedding, "forward", forward)
    failed, report = run("statistical")
    assert failed == 1 and "dropout kept" in report, report


def test_a_failing_check_makes_main_exit_1(monkeypatch, capsys):
    monkeypatch.setattr(GPTEmbedding, "num_parameters", lambda self: 0)
    assert main(["--only", "parameter"]) == 1
    assert "FAIL  parameter counts" in capsys.readouterr().out
