package apps_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"rtm/realtime/protocol"
	"rtm/realtime/proxy"
	"rtm/registry/apps"
)

// Sockets fed from their own goroutines while snapshots and a
// subscriber read: no race, nothing lost, and a snapshot is a copy.
func TestConcurrent(t *testing.T) {
	m := apps.New(apps.Options{})
	sub := m.Subscribe(64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range sub.Events() {
		}
	}()
	v := protocol.V2
	const sockets, frames = 4, 300
	join, _ := clientFrame(t, v, protocol.Message{Topic: "realtime:r", Event: protocol.EventJoin, Ref: "1", JoinRef: "1", Payload: json.RawMessage(`{"config":{}}`)})
	var bcasts [][]byte
	for i := 0; i < frames; i++ {
		b, _ := serverFrame(t, v, protocol.Message{Topic: "realtime:r", Event: protocol.EventBroadcast, JoinRef: "1",
			Broadcast: &protocol.Broadcast{Event: "e", Payload: []byte(fmt.Sprintf(`{"i":%d}`, i))}})
		bcasts = append(bcasts, b)
	}
	var wg sync.WaitGroup
	for id := uint64(1); id <= sockets; id++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			now := time.Now()
			m.Open(proxy.ConnInfo{ID: id, RawQuery: "vsn=2.0.0", Opened: now})
			m.Frame(proxy.Frame{Conn: id, Dir: proxy.FromApp, Time: now, Data: join})
			for _, b := range bcasts {
				m.Frame(proxy.Frame{Conn: id, Dir: proxy.ToApp, Time: now, Binary: true, Data: b})
			}
		}()
	}
	for i := 0; i < 20; i++ {
		_ = m.Snapshot()
	}
	wg.Wait()
	sub.Close()
	<-done
	snap := m.Snapshot()
	for _, s := range snap.Sockets {
		if s.FramesToApp != frames || s.Channels[0].MessagesToApp != frames {
			t.Fatalf("socket %+v", s)
		}
	}
	snap.Sockets[0].Channels[0].Messages[0].Payload = "changed"
	snap.Sockets[0].Channels[0].Attempts[0].Ref = "changed"
	again := m.Snapshot()
	if again.Sockets[0].Channels[0].Messages[0].Payload == "changed" || again.Sockets[0].Channels[0].Attempts[0].Ref == "changed" {
		t.Fatal("a snapshot shares the model's memory")
	}
}
