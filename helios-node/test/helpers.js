'use strict'
// Shared helpers: the project's policy cases (tests/fixtures/cases, shared with Rust and Python).

const { spawn } = require('node:child_process')
const { once } = require('node:events')
const fs = require('node:fs')
const path = require('node:path')
const readline = require('node:readline')

// The suites' images live at made-up registries: look them up as written unless a test asks
// for resolution itself (registry.test.js passes resolve: true against a real registry).
process.env.HELIOS_NO_RESOLVE ??= 'true'

const FIXTURES = path.resolve(__dirname, '..', '..', 'tests', 'fixtures')
const CASES = path.join(FIXTURES, 'cases')

/** Every case file, sorted by name, as { name, case }. */
function loadCases() {
  return fs
    .readdirSync(CASES)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => ({ name: path.basename(f, '.json'), case: JSON.parse(fs.readFileSync(path.join(CASES, f), 'utf8')) }))
}

/** The case's input: inline, or a file relative to tests/fixtures. */
function caseInput(c) {
  return typeof c.input === 'string' ? readJson(c.input) : structuredClone(c.input)
}

/** The options object of evaluate/evaluateSync/new Evaluator for the case. */
function caseOptions(c) {
  const options = {}
  if (c.policy && c.policy.length) options.policy = c.policy.map((p) => path.join(FIXTURES, p))
  if (c.data !== undefined) options.data = c.data
  if (c.package !== undefined) options.package = c.package
  if (c.rego_v0 !== undefined) options.regoV0 = c.rego_v0
  if (c.time_limit_ms !== undefined) options.timeLimitMs = c.time_limit_ms
  return options
}

/**
 * Every shared case as { name, doc, options, evaluator, buildError }: its input, its options, and
 * an Evaluator of them, or (evaluator null) the error building one threw when the policy does not
 * build, so that tests assert on those cases too instead of leaving them out.
 */
function caseEvaluators() {
  const { Evaluator } = require('..')
  return loadCases().map(({ name, case: c }) => {
    const doc = caseInput(c)
    const options = caseOptions(c)
    try {
      return { name, doc, options, evaluator: new Evaluator(options), buildError: null }
    } catch (buildError) {
      return { name, doc, options, evaluator: null, buildError }
    }
  })
}

/** The error `fn` throws, or the rejection of the promise it returns; null when none. */
async function errorOf(fn) {
  try {
    await fn()
  } catch (err) {
    return err
  }
  return null
}

function readJson(rel) {
  return JSON.parse(fs.readFileSync(path.join(FIXTURES, rel), 'utf8'))
}

const ROOT = path.resolve(FIXTURES, '..', '..')

/** The Lacework emulator built by scripts/test-node.sh (HELIOS_LACEWORK_EMULATOR), else cargo's usual paths. */
function emulatorBinary() {
  if (process.env.HELIOS_LACEWORK_EMULATOR) return process.env.HELIOS_LACEWORK_EMULATOR
  const triple = process.env.CARGO_BUILD_TARGET || ''
  return [path.join(ROOT, 'target', triple, 'debug'), path.join(ROOT, 'target', 'debug')]
    .map((dir) => path.join(dir, 'helios-lacework-emulator'))
    .find((p) => fs.existsSync(p))
}

/**
 * Starts the Lacework emulator as a subprocess; resolves to `{ child, emu }` where `emu` is its
 * first stdout line ({ url, key_id, secret, ... }). It exits when `child.stdin` is closed.
 */
async function startEmulator(binary = emulatorBinary()) {
  if (!binary || !fs.existsSync(binary)) throw new Error('the Lacework emulator is not built: run scripts/test-node.sh')
  const child = spawn(binary, ['--port', '0', '--scan-duration-ms', '100', '--stdin-lifetime'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  const lines = readline.createInterface({ input: child.stdout })
  const [line] = await Promise.race([
    once(lines, 'line'),
    once(child, 'exit').then(([code]) => {
      throw new Error(`emulator exited with ${code}`)
    }),
  ])
  return { child, emu: JSON.parse(line) }
}

module.exports = { ROOT, FIXTURES, CASES, loadCases, caseEvaluators, errorOf, caseInput, caseOptions, readJson, emulatorBinary, startEmulator }
