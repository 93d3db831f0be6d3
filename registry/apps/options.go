package apps

import "time"

// Options bound and tune a [Model]; a zero field takes its default.
type Options struct {
	// ChannelLimit is the channels one socket may hold before it is
	// flagged (default 100, the Supabase default per connection).
	ChannelLimit int
	// ReconnectWindow links a new socket to one closed at most this long
	// before it, from the same x-client-info and token subject, as the
	// next attempt of one app connection (default 30 s).
	ReconnectWindow time.Duration

	// MaxOpenSockets bounds the open sockets tracked (default 10,000;
	// beyond, a socket is not tracked and SocketsDropped counts it).
	MaxOpenSockets int
	// MaxClosedSockets bounds the closed sockets kept, the oldest closed
	// evicted first (default 256).
	MaxClosedSockets int
	// MaxChannels bounds the topics kept per socket (default 512).
	MaxChannels int
	// MaxAttempts bounds the join attempts kept per channel, the oldest
	// dropped first (default 32).
	MaxAttempts int
	// MaxMessages and MaxMessageBytes bound each channel's message ring,
	// in messages and in payload bytes kept (defaults 64 and 64 KiB).
	MaxMessages     int
	MaxMessageBytes int
	// MaxPayloadBytes clips each message payload kept (default 1 KiB).
	// A payload over 64 KiB is not masked nor kept, only its size.
	MaxPayloadBytes int
	// MaxMembers bounds the presence keys kept per channel (default
	// 1024), MaxMetas the metas per key (default 16), MaxMetaBytes each
	// meta's JSON kept (default 512) and MaxPresenceBytes a channel's
	// presence in all (default 256 KiB).
	MaxMembers       int
	MaxMetas         int
	MaxMetaBytes     int
	MaxPresenceBytes int
	// MaxBytes bounds the message and presence bytes the model keeps in
	// all, over every socket (default 64 MiB): beyond, new messages and
	// metas are dropped (and counted per channel).
	MaxBytes int
	// MaxTokenPushes bounds the access_token pushes kept per channel
	// (default 16).
	MaxTokenPushes int
	// MaxFlags bounds the flags kept (default 1024).
	MaxFlags int
	// EventBuffer is a subscriber's queue when Subscribe is given 0
	// (default 1024 events).
	EventBuffer int
	// MaxRESTRequests bounds the REST broadcast requests kept, the
	// oldest dropped first (default 64), and MaxRESTMessages the
	// messages kept with a request no socket took (default 16).
	MaxRESTRequests int
	MaxRESTMessages int
}

// maxMaskedPayload is the largest payload masked and kept (clipped);
// a larger one is only counted.
const maxMaskedPayload = 64 << 10

// maxPendingHeartbeats bounds the heartbeats awaiting their reply.
const maxPendingHeartbeats = 8

func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.ChannelLimit, 100)
	def(&o.MaxOpenSockets, 10000)
	def(&o.MaxClosedSockets, 256)
	def(&o.MaxChannels, 512)
	def(&o.MaxAttempts, 32)
	def(&o.MaxMessages, 64)
	def(&o.MaxMessageBytes, 64<<10)
	def(&o.MaxPayloadBytes, 1<<10)
	def(&o.MaxMembers, 1024)
	def(&o.MaxMetas, 16)
	def(&o.MaxMetaBytes, 512)
	def(&o.MaxPresenceBytes, 256<<10)
	def(&o.MaxBytes, 64<<20)
	def(&o.MaxTokenPushes, 16)
	def(&o.MaxFlags, 1024)
	def(&o.EventBuffer, 1024)
	def(&o.MaxRESTRequests, 64)
	def(&o.MaxRESTMessages, 16)
	if o.ReconnectWindow <= 0 {
		o.ReconnectWindow = 30 * time.Second
	}
	return o
}
