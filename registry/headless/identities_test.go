package headless_test

import (
	"bytes"
	"encoding/json"
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
