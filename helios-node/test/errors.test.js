'use strict'
// Errors carry the core's code; bad arguments throw, never crash the process.

const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { test } = require('node:test')

const helios = require('..')
const { FIXTURES, readJson } = require('./helpers')

const runaway = path.join(FIXTURES, 'policies', 'runaway.rego')
const clean = () => readJson('inputs/clean.json')

/** Asserts `fn` throws synchronously an Error whose code is `code` (a string or a predicate). */
function throwsCode(fn, code) {
  assert.throws(fn, (err) => {
    assert.ok(err instanceof Error)
    if (typeof code === 'function') assert.ok(code(err.code), `unexpected code ${err.code}: ${err.message}`)
    else assert.equal(err.code, code, err.message)
    return true
  })
}

test('ERROR_CODES lists the core codes', () => {
  assert.ok(Object.isFrozen(helios.ERROR_CODES))
  for (const code of ['invalid_input', 'io', 'policy_parse', 'policy_undefined', 'policy_type', 'policy_eval', 'policy_timeout']) {
    assert.ok(helios.ERROR_CODES.includes(code), code)
  }
})

test('a runaway policy hits the time limit, sync and async', async () => {
  throwsCode(() => helios.evaluateSync(clean(), { policy: runaway, timeLimitMs: 20 }), 'policy_timeout')
  await assert.rejects(helios.evaluate(clean(), { policy: runaway, timeLimitMs: 20 }), (err) => {
    assert.equal(err.code, 'policy_timeout')
    assert.match(err.message, /20 ms/)
    return true
  })
})

test('the async evaluation leaves the JS thread free', async () => {
  let ticks = 0
  const timer = setInterval(() => ticks++, 5)
  await assert.rejects(helios.evaluate(clean(), { policy: runaway, timeLimitMs: 1000 }), { code: 'policy_timeout' })
  clearInterval(timer)
  assert.ok(ticks >= 20, `the event loop ran only ${ticks} timers during the evaluation`)
})

test('a syntax error names file:line', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'helios-node-'))
  const bad = path.join(dir, 'bad.rego')
  fs.writeFileSync(bad, 'package helios\n\ndeny contains msg if {\n  msg := \n}\n')
  throwsCode(() => new helios.Evaluator({ policy: bad }), 'policy_parse')
  assert.throws(() => new helios.Evaluator({ policy: bad }), (err) => err.message.includes(`${bad}:`))
})

test('a missing policy file is io; an unknown package is policy_undefined', async () => {
  throwsCode(() => new helios.Evaluator({ policy: '/nonexistent/helios.rego' }), 'io')
  throwsCode(() => helios.evaluateSync(clean(), { package: 'nobody.here' }), 'policy_undefined')
  await assert.rejects(helios.evaluate(clean(), { package: 'nobody.here' }), { code: 'policy_undefined' })
  // The message names Node's option, not the CLI's flag.
  assert.throws(() => helios.evaluateSync(clean(), { package: 'nobody.here' }), (err) => {
    assert.match(err.message, /check the `package` option/)
    assert.doesNotMatch(err.message, /--package/)
    return true
  })
  throwsCode(() => helios.evaluateSync(clean(), { package: 'not a package!' }), 'invalid_input')
  await assert.rejects(helios.evaluate(clean(), { package: 'not a package!' }), { code: 'invalid_input' })
})

test('an input breaking the contract is invalid_input naming the field', () => {
  const input = clean()
  input.scan.summary.critical = 'many'
  assert.throws(() => helios.evaluateSync(input), (err) => {
    assert.equal(err.code, 'invalid_input')
    assert.match(err.message, /scan\.summary\.critical/)
    return true
  })
})

// Wrong argument types throw synchronously (also from `evaluate`) with a code that is not a
// core code: napi-rs's status (`InvalidArg`, `StringExpected`, ...).
const notCore = (code) => typeof code === 'string' && code.length > 0 && !helios.ERROR_CODES.includes(code)

for (const bad of [42, 'input', null, [], true]) {
  test(`input ${JSON.stringify(bad)} is rejected`, () => {
    throwsCode(() => helios.evaluateSync(bad), notCore)
    throwsCode(() => helios.evaluate(bad), notCore)
    throwsCode(() => new helios.Evaluator().evaluateSync(bad), notCore)
    throwsCode(() => new helios.Evaluator().evaluate(bad), notCore)
  })
}

test('a missing input is rejected', () => {
  throwsCode(() => helios.evaluateSync(), notCore)
  throwsCode(() => helios.evaluate(), notCore)
})

// The core checks the options (types and values alike): its `invalid_input`, as in Python
// and the CLI, naming the field.
for (const [options, field] of [
  [{ policy: 42 }, 'policy'],
  [{ policy: [42] }, 'policy'],
  [{ package: 5 }, 'package'],
  [{ package: 'not a package' }, 'package'],
  [{ regoV0: 'yes' }, 'rego_v0'],
  [{ timeLimitMs: 'fast' }, 'time_limit_ms'],
  [{ timeLimitMs: -1 }, 'time_limit_ms'],
  [{ timeLimitMs: 0 }, 'time_limit_ms'],
  [{ timeLimitMs: 1.5 }, 'time_limit_ms'],
  [{ timeLimitMs: 1e300 }, 'time_limit_ms'],
  [{ data: 'x' }, 'data'],
  [{ polcy: 'p.rego' }, 'polcy'],
  [{ opaUrl: 'http://127.0.0.1:8181' }, 'opa_url'],
  ['options', 'options'],
]) {
  test(`options ${JSON.stringify(options)} are the core's invalid_input`, async () => {
    const check = (err) => {
      assert.equal(err.code, 'invalid_input', err.message)
      assert.ok(err.message.includes(field), err.message)
      return true
    }
    assert.throws(() => helios.evaluateSync(clean(), options), check)
    assert.throws(() => new helios.Evaluator(options), check)
    // The async call rejects, as with every core error.
    await assert.rejects(helios.evaluate(clean(), options), check)
  })
}

// A number JSON has no form for is napi-rs's argument error, before the core sees it.
for (const options of [{ timeLimitMs: Number.NaN }, { timeLimitMs: Number.POSITIVE_INFINITY }]) {
  test(`options ${String(options.timeLimitMs)} are rejected`, () => {
    throwsCode(() => helios.evaluateSync(clean(), options), notCore)
    throwsCode(() => helios.evaluate(clean(), options), notCore)
    throwsCode(() => new helios.Evaluator(options), notCore)
  })
}

test('a value JSON cannot hold is named by its path, as in Python', () => {
  const cases = [
    [{ x: () => 1 }, 'input: $.ci.x: a function is not JSON'],
    [{ list: [1, Symbol('s')] }, 'input: $.ci.list[1]: a symbol is not JSON'],
    [{ a: { self: null }, b: { f() {} } }, 'input: $.ci.b.f: a function is not JSON'],
  ]
  for (const [ci, message] of cases) {
    const input = clean()
    input.ci = ci
    for (const call of [
      () => helios.evaluateSync(input),
      () => helios.evaluate(input),
      () => new helios.Evaluator().evaluateSync(input),
      () => new helios.Evaluator().evaluate(input),
    ]) {
      assert.throws(call, (err) => {
        assert.equal(err.code, 'InvalidArg')
        assert.ok(err.message.startsWith(message), err.message)
        return true
      })
    }
  }
  const loop = {}
  loop.self = loop
  const looping = clean()
  looping.ci = { loop }
  assert.throws(
    () => helios.evaluateSync(looping),
    (err) => err.code === 'InvalidArg' && err.message.startsWith('input: $.ci.loop.self: the value contains itself')
  )
  assert.throws(
    () => helios.gateSync('nginx:1.25', { scanFile: 'x.json', ci: { build: { f: () => 1 } } }),
    (err) => err.code === 'InvalidArg' && err.message.startsWith('ci: $.build.f: a function is not JSON')
  )
})

test('values JSON cannot hold never crash', () => {
  const loop = {}
  loop.self = loop
  for (const ci of [loop, { f: () => 1 }, { s: Symbol('x') }]) {
    const input = clean()
    input.ci = ci
    throwsCode(() => helios.evaluateSync(input), notCore)
  }
  let deep = []
  for (let i = 0; i < 10000; i++) deep = [deep]
  const input = clean()
  input.ci = { deep }
  throwsCode(() => helios.evaluateSync(input), notCore)
})
