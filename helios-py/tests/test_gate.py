"""helios.scan and helios.gate: against the project's Lacework API emulator (the same one the Rust
suite uses, run as a subprocess) and against scan files."""

import json
import os
import subprocess
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import helios

from conftest import FIXTURES

ROOT = FIXTURES.parents[1]
EXAMPLES = ROOT / "examples" / "scans"

NGINX = "nginx:1.25@sha256:" + "b" * 64  # critical CVE-2024-1000 (fixable)
UNKNOWN = "registry.example.com/team/new@sha256:" + "d" * 64
LW_VARS = ("LW_ACCOUNT", "LW_SUBACCOUNT", "LW_API_KEY", "LW_API_SECRET", "LW_PROFILE", "LW_API_SERVER_URL")


def emulator_binary():
    """The emulator built by scripts/test-python.sh (HELIOS_LACEWORK_EMULATOR), else the usual
    cargo output paths."""
    env = os.environ.get("HELIOS_LACEWORK_EMULATOR")
    if env:
        return Path(env)
    triple = os.environ.get("CARGO_BUILD_TARGET", "")
    for path in (ROOT / "target" / triple / "debug", ROOT / "target" / "debug"):
        if (path / "helios-lacework-emulator").is_file():
            return path / "helios-lacework-emulator"
    return None


@pytest.fixture(scope="module")
def emulator():
    """The emulator as a child process that exits with us (--stdin-lifetime): its JSON line."""
    binary = emulator_binary()
    if binary is None or not binary.is_file():
        why = (
            "the Lacework emulator is not built: run scripts/test-python.sh "
            "(or cargo build -p helios-lacework-emulator)"
        )
        # In CI a missing peer is a failure, never a silent pass.
        if os.environ.get("CI"):
            pytest.fail(f"{why} (CI is set)", pytrace=False)
        pytest.skip(why)
    proc = subprocess.Popen(
        [str(binary), "--port", "0", "--scan-duration-ms", "100", "--stdin-lifetime"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        info = json.loads(proc.stdout.readline())
        yield info
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)


@pytest.fixture
def lacework(emulator, monkeypatch, tmp_path):
    """Lacework settings pointing at the emulator, and no ~/.lacework.toml."""
    for var in LW_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("LW_ACCOUNT", emulator["url"])
    monkeypatch.setenv("LW_API_KEY", emulator["key_id"])
    monkeypatch.setenv("LW_API_SECRET", emulator["secret"])
    return emulator


def counters(emulator):
    with urllib.request.urlopen(emulator["url"] + "/__admin/counters") as answer:
        return json.load(answer)


def codes(findings):
    return [f.get("code") for f in findings]


def test_gate_denies_an_image_with_a_critical_in_lacework(lacework):
    result = helios.gate(NGINX, ci={"pipeline": "build"})
    assert result["exit_code"] == 1
    decision = result["decision"]
    assert decision["allowed"] is False
    assert decision["policy"]["id"] == "helios.default"
    assert any("CVE-2024-1000" in v["msg"] for v in decision["violations"]), decision
    assert result["input"]["scan"]["status"] == "completed"
    assert result["input"]["scan"]["source"] == "lacework"
    assert result["input"]["stage"] == "ci"
    assert result["input"]["ci"] == {"pipeline": "build"}

    report = helios.scan(NGINX)
    assert report["status"] == "completed"
    assert report["summary"]["total"] == 5
    assert report == result["input"]["scan"]


def test_an_unknown_digest_without_scans_is_not_found_and_denied_as_unscanned(lacework):
    before = counters(lacework).get("scan", 0)
    assert helios.scan(UNKNOWN, no_scan=True)["status"] == "not_found"
    result = helios.gate(UNKNOWN, no_scan=True)
    assert result["input"]["scan"]["status"] == "not_found"
    assert result["decision"]["allowed"] is False
    assert result["exit_code"] == 1
    assert codes(result["decision"]["violations"]) == ["unscanned"]
    # Allowed with a warning once the policy data says unscanned images may pass.
    lenient = helios.gate(UNKNOWN, no_scan=True, data={"helios": {"config": {"allow_unscanned": True}}})
    assert lenient["exit_code"] == 0
    assert codes(lenient["decision"]["warnings"]) == ["unscanned"]
    assert counters(lacework).get("scan", 0) == before  # no_scan never requested one


def test_waiting_runs_the_on_demand_scan_in_parallel_threads(lacework):
    """Two on-demand scans at once from two threads (the GIL is released while they wait): an
    image with findings, and a clean one, which the gate allows."""
    with_findings = "registry.example.com/team/fresh@sha256:" + "e" * 64
    clean = "registry.example.com/team/clean-app@sha256:" + "f" * 64
    before = counters(lacework).get("scan", 0)
    with ThreadPoolExecutor(2) as pool:
        scanned = pool.submit(helios.scan, with_findings, wait=60)
        gated = pool.submit(helios.gate, clean, wait=60)
        report, result = scanned.result(timeout=120), gated.result(timeout=120)
    assert report["status"] == "completed", report
    assert 1 <= report["summary"]["total"] <= 3
    assert result["input"]["scan"]["status"] == "completed", result["input"]["scan"]
    assert result["input"]["scan"]["summary"]["total"] == 0
    assert result["decision"]["allowed"] is True
    assert result["exit_code"] == 0
    assert counters(lacework).get("scan", 0) == before + 2


def test_wait_zero_requests_a_scan_and_answers_pending(lacework):
    image = "registry.example.com/team/later@sha256:" + "c" * 63 + "1"
    report = helios.scan(image, wait=0)
    assert report["status"] == "pending"
    assert report["id"]


def test_a_wrong_secret_is_an_auth_error_without_the_secret(lacework, monkeypatch):
    wrong = "_definitely_wrong_secret_0123"
    monkeypatch.setenv("LW_API_SECRET", wrong)
    with pytest.raises(helios.AuthError) as err:
        helios.scan(NGINX)
    assert err.value.code == "auth"
    assert isinstance(err.value, helios.ServiceError)
    assert wrong not in str(err.value)
    assert lacework["secret"] not in str(err.value)
    # The gate, as `helios gate`, lets the policy judge the unavailable scan.
    result = helios.gate(NGINX)
    assert result["input"]["scan"]["status"] == "unavailable"
    assert codes(result["decision"]["violations"]) == ["unscanned"]
    # Denied because Lacework could not be asked: exit 2 ("could not decide"), as the CLI.
    assert result["exit_code"] == 2
    assert wrong not in json.dumps(result)


def test_no_lacework_configuration_is_an_error_naming_what_is_missing(monkeypatch, tmp_path):
    for var in LW_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(helios.HeliosError) as err:
        helios.scan(NGINX)
    assert err.value.code in helios.ERROR_CODES
    with pytest.raises(helios.HeliosError) as err:
        helios.scan(NGINX, profile="no-such-profile")
    # The profile came from profile=, not from an LW_PROFILE the caller never set.
    assert "no-such-profile" in str(err.value), str(err.value)
    assert "LW_PROFILE" not in str(err.value), str(err.value)


def test_calls_share_one_lacework_client_per_credentials(lacework):
    helios.scan(NGINX)
    tokens = counters(lacework).get("tokens", 0)
    assert tokens >= 1
    # Later calls with the same account and key reuse the client: its token, its budget.
    helios.scan(NGINX)
    helios.gate(NGINX)
    assert counters(lacework).get("tokens", 0) == tokens


def test_gate_with_a_directory_of_scan_files(tmp_path):
    digest = "a" * 64
    (tmp_path / f"sha256-{digest}.json").write_bytes((EXAMPLES / "clean-scan.json").read_bytes())
    image = f"registry.example.com/shop/web@sha256:{digest}"
    result = helios.gate(image, scan_dir=tmp_path)
    assert result["input"]["scan"]["status"] == "completed"
    assert result["exit_code"] == 0
    other = helios.gate(f"registry.example.com/shop/web@sha256:{'9' * 64}", scan_dir=str(tmp_path))
    assert other["input"]["scan"]["status"] == "not_found"


def test_gate_with_scan_files():
    image = "registry.example.com/shop/web:1.4"
    denied = helios.gate(image, scan_file=EXAMPLES / "sample-lacework-scan.json")
    assert denied["exit_code"] == 1
    assert denied["decision"]["allowed"] is False
    assert "critical" in codes(denied["decision"]["violations"])
    allowed = helios.gate(image, scan_file=str(EXAMPLES / "clean-scan.json"))
    assert allowed["exit_code"] == 0
    assert allowed["decision"]["allowed"] is True
    # Same decision as evaluating the returned input directly.
    assert helios.evaluate(denied["input"]) == denied["decision"]
    advisory = helios.gate(
        image,
        scan_file=EXAMPLES / "sample-lacework-scan.json",
        policy=FIXTURES / "policies" / "warn_only.rego",
        package="helios",
    )
    assert advisory["exit_code"] == 0
    assert "image is not pinned by digest" in [w["msg"] for w in advisory["decision"]["warnings"]]


def test_bad_arguments_raise_and_never_crash(tmp_path):
    with pytest.raises(TypeError):
        helios.gate(123)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        helios.scan(None)  # type: ignore[arg-type]
    for bad in ("", "Not A Valid Image!!", "registry.example.com/app@sha256:short"):
        with pytest.raises(helios.InvalidImageError) as err:
            helios.gate(bad, scan_file=EXAMPLES / "clean-scan.json")
        assert err.value.code == "invalid_image"
        with pytest.raises(helios.InvalidImageError):
            helios.scan(bad, no_scan=True)
    # The core checks the values: its invalid_input, as in Node and the CLI.
    with pytest.raises(helios.InvalidInputError) as err:
        helios.scan("nginx:1.25", wait=-1)
    assert err.value.code == "invalid_input"
    with pytest.raises(helios.InvalidInputError):
        helios.gate("nginx:1.25", wait=float("nan"))
    with pytest.raises(helios.InvalidInputError):
        helios.gate(
            "nginx:1.25", scan_file=EXAMPLES / "clean-scan.json", scan_dir=tmp_path
        )
    with pytest.raises(TypeError):
        helios.gate("nginx:1.25", scan_file=EXAMPLES / "clean-scan.json", ci="pipeline=build")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        helios.gate("nginx:1.25", scan_file=42)  # type: ignore[arg-type]
    with pytest.raises(helios.IoError):
        helios.gate("nginx:1.25", scan_file=tmp_path / "missing.json")
    assert threading.active_count() >= 1  # the interpreter is alive and well


LOOKUPS = json.loads((FIXTURES / "lacework-emulator" / "lookups.json").read_text())["lookups"]


@pytest.mark.parametrize("case", LOOKUPS, ids=[c["what"] for c in LOOKUPS])
def test_lookups_shared_with_the_rust_and_node_suites(lacework, case):
    """tests/fixtures/lacework-emulator/lookups.json: clean images are completed, failed and
    unsupported ones failed, only never-scanned ones not_found; re-evaluations decide; no known
    image is scanned again."""
    before = counters(lacework).get("scan", 0)
    no_scan = case["status"] == "not_found"
    report = helios.scan(case["image"], no_scan=no_scan, wait=5)
    assert report["status"] == case["status"], report
    assert report["summary"]["total"] == case["total"]
    assert report["summary"]["critical"] == case["critical"]
    assert report["digest"] == case["digest"]
    assert report["id"] == case["id"]
    if case["error_contains"] is None:
        assert report["error"] is None
    else:
        assert case["error_contains"] in report["error"]
    result = helios.gate(case["image"], no_scan=no_scan, wait=5)
    assert result["decision"]["allowed"] is case["allowed"], result["decision"]
    assert result["input"]["scan"] == report
    assert counters(lacework).get("scan", 0) == before


def test_a_clean_image_is_allowed_on_every_run_and_scanned_once(lacework):
    """The CI flow of issue 8: the first gate scans on demand; later gates, with and without
    no_scan, find Lacework's clean scan and request none."""
    image = "registry.example.com/team/clean-py@sha256:" + "0" * 63 + "5"
    before = counters(lacework).get("scan", 0)
    first = helios.gate(image, wait=20)
    assert first["exit_code"] == 0, first["input"]["scan"]
    assert counters(lacework).get("scan", 0) == before + 1
    for kwargs in ({"no_scan": True}, {}):
        again = helios.gate(image, **kwargs)
        assert again["exit_code"] == 0, (kwargs, again["input"]["scan"])
        assert again["input"]["scan"]["status"] == "completed"
        assert again["input"]["scan"]["digest"] == image.split("@")[1]
        assert again["input"]["scan"]["scanned_at"]
    assert counters(lacework).get("scan", 0) == before + 1


def test_the_reevaluation_time_is_evaluated_at(lacework):
    image = next(c["image"] for c in LOOKUPS if "reeval-new-cve" in c["image"])
    report = helios.scan(image, no_scan=True)
    assert report["scanned_at"] == "2024-05-31T09:00:00Z"
    assert report["evaluated_at"] > report["scanned_at"]
