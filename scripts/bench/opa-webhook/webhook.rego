# OPA acting as the admission webhook, kube-mgmt style, for scripts/bench/webhook.sh.
#
# `opa run --server` answers `POST /` with the document of data.system.main (OPA's default
# decision), the AdmissionReview it receives being the input. The checks per container are the
# shipped default policy itself (helios-core/src/policy/default/helios.rego, loaded next to this
# file) evaluated on the Helios policy input of that container, its scan looked up in
# data.helios_bench.scans by the image's digest (the scans are loaded as OPA data). The answer is
# shaped like Helios's: one denial paragraph per denied image quoting at most 5 violations, and
# one warning per policy warning (at most 16, each cut to 256 bytes, as the API server keeps them).
package system

main := {
	"apiVersion": "admission.k8s.io/v1",
	"kind": "AdmissionReview",
	"response": response,
}

request := input.request

pod_spec := request.object.spec.template.spec if request.kind.kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}

pod_spec := request.object.spec if request.kind.kind == "Pod"

targets contains {"who": sprintf("image %s (container %s)", [c.image, c.name]), "image": c.image} if {
	some c in pod_spec.containers
}

targets contains {"who": sprintf("image %s (init container %s)", [c.image, c.name]), "image": c.image} if {
	some c in pod_spec.initContainers
}

missing := {"status": "not_found", "source": "opa-data", "id": null, "scanned_at": null, "error": null, "vulnerabilities": []}

# The decision of the default policy for one container (its scan by digest, or "not_found").
checks contains {"who": t.who, "deny": decision.deny, "warn": decision.warn} if {
	some t in targets
	digest := split(t.image, "@")[1]
	scan := object.get(data.helios_bench.scans, digest, missing)
	decision := data.helios with input as {"version": 1, "stage": "admission", "image": {"reference": t.image, "digest": digest}, "scan": scan}
}

denials := [paragraph(c) | some c in checks; count(c.deny) > 0]

paragraph(c) := concat("", array.concat([sprintf("%s violates policy helios.default:", [c.who])], lines(c)))

lines(c) := array.concat(
	[sprintf("\n  - %s", [m]) | some i, m in msgs; i < 5],
	[sprintf("\n  - and %d more", [count(msgs) - 5]) | count(msgs) > 5],
) if msgs := sort([d.msg | some d in c.deny])

warnings := array.slice(
	[substring(sprintf("helios: %s: %s", [c.who, w.msg]), 0, 256) | some c in checks; some w in c.warn],
	0, 16,
)

response := {
	"uid": request.uid,
	"allowed": false,
	"status": {"code": 403, "reason": "Forbidden", "message": concat("\n", denials)},
	"warnings": warnings,
} if count(denials) > 0

else := {"uid": request.uid, "allowed": true, "warnings": warnings}
