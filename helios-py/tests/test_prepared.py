"""PreparedInput: an input read and checked once, evaluated like the dict it was made from."""

import copy
import threading

import pytest

import helios
from conftest import FIXTURES, case_input, case_kwargs, load_cases

STRINGS = str(FIXTURES / "policies" / "strings.rego")


def test_same_decision_as_the_dict_default_and_custom_policy(critical_input, clean_input):
    default = helios.Evaluator()
    custom = helios.Evaluator(STRINGS)
    for doc in (critical_input, clean_input):
        prepared = helios.PreparedInput(doc)
        # One prepared input, two evaluators with different policies, each twice (the second
        # evaluation uses the scan's engine value built by the first).
        for evaluator in (default, custom, default, custom):
            assert evaluator.evaluate(prepared) == evaluator.evaluate(doc)
        assert helios.evaluate(prepared) == helios.evaluate(doc)
        assert helios.evaluate(prepared, STRINGS) == helios.evaluate(doc, STRINGS)
    assert custom.evaluate(helios.PreparedInput(critical_input))["violations"]


@pytest.mark.parametrize("name,case", load_cases(), ids=[n for n, _ in load_cases()])
def test_every_shared_case_decides_the_same_prepared(name, case):
    doc = case_input(case)
    try:
        evaluator = helios.Evaluator(**case_kwargs(case))
    except helios.HeliosError:
        # The policy does not build: the one-shot `evaluate` fails alike on the dict and on the
        # prepared input (an input error first, as for a dict).
        with pytest.raises(helios.HeliosError) as on_dict:
            helios.evaluate(doc, **case_kwargs(case))
        with pytest.raises(helios.HeliosError) as on_prepared:
            helios.evaluate(helios.PreparedInput(doc), **case_kwargs(case))
        assert (type(on_prepared.value), str(on_prepared.value)) == (
            type(on_dict.value),
            str(on_dict.value),
        )
        return
    try:
        expected = evaluator.evaluate(doc)
    except helios.HeliosError as err:
        # A bad input fails when prepared; a failing policy fails on the prepared input too.
        try:
            prepared = helios.PreparedInput(doc)
        except helios.HeliosError as got:
            assert (type(got), str(got), got.code) == (type(err), str(err), err.code)
            return
        with pytest.raises(type(err)) as info:
            evaluator.evaluate(prepared)
        assert str(info.value) == str(err)
        return
    assert evaluator.evaluate(helios.PreparedInput(doc)) == expected


def test_mutating_the_dict_after_preparing_changes_nothing(critical_input):
    evaluator = helios.Evaluator()
    before = evaluator.evaluate(critical_input)
    prepared = helios.PreparedInput(critical_input)
    critical_input["scan"]["vulnerabilities"].clear()
    critical_input["scan"]["summary"] = {k: 0 for k in critical_input["scan"]["summary"]}
    critical_input["image"]["reference"] = "changed"
    assert evaluator.evaluate(critical_input)["allowed"] is True
    assert evaluator.evaluate(prepared) == before
    assert before["allowed"] is False


def _error_of(call):
    with pytest.raises(Exception) as info:
        call()
    return info.value


def _bad_inputs(clean):
    wrong_summary = copy.deepcopy(clean)
    wrong_summary["scan"]["summary"]["critical"] = "many"
    unknown_field = copy.deepcopy(clean)
    unknown_field["extra"] = 1
    missing = copy.deepcopy(clean)
    del missing["scan"]
    a_set = copy.deepcopy(clean)
    a_set["ci"] = {"x": {1, 2}}
    nan = copy.deepcopy(clean)
    nan["ci"] = {"x": float("nan")}
    loop = {}
    loop["self"] = loop
    looping = copy.deepcopy(clean)
    looping["ci"] = loop
    wrong_key = copy.deepcopy(clean)
    wrong_key["ci"] = {1: "int key"}
    return [wrong_summary, unknown_field, missing, a_set, nan, looping, wrong_key]


def test_bad_inputs_fail_at_construction_as_evaluate_does(clean_input):
    evaluator = helios.Evaluator()
    for bad in _bad_inputs(clean_input):
        expected = _error_of(lambda: evaluator.evaluate(bad))
        got = _error_of(lambda: helios.PreparedInput(bad))
        assert type(got) is type(expected), (got, expected)
        assert str(got) == str(expected)
        assert getattr(got, "code", None) == getattr(expected, "code", None)
        assert isinstance(expected, (TypeError, helios.InvalidInputError))


@pytest.mark.parametrize("bad", [None, 42, "{}", [], ("a",), object()])
def test_not_a_dict_is_type_error(bad):
    with pytest.raises(TypeError, match="^input must be a dict, not "):
        helios.PreparedInput(bad)
    with pytest.raises(TypeError, match="^input must be a dict or a PreparedInput, not "):
        helios.Evaluator().evaluate(bad)
    with pytest.raises(TypeError, match="^input must be a dict or a PreparedInput, not "):
        helios.evaluate(bad)


def test_prepared_input_is_frozen_and_shows_its_image(critical_input):
    prepared = helios.PreparedInput(critical_input)
    assert repr(prepared) == f'PreparedInput(image="{critical_input["image"]["reference"]}")'
    with pytest.raises(AttributeError):
        prepared.x = 1
    with pytest.raises(TypeError):
        helios.PreparedInput(prepared)


def test_one_prepared_input_shared_by_threads(critical_input, clean_input):
    evaluators = [helios.Evaluator(), helios.Evaluator(STRINGS)]
    prepared = [helios.PreparedInput(critical_input), helios.PreparedInput(clean_input)]
    expected = {(e, p): evaluators[e].evaluate(prepared[p]) for e in range(2) for p in range(2)}
    failures = []

    def work(i):
        for j in range(20):
            e, p = (i + j) % 2, j % 2
            if evaluators[e].evaluate(prepared[p]) != expected[(e, p)]:
                failures.append((i, j))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


def test_from_json_reads_the_text_as_the_dict_is_read(critical_input):
    import json

    evaluator = helios.Evaluator()
    text = json.dumps(critical_input)
    prepared = helios.PreparedInput.from_json(text)
    assert isinstance(prepared, helios.PreparedInput)
    assert evaluator.evaluate(prepared) == evaluator.evaluate(critical_input)
    # Every shared case reads alike from its text and from its dict: both accepted, or both
    # refused with an input error.
    for name, case in load_cases():
        doc = case_input(case)
        try:
            helios.PreparedInput(doc)
            from_dict = None
        except (helios.InvalidInputError, TypeError) as err:
            from_dict = err
        try:
            from_text = helios.PreparedInput.from_json(json.dumps(doc))
        except helios.InvalidInputError as err:
            assert from_dict is not None, f"{name}: the text was refused: {err}"
            continue
        assert from_dict is None, f"{name}: the dict was refused: {from_dict}"
        assert from_text is not None


def test_from_json_refuses_what_is_not_an_input(critical_input):
    import json

    for text, mention in [("{", "policy input"), ("[]", "policy input")]:
        with pytest.raises(helios.InvalidInputError, match=mention):
            helios.PreparedInput.from_json(text)
    bad = copy.deepcopy(critical_input)
    bad["scan"]["status"] = "finished"
    with pytest.raises(helios.InvalidInputError, match=r"scan\.status"):
        helios.PreparedInput.from_json(json.dumps(bad))
    with pytest.raises(TypeError):
        helios.PreparedInput.from_json(42)
