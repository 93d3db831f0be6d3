// phoenix.mjs runs the Phoenix framework's own JS client (npm phoenix) under
// the control of a Go test (rtm/realtime/jsharness, StartPhoenix): a second
// client, written by nobody here, that speaks Supabase Realtime's protocol.
//
// Protocol: the one of driver.mjs (lineproto.mjs). One JSON object per line on stdin (a
// command) and on stdout (a reply or an event); diagnostics go to stderr.
//
//   command: {"id":N,"op":"channel.push","client":"p","channel":"c",...,"async":false}
//   reply:   {"id":N,"ok":true,"result":<json>} | {"id":N,"error":"message"}
//   event:   {"ev":"frame"|"socket"|"status"|"message"|...,"t":<unix ms>,...}
//
// Binary values cross the pipe as {"$base64":"..."}: in commands they become
// ArrayBuffers (so channel.push sends phoenix's binary kind-0 frame), in
// events ArrayBuffers become that object (and the event has "binary":true).
//
// Events: "frame" and "socket" as in driver.mjs (every WebSocket frame, text
// verbatim or binary as hex, and the socket's lifecycle); "status" for the
// join push's outcomes (status ok, error or timeout, payload the response;
// phoenix.js resends the same join push on every rejoin, so each rejoin
// reports again); "message" for channel.on bindings (event, payload, ref,
// joinRef); "channel_error" and "channel_close" for channel.onError and
// channel.onClose (payload the reason phoenix.js passes); "presence" for a
// phoenix Presence on the channel (event join, leave or sync; list is
// presence.list() after it).

import { emit, hex, toWire, fromWire, serve } from './lineproto.mjs'
import { readFileSync } from 'node:fs'
import { Socket, Presence } from 'phoenix'

// phoenix's package exports do not include package.json.
const phoenixVersion = JSON.parse(
  readFileSync(new URL('./node_modules/phoenix/package.json', import.meta.url), 'utf8')
).version

const sockets = new Map() // name -> {socket, vsn}
const channels = new Map() // client + '/' + handle -> {channel, presence}
let connSeq = 0

// loggingWebSocket returns a WebSocket class (Node's global one) for one
// socket that reports every frame and lifecycle event before phoenix.js
// handles it.
function loggingWebSocket(name) {
  const vsn = () => sockets.get(name)?.vsn
  return class LoggedWebSocket extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols)
      const conn = ++connSeq
      this.rtmConn = conn
      emit('socket', { client: name, conn, state: 'connecting', url: String(url) })
      this.addEventListener('open', () => emit('socket', { client: name, conn, state: 'open' }))
      this.addEventListener('message', (e) => {
        const fields = { client: name, conn, dir: 'in', vsn: vsn() }
        if (typeof e.data === 'string') emit('frame', { ...fields, binary: false, text: e.data })
        else emit('frame', { ...fields, binary: true, hex: hex(e.data) })
      })
      this.addEventListener('close', (e) =>
        emit('socket', { client: name, conn, state: 'close', code: e.code, reason: e.reason, wasClean: e.wasClean })
      )
      this.addEventListener('error', (e) =>
        emit('socket', { client: name, conn, state: 'error', error: e.message || (e.error && e.error.message) || '' })
      )
    }

    send(data) {
      const fields = { client: name, conn: this.rtmConn, dir: 'out', vsn: vsn() }
      if (typeof data === 'string') emit('frame', { ...fields, binary: false, text: data })
      else emit('frame', { ...fields, binary: true, hex: hex(data) })
      super.send(data)
    }

    close(code, reason) {
      emit('socket', { client: name, conn: this.rtmConn, state: 'closing', code: code ?? null, reason: reason ?? null })
      if (code === undefined) super.close()
      else super.close(code, reason)
    }
  }
}

function getSocket(name) {
  const s = sockets.get(name)
  if (!s) throw new Error(`no socket named ${JSON.stringify(name)}`)
  return s
}

function getChannel(client, handle) {
  const c = channels.get(`${client}/${handle}`)
  if (!c) throw new Error(`socket ${JSON.stringify(client)} has no channel named ${JSON.stringify(handle)}`)
  return c
}

function channelInfo(client, handle) {
  const { channel } = getChannel(client, handle)
  return { topic: channel.topic, state: channel.state, joinedOnce: channel.joinedOnce, joinRef: channel.joinRef() ?? null }
}

// schedule turns [ms...] into a phoenix tries => ms function (the last
// value repeats).
function schedule(steps) {
  return (tries) => steps[Math.min(tries, steps.length) - 1]
}

// outcome resolves with the outcome of a phoenix Push.
function outcome(push) {
  return new Promise((resolve) => {
    push
      .receive('ok', (r) => resolve({ status: 'ok', response: r }))
      .receive('error', (r) => resolve({ status: 'error', response: r }))
      .receive('timeout', () => resolve({ status: 'timeout', response: null }))
  })
}

const ops = {
  // socket.new {client, url, options}: phoenix Socket options that JSON can
  // carry (params, vsn, heartbeatIntervalMs, timeout), plus
  // reconnectAfterMs / rejoinAfterMs as [ms...] schedules. Not connected yet.
  // With vsn 1.0.0 the socket encodes and decodes 1.0.0's JSON objects.
  'socket.new'({ client: name, url, options = {} }) {
    if (sockets.has(name)) throw new Error(`socket ${name} exists`)
    const opts = { ...options }
    if (Array.isArray(opts.reconnectAfterMs)) opts.reconnectAfterMs = schedule(opts.reconnectAfterMs)
    if (Array.isArray(opts.rejoinAfterMs)) opts.rejoinAfterMs = schedule(opts.rejoinAfterMs)
    if (opts.vsn === '1.0.0') {
      // 1.0.0 is JSON objects {topic, event, payload, ref, join_ref};
      // phoenix.js 1.8's own serializer writes 2.0.0's arrays whatever
      // the vsn, so an app on 1.0.0 passes its encode and decode, as here
      // (no binary pushes then).
      opts.encode = (msg, callback) => callback(JSON.stringify(msg))
      opts.decode = (raw, callback) => callback(JSON.parse(raw))
    }
    opts.transport = loggingWebSocket(name)
    const entry = { socket: null, vsn: opts.vsn ?? '2.0.0' }
    sockets.set(name, entry)
    try {
      entry.socket = new Socket(url, opts)
    } catch (e) {
      sockets.delete(name)
      throw e
    }
    return { endPointURL: entry.socket.endPointURL() }
  },
  'socket.connect'({ client }) {
    getSocket(client).socket.connect()
    return null
  },
  'socket.disconnect'({ client, code, reason }) {
    return new Promise((resolve) => getSocket(client).socket.disconnect(() => resolve(null), code ?? undefined, reason ?? undefined))
  },
  'socket.state'({ client }) {
    const s = getSocket(client).socket
    return { connectionState: s.connectionState(), isConnected: s.isConnected() }
  },
  // socket.push {client, topic, event, payload, join_ref}: a raw push with
  // any join_ref (say a stale one); returns its ref.
  'socket.push'({ client, topic, event, payload = {}, join_ref = null }) {
    const s = getSocket(client).socket
    const ref = s.makeRef()
    s.push({ topic, event, payload: fromWire(payload), ref, join_ref })
    return ref
  },

  // channel.new {client, channel, topic, params, presence}: socket.channel()
  // with onError/onClose reported, and a phoenix Presence when presence is
  // true.
  'channel.new'({ client, channel: handle, topic, params = {}, presence = false }) {
    const key = `${client}/${handle}`
    if (channels.has(key)) throw new Error(`socket ${client} has a channel named ${handle}`)
    const ch = getSocket(client).socket.channel(topic, fromWire(params))
    const fields = { client, channel: handle, topic }
    ch.onError((reason) => emit('channel_error', { ...fields, payload: toWire(reason), state: ch.state }))
    ch.onClose((payload) => emit('channel_close', { ...fields, payload: toWire(payload), state: ch.state }))
    const entry = { channel: ch, presence: null }
    if (presence) {
      const p = new Presence(ch)
      const report = (event, key, current, changed) =>
        emit('presence', { ...fields, payload: { event, key, current: toWire(current), changed: toWire(changed) }, list: toWire(p.list()) })
      p.onJoin((key, current, joined) => report('join', key, current, joined))
      p.onLeave((key, current, left) => report('leave', key, current, left))
      p.onSync(() => emit('presence', { ...fields, payload: { event: 'sync' }, list: toWire(p.list()) }))
      entry.presence = p
    }
    channels.set(key, entry)
    return channelInfo(client, handle)
  },
  // channel.on {client, channel, event}: each message becomes a "message"
  // event with its payload, ref and join_ref.
  'channel.on'({ client, channel: handle, event }) {
    const { channel: ch } = getChannel(client, handle)
    ch.on(event, (payload, ref, joinRef) => {
      const flags = {}
      const wire = toWire(payload, flags)
      emit('message', { client, channel: handle, topic: ch.topic, event, payload: wire, binary: !!flags.binary, ref: ref ?? null, joinRef: joinRef ?? null })
    })
    return null
  },
  'channel.join'({ client, channel: handle, timeout }) {
    const { channel: ch } = getChannel(client, handle)
    const push = timeout === undefined || timeout === null ? ch.join() : ch.join(timeout)
    const fields = { client, channel: handle, topic: ch.topic }
    for (const status of ['ok', 'error', 'timeout']) {
      push.receive(status, (r) => emit('status', { ...fields, status, payload: toWire(r), joinRef: ch.joinRef(), state: ch.state }))
    }
    return channelInfo(client, handle)
  },
  // channel.push {client, channel, event, payload, timeout}: the outcome
  // {status: ok|error|timeout, response}; use async for long waits.
  'channel.push'({ client, channel: handle, event, payload = {}, timeout }) {
    const { channel: ch } = getChannel(client, handle)
    return outcome(ch.push(event, fromWire(payload), timeout ?? undefined))
  },
  'channel.leave'({ client, channel: handle, timeout }) {
    const { channel: ch } = getChannel(client, handle)
    return outcome(ch.leave(timeout ?? undefined))
  },
  'channel.state'({ client, channel: handle }) {
    return channelInfo(client, handle)
  },
  'presence.list'({ client, channel: handle }) {
    const { presence } = getChannel(client, handle)
    if (!presence) throw new Error(`channel ${handle} has no presence`)
    return presence.list()
  },

  ping() {
    return { node: process.version, pid: process.pid }
  },
}

serve(ops, { phoenix: phoenixVersion })
