package registry

import (
	"encoding/json"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestEventJSONRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 5, 10, 0, 0, 123456789, time.UTC)
	n := MustName(KindPresence, "contact", "123", "")
	info := ChannelInfo{
		Name: n, Topic: n.Topic(), Status: StatusConnected, CreatedAt: at, JoinRef: "6",
		Bindings: []Binding{{Type: "presence", Listeners: 1}}, RefCount: 2, Attempts: 1, MaxAttempts: 5,
		Policy: "fixed:3s,max=5",
	}
	events := []Event{
		ChannelStateEvent{Time: at, Channel: n, Status: StatusConnected, Previous: StatusConnecting, Reason: "joined", Info: info},
		SocketEvent{Time: at, Status: SocketConnected, Previous: SocketConnecting, RTT: 1500 * time.Microsecond},
		PresenceEvent{Time: at, Channel: n, Action: PresenceJoin, User: PresenceUser{UserID: "u1", Name: "Ann", Payload: json.RawMessage(`{"name":"Ann"}`), OnlineSince: at, Metas: 1}, Count: 1},
		PresenceEvent{Time: at, Channel: n, Action: PresenceSync, Count: 1},
		MessageEvent{Time: at, Channel: n, Direction: In, Kind: MessageBroadcast, Event: "cursor", Payload: json.RawMessage(`{"x":1}`), Size: 7},
		MessageEvent{Time: at, Channel: n, Direction: Out, Kind: MessageBroadcast, Event: "bin", Binary: []byte{0, 1, 2}, Size: 3, Queued: true},
		RetryEvent{Time: at, Scope: ScopeChannel, Channel: n, Attempt: 3, Max: 5, Delay: 2100 * time.Millisecond, NextAt: at.Add(2100 * time.Millisecond), Reason: "CHANNEL_ERROR", Outcome: RetryScheduled, Policy: "fixed:3s"},
		RetryEvent{Time: at, Scope: ScopeSocket, Attempt: 1, Outcome: RetryFailed, Err: "dial tcp: refused"},
		LogEvent{Record: LogRecord{Seq: 7, Time: at, Level: slog.LevelWarn, Message: "Channel error", Channel: n.String(), Attrs: []LogAttr{{"channel", n.String()}, {"attempt", "2"}}}},
		StatsEvent{Time: at, Stats: Stats{Total: 1, Limit: 100, ByKind: map[Kind]int{KindPresence: 1}, ByStatus: map[Status]int{StatusConnected: 1}, ByEntityType: map[string]int{"contact": 1}},
			Metrics: Metrics{StartedAt: at, ConnectedFor: time.Minute, ConnectedTotal: 2 * time.Minute, MessagesIn: 10, InHistory: []float64{1, 2}}},
		TokenEvent{Time: at, Action: "set", Token: TokenInfo{Present: true, Masked: "eyJ…abcd", Subject: "u1", Role: "authenticated", Expiry: at.Add(time.Hour)}},
		ErrorEvent{Time: at, Channel: n, Op: "join", Code: "ChannelRateLimitReached", Message: "Too many channels", Hint: "leave channels"},
		FrameEvent{Time: at, Direction: Out, Channel: n, Topic: n.Topic(), Event: "phx_join", JoinRef: "6", Ref: "6", Text: `["6","6","realtime:presence:contact:123","phx_join",{}]`, Size: 50},
		DroppedEvent{Time: at, Count: 3, Total: 10},
	}
	for _, ev := range events {
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("%T: %v", ev, err)
		}
		if !strings.HasPrefix(string(b), `{"type":"`+string(ev.EventType())+`"`) {
			t.Fatalf("%T JSON does not start with its type: %s", ev, b)
		}
		back, err := DecodeEvent(b)
		if err != nil {
			t.Fatalf("DecodeEvent(%s): %v", b, err)
		}
		if !reflect.DeepEqual(back, ev) {
			t.Fatalf("round trip of %T:\n got %#v\nwant %#v\njson %s", ev, back, ev, b)
		}
		if !back.EventTime().Equal(at) {
			t.Fatalf("%T EventTime = %v", ev, back.EventTime())
		}
	}
}

func TestEventJSONShape(t *testing.T) {
	n := MustName(KindBroadcast, "document", "789", "")
	b, _ := json.Marshal(RetryEvent{Scope: ScopeChannel, Channel: n, Attempt: 2, Max: 5, Delay: 3 * time.Second, Outcome: RetryScheduled})
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["delay_ms"] != 3000.0 || m["channel"] != "broadcast:document:789" || m["attempt"] != 2.0 || m["outcome"] != "scheduled" {
		t.Fatalf("retry JSON = %s", b)
	}
	if _, ok := m["Delay"]; ok {
		t.Fatalf("Go field name leaked: %s", b)
	}
	for _, bad := range []string{`{}`, `{"type":"nope"}`, `[1]`, `{"type":"retry","attempt":"x"}`} {
		if _, err := DecodeEvent([]byte(bad)); err == nil {
			t.Fatalf("DecodeEvent(%s) succeeded", bad)
		}
	}
}

func TestIsState(t *testing.T) {
	if !IsState(ChannelStateEvent{}) || !IsState(PresenceEvent{Action: PresenceSync}) || IsState(PresenceEvent{Action: PresenceJoin}) || IsState(MessageEvent{}) {
		t.Fatal("IsState classification wrong")
	}
}

func FuzzDecodeEvent(f *testing.F) {
	n := MustName(KindPresence, "contact", "1", "")
	for _, ev := range []Event{
		ChannelStateEvent{Channel: n, Status: StatusConnected},
		RetryEvent{Scope: ScopeChannel, Channel: n, Attempt: 1, Delay: time.Second, Outcome: RetryScheduled},
		MessageEvent{Channel: n, Direction: In, Kind: MessageBroadcast, Payload: []byte(`{"a":1}`)},
		MessageBatchEvent{Channel: n, Messages: []MessageEvent{{Channel: n, Direction: Out}}},
		SocketEvent{Status: SocketConnected, RTT: time.Millisecond},
	} {
		b, _ := json.Marshal(ev)
		f.Add(b)
	}
	f.Add([]byte(`{"type":"stats","stats":{"by_kind":{"nope":1}}}`))
	f.Add([]byte(`{"type":"channel_state","channel":"presence:a"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := DecodeEvent(data)
		if err != nil {
			return
		}
		// What decodes encodes again, and decodes to the same type.
		b, err := json.Marshal(ev)
		if err != nil {
			// Values that JSON cannot carry back (a zero Kind as a map
			// key, say) are refused with an error, never a panic.
			return
		}
		back, err := DecodeEvent(b)
		if err != nil {
			t.Fatalf("re-decode of %s: %v", b, err)
		}
		if back.EventType() != ev.EventType() {
			t.Fatalf("type changed: %s -> %s", ev.EventType(), back.EventType())
		}
	})
}
