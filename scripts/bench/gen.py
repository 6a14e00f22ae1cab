#!/usr/bin/env python3
"""Writes the benchmark fixtures of scripts/bench/*.sh into OUT_DIR (deterministic).

  gen.py webhook OUT_DIR   scans/ (3 Helios scan files named by digest), review.json (a
                           Deployment with 3 containers pinned to those digests),
                           opa-data/data.json (the same scans as OPA data)
  gen.py ci OUT_DIR N      scan.json (a Helios scan report with N findings) and input.json
                           (the policy input `helios eval`, `opa eval` and `conftest` read)

Findings mix severities, fixes and statuses the way helios-core/benches/policy.rs does.
"""
import json
import os
import sys

SEVERITIES = ["critical", "high", "medium", "low", "info", "unknown"]


def scan(n, seed):
    """A completed Helios scan report with n findings."""
    summary = {s: 0 for s in SEVERITIES}
    summary.update(total=0, fixable=0)
    vulns = []
    for i in range(n):
        severity = SEVERITIES[i % len(SEVERITIES)]
        fixable = i % 3 != 0
        summary[severity] += 1
        summary["total"] += 1
        summary["fixable"] += fixable
        vulns.append({
            "id": f"CVE-2024-{seed}{i:05d}",
            "severity": severity,
            "status": "fixed" if i % 7 == 0 else "vulnerable",
            "package": {"name": f"pkg{i % 97}", "version": f"1.{i % 13}.{i % 5}",
                        "namespace": "debian:12"},
            "fix": {"available": fixable, "version": f"2.{i % 11}" if fixable else None},
        })
    return {"status": "completed", "source": "file", "id": f"bench-{seed}",
            "scanned_at": "2026-11-20T10:00:00Z", "error": None, "summary": summary,
            "vulnerabilities": vulns}


def write(path, doc):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f)


def webhook(out):
    # 3 images: an application (≈300 findings), a sidecar (50) and an init container (5).
    images = [("init", "migrate", 5), ("container", "app", 300), ("container", "proxy", 50)]
    containers, init_containers, scans = [], [], {}
    for n, (kind, name, findings) in enumerate(images):
        digest = "sha256:" + f"{n + 1:x}" * 64
        s = scan(findings, n + 1)
        scans[digest] = s
        write(os.path.join(out, "scans", digest.replace(":", "-") + ".json"), s)
        c = {"name": name, "image": f"registry.example.com/shop/{name}@{digest}"}
        (init_containers if kind == "init" else containers).append(c)
    obj = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"initContainers": init_containers,
                                       "containers": containers}}},
    }
    gvk = {"group": "apps", "version": "v1", "kind": "Deployment"}
    gvr = {"group": "apps", "version": "v1", "resource": "deployments"}
    review = {
        "kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": "00000000-0000-0000-0000-0000000000be", "kind": gvk, "resource": gvr,
            "requestKind": gvk, "requestResource": gvr, "name": "web", "namespace": "shop",
            "operation": "CREATE",
            "userInfo": {"username": "alice", "uid": "u-1",
                         "groups": ["devs", "system:authenticated"]},
            "object": obj, "oldObject": None, "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }
    write(os.path.join(out, "review.json"), review)
    write(os.path.join(out, "opa-data", "data.json"), {"helios_bench": {"scans": scans}})
    total = sum(len(s["vulnerabilities"]) for s in scans.values())
    print(f"gen: {len(scans)} images, {total} findings in all -> {out}")


def ci(out, n):
    s = scan(n, 9)
    digest = "sha256:" + "9" * 64
    write(os.path.join(out, "scan.json"), s)
    write(os.path.join(out, "input.json"), {
        "version": 1, "stage": "ci",
        "image": {"reference": f"registry.example.com/team/app@{digest}",
                  "registry": "registry.example.com", "repository": "team/app", "tag": None,
                  "digest": digest},
        "scan": s, "workload": None, "ci": {"pipeline": "bench"},
    })
    with open(os.path.join(out, "image"), "w") as f:
        f.write(f"registry.example.com/team/app@{digest}\n")
    print(f"gen: 1 scan, {n} findings -> {out}")


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "webhook":
        webhook(sys.argv[2])
    elif len(sys.argv) >= 4 and sys.argv[1] == "ci":
        ci(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(__doc__)
