package pgrealtime

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"rtm/realtime/jsharness"
)

// realtime-js, as the docs use Broadcast from Database: a private
// channel with replay gets the newest stored broadcasts (limit 2) with
// meta.replayed, oldest first, then realtime.send's live rows as
// { type, event, payload (with its id), meta: { id } }.
func TestRealtimeJSBroadcastFromDatabase(t *testing.T) {
	t.Parallel()
	e := newBFDEnv(t, readAll, nil)
	for n := 1; n <= 3; n++ { // one transaction each: distinct inserted_at
		e.pg.Exec(t, fmt.Sprintf(`select realtime.send('{"n":%d}'::jsonb, 'stored', 'js-room', true)`, n))
	}
	d := jsharness.Start(t)
	t.Cleanup(func() {
		for _, ev := range d.Events(jsharness.Match{Kind: jsharness.KindUncaught}) {
			t.Errorf("uncaught exception in the driver: %s", ev.Raw)
		}
	})
	c := d.NewClient(t, "alice", jsharness.Endpoint(e.srv.URL), jsharness.ClientOptions{
		APIKey: e.srv.UserToken(t, alice, time.Hour, nil), TimeoutMs: 2000, HeartbeatIntervalMs: 2000})
	since := time.Now().Add(-time.Hour).UnixMilli()
	ch := c.Channel(t, "room", "js-room", map[string]any{"private": true,
		"broadcast": map[string]any{"replay": map[string]any{"since": since, "limit": 2}}}).
		On(t, "broadcast", map[string]any{"event": "*"})
	mark := d.Mark()
	ch.Subscribe(t, 0)
	ch.AwaitStatus(t, wait, mark, "SUBSCRIBED")
	type msg struct {
		Type, Event string
		Payload     struct {
			N  int
			ID string
		}
		Meta struct {
			Replayed bool
			ID       string
		}
	}
	decode := func(ev jsharness.Event) msg {
		var m msg
		if err := json.Unmarshal(ev.Payload, &m); err != nil {
			t.Fatalf("callback payload %s: %v", ev.Payload, err)
		}
		return m
	}
	for _, n := range []int{2, 3} {
		ev := ch.Await(t, wait, jsharness.Match{Kind: jsharness.KindBroadcast, Event: "stored", After: mark})
		mark = ev.Seq
		m := decode(ev)
		id := e.rowWhere(t, "payload->>'n' = $1", fmt.Sprint(n))
		if m.Type != "broadcast" || m.Payload.N != n || !m.Meta.Replayed || m.Meta.ID != id || m.Payload.ID != id {
			t.Errorf("replayed %d: %s (row id %s)", n, ev.Payload, id)
		}
	}
	e.pg.Exec(t, `select realtime.send('{"n":4}'::jsonb, 'live', 'js-room', true)`)
	ev := ch.Await(t, wait, jsharness.Match{Kind: jsharness.KindBroadcast, Event: "live", After: mark})
	m := decode(ev)
	id := e.rowID(t, "live")
	if m.Type != "broadcast" || m.Payload.N != 4 || m.Meta.Replayed || m.Meta.ID != id || m.Payload.ID != id {
		t.Errorf("live row: %s (row id %s)", ev.Payload, id)
	}
	if n := len(d.Events(jsharness.Match{Kind: jsharness.KindBroadcast, Event: "stored"})); n != 2 {
		t.Errorf("%d stored rows received, want the 2 replayed", n)
	}
}
