package limits

import (
	"bytes"
	"strings"
	"sync"

	"rtm/registry"
	"rtm/registry/apps"
)

// Bounds of what a [Feed] tracks of the proxy's app sockets: beyond
// them, sockets and channels are not counted (the gauges then read low).
const (
	// MaxAppSockets bounds the app sockets a Feed counts.
	MaxAppSockets = 4096
	// MaxAppChannels bounds the app channels (socket and topic) a Feed
	// counts, over all sockets.
	MaxAppChannels = 65536
)

// Feed turns what rtm sees into usage of a [Meter]: the events of its
// channel manager ([Feed.Manager]) and, when the proxy is on, the app
// model's events ([Feed.App]). It is safe for concurrent use. The
// counts it keeps are bounded by the manager's registry (its channel
// cap) and by MaxAppSockets and MaxAppChannels.
type Feed struct {
	m *Meter

	mu sync.Mutex
	// rtm's own socket and the channels it holds (connected: the server
	// counts a channel once it accepted the join).
	connected bool
	channels  map[registry.Name]bool
	// The app sockets open and, per socket, the channels they hold
	// (joined).
	appSockets  map[uint64]int
	appChannels map[appChannel]bool
}

type appChannel struct {
	socket uint64
	topic  string
}

// NewFeed returns a feed of m.
func NewFeed(m *Meter) *Feed {
	return &Feed{m: m, channels: map[registry.Name]bool{}, appSockets: map[uint64]int{}, appChannels: map[appChannel]bool{}}
}

// Meter returns the meter fed.
func (f *Feed) Meter() *Meter { return f.m }

// Manager takes one event of the channel manager (subscribe with the
// types in [ManagerTypes]; MessageBatches is fine).
func (f *Feed) Manager(e registry.Event) {
	switch e := e.(type) {
	case registry.SocketEvent:
		f.mu.Lock()
		f.connected = e.Status == registry.SocketConnected
		f.countsLocked()
		f.mu.Unlock()
		f.m.ServerError(e.Time, e.Reason, "")
	case registry.ChannelStateEvent:
		// A refused join is in the channel's last error (state events
		// are never lost; the ErrorEvent comes only when the policy
		// gives up).
		if in := e.Info; !in.LastErrorAt.IsZero() && e.Status != registry.StatusConnected {
			f.m.ServerError(in.LastErrorAt, errorText(in.LastErrorCode, in.LastError), e.Channel.String())
		}
		held := !e.Removed && e.Status == registry.StatusConnected
		if !e.Removed && e.Status == registry.StatusConnecting && e.Previous != registry.StatusConnecting {
			f.m.Add(JoinsPerSecond, 1)
		}
		f.mu.Lock()
		if held {
			f.channels[e.Channel] = true
		} else {
			delete(f.channels, e.Channel)
		}
		f.countsLocked()
		f.mu.Unlock()
	case registry.ErrorEvent:
		if e.Op != "join" { // joins: from the channel's state, without "gave up after"
			f.m.ServerError(e.Time, errorText(e.Code, e.Message), e.Channel.String())
		}
	case registry.MessageEvent:
		f.message(&e)
	case registry.MessageBatchEvent:
		for i := range e.Messages {
			f.message(&e.Messages[i])
		}
	}
}

// ManagerTypes are the manager's event types a Feed uses.
func ManagerTypes() []registry.EventType {
	return []registry.EventType{registry.TypeSocket, registry.TypeChannelState, registry.TypeError, registry.TypeMessage, registry.TypeMessageBatch}
}

func errorText(code, msg string) string {
	if code == "" || strings.HasPrefix(msg, code) {
		return msg
	}
	return code + ": " + msg
}

func (f *Feed) message(me *registry.MessageEvent) {
	switch me.Kind {
	case registry.MessageBroadcast:
		if me.Direction == registry.Out && !me.Queued {
			f.m.Add(MessagesPerSecond, 1)
		}
		if !me.Queued {
			f.m.Payload(PayloadSize, me.Size)
		}
	case registry.MessagePresence:
		f.m.Add(PresenceEventsPerSecond, 1)
		f.m.Payload(PayloadSize, me.Size)
	case registry.MessagePresenceState, registry.MessagePresenceDiff:
		f.m.Add(PresenceEventsPerSecond, 1)
	case registry.MessagePostgresChanges:
		f.m.Payload(PostgresChangePayload, me.Size)
		if bytes.Contains(me.Payload, []byte("Error 413")) || bytes.Contains([]byte(me.Preview), []byte("Error 413")) {
			f.m.ServerError(me.Time, "Error 413: Payload Too Large", me.Channel.String())
		}
	case registry.MessageSystem:
		f.m.ServerError(me.Time, me.Event, me.Channel.String())
	}
}

// App takes one event of the proxy's app model (package registry/apps).
func (f *Feed) App(e apps.Event) {
	switch e.Type {
	case apps.TypeSocket:
		f.mu.Lock()
		switch e.Action {
		case "open":
			if len(f.appSockets) < MaxAppSockets {
				f.appSockets[e.Socket] = 0
			}
		case "close":
			delete(f.appSockets, e.Socket)
			for k := range f.appChannels {
				if k.socket == e.Socket {
					delete(f.appChannels, k)
				}
			}
		}
		f.countsLocked()
		f.mu.Unlock()
	case apps.TypeChannel:
		if e.Action == "join" {
			f.m.Add(JoinsPerSecond, 1)
		}
		k := appChannel{e.Socket, e.Topic}
		f.mu.Lock()
		_, open := f.appSockets[e.Socket]
		switch {
		case e.Status == apps.StatusJoined:
			if open && !f.appChannels[k] && len(f.appChannels) < MaxAppChannels {
				f.appChannels[k] = true
				f.appSockets[e.Socket]++
			}
		case e.Status != "" || e.Action == "leave":
			if f.appChannels[k] {
				delete(f.appChannels, k)
				f.appSockets[e.Socket]--
			}
		}
		f.countsLocked()
		f.mu.Unlock()
		if e.Status == apps.StatusErrored || e.Status == apps.StatusClosed {
			f.m.ServerError(e.Time, e.Reason, e.Topic)
		}
	case apps.TypeMessage:
		if e.Dir == "app->upstream" {
			switch e.Event {
			case "broadcast":
				f.m.Add(MessagesPerSecond, 1)
				f.m.Payload(PayloadSize, e.Bytes)
			case "presence":
				f.m.Add(PresenceEventsPerSecond, 1)
				f.m.Payload(PayloadSize, e.Bytes)
			}
			return
		}
		switch e.Event {
		case "presence_state", "presence_diff":
			f.m.Add(PresenceEventsPerSecond, 1)
		case "postgres_changes":
			f.m.Payload(PostgresChangePayload, e.Bytes)
		case "system":
			f.m.ServerError(e.Time, e.Payload, e.Topic)
		}
	}
}

// countsLocked sets the count gauges from what is held (f.mu held).
func (f *Feed) countsLocked() {
	clients := len(f.appSockets)
	if f.connected {
		clients++
	}
	f.m.Set(ConcurrentClients, clients)
	most := len(f.channels)
	for _, n := range f.appSockets {
		most = max(most, n)
	}
	f.m.Set(ChannelsPerConnection, most)
}
