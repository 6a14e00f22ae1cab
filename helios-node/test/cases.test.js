'use strict'
// Every shared policy case, decided through the Node bindings, must match its expected JSON.

const assert = require('node:assert/strict')
const fs = require('node:fs')
const { test } = require('node:test')

const helios = require('..')
const { CASES, loadCases, caseInput, caseOptions } = require('./helpers')

const cases = loadCases()

test('the shared cases are present', () => {
  // The suite must not pass vacuously: the project ships its cases in tests/fixtures/cases.
  assert.ok(fs.existsSync(CASES), `missing ${CASES}`)
  assert.ok(cases.length >= 1)
})

/** The shared comparison rule: allowed, violations, warnings, policy.id equal; version sha256. */
function checkDecision(expect, decision) {
  assert.equal(decision.allowed, expect.allowed)
  assert.deepEqual(decision.violations, expect.violations)
  assert.deepEqual(decision.warnings, expect.warnings)
  assert.equal(decision.policy.id, expect.policy_id)
  assert.match(decision.policy.version, /^sha256:[0-9a-f]{64}$/)
  assert.equal(decision.backend, 'embedded')
}

function checkError(expect, err) {
  assert.ok(err instanceof Error, `expected an Error, got ${err}`)
  assert.equal(err.code, expect.error, err.message)
}

for (const { name, case: c } of cases) {
  const expect = c.expect

  test(`${name} (evaluateSync)`, () => {
    let decision
    try {
      decision = helios.evaluateSync(caseInput(c), caseOptions(c))
    } catch (err) {
      if (expect.error) return checkError(expect, err)
      throw err
    }
    assert.ok(!expect.error, `expected error ${expect.error}, got a decision`)
    checkDecision(expect, decision)
  })

  test(`${name} (evaluate, async)`, async () => {
    if (expect.error) {
      await assert.rejects(helios.evaluate(caseInput(c), caseOptions(c)), (err) => {
        checkError(expect, err)
        return true
      })
      return
    }
    checkDecision(expect, await helios.evaluate(caseInput(c), caseOptions(c)))
  })

  test(`${name} (Evaluator)`, async () => {
    let evaluator
    try {
      evaluator = new helios.Evaluator(caseOptions(c))
    } catch (err) {
      // Errors found while loading the policy surface from the constructor.
      if (expect.error) return checkError(expect, err)
      throw err
    }
    if (expect.error) {
      assert.throws(() => evaluator.evaluateSync(caseInput(c)), (err) => {
        checkError(expect, err)
        return true
      })
      await assert.rejects(evaluator.evaluate(caseInput(c)), (err) => {
        checkError(expect, err)
        return true
      })
      return
    }
    const first = await evaluator.evaluate(caseInput(c))
    checkDecision(expect, first)
    assert.deepEqual(evaluator.evaluateSync(caseInput(c)), first)
    assert.equal(first.policy.version, evaluator.version)
  })

  test(`${name} (parallelRules)`, async () => {
    // The decision rules shared among the cores decide every case as in turn (errors too).
    const options = { ...caseOptions(c), parallelRules: true }
    if (expect.error) {
      await assert.rejects(helios.evaluate(caseInput(c), options), (err) => {
        checkError(expect, err)
        return true
      })
      return
    }
    checkDecision(expect, await helios.evaluate(caseInput(c), options))
    checkDecision(expect, helios.evaluateSync(caseInput(c), options))
  })
}
