// reconnect.mjs is a small supabase-js app for rtm's scenarios
// (testdata/scenarios/app-reconnect.yaml): it joins one channel with
// presence and broadcast, tracks itself, logs what happens as lines on
// stdout, and runs until it receives the broadcast "stop" (then leaves
// and exits 0), until APP_DURATION passes (exit 0), or until killed.
//
// Environment (rtm's exec step sets the first two to its proxy and the
// target's key):
//
//	SUPABASE_URL, SUPABASE_ANON_KEY  the project
//	APP_CHANNEL       the channel (default presence:room:1)
//	APP_USER          its presence key (default app)
//	APP_DURATION      how long to run, in ms or with s (default: forever)
//	BROKEN_RECONNECT  1: the app bug the scenario must catch: on
//	                  CHANNEL_ERROR, TIMED_OUT or CLOSED it removes the
//	                  channel for good instead of letting realtime-js
//	                  rejoin it
//
// Lines: "status SUBSCRIBED", "status CHANNEL_ERROR <reason>",
// "presence a,b", "broadcast <event> <payload>", "gave up", "stop".
import { createClient } from '@supabase/supabase-js'

const url = process.env.SUPABASE_URL
const key = process.env.SUPABASE_ANON_KEY
if (!url || !key) {
  console.error('reconnect.mjs: SUPABASE_URL and SUPABASE_ANON_KEY must be set')
  process.exit(2)
}
const topic = process.env.APP_CHANNEL || 'presence:room:1'
const user = process.env.APP_USER || 'app'
const broken = process.env.BROKEN_RECONNECT === '1'

const log = (...words) => console.log(words.join(' '))

const supabase = createClient(url, key, {
  auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
})

let done = false
async function stop (code) {
  if (done) return
  done = true
  log('stop')
  await supabase.removeAllChannels()
  process.exit(code)
}

const channel = supabase.channel(topic, { config: { presence: { key: user }, broadcast: { self: false } } })
channel
  .on('presence', { event: 'sync' }, () => log('presence', Object.keys(channel.presenceState()).sort().join(',')))
  .on('broadcast', { event: '*' }, ({ event, payload }) => {
    log('broadcast', event, JSON.stringify(payload))
    if (event === 'stop') stop(0)
  })
  .subscribe(async (status, err) => {
    log('status', status, ...(err ? [err.message] : []))
    if (status === 'SUBSCRIBED') {
      const res = await channel.track({ user, online_at: new Date().toISOString() })
      log('track', res)
    } else if (broken && !done) {
      // The bug: give up on the channel at the first error.
      done = true
      log('gave up')
      await supabase.removeChannel(channel)
    }
  })

const d = process.env.APP_DURATION
if (d) {
  const ms = d.endsWith('s') && !d.endsWith('ms') ? parseFloat(d) * 1000 : parseFloat(d)
  setTimeout(() => stop(0), ms)
}
