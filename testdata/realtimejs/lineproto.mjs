// lineproto.mjs is the line protocol the Node drivers of rtm's tests
// share (driver.mjs: realtime-js and supabase-js; phoenix.mjs: the Phoenix
// framework's own client): one JSON object per line on stdin (a command)
// and on stdout (a reply or an event), binary values as {"$base64": ...}.
// serve(ops, ready) answers the commands with the driver's ops table.

import { createInterface } from 'node:readline'

export function now() {
  return performance.timeOrigin + performance.now()
}

export function write(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

export function emit(ev, fields) {
  write({ ev, t: now(), ...fields })
}

export function hex(buf) {
  return Buffer.from(buf).toString('hex')
}

// toWire converts a value for JSON output: ArrayBuffers and typed arrays
// become {"$base64": ...}; flags.binary records that one was seen; Error
// objects become {name, message}; cyclic or exotic objects degrade to strings.
export function toWire(value, flags = {}, depth = 0) {
  if (value === undefined) return null
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'bigint') return value.toString()
    if (typeof value === 'function') return '[function]'
    return value
  }
  if (depth > 32) return '[too deep]'
  if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) {
    flags.binary = true
    const bytes =
      value instanceof ArrayBuffer
        ? Buffer.from(value)
        : Buffer.from(value.buffer, value.byteOffset, value.byteLength)
    return { $base64: bytes.toString('base64') }
  }
  if (value instanceof Error) {
    return { name: value.name, message: value.message }
  }
  if (typeof Event !== 'undefined' && value instanceof Event) {
    const out = { type: value.type }
    for (const k of ['code', 'reason', 'wasClean', 'message']) {
      if (k in value) out[k] = toWire(value[k], flags, depth + 1)
    }
    if (value.error) out.error = toWire(value.error, flags, depth + 1)
    return out
  }
  if (Array.isArray(value)) return value.map((v) => toWire(v, flags, depth + 1))
  const out = {}
  for (const [k, v] of Object.entries(value)) {
    if (typeof v === 'function') continue
    out[k] = toWire(v, flags, depth + 1)
  }
  return out
}

// fromWire turns {"$base64": ...} objects into ArrayBuffers.
export function fromWire(value) {
  if (value === null || typeof value !== 'object') return value
  if (Array.isArray(value)) return value.map(fromWire)
  const keys = Object.keys(value)
  if (keys.length === 1 && keys[0] === '$base64') {
    const b = Buffer.from(value.$base64, 'base64')
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)
  }
  const out = {}
  for (const [k, v] of Object.entries(value)) out[k] = fromWire(v)
  return out
}

export function errorMessage(e) {
  if (e instanceof Error) return e.message
  return String(e)
}

async function handle(ops, cmd) {
  const { id, op } = cmd
  const fn = ops[op]
  if (!fn) {
    write({ id, error: `unknown op ${JSON.stringify(op)}` })
    return
  }
  if (cmd.async) {
    write({ id, ok: true, result: { pending: id } })
    try {
      const result = await fn(cmd)
      const flags = {}
      emit('result', { op: id, ok: true, result: toWire(result, flags), binary: !!flags.binary })
    } catch (e) {
      emit('result', { op: id, ok: false, error: errorMessage(e) })
    }
    return
  }
  try {
    const result = await fn(cmd)
    write({ id, ok: true, result: toWire(result) })
  } catch (e) {
    write({ id, error: errorMessage(e) })
  }
}

// serve answers the commands on stdin with ops (op name -> async
// function of the command), after the "ready" event with the driver's
// fields; it exits when stdin closes (the Go side is gone).
export function serve(ops, ready) {
  process.on('uncaughtException', (e) => {
    emit('uncaught', { error: errorMessage(e), stack: e && e.stack ? String(e.stack) : null })
  })
  process.on('unhandledRejection', (e) => {
    emit('uncaught', { error: errorMessage(e), stack: e && e.stack ? String(e.stack) : null, rejection: true })
  })
  emit('ready', { node: process.version, pid: process.pid, ...ready })
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity })
  rl.on('line', (line) => {
    if (line.trim() === '') return
    let cmd
    try {
      cmd = JSON.parse(line)
    } catch (e) {
      emit('uncaught', { error: `bad command line: ${errorMessage(e)}` })
      return
    }
    handle(ops, cmd)
  })
  // The Go side closed stdin: leave at once, sockets and timers included.
  rl.on('close', () => process.exit(0))
}
