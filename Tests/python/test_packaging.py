"""`pip install ./bindings/python` gives a package that bundles the library and finds it
with no configuration, from any directory; the wheel is py3-none-<platform>."""
import os
import shutil
import subprocess
import sys

import pytest

from gpt_embedding import _lib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCE = os.path.join(ROOT, "bindings", "python")


def pip(*args, env=None, cwd=None):
    try:
        import setuptools  # noqa: F401 - the build backend, used without build isolation (offline)
    except ImportError:
        pytest.skip("setuptools is not installed")
    return subprocess.run([sys.executable, "-m", "pip", *args, "--no-build-isolation", "--no-deps", "--quiet",
                           "--disable-pip-version-check"], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture
def source_copy(tmp_path):
    """The package sources in a scratch folder (pip leaves build/ and *.egg-info behind)."""
    dest = tmp_path / "src"
    shutil.copytree(SOURCE, dest, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "*.so"))
    return dest


def test_pip_install_bundles_the_library(tmp_path, source_copy):
    target = tmp_path / "site"
    env = dict(os.environ, GPT_EMBEDDING_LIB=_lib.library_path)  # the copy out of the repository
    r = pip("install", "--target", str(target), str(source_copy), env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    bundled = target / "gpt_embedding" / "libgpt_embedding.so"
    assert bundled.is_file()
    clean = {k: v for k, v in os.environ.items() if k not in ("GPT_EMBEDDING_LIB", "PYTHONPATH")}
    clean["PYTHONPATH"] = str(target)
    code = ("import gpt_embedding, numpy as np; print(gpt_embedding.library_path); "
            "print(gpt_embedding.__version__); print(gpt_embedding.GPTEmbedding(10, 4, 4)([[1, 2]]).shape)")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=clean, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    path, version, shape = r.stdout.split("\n")[:3]
    assert os.path.samefile(path, bundled)
    assert version == _lib.__version__
    assert shape == "(1, 2, 4)"


def test_wheel_is_tagged_for_the_platform_not_the_interpreter(tmp_path, source_copy):
    env = dict(os.environ, GPT_EMBEDDING_LIB=_lib.library_path)
    r = pip("wheel", "--wheel-dir", str(tmp_path / "dist"), str(source_copy), env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    wheels = os.listdir(tmp_path / "dist")
    assert len(wheels) == 1 and wheels[0].startswith(f"gpt_embedding-{_lib.__version__}-py3-none-linux_"), wheels
