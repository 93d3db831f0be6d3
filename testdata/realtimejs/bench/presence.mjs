// presence.mjs measures realtime-js 2.119.0 applying presence frames, for
// rtm's Go benchmark BenchmarkPresenceVsRealtimeJS (realtime/bench_test.go):
// a presence_state of <members> keys, then diffs into it (a join, then the
// leave of the same key, alternately), fed to the socket's message handler
// of a channel with presence callbacks. "diff" is the bare apply; "diffRead"
// also reads channel.presenceState() on every sync, as a UI rendering the
// member list does. Frames are JSON lines on stdin: state, join diff, leave
// diff. presenceState() copies the whole state (about 0.1 s for 10k keys),
// so the read variant runs only <readDiffs> diffs.
// Prints {"stateMs":[..],"diffNs":[..],"diffReadNs":[..]}.
// Usage: node presence.mjs <name> <members> <diffs> <readDiffs> <rounds> < frames
import { RealtimeClient } from '@supabase/realtime-js'
import { readFileSync } from 'node:fs'

const [name, membersArg, diffsArg, readDiffsArg, roundsArg] = process.argv.slice(2)
const members = Number(membersArg)
const bareDiffs = Number(diffsArg)
const readDiffs = Number(readDiffsArg)
const rounds = Number(roundsArg)
const [state, join, leave] = readFileSync(0, 'utf8').trim().split('\n')

function setup(read) {
  const client = new RealtimeClient('ws://127.0.0.1:1/realtime/v1', { params: { apikey: 'k' } })
  const channel = client.channel(name)
  let syncs = 0
  let size = 0
  channel.on('presence', { event: '*' }, (p) => {
    if (p.event === 'sync') {
      syncs++
      if (read) size = Object.keys(channel.presenceState()).length
    }
  })
  // The frames carry join_ref "1": make it the channel's join (no network).
  channel.joinPush.ref = '1'
  const socket = client.socketAdapter.getSocket()
  return { channel, socket, syncs: () => syncs, size: () => size }
}

const out = { stateMs: [], diffNs: [], diffReadNs: [] }
for (let r = 0; r <= rounds; r++) { // round 0 warms up the JIT
  for (const read of [false, true]) {
    const diffs = read ? readDiffs : bareDiffs
    const c = setup(read)
    const t0 = process.hrtime.bigint()
    c.socket.onConnMessage({ data: state })
    const t1 = process.hrtime.bigint()
    const keys = Object.keys(c.channel.presence.state).length
    if (keys !== members) { console.error(`state has ${keys} keys`); process.exit(1) }
    const j = { data: join }
    const l = { data: leave }
    const t2 = process.hrtime.bigint()
    for (let i = 0; i < diffs; i++) c.socket.onConnMessage(i % 2 === 0 ? j : l)
    const t3 = process.hrtime.bigint()
    if (c.syncs() !== diffs + 1) { console.error(`${c.syncs()} syncs`); process.exit(1) }
    if (r === 0) continue
    if (!read) out.stateMs.push(Number(t1 - t0) / 1e6)
    ;(read ? out.diffReadNs : out.diffNs).push(Number(t3 - t2) / diffs)
  }
}
process.stdout.write(JSON.stringify(out) + '\n')
