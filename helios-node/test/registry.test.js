'use strict'
// gate/scan resolve tags at a real registry (the CNCF distribution registry built from its Go
// module by scripts/install-tools.sh, images pushed with crane): the same digest as crane and as
// the CLI, the platform manifest of a multi-arch index, and resolution failures reject.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { spawn, execFileSync } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')

const helios = require('..')
require('./helpers')

const ROOT = path.resolve(__dirname, '..', '..')
const CLEAN = path.join(ROOT, 'examples', 'scans', 'clean-scan.json')
const TOOLS = process.env.HELIOS_TOOLS_BIN || path.join(ROOT, '.tools', 'bin')

let peer

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
    server.on('error', reject)
  })
}

async function waitListening(port, child, log) {
  const deadline = Date.now() + 60_000
  for (;;) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true) })
      s.on('error', () => resolve(false))
    })
    if (ok) return
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(fs.readFileSync(log, 'utf8'))
    await new Promise((r) => setTimeout(r, 50))
  }
}

before(async () => {
  // Idempotent: builds the pinned registry and crane on first use only.
  execFileSync('bash', [path.join(ROOT, 'scripts', 'install-tools.sh'), 'registry', 'crane'], { stdio: 'ignore' })
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'helios-node-registry-'))
  const port = await freePort()
  const host = `127.0.0.1:${port}`
  fs.mkdirSync(path.join(dir, 'docker'))
  const config = path.join(dir, 'config.yml')
  fs.writeFileSync(config, [
    'version: 0.1', 'log:', '  level: error', '  accesslog:', '    disabled: true',
    'storage:', '  filesystem:', `    rootdirectory: ${path.join(dir, 'storage')}`, '  delete:', '    enabled: true',
    'http:', `  addr: ${host}`, '',
  ].join('\n'))
  const log = path.join(dir, 'registry.log')
  const out = fs.openSync(log, 'w')
  const child = spawn(path.join(TOOLS, 'registry'), ['serve', config], {
    stdio: ['ignore', out, out],
    env: { ...process.env, OTEL_TRACES_EXPORTER: 'none' },
  })
  await waitListening(port, child, log)
  const crane = (...args) => execFileSync(path.join(TOOLS, 'crane'), [...args, '--insecure'], {
    env: { ...process.env, DOCKER_CONFIG: path.join(dir, 'docker') },
    stdio: ['ignore', 'pipe', 'pipe'],
  }).toString().trim()
  const push = (repoTag, content, platform) => {
    const work = fs.mkdtempSync(path.join(dir, 'layer-'))
    fs.writeFileSync(path.join(work, 'content.txt'), content)
    execFileSync('tar', ['-cf', path.join(work, 'layer.tar'), '-C', work, 'content.txt'])
    const ref = `${host}/${repoTag}`
    crane('append', '-f', path.join(work, 'layer.tar'), '-t', ref)
    if (platform) crane('mutate', ref, '--set-platform', platform, '-t', ref)
    return crane('digest', ref)
  }
  peer = { dir, host, child, crane, push, docker: path.join(dir, 'docker') }
})

after(() => {
  if (!peer) return
  peer.child.kill()
  fs.rmSync(peer.dir, { recursive: true, force: true })
})

const opts = () => ({ scanFile: CLEAN, resolve: true, plainHttp: [peer.host], dockerConfig: peer.docker })

test('gate resolves the same digest as crane and the CLI', async () => {
  const digest = peer.push('team/app:1.0', 'one')
  const image = `${peer.host}/team/app:1.0`
  const result = await helios.gate(image, opts())
  const img = result.input.image
  assert.equal(img.tag, '1.0')
  assert.equal(img.digest, null)
  assert.equal(img.resolved_digest, digest)
  assert.equal(img.platform_digest, null)
  assert.deepEqual(helios.gateSync(image, opts()).input.image, img)

  const cli = process.env.HELIOS_CLI_BIN ||
    path.join(ROOT, 'target', process.env.CARGO_BUILD_TARGET || '', 'debug', 'helios')
  assert.ok(fs.existsSync(cli), `${cli}: build the CLI (cargo build -p helios-cli) or set HELIOS_CLI_BIN`)
  const artifact = path.join(peer.dir, 'cli.json')
  const env = { ...process.env }
  delete env.HELIOS_NO_RESOLVE
  execFileSync(cli, ['gate', image, '--plain-http', peer.host, '--docker-config', peer.docker,
    '--scan-file', CLEAN, '--artifact', artifact], { env })
  assert.deepEqual(JSON.parse(fs.readFileSync(artifact, 'utf8')).input.image, img)

  // resolve: false, and the environment default, look the image up as written.
  assert.equal((await helios.gate(image, { scanFile: CLEAN, resolve: false })).input.image.resolved_digest, null)
  assert.equal((await helios.gate(image, { scanFile: CLEAN })).input.image.resolved_digest, null)
})

test('a multi-arch index gives the platform manifest', async () => {
  const amd64 = peer.push('multi/app:amd64', 'amd', 'linux/amd64')
  const arm64 = peer.push('multi/app:arm64', 'arm', 'linux/arm64')
  const ref = `${peer.host}/multi/app:1.0`
  peer.crane('index', 'append', '-t', ref, '-m', `${peer.host}/multi/app:amd64`, '-m', `${peer.host}/multi/app:arm64`)
  const index = peer.crane('digest', ref)
  let img = (await helios.gate(ref, opts())).input.image
  assert.deepEqual([img.resolved_digest, img.platform_digest], [index, amd64])
  img = (await helios.gate(ref, { ...opts(), platform: 'linux/arm64' })).input.image
  assert.equal(img.platform_digest, arm64)
  await assert.rejects(helios.gate(ref, { ...opts(), platform: 'windows/amd64' }), { code: 'invalid_image' })
  await assert.rejects(helios.gate(ref, { ...opts(), platform: 'amd64' }), { code: 'invalid_input' })
})

test('resolution failures reject with a code', async () => {
  const digest = peer.push('gone/app:1.0', 'gone')
  peer.crane('delete', `${peer.host}/gone/app@${digest}`)
  const image = `${peer.host}/gone/app:1.0`
  await assert.rejects(helios.gate(image, opts()), (err) => err.code === 'remote' && /not found/.test(err.message))
  // Not opted in to plain HTTP: https fails, never a silent downgrade.
  await assert.rejects(
    helios.scan(image, { noScan: true, resolve: true, dockerConfig: peer.docker }),
    { code: 'unavailable' },
  )
})
