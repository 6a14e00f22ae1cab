'use strict'
// The API around the decisions, and the hand-kept index.d.ts against the addon.

const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { test } = require('node:test')

const helios = require('..')
const { FIXTURES, readJson } = require('./helpers')

test('the default policy denies a critical and allows a clean image', async () => {
  const denied = await helios.evaluate(readJson('inputs/critical-no-fix.json'))
  assert.equal(denied.allowed, false)
  assert.equal(denied.policy.id, 'helios.default')
  assert.ok(denied.violations.length > 0)
  const allowed = helios.evaluateSync(readJson('inputs/clean.json'))
  assert.deepEqual(allowed, {
    allowed: true,
    violations: [],
    warnings: [],
    policy: { id: 'helios.default', version: allowed.policy.version },
    backend: 'embedded',
  })
})

test('an Evaluator is reusable and concurrent', async () => {
  const evaluator = new helios.Evaluator()
  assert.match(evaluator.version, /^sha256:/)
  assert.equal(new helios.Evaluator().version, evaluator.version)
  const other = new helios.Evaluator({ data: { helios: { config: { allow_unscanned: true } } } })
  assert.notEqual(other.version, evaluator.version)
  const inputs = Array.from({ length: 50 }, (_, i) =>
    readJson(i % 2 ? 'inputs/clean.json' : 'inputs/critical-no-fix.json')
  )
  const decisions = await Promise.all(inputs.map((input) => evaluator.evaluate(input)))
  decisions.forEach((d, i) => assert.equal(d.allowed, i % 2 === 1))
})

test('policy accepts a path or a list of paths; options may be omitted or null', () => {
  const rego = path.join(FIXTURES, 'policies', 'strings.rego')
  assert.equal(new helios.Evaluator({ policy: rego }).version, new helios.Evaluator({ policy: [rego] }).version)
  assert.equal(helios.evaluateSync(readJson('inputs/clean.json'), null).allowed, true)
  assert.equal(helios.evaluateSync(readJson('inputs/clean.json'), { policy: undefined }).allowed, true)
})

test('input and data are not mutated', () => {
  const input = readJson('inputs/critical-no-fix.json')
  const data = { helios: { exceptions: [{ id: 'CVE-2024-3094', expires: '2199-12-31', reason: 'r' }] } }
  const before = structuredClone({ input, data })
  helios.evaluateSync(input, { data })
  assert.deepEqual({ input, data }, before)
})

test('index.d.ts declares exactly the runtime exports', () => {
  const dts = fs.readFileSync(path.join(__dirname, '..', 'index.d.ts'), 'utf8')
  const declared = [...dts.matchAll(/^export declare (?:function|class|const) (\w+)/gm)].map((m) => m[1])
  assert.deepEqual(declared.sort(), Object.keys(helios).sort())
  // Every method of the class is declared too.
  const classBody = dts.slice(dts.indexOf('export declare class Evaluator'))
  for (const method of Object.getOwnPropertyNames(helios.Evaluator.prototype)) {
    if (method === 'constructor') continue
    assert.match(classBody, new RegExp(`^\\s+(get )?${method}\\(`, 'm'), method)
  }
})

test('VERSION matches package.json', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8'))
  assert.equal(helios.VERSION, pkg.version)
})
