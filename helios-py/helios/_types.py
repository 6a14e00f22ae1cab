"""The decision contract as typed dicts, for annotations (``helios.Decision``)."""

from typing import Any, Dict, List, Literal, Optional, TypedDict

__all__ = ["Decision", "Finding", "GateResult", "PolicyRef", "ScanReport"]


class Finding(TypedDict):
    """A violation or warning: ``msg`` plus whatever fields the policy added (e.g. ``code``)."""

    msg: str


class PolicyRef(TypedDict):
    """Which policy decided: ``policy_id`` (or the package path) and the ``sha256:`` digest of
    the policy sources and data."""

    id: str
    version: str


class _DecisionOptional(TypedDict, total=False):
    decision_id: str  # only from backends that report one (OPA's decision id)


class Decision(_DecisionOptional):
    """The decision contract (``docs/policies.md``)."""

    allowed: bool
    violations: List[Finding]
    warnings: List[Finding]
    policy: PolicyRef
    backend: str


class ScanReport(TypedDict, total=False):
    """A scan report (``input.scan`` of the input contract, ``docs/policies.md``): ``status``
    (``completed``, ``pending``, ``not_found``, ``failed``, ``unavailable``), ``source``, ``id``,
    ``scanned_at`` (the scan time), ``evaluated_at`` (when Lacework last evaluated that scan,
    later after a re-evaluation), ``digest`` (the digest the scan belongs to), ``error``,
    ``summary`` and ``vulnerabilities``."""

    status: str
    source: str
    id: Optional[str]
    scanned_at: Optional[str]
    evaluated_at: Optional[str]
    digest: Optional[str]
    error: Optional[str]
    summary: Dict[str, Any]
    vulnerabilities: List[Dict[str, Any]]


class GateResult(TypedDict):
    """What :func:`helios.gate` returns: the decision, the exact policy input it was made on
    (the build artifact) and the CI exit code (0 allowed, 1 denied, 2 denied because Lacework
    could not be asked)."""

    decision: Decision
    input: Dict[str, Any]
    exit_code: Literal[0, 1, 2]
