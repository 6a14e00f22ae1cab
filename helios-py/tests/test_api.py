"""The API around the decisions: defaults, reuse, threads, argument handling."""

import copy
import pathlib
import threading
import time

import pytest

import helios
from conftest import FIXTURES


def test_default_policy_denies_critical(critical_input):
    decision = helios.evaluate(critical_input)
    assert decision["allowed"] is False
    assert decision["policy"]["id"] == "helios.default"
    assert all(set(v) >= {"msg"} for v in decision["violations"])
    assert decision["violations"]


def test_default_policy_allows_clean(clean_input):
    decision = helios.evaluate(clean_input)
    assert decision == {
        "allowed": True,
        "violations": [],
        "warnings": [],
        "policy": {"id": "helios.default", "version": decision["policy"]["version"]},
        "backend": "embedded",
    }


def test_evaluator_properties_and_repr():
    evaluator = helios.Evaluator()
    assert evaluator.version.startswith("sha256:")
    assert evaluator.package == "helios"
    assert "helios" in repr(evaluator)
    # The same policy gives the same version; other data gives another.
    assert helios.Evaluator().version == evaluator.version
    other = helios.Evaluator(data={"helios": {"config": {"allow_unscanned": True}}})
    assert other.version != evaluator.version


def test_policy_accepts_str_pathlike_and_sequences(clean_input):
    rego = FIXTURES / "policies" / "strings.rego"
    versions = {
        helios.Evaluator(str(rego)).version,
        helios.Evaluator(rego).version,
        helios.Evaluator([rego]).version,
        helios.Evaluator((str(rego),)).version,
    }
    assert len(versions) == 1
    assert helios.evaluate(clean_input, rego)["policy"]["id"] == "helios"


def test_data_and_input_are_not_mutated(critical_input):
    data = {"helios": {"exceptions": [{"id": "CVE-2024-3094", "expires": "2199-12-31", "reason": "r"}]}}
    before_data, before_input = copy.deepcopy(data), copy.deepcopy(critical_input)
    helios.evaluate(critical_input, data=data)
    assert data == before_data and critical_input == before_input


def test_one_evaluator_shared_by_threads(critical_input, clean_input):
    evaluator = helios.Evaluator()
    results, errors = [], []

    def work(item, allowed):
        try:
            for _ in range(20):
                results.append(evaluator.evaluate(item)["allowed"] == allowed)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(critical_input, False)) for _ in range(3)]
    threads += [threading.Thread(target=work, args=(clean_input, True)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 120 and all(results)


def test_evaluation_releases_the_gil(clean_input):
    # A runaway policy keeps the engine busy for its whole time limit. If the GIL were held
    # meanwhile, this thread could not run at all until the evaluation ended.
    evaluator = helios.Evaluator(str(FIXTURES / "policies" / "runaway.rego"), time_limit_ms=1500)
    outcome = []

    def run():
        try:
            evaluator.evaluate(clean_input)
        except helios.PolicyTimeoutError as e:
            outcome.append(e)

    worker = threading.Thread(target=run)
    worker.start()
    ticks = 0
    while worker.is_alive():
        ticks += 1
        time.sleep(0.005)
    worker.join()
    assert len(outcome) == 1
    assert ticks >= 20, f"main thread ran only {ticks} times during evaluation"


def test_module_constants():
    assert helios.DEFAULT_TIME_LIMIT_MS == 250
    assert isinstance(helios.__version__, str) and helios.__version__
    assert "policy_timeout" in helios.ERROR_CODES
