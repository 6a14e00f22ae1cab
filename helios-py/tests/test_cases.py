"""Every shared policy case, decided through the Python bindings, must match its expected JSON."""

import pytest

import helios
from conftest import CASES, load_cases, case_input, case_kwargs

CASE_LIST = load_cases()


def test_cases_are_present():
    # The suite must not pass vacuously: the project ships its cases in tests/fixtures/cases.
    assert CASES.is_dir(), f"missing {CASES}"
    assert len(CASE_LIST) >= 1


def check(case, run):
    """Runs `run()` and compares with the case's expectation (the shared comparison rule)."""
    expect = case["expect"]
    if "error" in expect:
        with pytest.raises(helios.HeliosError) as info:
            run()
        assert info.value.code == expect["error"], str(info.value)
        assert type(info.value).code == expect["error"]
        return
    decision = run()
    assert decision["allowed"] == expect["allowed"]
    assert decision["violations"] == expect["violations"]
    assert decision["warnings"] == expect["warnings"]
    assert decision["policy"]["id"] == expect["policy_id"]
    assert decision["policy"]["version"].startswith("sha256:")
    assert decision["backend"] == "embedded"


@pytest.mark.parametrize("name,case", CASE_LIST, ids=[n for n, _ in CASE_LIST])
def test_case_with_evaluate(name, case):
    check(case, lambda: helios.evaluate(case_input(case), **case_kwargs(case)))


@pytest.mark.parametrize("name,case", CASE_LIST, ids=[n for n, _ in CASE_LIST])
def test_case_with_evaluator(name, case):
    def run():
        evaluator = helios.Evaluator(**case_kwargs(case))
        first = evaluator.evaluate(case_input(case))
        # A prepared evaluator is reusable: the second decision is the same.
        assert evaluator.evaluate(case_input(case)) == first
        assert first["policy"]["version"] == evaluator.version
        return first

    check(case, run)


@pytest.mark.parametrize("name,case", CASE_LIST, ids=[n for n, _ in CASE_LIST])
def test_case_with_parallel_rules(name, case):
    # The decision rules shared among the cores decide every case as in turn (errors too).
    check(case, lambda: helios.Evaluator(**case_kwargs(case), parallel_rules=True).evaluate(case_input(case)))
