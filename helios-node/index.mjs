// ES module entry of helios-policy: the same addon as index.js (CommonJS), with named exports, so
// `import { gate } from 'helios-policy'` and top-level `await` work. Types: index.d.ts.
import { createRequire } from 'node:module'

const helios = createRequire(import.meta.url)('./index.js')

export const { evaluate, evaluateSync, Evaluator, PreparedInput, scan, gate, gateSync, VERSION, ERROR_CODES } = helios
export default helios
