package hostile_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"rtm/realtime"
	"rtm/realtime/hostile"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The harness gets a real client's channel joined and runs the chosen
// script on it: what it sends arrives, and is counted.
func TestScriptsReachARealClient(t *testing.T) {
	srv := hostile.New(t, func(topic string) hostile.Script {
		switch topic {
		case "realtime:big":
			return hostile.HugeBroadcasts("blob", 3, 100_000)
		case "realtime:presence":
			return hostile.EndlessDiffs("u", 5, 10, true)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sock, err := realtime.Dial(ctx, srv.URL, &realtime.Options{APIKey: "anything"})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()

	var mu sync.Mutex
	var sizes []int
	big, err := sock.Channel("big", realtime.ChannelConfig{OnEvent: func(e realtime.Event) {
		if e.Type == realtime.EventBroadcast {
			mu.Lock()
			sizes = append(sizes, len(e.Broadcast.Payload))
			mu.Unlock()
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := big.Subscribe(ctx); err != nil {
		t.Fatal(err)
	}
	pres, err := sock.Channel("presence", realtime.ChannelConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := pres.Subscribe(ctx); err != nil {
		t.Fatal(err)
	}
	for {
		mu.Lock()
		n := len(sizes)
		mu.Unlock()
		if n == 3 && pres.Presence().Len() == 5 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("got %d broadcasts and %d presence members", n, pres.Presence().Len())
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, s := range sizes {
		if s != 100_000 {
			t.Errorf("broadcast payload of %d bytes, want 100000", s)
		}
	}
	if srv.Joins() != 2 || srv.Connects() != 1 {
		t.Errorf("joins %d, connects %d; want 2, 1", srv.Joins(), srv.Connects())
	}
	if srv.BytesOut() < 300_000 {
		t.Errorf("BytesOut %d, want at least the 3 broadcasts", srv.BytesOut())
	}
}

// Garbage is survived by the client (it is counted as malformed) and the
// channel stays joined.
func TestGarbage(t *testing.T) {
	srv := hostile.New(t, func(string) hostile.Script { return hostile.Garbage(16) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sock, err := realtime.Dial(ctx, srv.URL, &realtime.Options{APIKey: "anything"})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	ch, err := sock.Channel("x", realtime.ChannelConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Subscribe(ctx); err != nil {
		t.Fatal(err)
	}
	for sock.Stats().DecodeErrors < 10 {
		if ctx.Err() != nil {
			t.Fatalf("decode errors %d", sock.Stats().DecodeErrors)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st := ch.State(); st != realtime.ChannelJoined {
		t.Errorf("channel state %v after garbage", st)
	}
}
