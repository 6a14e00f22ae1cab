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
}

/**
 * The policy input contract, version 1 (docs/policies.md). Checked by the core: a malformed
 * input rejects with `err.code === 'invalid_input'` naming the field.
 */
export type PolicyInput = Record<string, unknown>

/**
 * An error from Helios. `code` is one of {@link ERROR_CODES} (e.g. `policy_timeout`) for errors
 * of the core, or `InvalidArg` for an argument of the wrong type or value.
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
 * @throws {HeliosError} synchronously with `code === 'InvalidArg'` for arguments of the wrong type;
 *   the promise rejects with the core's `code` (e.g. `policy_parse`, `policy_timeout`, `invalid_input`).
 */
export declare function evaluate(input: PolicyInput, options?: EvaluateOptions | null): Promise<Decision>

/**
 * Evaluates the policy on `input` on the calling thread.
 *
 * @throws {HeliosError} with the core's `code`, or `InvalidArg` for arguments of the wrong type.
 */
export declare function evaluateSync(input: PolicyInput, options?: EvaluateOptions | null): Decision

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
  evaluate(input: PolicyInput): Promise<Decision>
  /** Evaluates `input` on the calling thread. */
  evaluateSync(input: PolicyInput): Decision
}

/** The version of this package (and of the Rust core it wraps). */
export declare const VERSION: string

/** Every `code` a Helios error of the core can carry (`helios_core::Error::CODES`). */
export declare const ERROR_CODES: readonly string[]
