'use strict'
// Every JavaScript example in docs/node.md runs as written: each ```js block is saved verbatim in a
// fresh directory where `helios-policy` is installed (a symlink to this package), run with node,
// and its exit code and output checked against the `<!-- doctest: {...} -->` line above it.
//
// The directive (JSON) says how to run it: `file` (the name it is saved as: `.mjs` for ES modules),
// `args` (paths relative to tests/fixtures), `copy` ({ destination: source relative to the repo }),
// `env` ({ NAME: value relative to tests/fixtures ... } and `"lacework": true` for the emulator),
// `exit` (expected exit code) and `stdout` (strings the output must contain). A ```js block
// without a directive fails the test: an example that is not run is an example that rots.

const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { test, before, after } = require('node:test')

const { ROOT, FIXTURES, startEmulator } = require('./helpers')

const DOC = path.join(ROOT, 'docs', 'node.md')
const PACKAGE = path.resolve(__dirname, '..')

/** The ```js blocks of a markdown text with the doctest directive above each (or null). */
function examples(markdown) {
  const found = []
  const fence = /^```js\n([\s\S]*?)^```$/gm
  for (const m of markdown.matchAll(fence)) {
    const before = markdown.slice(0, m.index).trimEnd().split('\n').pop()
    const directive = /^<!-- doctest: (\{.*\}) -->$/.exec(before)
    const line = markdown.slice(0, m.index).split('\n').length
    found.push({ line, code: m[1], directive: directive ? JSON.parse(directive[1]) : null })
  }
  return found
}

let emulator
before(async () => {
  emulator = await startEmulator()
})
after(() => {
  if (emulator) emulator.child.stdin.end()
})

const blocks = examples(fs.readFileSync(DOC, 'utf8'))

test('docs/node.md has examples, each with a doctest directive', () => {
  assert.ok(blocks.length >= 2, 'no ```js examples found')
  for (const b of blocks) assert.ok(b.directive, `docs/node.md:${b.line}: a \`\`\`js block without <!-- doctest: {...} -->`)
})

for (const block of blocks.filter((b) => b.directive)) {
  const d = block.directive
  test(`docs/node.md:${block.line} (${d.file}) runs as written`, () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'helios-doctest-'))
    fs.mkdirSync(path.join(dir, 'node_modules'))
    fs.symlinkSync(PACKAGE, path.join(dir, 'node_modules', 'helios-policy'), 'dir')
    for (const [dest, src] of Object.entries(d.copy ?? {})) {
      fs.mkdirSync(path.dirname(path.join(dir, dest)), { recursive: true })
      fs.copyFileSync(path.join(ROOT, src), path.join(dir, dest))
    }
    fs.writeFileSync(path.join(dir, d.file), block.code)
    const env = { ...process.env, HOME: dir }
    for (const v of ['LW_ACCOUNT', 'LW_SUBACCOUNT', 'LW_API_KEY', 'LW_API_SECRET', 'LW_PROFILE']) delete env[v]
    if (d.lacework) {
      const { emu } = emulator
      Object.assign(env, { LW_ACCOUNT: emu.url, LW_API_KEY: emu.key_id, LW_API_SECRET: emu.secret })
    }
    Object.assign(env, d.env ?? {})
    const args = (d.args ?? []).map((a) => path.join(FIXTURES, a))
    const run = spawnSync(process.execPath, [d.file, ...args], { cwd: dir, env, encoding: 'utf8', timeout: 60_000 })
    const shown = `exit ${run.status}\nstdout:\n${run.stdout}\nstderr:\n${run.stderr}`
    assert.equal(run.status, d.exit, shown)
    for (const s of d.stdout ?? []) assert.ok(run.stdout.includes(s), `missing ${JSON.stringify(s)}\n${shown}`)
    fs.rmSync(dir, { recursive: true, force: true })
  })
}
