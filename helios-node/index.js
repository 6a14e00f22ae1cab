'use strict'
// Loads the native addon built by `napi build --platform` (helios.<platform>-<arch>[-abi].node)
// and re-exports it. Types and docs: index.d.ts.

const { existsSync } = require('node:fs')
const { join } = require('node:path')

function abiSuffix() {
  if (process.platform === 'win32') return '-msvc'
  if (process.platform !== 'linux') return ''
  // glibc reports its version in the process report; musl does not.
  try {
    const header = process.report.getReport().header
    return header.glibcVersionRuntime ? '-gnu' : '-musl'
  } catch {
    return '-gnu'
  }
}

// napi-rs's convention: an addon built in this directory (a checkout) wins; else the prebuilt
// one of the per-platform package npm installed as an optional dependency
// (helios-policy-linux-x64-gnu), see docs/packaging.md.
const platform = `${process.platform}-${process.arch}${abiSuffix()}`
const file = `helios.${platform}.node`
const path = join(__dirname, file)
function load() {
  if (existsSync(path)) return require(path)
  try {
    return require(`helios-policy-${platform}`)
  } catch (err) {
    if (err && err.code !== 'MODULE_NOT_FOUND') throw err
  }
  throw new Error(
    `helios-policy: no native addon for ${platform}: neither ${file} in ${__dirname} (run \`npm install\` or \`npm run build\` there) nor the package helios-policy-${platform} is installed`
  )
}
const native = load()

/**
 * The JSON path of the first value in `value` that JSON has no form for (a function, a symbol,
 * or an object that contains itself), e.g. `$.ci.x`, with what is wrong; `null` when there is
 * none. napi-rs rejects such arguments with `InvalidArg` but without saying where the value is.
 * The walk stops at napi-rs's own nesting limit, so it cannot overflow the stack itself.
 */
function badValuePath(value, path = '$', seen = new Set(), depth = 0) {
  const kind = typeof value
  if (kind === 'function' || kind === 'symbol') return [path, `a ${kind} is not JSON`]
  if (value === null || kind !== 'object' || depth > 256) return null
  if (seen.has(value)) return [path, 'the value contains itself']
  seen.add(value)
  const entries = Array.isArray(value) ? value.map((v, i) => [`[${i}]`, v]) : Object.entries(value).map(([k, v]) => [`.${k}`, v])
  for (const [step, child] of entries) {
    const found = badValuePath(child, path + step, seen, depth + 1)
    if (found) return found
  }
  seen.delete(value)
  return null
}

/**
 * When napi-rs rejected an argument (`InvalidArg`), names the value at fault in `err`'s message,
 * as the Python binding does (`input: $.ci.x: …`). `named` is `[[name, value], …]`.
 */
function nameBadValue(err, named) {
  if (err && err.code === 'InvalidArg') {
    for (const [name, value] of named) {
      const found = badValuePath(value)
      if (found) {
        err.message = `${name}: ${found[0]}: ${found[1]} (${err.message})`
        break
      }
    }
  }
  return err
}

/**
 * Calls `fn`; when napi-rs rejects an argument, names the value at fault (`nameBadValue`). The
 * walk runs only on that failure, so a good call costs nothing more.
 */
function namingBadValues(fn, named) {
  return function (...args) {
    try {
      return fn.apply(this, args)
    } catch (err) {
      throw nameBadValue(err, named(args))
    }
  }
}

const inputArg = (args) => [['input', args[0]]]
const ciOption = (args) => [['ci', args[1] && args[1].ci]]

// The addon gives a decision as JSON text: `JSON.parse` builds the object faster than the
// addon could property by property through N-API (docs/performance.md), with the same result.
const parsed = (fn) =>
  function (...args) {
    return JSON.parse(fn.apply(this, args))
  }
const parsedLater = (fn) =>
  function (...args) {
    return fn.apply(this, args).then(JSON.parse)
  }

// Thrown by `onlyJson` to stop `JSON.stringify`; never shown.
const NOT_EXACT = Symbol('not exact JSON')

/**
 * `JSON.stringify`'s replacer that lets through only what JSON holds exactly as napi-rs would
 * read it: strings, booleans, null, finite numbers but -0, arrays without holes, and plain
 * objects (prototype `Object.prototype` or null) without `toJSON`. Anything else — undefined, a
 * function, a symbol, a bigint, NaN, ±Infinity, -0, a Date, a class instance — stops it.
 */
function onlyJson(key, value) {
  const original = this[key]
  switch (typeof original) {
    case 'string':
    case 'boolean':
      return value
    case 'number':
      if (Number.isFinite(original) && !Object.is(original, -0)) return value
      break
    case 'object': {
      if (original === null || Array.isArray(original)) return value
      const proto = Object.getPrototypeOf(original)
      if ((proto === Object.prototype || proto === null) && typeof original.toJSON !== 'function') return value
      break
    }
  }
  throw NOT_EXACT
}

/**
 * `input` as the addon reads it fastest. A plain object becomes a `PreparedInput` read from its
 * JSON text (`JSON.stringify` is several times faster than the addon walking the object property
 * by property through N-API; docs/performance.md) when that text is exact (`onlyJson`) and the
 * core accepts it. In every other case — not exact, a cycle, too deep, or an input the core
 * refuses — the object goes to the addon as it is, which answers, or names what is wrong,
 * exactly as without this path.
 */
function fastInput(input) {
  if (input === null || typeof input !== 'object' || Array.isArray(input) || input instanceof native.PreparedInput) {
    return input
  }
  try {
    return native.PreparedInput.fromJson(JSON.stringify(input, onlyJson))
  } catch {
    return input
  }
}
const withFastInput = (fn) =>
  function (input, ...rest) {
    return fn.call(this, fastInput(input), ...rest)
  }

class Evaluator extends native.Evaluator {}
Evaluator.prototype.evaluate = namingBadValues(parsedLater(withFastInput(native.Evaluator.prototype.evaluate)), inputArg)
Evaluator.prototype.evaluateSync = namingBadValues(parsed(withFastInput(native.Evaluator.prototype.evaluateSync)), inputArg)

/** A policy input read and checked once (see index.d.ts); a bad value is named as in `evaluate`. */
class PreparedInput extends native.PreparedInput {
  constructor(input) {
    try {
      super(input)
    } catch (err) {
      throw nameBadValue(err, inputArg([input]))
    }
  }

  /** Reads and checks an input's JSON text (see index.d.ts). */
  static fromJson(text) {
    return Object.setPrototypeOf(native.PreparedInput.fromJson(text), PreparedInput.prototype)
  }
}

module.exports = {
  evaluate: namingBadValues(parsedLater(withFastInput(native.evaluate)), inputArg),
  evaluateSync: namingBadValues(parsed(withFastInput(native.evaluateSync)), inputArg),
  Evaluator,
  PreparedInput,
  scan: native.scan,
  gate: namingBadValues(native.gate, ciOption),
  gateSync: namingBadValues(native.gateSync, ciOption),
  VERSION: native.VERSION,
  ERROR_CODES: Object.freeze(native.errorCodes()),
}
