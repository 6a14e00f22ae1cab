"""The composite GitHub Action (action.yml) run step by step as a runner runs it, with the
environment variables GitHub sets (there is no runner here): each `run` step through
`bash --noprofile --norc -eo pipefail`, `${{ … }}` expressions filled from the inputs, the
action path and earlier steps' outputs, `$GITHUB_OUTPUT` / `$GITHUB_STEP_SUMMARY` / `$GITHUB_PATH`
as files. `uses:` steps (artifact and SARIF upload) are not run; their condition and `with:`
are evaluated and checked instead. Also the GitLab template's job script, with GitLab's variables.

Run by scripts/test-packaging.sh; needs a built `helios` (HELIOS_CLI_BIN, else the debug build).
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
ACTION = YAML(typ="safe").load((ROOT / "action.yml").read_text())
GITLAB = YAML(typ="safe").load((ROOT / "ci/gitlab/helios.gitlab-ci.yml").read_text())
SCANS = ROOT / "examples/scans"
DENIED = "registry.example.com/shop/web:1.4"
EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
# A PATH with the system's tools only: no cargo, no rustc, no helios.
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


def helios_bin() -> Path:
    bin = os.environ.get("HELIOS_CLI_BIN")
    if not bin:
        triple = os.environ.get("CARGO_BUILD_TARGET", "")
        bin = ROOT / "target" / triple / "debug" / "helios"
    bin = Path(bin)
    assert bin.is_file(), f"no helios at {bin}: cargo build -p helios-cli or set HELIOS_CLI_BIN"
    return bin


class Run:
    """One run of the action: its exit status, outputs, logs and the files the runner keeps."""

    def __init__(self, tmp: Path, inputs: dict, env: dict | None = None):
        self.tmp = tmp
        self.values = {k: str(v.get("default", "")) for k, v in ACTION["inputs"].items()}
        unknown = set(inputs) - set(self.values)
        assert not unknown, f"not inputs of action.yml: {unknown}"
        self.values.update(inputs)
        for name, spec in ACTION["inputs"].items():
            assert not spec.get("required") or self.values[name], f"input {name} is required"
        self.steps: dict[str, dict] = {}
        self.summary = tmp / "step_summary.md"
        self.path_file = tmp / "github_path"
        for f in (self.summary, self.path_file):
            f.write_text("")
        (tmp / "workspace").mkdir()
        (tmp / "runner_temp").mkdir()
        # The variables GitHub sets for every step (docs: "Default environment variables").
        self.env = {
            "PATH": SYSTEM_PATH,
            "HOME": str(tmp),
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_ACTION_PATH": str(ROOT),
            "GITHUB_WORKSPACE": str(tmp / "workspace"),
            "GITHUB_STEP_SUMMARY": str(self.summary),
            "GITHUB_PATH": str(self.path_file),
            "GITHUB_ENV": str(tmp / "github_env"),
            "GITHUB_RUN_ID": "4242",
            "GITHUB_SHA": "0123456789abcdef0123456789abcdef01234567",
            "GITHUB_REF": "refs/heads/main",
            "GITHUB_REPOSITORY": "acme/shop",
            "GITHUB_WORKFLOW": "build",
            "RUNNER_OS": "Linux",
            "RUNNER_ARCH": "X64",
            "RUNNER_TEMP": str(tmp / "runner_temp"),
            **(env or {}),
        }
        self.log = ""
        self.uploads: list[tuple[str, dict]] = []
        self.code = self._run()
        self.outputs = {k: self.expand(v["value"]) for k, v in ACTION["outputs"].items()}

    def value(self, expr: str) -> str:
        if expr.startswith("inputs."):
            return self.values[expr.removeprefix("inputs.")]
        if expr == "github.action_path":
            return str(ROOT)
        m = re.fullmatch(r"steps\.([\w-]+)\.outputs\.([\w-]+)", expr)
        if m:
            return self.steps.get(m[1], {}).get(m[2], "")
        raise AssertionError(f"the test does not know the expression {expr!r}")

    def expand(self, text: str) -> str:
        return EXPR.sub(lambda m: self.value(m[1]), str(text))

    def condition(self, expr: str, failed: bool) -> bool:
        """The `if:` subset action.yml uses: `always()` and `A == 'x'` / `A != 'x'`, joined by &&."""
        if not expr:
            return not failed
        result = True
        for term in (t.strip() for t in expr.split("&&")):
            if term == "always()":
                continue
            m = re.fullmatch(r"(\S+)\s*(==|!=)\s*'(.*)'", term)
            assert m, f"the test does not know the condition {term!r}"
            equal = self.value(m[1]) == m[3]
            result &= equal if m[2] == "==" else not equal
        return result and ("always()" in expr or not failed)

    def _run(self) -> int:
        code = 0
        for i, step in enumerate(ACTION["runs"]["steps"]):
            if not self.condition(step.get("if", ""), code != 0):
                continue
            if "uses" in step:
                self.uploads.append((step["uses"], {k: self.expand(v) for k, v in step.get("with", {}).items()}))
                continue
            assert step.get("shell") == "bash", "every run step says shell: bash"
            output = self.tmp / f"output-{i}"
            output.write_text("")
            script = self.tmp / f"step-{i}.sh"
            script.write_text(self.expand(step["run"]))
            env = {**self.env, "GITHUB_OUTPUT": str(output)}
            env.update({k: self.expand(v) for k, v in step.get("env", {}).items()})
            done = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                env=env, cwd=self.env["GITHUB_WORKSPACE"], capture_output=True, text=True, timeout=120,
            )
            self.log += done.stdout + done.stderr
            self.steps[step.get("id", str(i))] = dict(
                line.split("=", 1) for line in output.read_text().splitlines() if "=" in line
            )
            if done.returncode != 0 and code == 0:
                code = done.returncode
        return code


def release(tmp: Path, version: str = "0.1.0", corrupt: bool = False) -> str:
    """A release directory laid out as scripts/package.sh lays out dist/, as a file:// URL."""
    name = f"helios-{version}-x86_64-unknown-linux-musl"
    dist = tmp / "release"
    (dist / name).mkdir(parents=True)
    shutil.copy(helios_bin(), dist / name / "helios")
    with tarfile.open(dist / f"{name}.tar.gz", "w:gz") as tar:
        tar.add(dist / name, arcname=name)
    digest = hashlib.sha256((dist / f"{name}.tar.gz").read_bytes()).hexdigest()
    if corrupt:
        digest = "0" * 64
    (dist / f"{name}.tar.gz.sha256").write_text(f"{digest}  {name}.tar.gz\n")
    return f"file://{dist}"


def gate(tmp: Path, scan: str = "sample-lacework-scan.json", **inputs) -> Run:
    return Run(
        tmp,
        {"image": DENIED, "scan-file": str(SCANS / scan), "args": "--no-resolve",
         "helios-path": str(helios_bin()), **inputs},
    )


def test_a_denied_image_fails_the_step_with_outputs_summary_and_artifacts(tmp_path):
    run = gate(tmp_path)
    assert run.code == 1, run.log
    assert run.outputs["allowed"] == "false"
    assert run.outputs["policy-id"] == "helios.default"
    assert run.outputs["exit-code"] == "1"
    artifact = json.loads(Path(run.outputs["artifact"]).read_text())
    assert artifact["exit_code"] == 1
    assert artifact["decision"]["allowed"] is False
    # The run that gated the image is in the policy input.
    assert artifact["input"]["ci"] == {
        "run_id": "4242", "sha": run.env["GITHUB_SHA"], "ref": "refs/heads/main",
        "repository": "acme/shop", "workflow": "build",
    }
    sarif = json.loads(Path(run.outputs["sarif"]).read_text())
    assert sarif["version"] == "2.1.0"
    assert any(r["ruleId"] for r in sarif["runs"][0]["results"])
    summary = run.summary.read_text()
    assert "CVE-2023-38545" in summary and "helios.default" in summary
    assert "::error::" in run.log and "DENIED" in run.log
    # The install step put the given binary's directory on the job's PATH.
    assert run.path_file.read_text().strip() == str(helios_bin().parent)
    # The artifact upload still runs (if: always()) on the artifact directory; SARIF upload is opt-in.
    uses = dict(run.uploads)
    assert set(uses) == {"actions/upload-artifact@v4"}
    folder = Path(uses["actions/upload-artifact@v4"]["path"])
    assert sorted(p.name for p in folder.iterdir()) == ["helios.json", "helios.md", "helios.sarif", "helios.xml"]
    assert uses["actions/upload-artifact@v4"]["name"] == "helios"


def test_fail_on_never_reports_a_denial_without_failing(tmp_path):
    run = gate(tmp_path, **{"fail-on": "never", "upload-sarif": "true"})
    assert run.code == 0, run.log
    assert run.outputs["allowed"] == "false"
    assert "::warning::" in run.log
    uses = dict(run.uploads)
    assert uses["github/codeql-action/upload-sarif@v3"]["sarif_file"] == run.outputs["sarif"]


def test_an_allowed_image_passes(tmp_path):
    run = gate(tmp_path, scan="clean-scan.json", image="registry.example.com/shop/api:2.0")
    assert run.code == 0, run.log
    assert run.outputs["allowed"] == "true"
    assert run.outputs["policy-id"] == "helios.default"
    assert "ALLOWED" in run.log


def test_policy_data_and_ci_inputs_reach_helios(tmp_path):
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "p.rego").write_text(
        'package helios\n\npolicy_id := "acme.owner"\n\n'
        'deny contains "not ours" if input.ci.team != data.owner\n'
    )
    (tmp_path / "data.yaml").write_text("owner: shop\n")
    run = gate(tmp_path, policy=str(policy), data=str(tmp_path / "data.yaml"), ci="team=shop\n\nstage=test\n")
    assert run.code == 0, run.log
    assert run.outputs["policy-id"] == "acme.owner"
    artifact = json.loads(Path(run.outputs["artifact"]).read_text())
    assert artifact["input"]["ci"]["team"] == "shop" and artifact["input"]["ci"]["stage"] == "test"


def test_an_undecided_gate_fails_even_with_fail_on_never(tmp_path):
    run = gate(tmp_path, scan="no-such-scan.json", **{"fail-on": "never"})
    assert run.code == 2, run.log
    assert run.outputs["allowed"] == ""
    assert "error[" in run.log


def test_a_bad_fail_on_is_refused(tmp_path):
    run = gate(tmp_path, **{"fail-on": "sometimes"})
    assert run.code == 2
    assert "fail-on must be deny or never" in run.log


def test_the_release_is_downloaded_checked_and_put_on_path(tmp_path):
    url = release(tmp_path)
    run = Run(tmp_path, {"image": DENIED, "scan-file": str(SCANS / "clean-scan.json"), "args": "--no-resolve"},
              env={"HELIOS_RELEASE_URL": url})
    assert run.code == 0, run.log
    bin = Path(run.steps["install"]["bin"])
    assert bin.is_relative_to(tmp_path / "runner_temp") and bin.name == "helios"
    assert run.path_file.read_text().strip() == str(bin.parent)
    assert run.outputs["allowed"] == "true"


def test_a_release_that_does_not_match_its_checksum_is_refused(tmp_path):
    url = release(tmp_path, corrupt=True)
    run = Run(tmp_path, {"image": DENIED}, env={"HELIOS_RELEASE_URL": url})
    assert run.code == 2
    assert "does not match its SHA-256" in run.log
    assert "gate" not in run.steps


def gitlab_job(tmp: Path, variables: dict, path: str = SYSTEM_PATH) -> tuple[subprocess.CompletedProcess, Path]:
    """The template's hidden job run as a GitLab runner runs a script: its variables (with the
    job's own expanded), GitLab's predefined ones, each script line through `sh -c`."""
    job = GITLAB[".helios-gate"]
    project = tmp / "project"
    project.mkdir(parents=True)
    env = {
        "PATH": path, "HOME": str(tmp), "CI": "true", "GITLAB_CI": "true",
        "CI_PROJECT_DIR": str(project), "CI_PIPELINE_ID": "77", "CI_JOB_ID": "78",
        "CI_COMMIT_SHA": "0123456789abcdef0123456789abcdef01234567", "CI_COMMIT_REF_NAME": "main",
    }
    for k, v in job["variables"].items():
        env[k] = re.sub(r"\$(\w+)", lambda m: env.get(m[1], ""), str(v))
    env.update(variables)
    script = "\n".join(job["script"])
    done = subprocess.run(["sh", "-c", script], env=env, cwd=project, capture_output=True, text=True, timeout=120)
    return done, project


def test_gitlab_template_gates_and_keeps_its_reports(tmp_path):
    on_path = f"{helios_bin().parent}:{SYSTEM_PATH}"
    job = GITLAB[".helios-gate"]
    assert job["artifacts"]["reports"]["junit"] == "helios.xml"
    assert "helios.json" in job["artifacts"]["paths"] and job["artifacts"]["when"] == "always"
    common = {"HELIOS_IMAGE": DENIED, "HELIOS_ARGS": "--no-resolve",
              "HELIOS_SCAN_FILE": str(SCANS / "sample-lacework-scan.json")}
    denied, project = gitlab_job(tmp_path / "deny", common, on_path)
    assert denied.returncode == 1, denied.stderr
    assert json.loads((project / "helios.json").read_text())["input"]["ci"]["pipeline"] == "77"
    assert "<failure" in (project / "helios.xml").read_text()
    never, _ = gitlab_job(tmp_path / "never", {**common, "HELIOS_FAIL_ON": "never"}, on_path)
    assert never.returncode in job["allow_failure"]["exit_codes"], never.stderr
    clean, _ = gitlab_job(tmp_path / "clean", {**common, "HELIOS_SCAN_FILE": str(SCANS / "clean-scan.json")}, on_path)
    assert clean.returncode == 0, clean.stderr


def test_gitlab_template_installs_the_release_when_helios_is_not_on_path(tmp_path):
    assert shutil.which("helios", path=SYSTEM_PATH) is None
    url = release(tmp_path)
    done, project = gitlab_job(tmp_path / "job", {"HELIOS_IMAGE": DENIED, "HELIOS_ARGS": "--no-resolve",
                                                  "HELIOS_SCAN_FILE": str(SCANS / "clean-scan.json"),
                                                  "HELIOS_RELEASE_URL": url})
    assert done.returncode == 0, done.stderr
    assert (project / ".helios/helios-0.1.0-x86_64-unknown-linux-musl/helios").is_file()
