// driver.mjs runs the official @supabase/realtime-js client under the
// control of a Go test (package rtm/realtime/jsharness).
//
// Protocol: one JSON object per line on stdin (a command) and on stdout (a
// reply or an event). Nothing else is ever written to stdout; diagnostics go
// to stderr.
//
//   command: {"id":N,"op":"channel.send","channel":"a1",...,"async":false}
//   reply:   {"id":N,"ok":true,"result":<json>} | {"id":N,"error":"message"}
//   event:   {"ev":"frame"|"socket"|"status"|...,"t":<unix ms, fractional>,...}
//
// With "async":true the reply is {"id":N,"ok":true,"result":{"pending":N}}
// at once and the outcome follows as an event {"ev":"result","op":N,...}.
//
// Binary values cross the pipe as {"$base64":"..."}: in commands they become
// ArrayBuffers, in events ArrayBuffers become that object (and the event
// carries "binary":true).
//
// Every WebSocket frame a client sends or receives is reported verbatim as a
// "frame" event (text as is, binary as hex), before realtime-js sees a
// received frame, by wrapping the WebSocket constructor realtime-js uses
// (its `transport` option; by default it takes the global WebSocket).
//
// A client can also be the realtime client of @supabase/supabase-js (the
// newest, with the realtime-js it bundles), made as an app makes it: see
// supabaseRealtime.

import { emit, hex, toWire, fromWire, errorMessage, serve } from './lineproto.mjs'
import { createRequire } from 'node:module'
import { RealtimeClient } from '@supabase/realtime-js'

const realtimeJsVersion = createRequire(import.meta.url)('@supabase/realtime-js/package.json').version

const clients = new Map() // name -> {client, vsn, accessToken}
const channels = new Map() // client + '/' + handle -> {channel, client: name}
let connSeq = 0

// loggingWebSocket returns a WebSocket class for one client that reports
// every frame and socket event before realtime-js handles it.
function loggingWebSocket(clientName) {
  const entry = () => clients.get(clientName)
  return class LoggedWebSocket extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols)
      const conn = ++connSeq
      this.rtmConn = conn
      const vsn = entry()?.vsn
      emit('socket', { client: clientName, conn, state: 'connecting', url: String(url) })
      this.addEventListener('open', () => {
        emit('socket', {
          client: clientName,
          conn,
          state: 'open',
          protocol: this.protocol,
          extensions: this.extensions,
        })
      })
      this.addEventListener('message', (e) => {
        const fields = { client: clientName, conn, dir: 'in', vsn }
        if (typeof e.data === 'string') {
          emit('frame', { ...fields, binary: false, text: e.data })
        } else {
          emit('frame', { ...fields, binary: true, hex: hex(e.data) })
        }
      })
      this.addEventListener('close', (e) => {
        emit('socket', {
          client: clientName,
          conn,
          state: 'close',
          code: e.code,
          reason: e.reason,
          wasClean: e.wasClean,
        })
      })
      this.addEventListener('error', (e) => {
        emit('socket', {
          client: clientName,
          conn,
          state: 'error',
          error: e.message || (e.error && e.error.message) || '',
        })
      })
    }

    send(data) {
      const fields = { client: clientName, conn: this.rtmConn, dir: 'out', vsn: entry()?.vsn }
      if (typeof data === 'string') {
        emit('frame', { ...fields, binary: false, text: data })
      } else {
        emit('frame', { ...fields, binary: true, hex: hex(data) })
      }
      super.send(data)
    }

    close(code, reason) {
      emit('socket', {
        client: clientName,
        conn: this.rtmConn,
        state: 'closing',
        code: code ?? null,
        reason: reason ?? null,
      })
      if (code === undefined) super.close()
      else super.close(code, reason)
    }
  }
}

// loggingFetch reports every REST request realtime-js makes with its
// outcome.
function loggingFetch(clientName) {
  return async (url, init = {}) => {
    const headers = {}
    // supabase-js's fetch passes a Headers object.
    const given = init.headers instanceof Headers ? init.headers.entries() : Object.entries(init.headers || {})
    for (const [k, v] of given) headers[k] = v
    const body = init.body
    const fields = {
      client: clientName,
      method: init.method || 'GET',
      url: String(url),
      headers,
    }
    if (typeof body === 'string') fields.body = body
    else if (body !== undefined && body !== null) {
      fields.bodyBinary = toWire(body)
      fields.binary = true
    }
    try {
      const res = await fetch(url, init)
      const text = await res.clone().text()
      emit('http', { ...fields, httpStatus: res.status, response: text })
      return res
    } catch (e) {
      emit('http', { ...fields, httpStatus: 0, error: errorMessage(e) })
      throw e
    }
  }
}

// supabaseRealtime makes entry.client the RealtimeClient of a
// @supabase/supabase-js client, as an app creates it:
// createClient(projectURL, apikey, {realtime: opts}). supabase-js brings
// its own realtime-js (reported as realtimeJs) and adds the apikey
// param; its REST calls (the realtime broadcast endpoint included) go
// through its auth-wrapped fetch over the logging one (global.fetch). An
// accessToken option becomes supabase-js's own accessToken callback.
// Sessions are not persisted (no storage under Node).
async function supabaseRealtime(entry, projectURL, opts) {
  const { createClient } = await import('@supabase/supabase-js')
  const { params = {}, fetch: logged, accessToken, ...realtime } = opts
  const { apikey, ...rest } = params
  realtime.params = rest
  const settings = {
    realtime,
    global: { fetch: logged },
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  }
  if (accessToken) settings.accessToken = accessToken
  entry.supabase = createClient(projectURL, apikey, settings)
  entry.client = entry.supabase.realtime
  const require = createRequire(import.meta.url)
  const bundled = createRequire(require.resolve('@supabase/supabase-js'))
  return {
    supabaseJs: require('@supabase/supabase-js/package.json').version,
    realtimeJs: bundled('@supabase/realtime-js/package.json').version,
  }
}

function getClient(name) {
  const c = clients.get(name)
  if (!c) throw new Error(`no client named ${JSON.stringify(name)}`)
  return c
}

// Channels are named per client: a command names both.
function channelKey(client, handle) {
  return `${client}/${handle}`
}

function getChannel(client, handle) {
  const c = channels.get(channelKey(client, handle))
  if (!c) throw new Error(`client ${JSON.stringify(client)} has no channel named ${JSON.stringify(handle)}`)
  return c
}

function channelInfo(client, handle) {
  const { channel } = getChannel(client, handle)
  return {
    topic: channel.topic,
    state: channel.state,
    joinedOnce: channel.joinedOnce,
    joinRef: channel.joinPush?.ref ?? null,
  }
}

const ops = {
  // client.new {client, url, options}: options are RealtimeClientOptions
  // that JSON can carry, plus:
  //   accessToken: string   -> an accessToken() callback returning it
  //                            (change it with client.setAccessToken)
  //   reconnectAfterMs: [ms...] -> reconnect schedule (last repeats)
  //   logger: true          -> realtime-js log lines become "log" events
  //   lib: "supabase-js"    -> the client is supabase.realtime of
  //                            createClient(url, params.apikey, ...) of
  //                            @supabase/supabase-js (url is then the
  //                            project URL); see supabaseRealtime
  async 'client.new'({ client: name, url, options = {}, lib }) {
    if (clients.has(name)) throw new Error(`client ${name} exists`)
    const opts = { ...options }
    const entry = { client: null, vsn: opts.vsn ?? '2.0.0', accessToken: null }
    if ('accessToken' in opts) {
      entry.accessToken = opts.accessToken
      opts.accessToken = async () => entry.accessToken
    }
    if (Array.isArray(opts.reconnectAfterMs)) {
      const steps = opts.reconnectAfterMs
      opts.reconnectAfterMs = (tries) => steps[Math.min(tries, steps.length) - 1]
    }
    if (opts.logger === true) {
      opts.logger = (kind, msg, data) => emit('log', { client: name, kind, msg, data: toWire(data) })
    } else {
      delete opts.logger
    }
    opts.transport = loggingWebSocket(name)
    opts.fetch = loggingFetch(name)
    opts.heartbeatCallback = (status, latency) =>
      emit('heartbeat', { client: name, status, latency: latency ?? null, source: 'option' })
    clients.set(name, entry)
    const info = {}
    try {
      if (lib === 'supabase-js') Object.assign(info, await supabaseRealtime(entry, url, opts))
      else if (lib !== undefined && lib !== null) throw new Error(`unknown lib ${JSON.stringify(lib)}`)
      else entry.client = new RealtimeClient(url, opts)
    } catch (e) {
      clients.delete(name)
      throw e
    }
    return { endpointURL: entry.client.endpointURL(), httpEndpoint: entry.client.httpEndpoint, ...info }
  },
  'client.connect'({ client }) {
    getClient(client).client.connect()
    return null
  },
  async 'client.disconnect'({ client, code, reason }) {
    return await getClient(client).client.disconnect(code ?? undefined, reason ?? undefined)
  },
  async 'client.setAuth'({ client, token }) {
    await getClient(client).client.setAuth(token ?? null)
    return null
  },
  'client.setAccessToken'({ client, token }) {
    getClient(client).accessToken = token
    return null
  },
  'client.onHeartbeat'({ client }) {
    getClient(client).client.onHeartbeat((status, latency) =>
      emit('heartbeat', { client, status, latency: latency ?? null, source: 'onHeartbeat' })
    )
    return null
  },
  async 'client.sendHeartbeat'({ client }) {
    await getClient(client).client.sendHeartbeat()
    return null
  },
  'client.state'({ client }) {
    const c = getClient(client).client
    return {
      connectionState: c.connectionState(),
      isConnected: c.isConnected(),
      channels: c.getChannels().map((ch) => ch.topic),
      accessToken: c.accessTokenValue,
    }
  },
  async 'client.removeChannel'({ client, channel }) {
    const { channel: ch } = getChannel(client, channel)
    return await getClient(client).client.removeChannel(ch)
  },
  async 'client.removeAllChannels'({ client }) {
    return await getClient(client).client.removeAllChannels()
  },

  // channel.new {client, channel, topic, params}: client.channel(topic, params)
  'channel.new'({ client, channel: handle, topic, params }) {
    const key = channelKey(client, handle)
    if (channels.has(key)) throw new Error(`client ${client} has a channel named ${handle}`)
    const c = getClient(client).client
    const ch = params === undefined ? c.channel(topic) : c.channel(topic, fromWire(params))
    channels.set(key, { channel: ch, client })
    return channelInfo(client, handle)
  },
  // channel.on {channel, type, filter}: every callback becomes an event of
  // kind <type> with the callback's payload.
  'channel.on'({ client: cl, channel: handle, type, filter = {} }) {
    const { channel: ch, client } = getChannel(cl, handle)
    ch.on(type, fromWire(filter), (payload) => {
      const flags = {}
      const fields = {
        client,
        channel: handle,
        topic: ch.topic,
        filter,
        payload: toWire(payload, flags),
        binary: !!flags.binary,
      }
      if (type === 'presence') fields.presence_state = toWire(ch.presenceState())
      emit(type, fields)
    })
    return null
  },
  'channel.subscribe'({ client: cl, channel: handle, timeout }) {
    const { channel: ch, client } = getChannel(cl, handle)
    const cb = (status, err) => {
      emit('status', {
        client,
        channel: handle,
        topic: ch.topic,
        status,
        error: err ? err.message : null,
        cause: err && err.cause !== undefined ? toWire(err.cause) : null,
        state: ch.state,
      })
    }
    if (timeout === undefined || timeout === null) ch.subscribe(cb)
    else ch.subscribe(cb, timeout)
    return channelInfo(client, handle)
  },
  async 'channel.send'({ client, channel: handle, message, opts = {} }) {
    return await getChannel(client, handle).channel.send(fromWire(message), opts)
  },
  async 'channel.httpSend'({ client, channel: handle, event, payload, opts = {} }) {
    return await getChannel(client, handle).channel.httpSend(event, fromWire(payload), opts)
  },
  async 'channel.track'({ client, channel: handle, meta, opts = {} }) {
    return await getChannel(client, handle).channel.track(fromWire(meta), opts)
  },
  async 'channel.untrack'({ client, channel: handle, opts = {} }) {
    return await getChannel(client, handle).channel.untrack(opts)
  },
  'channel.presenceState'({ client, channel: handle }) {
    return toWire(getChannel(client, handle).channel.presenceState())
  },
  'channel.state'({ client, channel: handle }) {
    return channelInfo(client, handle)
  },
  async 'channel.unsubscribe'({ client, channel: handle, timeout }) {
    const { channel: ch } = getChannel(client, handle)
    return timeout === undefined || timeout === null ? await ch.unsubscribe() : await ch.unsubscribe(timeout)
  },
  'channel.teardown'({ client, channel: handle }) {
    getChannel(client, handle).channel.teardown()
    return null
  },
  'channel.updateJoinPayload'({ client, channel: handle, payload }) {
    getChannel(client, handle).channel.updateJoinPayload(fromWire(payload))
    return null
  },

  ping() {
    return { node: process.version, pid: process.pid }
  },
}

serve(ops, { realtimeJs: realtimeJsVersion })
