"""Build hook for the optional native data-preparation kernel.

The extension is optional: when a compiler is missing the package still installs
and `bulkformer.preprocess` falls back to its NumPy path.
"""
from pathlib import Path

from setuptools import setup

ext_modules = []
native_source = Path("python/src/native.cpp")
if native_source.exists():
    from pybind11.setup_helpers import Pybind11Extension

    ext_modules.append(
        Pybind11Extension(
            "bulkformer.preprocess._native",
            [str(native_source)],
            cxx_std=17,
            extra_compile_args=["-O3", "-fopenmp"],
            extra_link_args=["-fopenmp"],
            optional=True,
        )
    )

setup(ext_modules=ext_modules)
