// Package proxy relays an app's Supabase traffic to its upstream project
// and lets an [Observer] watch the Realtime websocket frame by frame.
package proxy
