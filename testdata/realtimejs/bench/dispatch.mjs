// dispatch.mjs measures realtime-js 2.119.0 decoding and dispatching
// received frames: the socket's message handler (serializer decode, channel
// routing, binding filter, callback) fed the same frames as rtm's Go
// benchmark (realtime/bench_test.go, BenchmarkDispatchVsRealtimeJS), with no
// network. Usage: node dispatch.mjs <topic> <frame-json-text> <frame-base64-binary> <n> <rounds>
// Prints one JSON line: {"text":[ns/frame per round], "binary":[...]}.
import { RealtimeClient } from '@supabase/realtime-js'

const [topic, text, binB64, nArg, roundsArg] = process.argv.slice(2)
const n = Number(nArg)
const rounds = Number(roundsArg)
const bin = Buffer.from(binB64, 'base64')
const binAB = bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength)

const client = new RealtimeClient('ws://127.0.0.1:1/realtime/v1', { params: { apikey: 'k' } })
const channel = client.channel(topic.replace(/^realtime:/, ''))
let got = 0
channel.on('broadcast', { event: '*' }, (m) => {
  if (m.event === 'cursor' && m.payload.x === 1024) got++
})
const socket = client.socketAdapter.getSocket()

function run(data) {
  const msg = { data }
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < n; i++) socket.onConnMessage(msg)
  return Number(process.hrtime.bigint() - t0) / n
}

const out = { text: [], binary: [] }
run(text) // warm up the JIT
run(binAB)
for (let r = 0; r < rounds; r++) {
  out.text.push(run(text))
  out.binary.push(run(binAB))
}
const want = n * (2 + 2 * rounds)
if (got !== want) {
  console.error(`delivered ${got} of ${want}`)
  process.exit(1)
}
process.stdout.write(JSON.stringify(out) + '\n')
