"""Per-language plans and the choice of Java's class name."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncrox.sandbox.languages import JAVA_DEFAULT_CLASS, java_main_class, plan
from syncrox.sandbox.model import Language


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("public class Hello { public static void main(String[] a) {} }", "Hello"),
        ("class A {}\npublic final class B { }", "B"),
        ("class Only { }", "Only"),
        ("// public class Comment\nclass Real {}", "Real"),
        ("/* public class Block */ public class Real {}", "Real"),
        ('class A { String s = "public class Str {"; }', "A"),
        ("public class Outer { public static class Inner {} }", "Outer"),
        ("class First { public class Nested {} }\npublic class Second {}", "Second"),
        ("int x;", JAVA_DEFAULT_CLASS),
        ("", JAVA_DEFAULT_CLASS),
        ("public record Point(int x) {}", "Point"),
    ],
)
def test_java_class_is_the_top_level_public_one(source: str, name: str) -> None:
    assert java_main_class(source.encode()) == name


@given(st.binary(max_size=500))
def test_java_class_name_is_always_a_safe_file_name(code: bytes) -> None:
    name = java_main_class(code)
    assert name.isascii() and "/" not in name and not name.startswith(".")
    assert 1 <= len(name) <= 64


def test_every_language_has_a_plan() -> None:
    for language in Language:
        found = plan(language, b"public class Main {}")
        assert found.run_argv
        assert "/" not in found.source


def test_python_runs_unbuffered_without_a_compile_phase() -> None:
    python = plan(Language.PYTHON, b"print(1)")
    assert python.compile_argv is None and "-u" in python.run_argv


def test_java_compiles_and_runs_the_detected_class() -> None:
    java = plan(Language.JAVA, b"public class Hello {}")
    assert java.source == "Hello.java"
    assert java.compile_argv is not None and java.compile_argv[-1] == "Hello.java"
    assert java.run_argv[-1] == "Hello"
