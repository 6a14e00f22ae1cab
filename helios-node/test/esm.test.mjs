// The ES module entry: `import` gives the same API as `require`, named and default exports.
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { test } from 'node:test'

import helios, * as named from 'helios-policy'

const cjs = createRequire(import.meta.url)('helios-policy')

test('named ES exports are exactly the CommonJS exports, the same objects', () => {
  const exported = Object.keys(named).filter((k) => k !== 'default')
  assert.deepEqual(exported.sort(), Object.keys(cjs).sort())
  for (const k of exported) assert.equal(named[k], cjs[k], k)
  assert.equal(helios, cjs)
})

test('an ES module can decide with top-level await', async () => {
  const { evaluate } = named
  const decision = await evaluate({
    version: 1,
    stage: 'ci',
    image: { reference: 'r.example/a:1', registry: 'r.example', repository: 'a', tag: '1', digest: null },
    scan: {
      status: 'completed', source: 'file', id: null, scanned_at: null, error: null,
      summary: { critical: 0, high: 0, medium: 0, low: 0, info: 0, unknown: 0, total: 0, fixable: 0 },
      vulnerabilities: [],
    },
    workload: null,
    ci: null,
  })
  assert.equal(decision.allowed, true)
})
