// recv.mjs receives a stream of broadcasts with realtime-js 2.119.0 from a
// live server, for rtm's Go benchmark BenchmarkReceiveStream
// (realtime/bench_test.go). It joins <name>, prints {"ready":true} once
// SUBSCRIBED, counts broadcasts whose payload is {"i":<seq>,...} checking
// the order, and after <n> of them prints
// {"count":n,"first":<ms>,"last":<ms>,"inOrder":bool} (times are Unix
// milliseconds, fractional) and exits.
// Usage: node recv.mjs <endpoint> <apikey> <name> <n>
import { RealtimeClient } from '@supabase/realtime-js'

const [endpoint, apikey, name, nArg] = process.argv.slice(2)
const n = Number(nArg)
const now = () => performance.timeOrigin + performance.now()
const client = new RealtimeClient(endpoint, { params: { apikey } })
const channel = client.channel(name)
let count = 0
let next = 0
let inOrder = true
let first = 0
channel.on('broadcast', { event: '*' }, (m) => {
  if (count === 0) first = now()
  if (m.payload.i !== next) inOrder = false
  next = m.payload.i + 1
  if (++count === n) {
    const last = now()
    process.stdout.write(JSON.stringify({ count, first, last, inOrder }) + '\n', () => process.exit(0))
  }
})
channel.subscribe((status, err) => {
  if (status === 'SUBSCRIBED') process.stdout.write(JSON.stringify({ ready: true }) + '\n')
  else if (status !== 'CLOSED') console.error(status, err && err.message)
})
