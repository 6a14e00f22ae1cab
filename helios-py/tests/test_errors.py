"""Errors: one class per core code, `.code` set, and bad arguments never crash the interpreter."""

import pytest

import helios
from conftest import FIXTURES

POLICIES = FIXTURES / "policies"


def test_every_code_has_its_own_class():
    classes = {
        obj.code: obj
        for obj in vars(helios).values()
        if isinstance(obj, type) and issubclass(obj, helios.HeliosError) and obj.code
    }
    assert sorted(classes) == sorted(helios.ERROR_CODES)
    for code, cls in classes.items():
        expected = "".join(part.title() for part in code.split("_")) + "Error"
        assert cls.__name__ == expected
        assert cls.__module__ == "helios"
        if code.startswith("policy_"):
            assert issubclass(cls, helios.PolicyError)
        if code in ("unavailable", "auth", "remote"):
            assert issubclass(cls, helios.ServiceError)


def test_bases():
    assert issubclass(helios.HeliosError, Exception)
    assert helios.HeliosError.code is None
    assert helios.PolicyError.code is None
    assert issubclass(helios.PolicyTimeoutError, helios.PolicyError)


def test_timeout(clean_input):
    with pytest.raises(helios.PolicyTimeoutError) as info:
        helios.evaluate(clean_input, str(POLICIES / "runaway.rego"), time_limit_ms=20)
    assert info.value.code == "policy_timeout"
    assert "20 ms" in str(info.value)
    assert isinstance(info.value, helios.PolicyError)


def test_parse_error_names_file_and_line(tmp_path, clean_input):
    bad = tmp_path / "bad.rego"
    bad.write_text("package helios\n\ndeny contains msg if {\n  msg := \n}\n")
    with pytest.raises(helios.PolicyParseError) as info:
        helios.Evaluator(str(bad))
    assert info.value.code == "policy_parse"
    assert f"{bad}:" in str(info.value)


def test_missing_policy_file_is_io_error(tmp_path):
    with pytest.raises(helios.IoError) as info:
        helios.Evaluator(str(tmp_path / "nope.rego"))
    assert info.value.code == "io"


def test_undefined_package(clean_input):
    with pytest.raises(helios.PolicyUndefinedError) as info:
        helios.evaluate(clean_input, package="nobody.here")
    assert info.value.code == "policy_undefined"
    # The message names Python's parameter, not the CLI's flag.
    assert "check package=" in str(info.value), str(info.value)
    assert "--package" not in str(info.value), str(info.value)


def test_invalid_package_name():
    with pytest.raises(helios.InvalidInputError) as info:
        helios.Evaluator(package="not a package!")
    assert info.value.code == "invalid_input"


def test_invalid_input_names_field(clean_input):
    clean_input["scan"]["summary"]["critical"] = "many"
    with pytest.raises(helios.InvalidInputError) as info:
        helios.evaluate(clean_input)
    assert "scan.summary.critical" in str(info.value)


def test_data_that_is_not_an_object_inside_is_fine_but_top_level_must_be_dict():
    with pytest.raises(TypeError):
        helios.Evaluator(data=[1, 2])


@pytest.mark.parametrize("bad", [None, 42, "{}", [], ("a",), object()])
def test_input_not_a_dict_is_type_error(bad):
    with pytest.raises(TypeError, match="input must be a dict"):
        helios.evaluate(bad)
    with pytest.raises(TypeError, match="input must be a dict"):
        helios.Evaluator().evaluate(bad)


@pytest.mark.parametrize("bad", [42, 1.5, [42], {"a": "b"}, b"policy.rego"])
def test_policy_of_wrong_type_is_type_error(bad, clean_input):
    with pytest.raises(TypeError, match="policy must be a path"):
        helios.evaluate(clean_input, bad)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"package": 5},
        {"rego_v0": "yes"},
        {"time_limit_ms": "fast"},
        {"time_limit_ms": 1.5},
        {"data": "x"},
        {"unknown_option": 1},
    ],
)
def test_option_of_wrong_type_is_type_error(kwargs, clean_input):
    with pytest.raises(TypeError):
        helios.evaluate(clean_input, **kwargs)


def test_huge_time_limit_is_accepted(clean_input):
    # Far beyond any real limit, but within u64: must neither overflow nor crash.
    assert helios.evaluate(clean_input, time_limit_ms=2**64 - 1)["allowed"] is True


def test_negative_time_limit_is_rejected(clean_input):
    with pytest.raises(OverflowError):
        helios.evaluate(clean_input, time_limit_ms=-1)


@pytest.mark.parametrize(
    "value,path",
    [({1, 2}, "$.ci.x"), (b"bytes", "$.ci.x"), (object(), "$.ci.x"), ({1: "int key"}, "$.ci.x")],
)
def test_values_json_cannot_hold_are_type_errors(clean_input, value, path):
    clean_input["ci"] = {"x": value}
    with pytest.raises(TypeError) as info:
        helios.evaluate(clean_input)
    assert path in str(info.value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 2**80])
def test_numbers_json_cannot_hold_are_invalid_input(clean_input, value):
    clean_input["ci"] = {"x": value}
    with pytest.raises(helios.InvalidInputError, match=r"\$\.ci\.x"):
        helios.evaluate(clean_input)


def test_self_referencing_input_does_not_crash(clean_input):
    loop = {}
    loop["self"] = loop
    clean_input["ci"] = loop
    with pytest.raises(helios.InvalidInputError, match="nested deeper"):
        helios.evaluate(clean_input)
    deep = []
    for _ in range(10_000):
        deep = [deep]
    clean_input["ci"] = {"deep": deep}
    with pytest.raises(helios.InvalidInputError):
        helios.evaluate(clean_input)


def test_errors_can_be_raised_and_caught_by_users():
    err = helios.PolicyTimeoutError("custom")
    assert err.code == "policy_timeout"
    assert str(err) == "custom"
