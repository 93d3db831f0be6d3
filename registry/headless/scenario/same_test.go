package scenario_test

import (
	"strings"
	"testing"

	"rtm/registry/headless/scenario"
)

// TestSameMessagesFails: Bob joins after Carol's first broadcasts, so
// same_messages fails with the first message he missed and the reason
// the comparer gives: not joined yet.
func TestSameMessagesFails(t *testing.T) {
	sc, err := scenario.Parse("late.yaml", []byte(`
name: bob joins late
steps:
  - connect: {user: alice}
  - connect: {user: bob}
  - connect: {user: carol}
  - join: {client: alice, channel: broadcast:room:1}
  - join: {client: carol, channel: broadcast:room:1}
  - expect:
      status: {client: alice, channel: broadcast:room:1, is: connected}
  - expect:
      status: {client: carol, channel: broadcast:room:1, is: connected}
  - broadcast: {client: carol, channel: broadcast:room:1, event: shout, payload: {text: early}}
  - expect:
      messages: {client: alice, channel: broadcast:room:1, event: shout, count: 1}
  - join: {client: bob, channel: broadcast:room:1}
  - expect:
      status: {client: bob, channel: broadcast:room:1, is: connected}
  - broadcast: {client: carol, channel: broadcast:room:1, event: shout, payload: {text: late}}
  - expect:
      messages: {client: bob, channel: broadcast:room:1, event: shout, count: 1}
  - expect:
      same_messages: {clients: [alice, bob], channel: broadcast:room:1, within: 300ms}
`))
	if err != nil {
		t.Fatal(err)
	}
	rep := run(t, sc)
	f := rep.FirstFailure
	if rep.OK || rep.Failed != 1 || f == nil || f.Step != "expect same_messages" {
		t.Fatalf("report: ok %v, failed %d, first failure %+v", rep.OK, rep.Failed, f)
	}
	const want = `bob did not receive broadcast shout {"text":"early"} that alice received: not joined yet (bob joined `
	if !strings.HasPrefix(f.Observed, want) || !strings.Contains(f.Observed, "after the message)") || strings.Contains(f.Observed, "late") {
		t.Errorf("observed %q\nwant it to start %q", f.Observed, want)
	}
	if f.Expected != "alice and bob received the same messages on broadcast:room:1 within 300ms" {
		t.Errorf("expected %q", f.Expected)
	}
}
