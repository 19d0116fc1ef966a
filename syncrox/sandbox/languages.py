"""How each language is compiled and run inside the execution image. Pure.

Decisions:

* Python has no compile phase: a syntax error is the program's own failure (RUNTIME_ERROR
  with Python's traceback), as when running ``python3 main.py`` at home. It runs unbuffered
  (``-u``) so output printed before a timeout or a crash is not lost in a buffer.
* C and C++ are compiled with ``-O2 -Wall`` (warnings reach the user in ``diag``); their
  stdout is made line-buffered with ``stdbuf`` for the same reason as Python's ``-u``.
* Java: the source file is named after the first top-level ``public`` class (else the first
  class, else ``Main``), found after comments and literals are blanked out, so a ``class``
  inside a string or comment is never picked (the original's regex bug). The JVM runs with the
  serial collector and C1 only: at half a CPU that starts about twice as fast.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from syncrox.sandbox.model import Language

JAVA_DEFAULT_CLASS = "Main"
JAVA_CLASS_MAX_CHARS = 64
# Options that make the JVM start fast on half a core; shared by javac (-J) and java.
JVM_OPTIONS = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto")

_JAVA_NOISE = re.compile(
    r"""//[^\n]*|/\*.*?(?:\*/|\Z)|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'""", re.DOTALL
)
_JAVA_TYPE = re.compile(
    r"\b(public\s+)?(?:(?:abstract|final|static|strictfp|sealed)\s+)*"
    r"(?:class|record|enum|interface)\s+([A-Za-z_$][A-Za-z0-9_$]*)"
)


@dataclass(frozen=True)
class Plan:
    """Where the code goes and the commands of each phase (argv, run in /sandbox)."""

    source: str
    compile_argv: tuple[str, ...] | None
    run_argv: tuple[str, ...]


def plan(language: Language, code: bytes) -> Plan:
    match language:
        case Language.PYTHON:
            return Plan("main.py", None, ("python3", "-u", "-B", "main.py"))
        case Language.C:
            compile_c = ("gcc", "-std=gnu17", "-O2", "-Wall", "-pipe", "-o", "main", "main.c")
            return Plan("main.c", (*compile_c, "-lm"), ("stdbuf", "-oL", "./main"))
        case Language.CPP:
            compile_cpp = ("g++", "-std=gnu++17", "-O2", "-Wall", "-pipe", "-o", "main")
            return Plan("main.cpp", (*compile_cpp, "main.cpp"), ("stdbuf", "-oL", "./main"))
        case Language.JAVA:
            name = java_main_class(code)
            javac = ("javac", "-encoding", "UTF-8", *(f"-J{opt}" for opt in JVM_OPTIONS))
            return Plan(
                f"{name}.java",
                (*javac, "-d", ".", f"{name}.java"),
                ("java", *JVM_OPTIONS, "-cp", ".", name),
            )
    raise ValueError(f"unsupported language {language!r}")


def java_main_class(code: bytes) -> str:
    """The class a Java source file must be named after and run as."""
    text = code.decode("utf-8", "replace")
    blanked = _JAVA_NOISE.sub(" ", text)
    first: str | None = None
    depth = 0
    position = 0
    for match in _JAVA_TYPE.finditer(blanked):
        depth += _brace_depth(blanked[position : match.start()])
        position = match.start()
        if depth > 0:  # a nested type, not a file's top-level class
            continue
        name = match.group(2)
        if match.group(1):
            return _safe_class(name)
        first = first or name
    return _safe_class(first) if first else JAVA_DEFAULT_CLASS


def _brace_depth(text: str) -> int:
    return text.count("{") - text.count("}")


def _safe_class(name: str) -> str:
    # ASCII only and bounded: the name becomes a file name and an argument.
    if len(name) > JAVA_CLASS_MAX_CHARS:
        return JAVA_DEFAULT_CLASS
    return name
