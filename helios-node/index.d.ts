// Types of helios-policy (hand-kept; test/types.test.js checks them against the addon).

/** One violation or warning: at least `msg`, plus whatever fields the policy added (e.g. `code`). */
export interface Finding {
  msg: string
  [field: string]: unknown
}

/** The decision contract (docs/policies.md), identical across backends but for `backend`. */
export interface Decision {
  /** `allow` is not `false` and there are no violations. */
  allowed: boolean
  /** Entries of `deny` and `violation`, sorted by `msg`. */
  violations: Finding[]
  /** Entries of `warn`, sorted by `msg`. */
  warnings: Finding[]
  /** Which policy decided: `policy_id` (or the package path) and a `sha256:` digest of the sources and data. */
  policy: { id: string; version: string }
  /** Which backend evaluated it. */
  backend: 'embedded' | 'opa'
  /** The server's decision id, when the backend reports one. */
  decision_id?: string
}

/** Options of `evaluate`, `evaluateSync` and `new Evaluator()`. */
/**
 * Options of `evaluate`, `evaluateSync` and `new Evaluator()`: the core's `EvaluatorOptions`
 * (camelCase here), checked by the core; an unknown or mistyped field throws `invalid_input`
 * naming it. `null`/`undefined` fields take the core's defaults.
 */
export interface EvaluateOptions {
  /** A `.rego` file, a data file (`.json`/`.yaml`) or a directory, or a list of them; absent means the shipped default policy. */
  policy?: string | string[]
  /** A data document merged under `data` (e.g. `{ helios: { exceptions: [...] } }`). */
  data?: Record<string, unknown>
  /** The package whose document is the decision (default `helios`). */
  package?: string
  /** Parse modules as Rego v0 (pre-1.0 syntax). Default `false`. */
  regoV0?: boolean
  /** Execution time limit of one evaluation in milliseconds (default 250). */
  timeLimitMs?: number
  /**
   * Share one evaluation's decision rules (`deny`, `warn`, …) among the cores, for one large
   * decision on an otherwise idle machine such as a CI step (as `helios gate` does); the decision
   * is the same. Leave it off when many inputs are decided at once, or for small ones: a thread
   * then costs more than it saves. Default `false`.
   */
  parallelRules?: boolean
}

/**
 * The policy input contract, version 1 (docs/policies.md). Checked by the core: a malformed
 * input rejects with `err.code === 'invalid_input'` naming the field.
 */
export type PolicyInput = Record<string, unknown>

/**
 * An error from Helios. `code` is one of {@link ERROR_CODES} (e.g. `policy_timeout`) for errors
 * of the core (options are checked by the core: `invalid_input`), or napi-rs's status (`InvalidArg`,
 * `StringExpected`, …) for an argument napi-rs cannot convert (an input that is not an object, a
 * value JSON has no form for).
 */
export interface HeliosError extends Error {
  code: string
}

/**
 * Evaluates the policy on `input` without blocking the JS thread: the policies are read and
 * compiled, and the input evaluated, on the libuv thread pool.
 *
 * @example
 * const { evaluate } = require('helios-policy')
 * const decision = await evaluate(input) // the shipped default policy
 * if (!decision.allowed) console.log(decision.violations.map((v) => v.msg))
 *
 * @throws {HeliosError} synchronously with `InvalidArg` for an input napi-rs cannot convert
 *   (neither an object nor a {@link PreparedInput});
 *   the promise rejects with `invalid_input` for bad options (checked by the core), or with the core's `code` (e.g. `policy_parse`, `policy_timeout`, `invalid_input`).
 */
export declare function evaluate(input: PolicyInput | PreparedInput, options?: EvaluateOptions | null): Promise<Decision>

/**
 * Evaluates the policy on `input` on the calling thread.
 *
 * @throws {HeliosError} with the core's `code` (`invalid_input` for bad options), or `InvalidArg`
 *   for an input napi-rs cannot convert.
 */
export declare function evaluateSync(input: PolicyInput | PreparedInput, options?: EvaluateOptions | null): Decision

/**
 * A policy parsed and prepared once, to evaluate any number of inputs (e.g. every image of a
 * build) without re-reading the policy.
 *
 * @example
 * const evaluator = new Evaluator({ policy: 'policies/', data: { helios: { config: { allow_unscanned: true } } } })
 * for (const input of inputs) console.log((await evaluator.evaluate(input)).allowed)
 */
export declare class Evaluator {
  /**
   * Loads and prepares the policies (the shipped default policy when `policy` is absent), on
   * the calling thread.
   *
   * @throws {HeliosError} e.g. `policy_parse` (the message names `file:line`), `io`, `policy_undefined`.
   */
  constructor(options?: EvaluateOptions | null)
  /** `sha256:` digest of the policy sources and data (the decision's `policy.version`). */
  get version(): string
  /** Evaluates `input` on the libuv thread pool. */
  evaluate(input: PolicyInput | PreparedInput): Promise<Decision>
  /** Evaluates `input` on the calling thread. */
  evaluateSync(input: PolicyInput | PreparedInput): Decision
}

/**
 * A policy input read and checked once, to evaluate any number of times with any evaluator:
 * every `evaluate` / `evaluateSync` takes it in place of the object. A snapshot: changing the
 * object later changes nothing. Its scan is converted into the engine's value on the first
 * evaluation and shared by the later ones, so they skip reading the object again.
 *
 * @example
 * const prepared = new PreparedInput(input)
 * const [a, b] = await Promise.all([strict.evaluate(prepared), relaxed.evaluate(prepared)])
 */
export declare class PreparedInput {
  /**
   * Reads and checks `input` on the calling thread, with exactly the errors evaluating it would
   * give (same `code` and message).
   *
   * @throws {HeliosError} `InvalidArg` for an input that is not an object or holds a value
   *   napi-rs cannot convert; `invalid_input` for an input that breaks the input contract.
   */
  constructor(input: PolicyInput)
  /**
   * Reads and checks an input's JSON text (e.g. a file's content) without building the object
   * first. Plain objects given to `evaluate` / `evaluateSync` take this path themselves when
   * their JSON text is exact (strings, booleans, null, finite numbers, arrays and plain
   * objects); anything else is read as before.
   *
   * @throws {HeliosError} `invalid_input` for text that is not JSON or breaks the input contract.
   */
  static fromJson(text: string): PreparedInput
}

/** A scan report: `input.scan` of the input contract (docs/policies.md). */
export interface ScanReport {
  /** Where the scan stands. */
  status: 'completed' | 'pending' | 'not_found' | 'failed' | 'unavailable'
  /** Which scanner or source produced it: `lacework`, `file`, ... */
  source: string
  /** The scanner's id for this scan (Lacework's `evalGuid`, or the on-demand request id). */
  id: string | null
  /** When the image was scanned, RFC 3339 in UTC. */
  scanned_at: string | null
  /** When the scanner last evaluated that scan (later than `scanned_at` after a Lacework re-evaluation), RFC 3339 in UTC. */
  evaluated_at: string | null
  /** The manifest digest the scan belongs to (of the image's candidate digests, the one Lacework knows). */
  digest: string | null
  /** Why, when `status` is `failed` or `unavailable`. */
  error: string | null
  /** Counts over `vulnerabilities`. */
  summary: { total: number; [severity: string]: number }
  /** The findings. */
  vulnerabilities: Record<string, unknown>[]
}

/** What `gate` decided, with the exact input it decided on (the build artifact). */
export interface GateResult {
  decision: Decision
  input: PolicyInput
  /** The CI exit code: 0 allowed, 1 denied, 2 denied because Lacework could not be asked (scan `unavailable`). */
  exit_code: 0 | 1 | 2
}

/** Options of `scan`: where the scan comes from (the core's `ScanOptions`: a scan file, a directory, or Lacework) and the registry. */
export interface ScanOptions {
  /** The image's scan file (a Lacework v2 search response, its rows, or a Helios report); absent means ask Lacework. */
  scanFile?: string
  /** A directory of scan files, looked up by the image's digest (as the webhook's `scans.dir`: Lacework files index their rows' digests, any file may be named `sha256-<hex>.json`). Not with `scanFile`. */
  scanDir?: string
  /** Seconds to wait for an on-demand scan when Lacework has no record of the image (default 600; 0: answer `pending` at once). A clean scan is `completed`, a failed or unsupported one `failed`: neither is scanned again. */
  wait?: number
  /** Never request an on-demand scan: an image without one is `not_found`. */
  noScan?: boolean
  /** The Lacework CLI profile of `~/.lacework.toml` (default `LW_PROFILE`, else `default`). */
  profile?: string
  /**
   * Resolve a tag at its registry to the digest it points to now (and, for a multi-arch image,
   * the `platform` manifest) before the lookup, recorded in `input.image.resolved_digest` /
   * `platform_digest`. Default: yes, unless `HELIOS_NO_RESOLVE=true`. A failure rejects (`auth`,
   * `unavailable`, `remote`, `invalid_image` for a missing platform): never a lookup by tag.
   */
  resolve?: boolean
  /** The platform picked from a multi-arch image, `os/arch[/variant]` (default `linux/amd64`). */
  platform?: string
  /** Registry credentials: a Docker `config.json`, a `.dockerconfigjson`, or a directory (default `$DOCKER_CONFIG`, `~/.docker`). */
  dockerConfig?: string
  /** Registries (`host[:port]`) spoken to over plain HTTP; never a fallback. */
  plainHttp?: string[]
  /** A PEM CA file per registry, e.g. `{ 'registry:5000': 'ca.pem' }`. */
  registryCa?: Record<string, string>
}

/** Options of `gate` and `gateSync` (the core's `GateOptions`: `EvaluatorOptions` and `ScanOptions` in one object). */
export interface GateOptions extends ScanOptions, EvaluateOptions {
  /** CI context passed to the policy as `input.ci`. */
  ci?: Record<string, unknown>
}

/**
 * The Lacework scan of `image`, as `helios scan` prints it (or, with `scanFile` / `scanDir`, the
 * report found there). Waiting holds no libuv worker: the lookup is a future on napi-rs's tokio
 * runtime, and one Lacework client (one token, one request budget) serves every call of the
 * process with the same credentials. Settings come from
 * `LW_ACCOUNT`, `LW_API_KEY`, `LW_API_SECRET` (`LW_SUBACCOUNT`) or a `~/.lacework.toml` profile.
 *
 * @throws {HeliosError} synchronously with `code === 'StringExpected'` for an image that is not a
 *   string; the promise rejects with `invalid_input` for bad options (checked by the core), with `invalid_image`, or `auth` /
 *   `unavailable` / `remote` when Lacework rejects the credentials, cannot be reached or errs.
 */
export declare function scan(image: string, options?: ScanOptions | null): Promise<ScanReport>

/**
 * Decides whether `image` may ship, as `helios gate` does: the scan from `scanFile` or `scanDir`,
 * else from Lacework (a Lacework failure becomes an `unavailable` scan, which the policy judges),
 * then the policy. Waiting on Lacework holds no libuv worker (a future on napi-rs's tokio
 * runtime), so any number of waiting gates leave the pool to `evaluate` and the rest of Node.
 *
 * @example
 * const { exit_code, decision } = await gate('registry.example.com/team/app:1.4', { ci: { pipeline: 'build' } })
 * decision.violations.forEach((v) => console.log(v.msg))
 * process.exitCode = exit_code
 */
export declare function gate(image: string, options?: GateOptions | null): Promise<GateResult>

/**
 * {@link gate} on the calling thread, for scans that need no waiting: `scanFile` or `scanDir`.
 * Without either it throws `invalid_input` (Lacework may take minutes: use {@link gate}). A tag
 * is still resolved at its registry unless `resolve: false` (bounded by the registry timeouts).
 */
export declare function gateSync(image: string, options?: GateOptions | null): GateResult

/** The version of this package (and of the Rust core it wraps). */
export declare const VERSION: string

/** Every `code` a Helios error of the core can carry (`helios_core::Error::CODES`). */
export declare const ERROR_CODES: readonly string[]
