# Unit tests of the default policy: `helios policy test` (or `opa test`) runs every test_ rule.
package helios_test

import data.helios

vuln(id, severity, fixed) := {
	"id": id,
	"severity": severity,
	"status": "vulnerable",
	"package": {"name": "openssl", "version": "1.1.1n", "namespace": "debian:11"},
	"fix": {"available": fixed != null, "version": fixed},
}

scanned(vulns) := {
	"version": 1,
	"stage": "ci",
	"image": {"reference": "registry.example.com/app:1"},
	"scan": {"status": "completed", "error": null, "vulnerabilities": vulns},
}

unscanned(status, error) := {
	"version": 1,
	"stage": "ci",
	"image": {"reference": "registry.example.com/app:1"},
	"scan": {"status": status, "error": error, "vulnerabilities": []},
}

waiver(expires) := [{"id": "CVE-1", "expires": expires, "reason": "vendor patch due"}]

test_clean_image_is_allowed if {
	count(helios.deny) == 0 with input as scanned([])
	count(helios.warn) == 0 with input as scanned([])
}

test_policy_id if helios.policy_id == "helios.default"

test_critical_without_fix_is_denied if {
	helios.deny == {{"msg": "CVE-1 (critical) in openssl 1.1.1n has no fix yet", "code": "critical"}} with input as scanned([vuln("CVE-1", "critical", null)])
}

test_critical_with_fix_is_denied if {
	helios.deny == {{"msg": "CVE-1 (critical) in openssl 1.1.1n has a fix: 1.1.1w", "code": "critical"}} with input as scanned([vuln("CVE-1", "critical", "1.1.1w")])
}

test_fixable_high_is_denied if {
	helios.deny == {{"msg": "CVE-2 (high) in openssl 1.1.1n has a fix: 1.1.1w", "code": "fixable-high"}} with input as scanned([vuln("CVE-2", "high", "1.1.1w")])
}

test_unfixable_high_is_a_warning if {
	count(helios.deny) == 0 with input as scanned([vuln("CVE-3", "high", null)])
	helios.warn == {{"msg": "CVE-3 (high) in openssl 1.1.1n has no fix yet", "code": "unfixable-high"}} with input as scanned([vuln("CVE-3", "high", null)])
}

test_fixable_medium_is_a_warning if {
	helios.warn == {{"msg": "CVE-4 (medium) in openssl 1.1.1n has a fix: 1.2", "code": "fixable-medium"}} with input as scanned([vuln("CVE-4", "medium", "1.2")])
}

test_low_and_unfixable_medium_pass_silently if {
	inp := scanned([vuln("CVE-5", "low", "2"), vuln("CVE-6", "medium", null)])
	count(helios.deny) == 0 with input as inp
	count(helios.warn) == 0 with input as inp
}

test_non_vulnerable_status_is_ignored if {
	v := object.union(vuln("CVE-1", "critical", null), {"status": "exception"})
	count(helios.deny) == 0 with input as scanned([v])
}

test_active_exception_waives_with_a_warning if {
	inp := scanned([vuln("CVE-1", "critical", null)])
	count(helios.deny) == 0 with input as inp with data.helios.exceptions as waiver("2199-12-31")
	helios.warn == {{"msg": "CVE-1 (critical) in openssl 1.1.1n excepted until 2199-12-31: vendor patch due", "code": "excepted"}} with input as inp with data.helios.exceptions as waiver("2199-12-31")
}

test_expired_exception_does_not_waive if {
	count(helios.deny) == 1 with input as scanned([vuln("CVE-1", "critical", null)]) with data.helios.exceptions as waiver("2001-01-01")
}

test_exception_without_valid_expiry_does_not_waive if {
	count(helios.deny) == 1 with input as scanned([vuln("CVE-1", "critical", null)]) with data.helios.exceptions as waiver("soon")
}

test_pending_scan_is_denied if {
	helios.deny == {{"msg": "image registry.example.com/app:1 has no completed scan (status: pending)", "code": "unscanned"}} with input as unscanned("pending", null)
}

test_failed_scan_names_the_error if {
	helios.deny == {{"msg": "image registry.example.com/app:1 has no completed scan (status: failed): unsupported image", "code": "unscanned"}} with input as unscanned("failed", "unsupported image")
}

test_allow_unscanned_turns_the_denial_into_a_warning if {
	count(helios.deny) == 0 with input as unscanned("not_found", null) with data.helios.config.allow_unscanned as true
	count(helios.warn) == 1 with input as unscanned("not_found", null) with data.helios.config.allow_unscanned as true
}

test_exception_expiring_today_no_longer_waives if {
	[year, month, day] := time.date(time.now_ns())
	today := sprintf("%04d-%02d-%02d", [year, month, day])
	count(helios.deny) == 1 with input as scanned([vuln("CVE-1", "critical", null)]) with data.helios.exceptions as waiver(today)
}

test_exception_far_in_the_future_waives if {
	count(helios.deny) == 0 with input as scanned([vuln("CVE-1", "critical", null)]) with data.helios.exceptions as waiver("9999-12-31")
}
