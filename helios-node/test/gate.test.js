'use strict'
// scan, gate and gateSync: against the project's Lacework API emulator (the same one the Rust
// suite uses, run as a subprocess) and against scan files.

const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { test, before, after } = require('node:test')

const helios = require('..')
const { FIXTURES, ROOT, emulatorBinary, startEmulator } = require('./helpers')

const EXAMPLES = path.join(ROOT, 'examples', 'scans')
const NGINX = `nginx:1.25@sha256:${'b'.repeat(64)}` // critical CVE-2024-1000 (fixable)
const UNKNOWN = `registry.example.com/team/new@sha256:${'d'.repeat(64)}`
const LW_VARS = ['LW_ACCOUNT', 'LW_SUBACCOUNT', 'LW_API_KEY', 'LW_API_SECRET', 'LW_PROFILE', 'LW_API_SERVER_URL']

const binary = emulatorBinary()
const missing = binary && fs.existsSync(binary) ? false : 'the Lacework emulator is not built: run scripts/test-node.sh'
// Outside CI a missing emulator skips these tests, saying how to build it. In CI nothing is
// skipped: `before` then fails on the missing binary and every test with it.
const skip = process.env.CI ? false : missing
let child
let emu

before(async () => {
  if (skip) return
  ;({ child, emu } = await startEmulator(binary))
  useEmulator()
})

after(() => {
  if (child) child.stdin.end()
})

/** Lacework settings pointing at the emulator, and a HOME without ~/.lacework.toml. */
function useEmulator(overrides = {}) {
  for (const v of LW_VARS) delete process.env[v]
  process.env.HOME = fs.mkdtempSync(path.join(os.tmpdir(), 'helios-node-home-'))
  Object.assign(process.env, { LW_ACCOUNT: emu.url, LW_API_KEY: emu.key_id, LW_API_SECRET: emu.secret }, overrides)
}

async function scanCount() {
  const counters = await (await fetch(`${emu.url}/__admin/counters`)).json()
  return counters.scan ?? 0
}

const codes = (findings) => findings.map((f) => f.code)

test('gate denies an image with a critical in Lacework; scan returns its report', { skip }, async () => {
  useEmulator()
  const result = await helios.gate(NGINX, { ci: { pipeline: 'build' } })
  assert.equal(result.exit_code, 1)
  assert.equal(result.decision.allowed, false)
  assert.equal(result.decision.policy.id, 'helios.default')
  assert.ok(result.decision.violations.some((v) => v.msg.includes('CVE-2024-1000')), JSON.stringify(result.decision))
  assert.equal(result.input.stage, 'ci')
  assert.deepEqual(result.input.ci, { pipeline: 'build' })
  assert.equal(result.input.scan.source, 'lacework')

  const report = await helios.scan(NGINX)
  assert.equal(report.status, 'completed')
  assert.equal(report.summary.total, 5)
  assert.deepEqual(report, result.input.scan)
  // gateSync never waits on Lacework: it refuses, naming the way out.
  assert.throws(() => helios.gateSync(NGINX, { ci: { pipeline: 'build' } }), (err) => {
    assert.equal(err.code, 'invalid_input')
    assert.ok(err.message.includes('gateSync cannot wait on Lacework'), err.message)
    return true
  })
})

test('an unknown digest with noScan is not_found and denied as unscanned', { skip }, async () => {
  useEmulator()
  const before = await scanCount()
  assert.equal((await helios.scan(UNKNOWN, { noScan: true })).status, 'not_found')
  const result = await helios.gate(UNKNOWN, { noScan: true })
  assert.equal(result.input.scan.status, 'not_found')
  assert.equal(result.decision.allowed, false)
  assert.equal(result.exit_code, 1)
  assert.deepEqual(codes(result.decision.violations), ['unscanned'])
  const lenient = await helios.gate(UNKNOWN, { noScan: true, data: { helios: { config: { allow_unscanned: true } } } })
  assert.equal(lenient.exit_code, 0)
  assert.deepEqual(codes(lenient.decision.warnings), ['unscanned'])
  assert.equal(await scanCount(), before)
})

test('waiting runs on-demand scans, concurrently: findings, and a clean image allowed', { skip }, async () => {
  useEmulator()
  const before = await scanCount()
  const [report, result] = await Promise.all([
    helios.scan(`registry.example.com/team/fresh@sha256:${'e'.repeat(64)}`, { wait: 60 }),
    helios.gate(`registry.example.com/team/clean-app@sha256:${'f'.repeat(64)}`, { wait: 60 }),
  ])
  assert.equal(report.status, 'completed', JSON.stringify(report))
  assert.ok(report.summary.total >= 1 && report.summary.total <= 3)
  assert.equal(result.input.scan.status, 'completed')
  assert.equal(result.input.scan.summary.total, 0)
  assert.equal(result.decision.allowed, true)
  assert.equal(result.exit_code, 0)
  assert.equal(await scanCount(), before + 2)
  const pending = await helios.scan(`registry.example.com/team/later@sha256:${'c'.repeat(63)}1`, { wait: 0 })
  assert.equal(pending.status, 'pending')
  assert.ok(pending.id)
})

test('a wrong secret rejects with code auth, never showing the secret', { skip }, async () => {
  const wrong = '_definitely_wrong_secret_0123'
  useEmulator({ LW_API_SECRET: wrong })
  await assert.rejects(helios.scan(NGINX), (err) => {
    assert.equal(err.code, 'auth')
    assert.ok(!err.message.includes(wrong), err.message)
    assert.ok(!err.message.includes(emu.secret), err.message)
    return true
  })
  // The gate, as `helios gate`, lets the policy judge the unavailable scan.
  const result = await helios.gate(NGINX)
  assert.equal(result.input.scan.status, 'unavailable')
  assert.deepEqual(codes(result.decision.violations), ['unscanned'])
  // Denied because Lacework could not be asked: exit 2 ("could not decide"), as the CLI.
  assert.equal(result.exit_code, 2)
  assert.ok(!JSON.stringify(result).includes(wrong))
  useEmulator()
})

test('gate with scan files', async () => {
  const image = 'registry.example.com/shop/web:1.4'
  const denied = await helios.gate(image, { scanFile: path.join(EXAMPLES, 'sample-lacework-scan.json') })
  assert.equal(denied.exit_code, 1)
  assert.ok(codes(denied.decision.violations).includes('critical'))
  assert.deepEqual(helios.evaluateSync(denied.input), denied.decision)
  const allowed = helios.gateSync(image, { scanFile: path.join(EXAMPLES, 'clean-scan.json') })
  assert.equal(allowed.exit_code, 0)
  assert.equal(allowed.decision.allowed, true)
  const advisory = await helios.gate(image, {
    scanFile: path.join(EXAMPLES, 'sample-lacework-scan.json'),
    policy: path.join(FIXTURES, 'policies', 'warn_only.rego'),
    package: 'helios',
  })
  assert.equal(advisory.exit_code, 0)
  assert.ok(advisory.decision.warnings.some((w) => w.msg === 'image is not pinned by digest'))
  await assert.rejects(helios.gate(image, { scanFile: path.join(os.tmpdir(), 'helios-missing-scan.json') }), { code: 'io' })
})

test('bad arguments throw or reject with a code, never crash', async () => {
  const clean = { scanFile: path.join(EXAMPLES, 'clean-scan.json') }
  assert.throws(() => helios.gate(123, clean), (err) => typeof err.code === 'string' && !helios.ERROR_CODES.includes(err.code))
  assert.throws(() => helios.scan(null), (err) => typeof err.code === 'string')
  assert.throws(() => helios.gateSync(undefined), (err) => typeof err.code === 'string')
  for (const bad of ['', 'Not A Valid Image!!', 'registry.example.com/app@sha256:short']) {
    await assert.rejects(helios.gate(bad, clean), { code: 'invalid_image' })
    await assert.rejects(helios.scan(bad, { noScan: true }), { code: 'invalid_image' })
    assert.throws(() => helios.gateSync(bad, clean), { code: 'invalid_image' })
  }
  // The core checks the options: its `invalid_input`, as in Python and the CLI (a rejection of
  // the async calls, a throw of the sync ones).
  await assert.rejects(helios.scan('nginx:1.25', { wait: -1 }), { code: 'invalid_input' })
  await assert.rejects(helios.gate('nginx:1.25', { ...clean, ci: 'pipeline=build' }), { code: 'invalid_input' })
  await assert.rejects(helios.gate('nginx:1.25', 'options'), { code: 'invalid_input' })
  await assert.rejects(helios.gate('nginx:1.25', { ...clean, scna: 1 }), (err) => err.code === 'invalid_input' && err.message.includes('scna'))
  await assert.rejects(helios.gate('nginx:1.25', { ...clean, scanDir: '/x' }), { code: 'invalid_input' })
  assert.throws(() => helios.gateSync('nginx:1.25', { ...clean, scanDir: '/x' }), { code: 'invalid_input' })
  assert.throws(() => helios.gateSync('nginx:1.25', { ...clean, timeLimitMs: 0 }), { code: 'invalid_input' })
  // A number JSON cannot hold is napi-rs's argument error, before the core sees it.
  assert.throws(() => helios.gate('nginx:1.25', { wait: NaN }), { code: 'InvalidArg' })
  await assert.rejects(helios.gate('nginx:1.25', { scanFile: 42 }), { code: 'invalid_input' })
})

test('gate and gateSync take scans from a directory of scan files', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'helios-node-scans-'))
  const digest = 'a'.repeat(64)
  fs.copyFileSync(path.join(EXAMPLES, 'clean-scan.json'), path.join(dir, `sha256-${digest}.json`))
  const image = `registry.example.com/shop/web@sha256:${digest}`
  const result = await helios.gate(image, { scanDir: dir })
  assert.equal(result.input.scan.status, 'completed')
  assert.deepEqual(helios.gateSync(image, { scanDir: dir }), result)
  const other = await helios.gate(`registry.example.com/shop/web@sha256:${'9'.repeat(64)}`, { scanDir: dir })
  assert.equal(other.input.scan.status, 'not_found')
  assert.deepEqual((await helios.scan(image, { scanDir: dir })), result.input.scan)
})

async function emulatorConfig(patch) {
  const res = await fetch(`${emu.url}/__admin/config`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(patch),
  })
  assert.equal(res.status, 200, await res.text())
}

async function counter(name) {
  const counters = await (await fetch(`${emu.url}/__admin/counters`)).json()
  return counters[name] ?? 0
}

test('eight gates waiting on slow scans leave the libuv pool to a ninth call (UV_THREADPOOL_SIZE=4)', { skip }, async () => {
  useEmulator()
  await emulatorConfig({ scan_duration_ms: 4000 })
  try {
    // A fresh process, so that its libuv pool really has four workers.
    const script = `
      const helios = require(${JSON.stringify(path.join(__dirname, '..'))})
      const clean = ${JSON.stringify(path.join(EXAMPLES, 'clean-scan.json'))}
      ;(async () => {
        const input = helios.gateSync('registry.example.com/shop/web:1.4', { scanFile: clean, resolve: false }).input
        let done = 0
        const gates = Array.from({ length: 8 }, (_, i) =>
          helios.gate('registry.example.com/team/slow' + i + '@sha256:' + ('5' + i + 'e1ad').repeat(13).slice(0, 64), { wait: 60 })
            .then((r) => { done++; return r }))
        await new Promise((r) => setTimeout(r, 500))
        const started = Date.now()
        const decision = await helios.evaluate(input)
        const evaluateMs = Date.now() - started
        const doneBefore = done
        const results = await Promise.all(gates)
        console.log(JSON.stringify({ evaluateMs, doneBefore, allowed: decision.allowed, statuses: results.map((r) => r.input.scan.status) }))
      })().catch((e) => { console.error(e); process.exit(1) })
    `
    const { execFile } = require('node:child_process')
    const stdout = await new Promise((resolve, reject) =>
      execFile(process.execPath, ['-e', script], { env: { ...process.env, UV_THREADPOOL_SIZE: '4' } }, (err, out, errOut) =>
        err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve(out)))
    const out = JSON.parse(stdout.trim().split('\n').pop())
    assert.equal(out.doneBefore, 0, 'the gates were still waiting on their scans')
    assert.ok(out.evaluateMs < 2500, `evaluate waited ${out.evaluateMs} ms behind the gates`)
    assert.equal(out.allowed, true)
    assert.deepEqual(out.statuses, Array(8).fill('completed'))
  } finally {
    await emulatorConfig({ scan_duration_ms: 100 })
  }
})

test('calls share one Lacework client per credentials: one token, one budget', { skip }, async () => {
  useEmulator()
  // A fresh process: no client yet.
  const script = `
    const helios = require(${JSON.stringify(path.join(__dirname, '..'))})
    ;(async () => {
      await helios.scan(${JSON.stringify(NGINX)})
      await Promise.all([helios.scan(${JSON.stringify(NGINX)}), helios.gate(${JSON.stringify(NGINX)})])
    })().catch((e) => { console.error(e); process.exit(1) })
  `
  const before = await counter('tokens')
  const { execFileSync } = require('node:child_process')
  execFileSync(process.execPath, ['-e', script], { env: process.env, stdio: ['ignore', 'pipe', 'inherit'] })
  assert.equal(await counter('tokens'), before + 1, 'three calls, one access token')
})

const LOOKUPS = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'lacework-emulator', 'lookups.json'), 'utf8')).lookups

// tests/fixtures/lacework-emulator/lookups.json, shared with the Rust and Python suites: clean
// images are completed, failed and unsupported ones failed, only never-scanned ones not_found;
// re-evaluations decide; no known image is scanned again.
for (const c of LOOKUPS) {
  test(`shared lookup: ${c.what}`, { skip }, async () => {
    useEmulator()
    const before = await scanCount()
    const options = { noScan: c.status === 'not_found', wait: 5 }
    const report = await helios.scan(c.image, options)
    assert.equal(report.status, c.status, JSON.stringify(report))
    assert.equal(report.summary.total, c.total)
    assert.equal(report.summary.critical, c.critical)
    assert.equal(report.digest, c.digest)
    assert.equal(report.id, c.id)
    if (c.error_contains === null) assert.equal(report.error, null)
    else assert.ok(report.error.includes(c.error_contains), report.error)
    const result = await helios.gate(c.image, options)
    assert.equal(result.decision.allowed, c.allowed, JSON.stringify(result.decision))
    assert.deepEqual(result.input.scan, report)
    assert.equal(await scanCount(), before)
  })
}

test('a clean image is allowed on every run and scanned once', { skip }, async () => {
  useEmulator()
  const image = `registry.example.com/team/clean-node@sha256:${'0'.repeat(63)}6`
  const before = await scanCount()
  const first = await helios.gate(image, { wait: 20 })
  assert.equal(first.exit_code, 0, JSON.stringify(first.input.scan))
  assert.equal(await scanCount(), before + 1)
  for (const options of [{ noScan: true }, {}]) {
    const again = await helios.gate(image, options)
    assert.equal(again.exit_code, 0, JSON.stringify([options, again.input.scan]))
    assert.equal(again.input.scan.status, 'completed')
    assert.equal(again.input.scan.digest, image.split('@')[1])
    assert.ok(again.input.scan.scanned_at)
  }
  assert.equal(await scanCount(), before + 1)
})

test('the re-evaluation time is evaluated_at', { skip }, async () => {
  useEmulator()
  const image = LOOKUPS.find((c) => c.image.includes('reeval-new-cve')).image
  const report = await helios.scan(image, { noScan: true })
  assert.equal(report.scanned_at, '2024-05-31T09:00:00Z')
  assert.ok(report.evaluated_at > report.scanned_at, JSON.stringify(report))
})
