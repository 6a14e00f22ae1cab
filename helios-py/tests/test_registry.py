"""gate/scan resolve tags at a real registry (the CNCF distribution registry built from its Go
module by scripts/install-tools.sh, images pushed with crane): the same digest as crane and as
the CLI, the platform manifest of a multi-arch index, and resolution failures raise."""

import json
import os
import socket
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

import helios

ROOT = Path(__file__).resolve().parents[2]
CLEAN = ROOT / "examples" / "scans" / "clean-scan.json"


def tools_bin():
    tools = Path(os.environ.get("HELIOS_TOOLS_BIN") or ROOT / ".tools" / "bin")
    # Idempotent: builds the pinned registry and crane on first use only.
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "install-tools.sh"), "registry", "crane"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return tools


class Peer:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.tools = tools_bin()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        (tmp / "docker").mkdir()
        config = tmp / "config.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {tmp / 'storage'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.host}\n"
        )
        self.log = open(tmp / "registry.log", "w")
        self.proc = subprocess.Popen(
            [str(self.tools / "registry"), "serve", str(config)],
            stdout=self.log,
            stderr=self.log,
            env={**os.environ, "OTEL_TRACES_EXPORTER": "none"},
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((tmp / "registry.log").read_text())
                time.sleep(0.05)

    def crane(self, *args):
        out = subprocess.run(
            [str(self.tools / "crane"), *args, "--insecure"],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "DOCKER_CONFIG": str(self.tmp / "docker")},
        )
        return out.stdout.strip()

    def push(self, repo_tag, content, platform=None):
        work = self.tmp / f"layer-{repo_tag.replace('/', '_').replace(':', '_')}"
        work.mkdir()
        (work / "content.txt").write_text(content)
        with tarfile.open(work / "layer.tar", "w") as tar:
            tar.add(work / "content.txt", arcname="content.txt")
        ref = f"{self.host}/{repo_tag}"
        self.crane("append", "-f", str(work / "layer.tar"), "-t", ref)
        if platform:
            self.crane("mutate", ref, "--set-platform", platform, "-t", ref)
        return self.crane("digest", ref)

    def close(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()


@pytest.fixture
def peer(tmp_path):
    p = Peer(tmp_path)
    yield p
    p.close()


def registry_kwargs(peer):
    return {"resolve": True, "plain_http": [peer.host], "docker_config": peer.tmp / "docker"}


def test_gate_resolves_the_same_digest_as_crane_and_the_cli(peer):
    digest = peer.push("team/app:1.0", "one")
    image = f"{peer.host}/team/app:1.0"
    result = helios.gate(image, scan_file=CLEAN, **registry_kwargs(peer))
    img = result["input"]["image"]
    assert img["tag"] == "1.0"
    assert img["digest"] is None
    assert img["resolved_digest"] == digest
    assert img["platform_digest"] is None

    cli = Path(os.environ.get("HELIOS_CLI_BIN") or ROOT / "target" / os.environ.get("CARGO_BUILD_TARGET", "") / "debug" / "helios")
    assert cli.is_file(), f"{cli}: build the CLI (cargo build -p helios-cli) or set HELIOS_CLI_BIN"
    artifact = peer.tmp / "cli.json"
    subprocess.run(
        [str(cli), "gate", image, "--plain-http", peer.host, "--docker-config", str(peer.tmp / "docker"),
         "--scan-file", str(CLEAN), "--artifact", str(artifact)],
        check=True,
        capture_output=True,
        env={k: v for k, v in os.environ.items() if k != "HELIOS_NO_RESOLVE"},
    )
    assert json.loads(artifact.read_text())["input"]["image"] == img

    # resolve=False, and the environment default, look the image up as written.
    assert helios.gate(image, scan_file=CLEAN, resolve=False)["input"]["image"]["resolved_digest"] is None
    assert helios.gate(image, scan_file=CLEAN)["input"]["image"]["resolved_digest"] is None


def test_multi_arch_gives_the_platform_manifest(peer):
    amd64 = peer.push("multi/app:amd64", "amd", "linux/amd64")
    arm64 = peer.push("multi/app:arm64", "arm", "linux/arm64")
    ref = f"{peer.host}/multi/app:1.0"
    peer.crane("index", "append", "-t", ref, "-m", f"{peer.host}/multi/app:amd64", "-m", f"{peer.host}/multi/app:arm64")
    index = peer.crane("digest", ref)
    img = helios.gate(ref, scan_file=CLEAN, **registry_kwargs(peer))["input"]["image"]
    assert (img["resolved_digest"], img["platform_digest"]) == (index, amd64)
    img = helios.gate(ref, scan_file=CLEAN, platform="linux/arm64", **registry_kwargs(peer))["input"]["image"]
    assert img["platform_digest"] == arm64
    with pytest.raises(helios.InvalidImageError):
        helios.gate(ref, scan_file=CLEAN, platform="windows/amd64", **registry_kwargs(peer))
    with pytest.raises(helios.InvalidInputError):
        helios.gate(ref, scan_file=CLEAN, platform="amd64", **registry_kwargs(peer))


def test_resolution_failures_raise(peer):
    digest = peer.push("gone/app:1.0", "gone")
    peer.crane("delete", f"{peer.host}/gone/app@{digest}")
    with pytest.raises(helios.RemoteError) as err:
        helios.gate(f"{peer.host}/gone/app:1.0", scan_file=CLEAN, **registry_kwargs(peer))
    assert err.value.code == "remote"
    assert "not found" in str(err.value)
    # Not opted in to plain HTTP: https fails, never a silent downgrade.
    with pytest.raises(helios.UnavailableError):
        helios.scan(f"{peer.host}/gone/app:1.0", no_scan=True, resolve=True, docker_config=peer.tmp / "docker")
