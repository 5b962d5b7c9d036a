"""icgt's version, importable without the package's heavy parts (the command line and export read it).

It must equal ``version`` in pyproject.toml and the ``project(icgt VERSION ...)`` of CMakeLists.txt;
tests/python/test_package.py checks that the three agree.
"""

__version__ = "0.1.0"
