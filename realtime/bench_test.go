package realtime

import (
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"rtm/realtime/protocol"
)

// benchTopic and the frames below are those of the performance targets: a
// ~220-byte broadcast of a cursor.
const benchTopic = "realtime:broadcast:document:789"

var (
	benchText   = `[null,null,"realtime:broadcast:document:789","broadcast",{"type":"broadcast","event":"cursor","payload":{"user_id":"user-42","x":1024,"y":768,"color":"#ff8800","ts":1764150000000,"selection":[12,48],"tool":"highlight"}}]`
	benchUser   = `{"user_id":"user-42","x":1024,"y":768,"color":"#ff8800","ts":1764150000000,"selection":[12,48],"tool":"highlight"}`
	benchBinary = string(append([]byte{4, byte(len(benchTopic)), 6, 0, 1}, benchTopic+"cursor"+benchUser...))
)

// benchSocket is a socket with one joined channel on benchTopic whose
// events go to fn; frames are fed to its dispatcher directly.
func benchSocket(tb testing.TB, cfg ChannelConfig, fn func(Event)) (*Socket, *conn, *Channel) {
	s, err := NewSocket("http://127.0.0.1:1", &Options{APIKey: "k"})
	if err != nil {
		tb.Fatal(err)
	}
	cfg.OnEvent = fn
	ch, err := s.Channel(benchTopic, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	s.mu.Lock()
	ch.state, ch.joinRef = ChannelJoined, "1"
	s.mu.Unlock()
	return s, &conn{s: s, gen: 1, hbReply: make(chan hbReply, 4)}, ch
}

// BenchmarkDispatch is decode + dispatch + delivery of one ~220-byte
// broadcast frame on one core (GOMAXPROCS 1): the read loop's work
// (decode, route by topic, check the join ref, queue the event) plus the
// delivery goroutine handing it to the consumer, which checks it. The
// payload stays raw. Compare with BenchmarkDispatchRealtimeJS.
func BenchmarkDispatch(b *testing.B) {
	for _, tc := range []struct {
		name   string
		frame  string
		binary bool
		tap    bool
	}{{"text", benchText, false, false}, {"binary", benchBinary, true, false}, {"text+tap", benchText, false, true}} {
		b.Run(tc.name, func(b *testing.B) {
			prev := runtime.GOMAXPROCS(1)
			defer runtime.GOMAXPROCS(prev)
			var got, tapped atomic.Int64
			s, c, ch := benchSocket(b, ChannelConfig{}, func(e Event) {
				if e.Type == EventBroadcast && e.Broadcast.Event == "cursor" && len(e.Broadcast.Payload) == len(benchUser) {
					got.Add(1)
				}
			})
			if tc.tap {
				s.SetTap(func(f Frame) {
					if f.Message.Topic == benchTopic {
						tapped.Add(1)
					}
				})
			}
			frame := []byte(tc.frame)
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				s.handleFrame(c, frame, tc.binary, time.Now())
				if n++; n&255 == 0 {
					runtime.Gosched() // let the delivery goroutine drain
				}
			}
			s.Close()
			if int(got.Load()) != n || ch.Stats().Dropped != 0 {
				b.Fatalf("delivered %d of %d (dropped %d)", got.Load(), n, ch.Stats().Dropped)
			}
			if tc.tap && int(tapped.Load())+int(s.Stats().TapDrops) != n {
				b.Fatalf("tapped %d + dropped %d of %d", tapped.Load(), s.Stats().TapDrops, n)
			}
		})
	}
}

// presenceState10k is a presence_state of n members, each with one meta.
func presenceState(n int, joinRef string) []byte {
	var sb strings.Builder
	fmt.Fprintf(&sb, `[%q,null,%q,"presence_state",{`, joinRef, benchTopic)
	for i := range n {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `"user-%d":{"metas":[{"phx_ref":"F%012d","user_id":"user-%d","name":"User %d","status":"online","online_at":1764150000000}]}`, i, i, i, i)
	}
	sb.WriteString("}]")
	return []byte(sb.String())
}

func presenceDiff(key, ref string, join bool) []byte {
	entry := fmt.Sprintf(`{%q:{"metas":[{"phx_ref":%q,"user_id":%q,"name":"New user","status":"online","online_at":1764150000000}]}}`, key, ref, key)
	if join {
		return []byte(fmt.Sprintf(`[null,null,%q,"presence_diff",{"joins":%s,"leaves":{}}]`, benchTopic, entry))
	}
	return []byte(fmt.Sprintf(`[null,null,%q,"presence_diff",{"joins":{},"leaves":%s}]`, benchTopic, entry))
}

// BenchmarkPresence applies a 10k-member presence_state, and one diff into
// a 10k-member state (a join, then the leave of the same key, alternately),
// through the dispatcher, with the events delivered to a consumer.
// Compare with BenchmarkPresenceRealtimeJS.
func BenchmarkPresence(b *testing.B) {
	const members = 10000
	state := presenceState(members, "1")
	b.Run("state10k", func(b *testing.B) {
		var syncs atomic.Int64
		s, c, ch := benchSocket(b, ChannelConfig{Presence: PresenceConfig{Enabled: true}, EventBuffer: 4 * members}, func(e Event) {
			if e.Type == EventPresence && e.Presence.Kind == PresenceSync {
				syncs.Add(1)
			}
		})
		defer s.Close()
		b.SetBytes(int64(len(state)))
		b.ReportAllocs()
		for b.Loop() {
			ch.presence.reset() // a fresh join: every key joins
			s.handleFrame(c, state, false, time.Now())
		}
		if ch.Presence().Len() != members {
			b.Fatalf("%d members", ch.Presence().Len())
		}
	})
	b.Run("diff-into-10k", func(b *testing.B) {
		var joins atomic.Int64
		s, c, ch := benchSocket(b, ChannelConfig{Presence: PresenceConfig{Enabled: true}, EventBuffer: 4 * members}, func(e Event) {
			if e.Type == EventPresence && e.Presence.Kind == PresenceJoin {
				joins.Add(1)
			}
		})
		defer s.Close()
		s.handleFrame(c, state, false, time.Now())
		join, leave := presenceDiff("newcomer", "N1", true), presenceDiff("newcomer", "N1", false)
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			if n&1 == 0 {
				s.handleFrame(c, join, false, time.Now())
			} else {
				s.handleFrame(c, leave, false, time.Now())
			}
			n++
		}
		if l := ch.Presence().Len(); l != members && l != members+1 {
			b.Fatalf("%d members", l)
		}
	})
}

// BenchmarkPresenceDiffOneKey applies, through the dispatcher, diffs to a
// key of n metas: each joins a new meta and leaves the oldest (phoenix's
// update of a connection), so the key keeps n metas. A diff must cost
// what it names, not what the key holds: ns/op stays flat as n grows.
func BenchmarkPresenceDiffOneKey(b *testing.B) {
	meta := func(i int) string {
		return fmt.Sprintf(`{"phx_ref":"R%07d","user_id":"user-1","name":"Tab %d","online_at":1764150000000}`, i, i)
	}
	for _, n := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprintf("metas=%d", n), func(b *testing.B) {
			s, c, ch := benchSocket(b, ChannelConfig{Presence: PresenceConfig{Enabled: true}}, func(Event) {})
			defer s.Close()
			// The refs cycle through u of them: diff i joins ref n+i and
			// leaves ref i (mod u), the oldest.
			u := n + 1024
			metas := make([]string, n)
			for i := range metas {
				metas[i] = meta(i)
			}
			state := fmt.Sprintf(`["1",null,%q,"presence_state",{"user-1":{"metas":[%s]}}]`, benchTopic, strings.Join(metas, ","))
			s.handleFrame(c, []byte(state), false, time.Now())
			diffs := make([][]byte, u)
			for i := range diffs {
				diffs[i] = []byte(fmt.Sprintf(`[null,null,%q,"presence_diff",{"joins":{"user-1":{"metas":[%s]}},"leaves":{"user-1":{"metas":[%s]}}}]`,
					benchTopic, meta((n+i)%u), meta(i%u)))
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				s.handleFrame(c, diffs[i], false, time.Now())
				if i++; i == u {
					i = 0
				}
			}
			if got := len(ch.Presence().Get("user-1")); got != n {
				b.Fatalf("the key has %d metas, want %d", got, n)
			}
		})
	}
}

var _ = protocol.V2
