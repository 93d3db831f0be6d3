package headless_test

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"rtm/registry"
	"rtm/registry/compare"
	"rtm/registry/headless"
)

// WriteAs puts "identity" first on every line, the big-field lines
// too, and the lines still decode to the same events; compare lines are
// masked.
func TestWriterIdentityAndCompare(t *testing.T) {
	ch := registry.MustName(registry.KindBroadcast, "room", "1", "")
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	big := json.RawMessage(`{"pad":"` + strings.Repeat("x", 100<<10) + `"}`)
	var out bytes.Buffer
	w, err := headless.NewWriter(&out, nil)
	if err != nil {
		t.Fatal(err)
	}
	evs := []registry.Event{
		registry.ChannelStateEvent{Time: t0, Channel: ch, Status: registry.StatusConnected},
		registry.MessageEvent{Time: t0, Channel: ch, Direction: registry.In, Kind: registry.MessageBroadcast, Event: "e", Payload: big, Size: len(big)},
	}
	for _, e := range evs {
		if err := w.WriteAs(`bob "b"`, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Write(evs[0]); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteCompare(compare.Difference{Time: t0, Topic: ch.String(), A: "alice", B: "bob", MissingFrom: "bob",
		Message: compare.Message{Channel: ch.String(), Event: "broadcast e", Value: json.RawMessage(`{"access_token":"` + bigJWT + `"}`)},
		Reason:  compare.ReasonNotJoined}); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines", len(lines))
	}
	for i, l := range lines[:2] {
		if !strings.HasPrefix(l, `{"identity":"bob \"b\"","type":`) {
			t.Errorf("line %d: %.80s", i, l)
		}
		e, err := registry.DecodeEvent([]byte(l))
		if err != nil || e.EventType() != evs[i].EventType() {
			t.Errorf("line %d does not decode: %v", i, err)
		}
	}
	if strings.Contains(lines[2], "identity") {
		t.Errorf("an untagged line: %.80s", lines[2])
	}
	var cl struct {
		Type, Topic, A, B, Reason string
		MissingFrom               string `json:"missing_from"`
	}
	if err := json.Unmarshal([]byte(lines[3]), &cl); err != nil || cl.Type != "compare" || cl.MissingFrom != "bob" || cl.Reason != "not joined yet" {
		t.Errorf("compare line %s: %v", lines[3], err)
	}
	if strings.Contains(lines[3], bigJWT) {
		t.Error("the compare line holds the token")
	}
}

// TestWatchIdentitiesFault: Watch as alice and anon side by side on a
// room of the embedded server; anon's socket is dropped (and stays down
// for a while), a peer broadcasts: every line is tagged, and the compare
// line says anon missed the broadcast, "dropped by a fault"; what both
// received makes no compare line.
func TestWatchIdentitiesFault(t *testing.T) {
	env, _ := testEnvWith(t, 3*time.Second)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	room := registry.MustName(registry.KindBroadcast, "room", "1", "")
	var out syncBuffer
	managers := make(chan *registry.Manager, 2)
	done := make(chan error, 1)
	go func() {
		_, err := headless.Watch(ctx, env, &out, headless.StreamOptions{Joins: []registry.Name{room},
			Identities: []headless.Identity{{Name: "alice", User: "alice"}, {Name: "anon", Role: "anon"}},
			Compare:    &compare.Options{Window: 300 * time.Millisecond},
			OnReady:    func(m *registry.Manager) { managers <- m }})
		done <- err
	}()
	<-managers
	anon := <-managers
	for _, who := range []string{"alice", "anon"} {
		eventually(t, who+" joined", func() bool {
			return strings.Contains(out.String(), `{"identity":"`+who+`","type":"channel_state","time":`) &&
				regexpConnected(who).MatchString(out.String())
		})
	}
	h := sender(t, env, "carol", room)
	if err := h.Broadcast(ctx, "note", json.RawMessage(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "both received n=1", func() bool { return strings.Count(out.String(), `"payload":{"n":1}`) == 2 })
	if _, err := anon.Faults().Drop(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "anon's socket down", func() bool {
		return strings.Contains(out.String(), `{"identity":"anon","type":"socket"`) && strings.Contains(out.String(), `"Fault: connection dropped"`)
	})
	if err := h.Broadcast(ctx, "note", json.RawMessage(`{"n":2}`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the compare line", func() bool { return strings.Contains(out.String(), `"type":"compare"`) })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Watch: %v", err)
	}
	var compares []string
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if strings.HasPrefix(l, `{"type":"compare"`) {
			compares = append(compares, l)
			continue
		}
		if !strings.HasPrefix(l, `{"identity":"alice",`) && !strings.HasPrefix(l, `{"identity":"anon",`) {
			t.Errorf("untagged line: %.100s", l)
		}
	}
	if len(compares) != 1 {
		t.Fatalf("compare lines:\n%s", strings.Join(compares, "\n"))
	}
	var d compare.Difference
	if err := json.Unmarshal([]byte(compares[0]), &d); err != nil {
		t.Fatal(err)
	}
	if d.A != "alice" || d.MissingFrom != "anon" || d.Reason != compare.ReasonFault || string(d.Message.Value) != `{"n":2}` ||
		!strings.HasPrefix(d.Detail, "fault: connection dropped on its socket ") {
		t.Errorf("compare line %s", compares[0])
	}
}

func regexpConnected(who string) *regexp.Regexp {
	return regexp.MustCompile(`\{"identity":"` + who + `","type":"channel_state"[^\n]*"channel":"broadcast:room:1","status":"connected"`)
}
