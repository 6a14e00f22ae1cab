"""The decision contract as typed dicts, for annotations (``helios.Decision``)."""

from typing import List, TypedDict

__all__ = ["Decision", "Finding", "PolicyRef"]


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



