'use strict'
// Loads the native addon built by `napi build --platform` (helios.<platform>-<arch>[-abi].node)
// and re-exports it. Types and docs: index.d.ts.

const { existsSync } = require('node:fs')
const { join } = require('node:path')

function abiSuffix() {
  if (process.platform === 'win32') return '-msvc'
  if (process.platform !== 'linux') return ''
  // glibc reports its version in the process report; musl does not.
  try {
    const header = process.report.getReport().header
    return header.glibcVersionRuntime ? '-gnu' : '-musl'
  } catch {
    return '-gnu'
  }
}

const file = `helios.${process.platform}-${process.arch}${abiSuffix()}.node`
const path = join(__dirname, file)
if (!existsSync(path)) {
  throw new Error(
    `helios-policy: native addon ${file} is not built; run \`npm install\` (or \`npm run build\`) in ${__dirname}`
  )
}
const native = require(path)

module.exports = {
  evaluate: native.evaluate,
  evaluateSync: native.evaluateSync,
  Evaluator: native.Evaluator,
  scan: native.scan,
  gate: native.gate,
  gateSync: native.gateSync,
  VERSION: native.VERSION,
  ERROR_CODES: Object.freeze(native.errorCodes()),
}
