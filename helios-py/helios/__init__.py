"""Helios: judge container image scans with Rego policy.

Evaluate a policy input (the input contract of ``docs/policies.md``) with the shipped default policy
or your own Rego, and get the decision contract back as a dict::

    import helios

    decision = helios.evaluate(policy_input)
    evaluator = helios.Evaluator("policies/", data={"helios": {"config": {"allow_unscanned": True}}})
    for item in inputs:
        evaluator.evaluate(item)

An input evaluated more than once is read once with :class:`PreparedInput`::

    prepared = helios.PreparedInput(policy_input)
    evaluator.evaluate(prepared)

Gate an image in CI as ``helios gate`` does (the scan from a file or from Lacework)::

    result = helios.gate("registry.example.com/team/app:1.4", scan_file="scan.json")
    sys.exit(result["exit_code"])

Errors raise subclasses of :class:`HeliosError`, each carrying the stable ``.code`` of the core
(``helios.ERROR_CODES``).
"""

from ._helios import (
    DEFAULT_TIME_LIMIT_MS,
    ERROR_CODES,
    AuthError,
    Evaluator,
    HeliosError,
    InvalidImageError,
    InvalidInputError,
    IoError,
    PolicyError,
    PolicyEvalError,
    PolicyParseError,
    PolicyTimeoutError,
    PolicyTypeError,
    PolicyUndefinedError,
    PreparedInput,
    RemoteError,
    ServiceError,
    UnavailableError,
    __version__,
    evaluate,
    gate,
    scan,
)
from ._types import Decision, Finding, GateResult, PolicyRef, ScanReport

__all__ = [
    "DEFAULT_TIME_LIMIT_MS",
    "Decision",
    "Finding",
    "PolicyRef",
    "GateResult",
    "ScanReport",
    "ERROR_CODES",
    "AuthError",
    "Evaluator",
    "HeliosError",
    "InvalidImageError",
    "InvalidInputError",
    "IoError",
    "PolicyError",
    "PolicyEvalError",
    "PolicyParseError",
    "PolicyTimeoutError",
    "PolicyTypeError",
    "PolicyUndefinedError",
    "PreparedInput",
    "RemoteError",
    "ServiceError",
    "UnavailableError",
    "__version__",
    "evaluate",
    "gate",
    "scan",
]
