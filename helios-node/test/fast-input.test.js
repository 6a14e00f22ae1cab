'use strict'
// Plain objects reach the addon as JSON text when that text is exact (index.js `fastInput`), and
// as the object otherwise. Both reads must give the same answers and the same errors:
// `new PreparedInput(object)` reads the object through N-API, `PreparedInput.fromJson` the text.

const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { test } = require('node:test')

const helios = require('..')
const { caseEvaluators, errorOf, readJson } = require('./helpers')

test('every shared case decides alike on the object, its JSON text and the N-API read', async () => {
  let compared = 0
  for (const { name, doc, options, evaluator, buildError } of caseEvaluators()) {
    const viaObject = await errorOf(() => new helios.PreparedInput(doc))
    const viaText = await errorOf(() => helios.PreparedInput.fromJson(JSON.stringify(doc)))
    // The two reads accept and refuse the same inputs (their messages differ: a JSON error
    // names a line and column), and an evaluation of the object always answers as the N-API
    // read does.
    assert.equal(viaText === null, viaObject === null, `${name}: ${viaText && viaText.message}`)
    if (buildError) {
      // The policy does not build: the one-shot call on the object (sent as JSON text) fails as
      // on the N-API read, with the input's error first, else the policy's.
      const expected = viaObject || buildError
      for (const call of [() => helios.evaluateSync(doc, options), () => helios.evaluate(doc, options)]) {
        const got = await errorOf(call)
        assert.deepEqual([got && got.code, got && got.message], [expected.code, expected.message], name)
      }
      continue
    }
    if (viaObject !== null) {
      const got = await errorOf(() => evaluator.evaluateSync(doc))
      assert.deepEqual([got.code, got.message], [viaObject.code, viaObject.message], name)
      continue
    }
    const slow = new helios.PreparedInput(doc)
    const fast = helios.PreparedInput.fromJson(JSON.stringify(doc))
    assert.ok(fast instanceof helios.PreparedInput)
    const expected = await errorOf(() => evaluator.evaluateSync(slow))
    if (expected) {
      for (const call of [() => evaluator.evaluateSync(fast), () => evaluator.evaluateSync(doc), () => evaluator.evaluate(doc)]) {
        const got = await errorOf(call)
        assert.deepEqual([got.code, got.message], [expected.code, expected.message], name)
      }
      continue
    }
    const decision = evaluator.evaluateSync(slow)
    assert.deepEqual(evaluator.evaluateSync(fast), decision, name)
    assert.deepEqual(evaluator.evaluateSync(doc), decision, name)
    assert.deepEqual(await evaluator.evaluate(doc), decision, name)
    compared++
  }
  assert.ok(compared > 10, `only ${compared} cases compared`)
})

test('values JSON text would change go to the addon as objects', async (t) => {
  // A policy that shows what it was given as `input.ci`, so any difference between the two
  // reads would show in the decision.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'helios-fast-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const policy = path.join(dir, 'echo.rego')
  fs.writeFileSync(policy, 'package helios\n\nwarn contains msg if {\n\tmsg := sprintf("%v %v", [type_name(input.ci), input.ci])\n}\n')
  const evaluator = new helios.Evaluator({ policy })
  class Point {
    constructor() {
      this.x = 1
    }
  }
  const deep = []
  let cursor = deep
  for (let i = 0; i < 200; i++) cursor = cursor[0] = [] // deeper than the JSON reader's limit
  const values = {
    'negative zero': -0,
    'a Date (toJSON)': new Date(0),
    'an object with toJSON': { toJSON: () => 'replaced', kept: 1 },
    'a class instance': new Point(),
    'an array with a hole': [1, , 3], // eslint-disable-line no-sparse-arrays
    undefined: { gone: undefined },
    'undefined in an array': [undefined],
    'a null-prototype object': Object.assign(Object.create(null), { a: 1 }),
    'nested 200 deep': deep,
    'a lone surrogate': '\ud800',
    'large and fractional numbers': [2 ** 60, 1e21, 0.1, -5],
  }
  for (const [what, ci] of Object.entries(values)) {
    const doc = readJson('inputs/clean.json')
    doc.ci = { value: ci }
    const expected = await errorOf(() => evaluator.evaluateSync(new helios.PreparedInput(doc)))
    if (expected) {
      const got = await errorOf(() => evaluator.evaluateSync(doc))
      assert.deepEqual([got.code, got.message], [expected.code, expected.message], what)
      continue
    }
    const decision = evaluator.evaluateSync(new helios.PreparedInput(doc))
    assert.deepEqual(evaluator.evaluateSync(doc), decision, what)
    assert.deepEqual(await evaluator.evaluate(doc), decision, what)
    assert.deepEqual(helios.evaluateSync(doc, { policy }), decision, what)
  }
  // Values JSON has no form for are still named where they are.
  for (const [ci, found] of [
    [{ f: () => 1 }, 'input: $.ci.f: a function is not JSON'],
    [{ s: Symbol('s') }, 'input: $.ci.s: a symbol is not JSON'],
  ]) {
    const doc = readJson('inputs/clean.json')
    doc.ci = ci
    assert.throws(
      () => evaluator.evaluateSync(doc),
      (err) => err.code === 'InvalidArg' && err.message.startsWith(found)
    )
  }
})

test('PreparedInput.fromJson reads a file as it is', async () => {
  const text = fs.readFileSync(path.join(__dirname, '..', '..', 'tests', 'fixtures', 'inputs', 'critical-no-fix.json'), 'utf8')
  const evaluator = new helios.Evaluator()
  assert.deepEqual(evaluator.evaluateSync(helios.PreparedInput.fromJson(text)), evaluator.evaluateSync(JSON.parse(text)))
  for (const [bad, mention] of [
    ['{', 'policy input'],
    ['[]', 'policy input'],
    [text.replace('"completed"', '"finished"'), 'scan.status'],
  ]) {
    assert.throws(
      () => helios.PreparedInput.fromJson(bad),
      (err) => err.code === 'invalid_input' && err.message.includes(mention)
    )
  }
  assert.throws(() => helios.PreparedInput.fromJson(42), { code: 'StringExpected' })
})

test('a plain object takes the JSON text path; what is not exact does not', async (t) => {
  // index.js makes the text with JSON.stringify and its replacer: watch what it gives.
  const stringify = JSON.stringify
  const calls = []
  JSON.stringify = function (value, replacer, ...rest) {
    if (typeof replacer !== 'function') return stringify.call(this, value, replacer, ...rest)
    try {
      const text = stringify.call(this, value, replacer, ...rest)
      calls.push('text')
      return text
    } catch (err) {
      calls.push('declined')
      throw err
    }
  }
  t.after(() => {
    JSON.stringify = stringify
  })
  const evaluator = new helios.Evaluator()
  const taken = async (doc) => {
    calls.length = 0
    const answers = []
    for (const call of [() => evaluator.evaluateSync(doc), () => evaluator.evaluate(doc), () => helios.evaluateSync(doc)]) {
      const err = await errorOf(call)
      answers.push(err ? err.code : 'decided')
    }
    return [[...calls], answers]
  }
  const doc = readJson('inputs/critical-no-fix.json')
  const decided = ['decided', 'decided', 'decided']
  assert.deepEqual(await taken(doc), [['text', 'text', 'text'], decided])
  assert.deepEqual(await taken({ ...doc, ci: { n: -0 } }), [['declined', 'declined', 'declined'], decided])
  assert.deepEqual(await taken({ ...doc, ci: { d: new Date(0) } }), [['declined', 'declined', 'declined'], decided])
  // Text the core refuses falls back to the object, whose error is the reference.
  assert.deepEqual(await taken({ ...doc, version: 2 }), [['text', 'text', 'text'], ['invalid_input', 'invalid_input', 'invalid_input']])
  assert.deepEqual(await taken(new helios.PreparedInput(doc)), [[], decided])
})
