"""Bundles libgpt_embedding.so into the package at build time (the rest is pyproject.toml).

The library is taken from $GPT_EMBEDDING_LIB (a file or its folder) or else from the
repository's build folder ../../.build/release/, which is built first when it is missing
(`swift build -c release --product gpt_embedding`). It is copied into the *build* directory, never into the
source tree, so a checkout keeps using the freshly built library.

With a library the wheel is a platform wheel: the distribution says it has extension modules,
so setuptools installs the package into platlib (the wheel's root, `Root-Is-Purelib: false`,
which `auditwheel` requires of any ELF file), and the tag is py3-none-<platform> (ctypes does
not depend on the CPython ABI). Without one the package is built pure (py3-none-any), with a
warning, and looks for the library at run time ($GPT_EMBEDDING_LIB or the system search
path, e.g. after `make install`).
"""
import functools
import os
import shutil
import subprocess

from setuptools import Distribution, setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
LIB = "libgpt_embedding.so"


@functools.lru_cache(maxsize=None)
def built_library():
    env = os.environ.get("GPT_EMBEDDING_LIB")
    if env:
        path = os.path.join(env, LIB) if os.path.isdir(env) else env
        if not os.path.isfile(path):
            raise SystemExit(f"GPT_EMBEDDING_LIB={env}: {path} does not exist")
        return path
    path = os.path.join(HERE, "..", "..", ".build", "release", LIB)
    root = os.path.realpath(os.path.join(HERE, "..", ".."))
    if not os.path.isfile(path) and os.path.isfile(os.path.join(root, "Package.swift")) and shutil.which("swift"):
        # In a checkout without a built library: build it (the same command as `make lib`).
        subprocess.run(["swift", "build", "-c", "release", "--product", "gpt_embedding"], cwd=root, check=True)
    return os.path.realpath(path) if os.path.isfile(path) else None


class BinaryDistribution(Distribution):
    def has_ext_modules(self):
        # True puts the package in platlib (install, build and bdist_wheel all ask this)
        # and makes bdist_wheel's root impure; there are no real extension modules to build.
        return built_library() is not None


class BuildPy(build_py):
    def run(self):
        super().run()
        lib = built_library()
        if lib is None:
            self.warn(f"{LIB} not found: build it first (`swift build -c release --product gpt_embedding` in the "
                      "repository root) to bundle it; this package will look for it at run time instead")
            return
        self.copy_file(lib, os.path.join(self.build_lib, "gpt_embedding", LIB))


class BdistWheel(bdist_wheel):
    def get_tag(self):
        python, abi, plat = super().get_tag()
        return (python, abi, plat) if self.root_is_pure else ("py3", "none", plat)


setup(distclass=BinaryDistribution, cmdclass={"build_py": BuildPy, "bdist_wheel": BdistWheel})
