'use strict'
// Shared helpers: the project's policy cases (tests/fixtures/cases, shared with Rust and Python).

const fs = require('node:fs')
const path = require('node:path')

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

function readJson(rel) {
  return JSON.parse(fs.readFileSync(path.join(FIXTURES, rel), 'utf8'))
}

module.exports = { FIXTURES, CASES, loadCases, caseInput, caseOptions, readJson }
