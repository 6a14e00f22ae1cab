"""Helios: judge container image scans with Rego policy.

Evaluate a policy input (the input contract of ``docs/policies.md``) with the shipped default policy
or your own Rego, and get the decision contract back as a dict::

    import helios

    decision = helios.evaluate(policy_input)
    evaluator = helios.Evaluator("policies/", data={"helios": {"config": {"allow_unscanned": True}}})
    for item in inputs:
        evaluator.evaluate(item)

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
    RemoteError,
    ServiceError,
    UnavailableError,
    __version__,
    evaluate,
)
from ._types import Decision, Finding, PolicyRef

__all__ = [
    "DEFAULT_TIME_LIMIT_MS",
    "Decision",
    "Finding",
    "PolicyRef",
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
    "RemoteError",
    "ServiceError",
    "UnavailableError",
    "__version__",
    "evaluate",
]
