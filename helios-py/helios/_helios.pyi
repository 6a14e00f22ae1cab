"""Types of the native module ``helios._helios`` (re-exported by ``helios``).

Kept by hand; ``tests/test_stub.py`` checks it against the built module both ways.
"""

import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Final, Literal

from ._types import Decision, GateResult, ScanReport

__version__: Final[str]
ERROR_CODES: Final[list[str]]
DEFAULT_TIME_LIMIT_MS: Final[int]

_Path = str | os.PathLike[str]

def evaluate(
    input: dict[str, Any] | PreparedInput,
    policy: _Path | Sequence[_Path] | None = None,
    *,
    data: dict[str, Any] | None = None,
    package: str | None = None,
    rego_v0: bool = False,
    time_limit_ms: int | None = None,
    parallel_rules: bool = False,
) -> Decision:
    """Evaluates ``input`` once with ``policy`` (files or directories of ``.rego`` and data
    files; the shipped default policy when None). For many inputs, build an :class:`Evaluator`.
    ``parallel_rules`` as in :class:`Evaluator`.

    Releases the GIL while the policy is compiled and evaluated.

    Raises:
        TypeError: an argument of the wrong type (``input`` neither a dict nor a
            :class:`PreparedInput`, ``policy`` an int, a value JSON cannot hold such as a set).
        HeliosError: a subclass per error code (e.g. PolicyTimeoutError, InvalidInputError).
    """

def scan(
    image: str,
    *,
    wait: float | None = None,
    no_scan: bool = False,
    profile: str | None = None,
    resolve: bool | None = None,
    platform: str | None = None,
    docker_config: _Path | None = None,
    plain_http: Sequence[str] | None = None,
    registry_ca: Mapping[str, _Path] | None = None,
) -> ScanReport:
    """The Lacework scan of ``image`` (what ``helios scan`` prints). Lacework settings come from
    ``LW_ACCOUNT``, ``LW_API_KEY``, ``LW_API_SECRET`` (``LW_SUBACCOUNT``) or the ``profile`` of
    ``~/.lacework.toml``. An image Lacework scanned clean is ``completed`` with no findings; a
    failed or unsupported scan is ``failed``. Only when Lacework has no record of the image does it
    request an on-demand scan and wait up to ``wait`` seconds (0: answer ``pending`` at once);
    ``no_scan`` answers ``not_found`` instead.

    A tag is first resolved at its registry, as in :func:`gate`.

    Releases the GIL while it waits.

    Raises:
        TypeError: ``image`` not a str.
        InvalidInputError: ``wait`` negative or not finite (the core checks the options).
        InvalidImageError: ``image`` cannot be parsed.
        AuthError, UnavailableError, RemoteError: Lacework or the registry rejected the
            credentials, could not be reached, or answered with an error (a deleted tag is a
            ``RemoteError`` with ``MANIFEST_UNKNOWN``).
    """

def gate(
    image: str,
    *,
    scan_file: _Path | None = None,
    scan_dir: _Path | None = None,
    policy: _Path | Sequence[_Path] | None = None,
    data: dict[str, Any] | None = None,
    package: str | None = None,
    ci: dict[str, Any] | None = None,
    wait: float | None = None,
    no_scan: bool = False,
    profile: str | None = None,
    resolve: bool | None = None,
    platform: str | None = None,
    docker_config: _Path | None = None,
    plain_http: Sequence[str] | None = None,
    registry_ca: Mapping[str, _Path] | None = None,
    parallel_rules: bool = False,
) -> GateResult:
    """Decides whether ``image`` may ship, as ``helios gate`` does: the scan from ``scan_file``
    (a Lacework v2 search response, its rows, or a Helios report) or ``scan_dir`` (a directory of
    scan files looked up by the image's digest, as the webhook's ``scans.dir``), else from Lacework (as
    :func:`scan`, but a Lacework failure becomes an ``unavailable`` scan for the policy to judge);
    then the policy, with ``ci`` as ``input.ci``.

    A tag-only ``image`` is first resolved at its registry to the digest it points to now (and,
    for a multi-arch image, the ``platform`` manifest, default ``linux/amd64``), recorded in
    ``input.image.resolved_digest`` / ``platform_digest``, and the scan of those digests decides.
    ``resolve=False`` (or ``HELIOS_NO_RESOLVE=true`` when ``resolve`` is not given) looks the
    image up as written. Credentials come from ``docker_config`` (a ``config.json``,
    ``.dockerconfigjson`` or a directory), else ``$DOCKER_CONFIG`` / ``~/.docker``;
    ``plain_http`` lists registries spoken to over HTTP; ``registry_ca`` maps a registry to a
    PEM CA file. A resolution failure raises (``AuthError``, ``UnavailableError``,
    ``RemoteError``, ``InvalidImageError`` for a missing platform): never a lookup by tag.

    Returns ``{"decision": …, "input": …, "exit_code": 0 | 1 | 2}`` (2: denied while Lacework could not be asked). Releases the GIL.
    """

class Evaluator:
    """A policy parsed and prepared once, to evaluate any number of inputs. Thread-safe.

    ``parallel_rules=True`` shares one evaluation's decision rules (``deny``, ``warn``, …) among
    the cores, for one large decision on an otherwise idle machine such as a CI step (as
    ``helios gate`` and ``helios eval`` do); the decision is the same. Leave it off when many
    inputs are decided at once, or for small ones: a thread then costs more than it saves.
    """

    def __init__(
        self,
        policy: _Path | Sequence[_Path] | None = None,
        *,
        data: dict[str, Any] | None = None,
        package: str | None = None,
        rego_v0: bool = False,
        time_limit_ms: int | None = None,
        parallel_rules: bool = False,
    ) -> None: ...
    def evaluate(self, input: dict[str, Any] | PreparedInput) -> Decision:
        """Evaluates one input (releasing the GIL) and returns the decision."""
    @property
    def version(self) -> str:
        """``sha256:`` digest of the policy sources and data (the decision's ``policy.version``)."""
    @property
    def package(self) -> str:
        """The package whose document is the decision, e.g. ``helios``."""

class PreparedInput:
    """A policy input read and checked once, to evaluate any number of times with any
    :class:`Evaluator` (or :func:`evaluate`). A snapshot of the dict: changing the dict later
    changes nothing. Its scan is converted into the engine's value on the first evaluation and
    shared by the later ones. Immutable and thread-safe."""

    def __init__(self, input: dict[str, Any]) -> None:
        """Reads and checks ``input`` (the input contract), with the errors
        ``evaluate(input)`` would raise.

        Raises:
            TypeError: ``input`` not a dict, or holding a value JSON cannot hold (a set, ...).
            InvalidInputError: ``input`` breaks the input contract (the field is named), or
                holds a number JSON cannot hold or nesting deeper than 128 levels.
        """

    @staticmethod
    def from_json(text: str) -> PreparedInput:
        """Reads and checks an input's JSON text (e.g. a file's content) without building a
        dict first.

        Raises:
            TypeError: ``text`` not a str.
            InvalidInputError: ``text`` is not JSON or breaks the input contract (the field is
                named).
        """

class HeliosError(Exception):
    """Base of every Helios error."""

    code: str | None
    """The stable machine-readable code (one of ``ERROR_CODES``); None only on the bases."""

class PolicyError(HeliosError):
    """The policy could not decide."""

class ServiceError(HeliosError):
    """A service Helios depends on failed."""

class InvalidInputError(HeliosError):
    code: ClassVar[Literal["invalid_input"]]  # type: ignore[misc]

class InvalidImageError(HeliosError):
    code: ClassVar[Literal["invalid_image"]]  # type: ignore[misc]

class IoError(HeliosError):
    code: ClassVar[Literal["io"]]  # type: ignore[misc]

class PolicyParseError(PolicyError):
    code: ClassVar[Literal["policy_parse"]]  # type: ignore[misc]

class PolicyUndefinedError(PolicyError):
    code: ClassVar[Literal["policy_undefined"]]  # type: ignore[misc]

class PolicyTypeError(PolicyError):
    code: ClassVar[Literal["policy_type"]]  # type: ignore[misc]

class PolicyEvalError(PolicyError):
    code: ClassVar[Literal["policy_eval"]]  # type: ignore[misc]

class PolicyTimeoutError(PolicyError):
    code: ClassVar[Literal["policy_timeout"]]  # type: ignore[misc]

class UnavailableError(ServiceError):
    code: ClassVar[Literal["unavailable"]]  # type: ignore[misc]

class AuthError(ServiceError):
    code: ClassVar[Literal["auth"]]  # type: ignore[misc]

class RemoteError(ServiceError):
    code: ClassVar[Literal["remote"]]  # type: ignore[misc]
