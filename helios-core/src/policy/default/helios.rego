# Helios default policy (policy_id "helios.default").
#
# Denies:  every vulnerable critical; vulnerable highs that have a fix; images without a
#          completed scan (a warning instead when data.helios.config.allow_unscanned is true).
# Warns:   highs without a fix, mediums with a fix, and findings waived by an exception.
# Exceptions: data.helios.exceptions = [{"id": "CVE-…", "expires": "YYYY-MM-DD", "reason": "…"}];
#          an exception applies until 00:00 UTC of its expiry date, and one without a valid
#          expiry date never applies.
package helios

policy_id := "helios.default"

# Written for speed (issue 10; same decisions, measured in docs/performance.md): each rule tests
# the cheap, selective fields of a finding first (severity, fix, status), looks exceptions up in
# a set, and calls a function (the message) only for the findings it keeps. Each decision rule
# still walks the findings on its own: a single pass through a per-finding classification
# function measured slower, as every finding then pays for a function call.

deny contains finding(v, "critical") if {
	some v in input.scan.vulnerabilities
	v.severity == "critical"
	v.status == "vulnerable"
	not excepted_ids[v.id]
}

deny contains finding(v, "fixable-high") if {
	some v in input.scan.vulnerabilities
	v.severity == "high"
	v.fix.available
	v.status == "vulnerable"
	not excepted_ids[v.id]
}

warn contains finding(v, "unfixable-high") if {
	some v in input.scan.vulnerabilities
	v.severity == "high"
	not v.fix.available
	v.status == "vulnerable"
	not excepted_ids[v.id]
}

warn contains finding(v, "fixable-medium") if {
	some v in input.scan.vulnerabilities
	v.severity == "medium"
	v.fix.available
	v.status == "vulnerable"
	not excepted_ids[v.id]
}

# Starts from the exceptions (usually none) rather than from every finding.
warn contains {"msg": msg, "code": "excepted"} if {
	some e in data.helios.exceptions
	active(e)
	some v in input.scan.vulnerabilities
	v.id == e.id
	v.status == "vulnerable"
	would_deny(v)
	msg := sprintf("%s excepted until %s: %s", [describe(v), e.expires, object.get(e, "reason", "no reason given")])
}

# Helpers are functions, not rules, so that the package document (the one query an evaluation
# makes) holds only the decision rules; but for `excepted_ids`, computed once per evaluation
# rather than called once per finding (the decision ignores it in the document).

would_deny(v) if v.severity == "critical"

would_deny(v) if {
	v.severity == "high"
	v.fix.available
}

# The ids of the active exceptions.
excepted_ids contains e.id if {
	some e in data.helios.exceptions
	active(e)
}

# Dates compare as text once their shape is checked, so a malformed or far-future date can never
# make a builtin fail (which would turn every decision into an error).
active(e) if {
	is_string(e.expires)
	regex.match(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`, e.expires)
	[year, month, day] := time.date(time.now_ns())
	e.expires > sprintf("%04d-%02d-%02d", [year, month, day])
}

deny contains unscanned(input.scan) if {
	input.scan.status != "completed"
	not data.helios.config.allow_unscanned == true
}

warn contains unscanned(input.scan) if {
	input.scan.status != "completed"
	data.helios.config.allow_unscanned == true
}

unscanned(scan) := {"msg": msg, "code": "unscanned"} if {
	msg := sprintf("image %s has no completed scan (status: %s)%s", [input.image.reference, scan.status, scan_error(scan)])
}

scan_error(scan) := sprintf(": %s", [scan.error]) if is_string(scan.error)

else := ""

# One definition with `else` rather than two guarded ones: a function's definitions are all
# evaluated (their results must agree), an `else` only when what precedes it is undefined.
finding(v, code) := {"msg": msg, "code": code} if {
	v.fix.available
	msg := sprintf("%s (%s) in %s %s has a fix: %s", [v.id, v.severity, v.package.name, v.package.version, fix_version(v)])
} else := {"msg": msg, "code": code} if {
	msg := sprintf("%s (%s) in %s %s has no fix yet", [v.id, v.severity, v.package.name, v.package.version])
}

describe(v) := sprintf("%s (%s) in %s %s", [v.id, v.severity, v.package.name, v.package.version])

fix_version(v) := v.fix.version if is_string(v.fix.version)

else := "a newer version"
