'use strict'
// PreparedInput: an input read and checked once, evaluated like the object it was made from.

const assert = require('node:assert/strict')
const path = require('node:path')
const { test } = require('node:test')

const helios = require('..')
const { FIXTURES, caseEvaluators, readJson } = require('./helpers')

const STRINGS = path.join(FIXTURES, 'policies', 'strings.rego')

test('a prepared input decides as its object, default and custom policy, reused', async () => {
  const evaluators = [new helios.Evaluator(), new helios.Evaluator({ policy: STRINGS })]
  for (const file of ['inputs/critical-no-fix.json', 'inputs/clean.json']) {
    const doc = readJson(file)
    const prepared = new helios.PreparedInput(doc)
    assert.ok(prepared instanceof helios.PreparedInput)
    // One prepared input, two evaluators with different policies, each twice (the second
    // evaluation uses the scan's engine value built by the first), every entry point.
    for (const evaluator of [...evaluators, ...evaluators]) {
      const expected = evaluator.evaluateSync(doc)
      assert.deepEqual(evaluator.evaluateSync(prepared), expected)
      assert.deepEqual(await evaluator.evaluate(prepared), expected)
    }
    assert.deepEqual(helios.evaluateSync(prepared), helios.evaluateSync(doc))
    assert.deepEqual(await helios.evaluate(prepared), await helios.evaluate(doc))
    assert.deepEqual(helios.evaluateSync(prepared, { policy: STRINGS }), helios.evaluateSync(doc, { policy: STRINGS }))
    assert.deepEqual(await helios.evaluate(prepared, { policy: STRINGS }), helios.evaluateSync(doc, { policy: STRINGS }))
  }
  assert.ok(evaluators[1].evaluateSync(new helios.PreparedInput(readJson('inputs/critical-no-fix.json'))).violations.length)
})

test('every shared case decides the same on a prepared input', async () => {
  for (const { name, doc, options, evaluator, buildError } of caseEvaluators()) {
    if (buildError) {
      // The policy does not build: the one-shot call fails alike on the object and on the
      // prepared input (an input error first, as for the object).
      const onObject = await errorOf(() => helios.evaluateSync(doc, options))
      const onPrepared = await errorOf(() => helios.evaluateSync(new helios.PreparedInput(doc), options))
      assert.deepEqual([onPrepared.code, onPrepared.message], [onObject.code, onObject.message], name)
      continue
    }
    let expected
    try {
      expected = evaluator.evaluateSync(doc)
    } catch (err) {
      // A bad input fails when prepared; a failing policy fails on the prepared input too.
      let prepared
      try {
        prepared = new helios.PreparedInput(doc)
      } catch (got) {
        assert.deepEqual([got.code, got.message], [err.code, err.message], name)
        continue
      }
      assert.throws(() => evaluator.evaluateSync(prepared), (got) => got.code === err.code && got.message === err.message, name)
      await assert.rejects(evaluator.evaluate(prepared), (got) => got.code === err.code && got.message === err.message, name)
      continue
    }
    const prepared = new helios.PreparedInput(doc)
    assert.deepEqual(evaluator.evaluateSync(prepared), expected, name)
    assert.deepEqual(await evaluator.evaluate(prepared), expected, name)
  }
})

test('changing the object after preparing changes nothing', async () => {
  const evaluator = new helios.Evaluator()
  const doc = readJson('inputs/critical-no-fix.json')
  const before = evaluator.evaluateSync(doc)
  assert.equal(before.allowed, false)
  const prepared = new helios.PreparedInput(doc)
  doc.scan.vulnerabilities.length = 0
  for (const k of Object.keys(doc.scan.summary)) doc.scan.summary[k] = 0
  doc.image.reference = 'changed'
  assert.equal(evaluator.evaluateSync(doc).allowed, true)
  assert.deepEqual(evaluator.evaluateSync(prepared), before)
  assert.deepEqual(await evaluator.evaluate(prepared), before)
})

/** The error `fn` throws, or the rejection of the promise it returns. */
async function errorOf(fn) {
  try {
    await fn()
  } catch (err) {
    return err
  }
  assert.fail('no error')
}

test('a bad input fails at construction as evaluate fails on the object', async () => {
  const clean = () => readJson('inputs/clean.json')
  const bad = []
  let input = clean()
  input.scan.summary.critical = 'many'
  bad.push(input)
  input = clean()
  input.extra = 1
  bad.push(input)
  input = clean()
  delete input.scan
  bad.push(input)
  input = clean()
  input.ci = { x: () => 1 }
  bad.push(input)
  input = clean()
  input.ci = { list: [1, Symbol('s')] }
  bad.push(input)
  const loop = {}
  loop.self = loop
  input = clean()
  input.ci = { loop }
  bad.push(input)
  const evaluator = new helios.Evaluator()
  for (const doc of bad) {
    const expected = await errorOf(() => evaluator.evaluate(doc))
    assert.ok(['invalid_input', 'InvalidArg'].includes(expected.code), expected.message)
    for (const other of [() => evaluator.evaluateSync(doc), () => helios.evaluateSync(doc)]) {
      const got = await errorOf(other)
      assert.deepEqual([got.code, got.message], [expected.code, expected.message])
    }
    const got = await errorOf(() => new helios.PreparedInput(doc))
    assert.ok(got instanceof Error)
    assert.deepEqual([got.code, got.message], [expected.code, expected.message])
  }
})

test('the wrong type where an input is expected is InvalidArg', async () => {
  for (const bad of [42, 'input', null, [], true]) {
    assert.throws(
      () => new helios.PreparedInput(bad),
      (err) => err.code === 'InvalidArg' && /^input must be an object \(the policy input\), got /.test(err.message)
    )
    for (const call of [
      () => helios.evaluateSync(bad),
      () => helios.evaluate(bad),
      () => new helios.Evaluator().evaluateSync(bad),
      () => new helios.Evaluator().evaluate(bad),
    ]) {
      assert.throws(call, (err) => {
        assert.equal(err.code, 'InvalidArg')
        assert.match(err.message, /^input must be an object \(the policy input\) or a PreparedInput, got /)
        return true
      })
    }
  }
})

test('a missing input is InvalidArg', () => {
  for (const call of [() => new helios.PreparedInput(), () => helios.evaluateSync(), () => new helios.Evaluator().evaluate()]) {
    assert.throws(call, { code: 'InvalidArg' })
  }
})

test('a PreparedInput made without its constructor is not one', () => {
  const fake = Object.create(helios.PreparedInput.prototype)
  assert.throws(() => helios.evaluateSync(fake), { code: 'invalid_input' })
})
