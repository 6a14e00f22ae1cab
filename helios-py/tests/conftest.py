"""Shared helpers: the project's policy cases (tests/fixtures/cases, shared with Rust and Node)."""

import json
import os
from pathlib import Path

import pytest

# The suites' images live at made-up registries: look them up as written unless a test asks
# for resolution itself (test_registry.py passes resolve=True against a real registry).
os.environ.setdefault("HELIOS_NO_RESOLVE", "true")

#: tests/fixtures of the repository (helios-py/tests → ../../tests/fixtures).
FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures"
CASES = FIXTURES / "cases"


def load_cases():
    """Every case file, sorted, as (name, case dict)."""
    return [(p.stem, json.loads(p.read_text())) for p in sorted(CASES.glob("*.json"))]


def case_input(case):
    """The case's input: inline, or a file relative to tests/fixtures."""
    value = case["input"]
    if isinstance(value, str):
        return json.loads((FIXTURES / value).read_text())
    return value


def case_kwargs(case):
    """Keyword arguments of helios.evaluate / helios.Evaluator for the case."""
    kwargs = {"policy": [str(FIXTURES / p) for p in case.get("policy") or []] or None}
    for key in ("data", "package", "rego_v0", "time_limit_ms"):
        if key in case:
            kwargs[key] = case[key]
    return kwargs


@pytest.fixture
def clean_input():
    """A valid input with no findings (allowed by the default policy)."""
    return json.loads((FIXTURES / "inputs" / "clean.json").read_text())


@pytest.fixture
def critical_input():
    """A valid input with an unfixable critical (denied by the default policy)."""
    return json.loads((FIXTURES / "inputs" / "critical-no-fix.json").read_text())
