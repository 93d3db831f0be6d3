package tui

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"rtm/registry"
	"rtm/theme"
)

// fakeManager records the actions it is asked for and fails the ops
// listed in errs. It counts every call, so tests can prove Update makes
// none.
type fakeManager struct {
	mu    sync.Mutex
	calls []string
	// faults are the faults asked for, as given.
	faults []registry.Fault
	errs   map[string]error
	// block, when set, makes actions wait for it (or the context).
	block chan struct{}
}

func (f *fakeManager) record(ctx context.Context, op string, args ...any) error {
	f.mu.Lock()
	f.calls = append(f.calls, fmt.Sprint(append([]any{op}, args...)...))
	err := f.errs[op]
	block := f.block
	f.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return err
}

func (f *fakeManager) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeManager) Join(ctx context.Context, r JoinRequest) error {
	return f.record(ctx, "join", " ", r.Name.String(), " as=", r.As)
}
func (f *fakeManager) Leave(ctx context.Context, n registry.Name) error {
	return f.record(ctx, "leave", " ", n.String())
}
func (f *fakeManager) Track(ctx context.Context, n registry.Name, u registry.PresenceUser) error {
	return f.record(ctx, "track", " ", n.String(), " ", u.UserID, " ", string(u.Payload))
}
func (f *fakeManager) Untrack(ctx context.Context, n registry.Name) error {
	return f.record(ctx, "untrack", " ", n.String())
}
func (f *fakeManager) Broadcast(ctx context.Context, n registry.Name, ev string, p json.RawMessage) error {
	return f.record(ctx, "broadcast", " ", n.String(), " ", ev, " ", string(p))
}
func (f *fakeManager) RetryNow(ctx context.Context, n registry.Name) error {
	return f.record(ctx, "retry", " ", n.String())
}
func (f *fakeManager) SetPolicy(ctx context.Context, spec string) error {
	return f.record(ctx, "policy", " ", spec)
}
func (f *fakeManager) Cleanup(ctx context.Context) error { return f.record(ctx, "cleanup") }
func (f *fakeManager) Fault(ctx context.Context, fl registry.Fault) error {
	f.mu.Lock()
	f.faults = append(f.faults, fl)
	f.mu.Unlock()
	return f.record(ctx, "fault", " ", fl.String())
}

// Faults returns the faults asked for.
func (f *fakeManager) Faults() []registry.Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]registry.Fault(nil), f.faults...)
}
func (f *fakeManager) Export(ctx context.Context, w io.Writer) error {
	if err := f.record(ctx, "export"); err != nil {
		return err
	}
	_, err := io.WriteString(w, `{"type":"log"}`+"\n")
	return err
}

// t0 is the fixed time of model tests.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

var (
	presenceCh = registry.MustName(registry.KindPresence, "contact", "123", "")
	docCh      = registry.MustName(registry.KindBroadcast, "document", "789", "")
	projCh     = registry.MustName(registry.KindSubscription, "project", "456", "")
	tenantCh   = registry.MustName(registry.KindPresence, "contact", "123", "abc")
)

// sampleState is a registry state with four channels in every status.
func sampleState(now time.Time) registry.State {
	ch := func(n registry.Name, st registry.Status, age time.Duration) registry.ChannelInfo {
		return registry.ChannelInfo{
			Name: n, Topic: n.Topic(), Status: st, CreatedAt: now.Add(-age), JoinedAt: now.Add(-age / 2),
			Joins: 1, JoinRef: "3", RefCount: 1, MaxAttempts: 5, Policy: "fixed:3s,max=5",
			Config: registry.ChannelConfig{Presence: n.Kind == registry.KindPresence},
		}
	}
	p := ch(presenceCh, registry.StatusConnected, 10*time.Minute)
	p.PresenceCount, p.Tracked, p.TrackedAs, p.MessagesIn = 3, true, "alice", 42
	p.Bindings = []registry.Binding{{Type: "presence", Event: "sync", Listeners: 1}}
	d := ch(docCh, registry.StatusConnected, 5*time.Minute)
	d.RefCount, d.MessagesIn, d.MessagesOut = 2, 1234, 12
	d.Bindings = []registry.Binding{{Type: "broadcast", Event: "cursor", Listeners: 2}}
	s := ch(projCh, registry.StatusDisconnected, 90*time.Second)
	s.Attempts, s.NextAttemptAt, s.RetryReason = 2, now.Add(1500*time.Millisecond), "CHANNEL_ERROR: kicked"
	s.Bindings = []registry.Binding{{Type: "postgres_changes", Event: "*", Schema: "public", Table: "project", Filter: "id=eq.456", ID: 7, Listeners: 1}}
	te := ch(tenantCh, registry.StatusError, 3*time.Hour)
	te.Attempts, te.LastError, te.LastErrorCode, te.LastErrorAt = 5, "Realtime is restarting", "RealtimeRestarting", now.Add(-time.Minute)
	return registry.State{
		Time: now,
		Target: registry.TargetInfo{URL: "ws://127.0.0.1:54321/realtime/v1/websocket?apikey=eyJh…Xk0&vsn=2.0.0",
			Embedded: true, ServerFaults: true, Serializer: "2.0.0"},
		Socket: registry.SocketInfo{Status: registry.SocketConnected, ConnectedAt: now.Add(-10 * time.Minute), RTT: 3 * time.Millisecond,
			RTTHistory: []time.Duration{2 * time.Millisecond, 3 * time.Millisecond, 5 * time.Millisecond, 3 * time.Millisecond}},
		Token:    registry.TokenInfo{Present: true, Masked: "eyJh…q9Zc", Subject: "alice", Role: "authenticated", Expiry: now.Add(59*time.Minute + 12*time.Second)},
		Channels: []registry.ChannelInfo{p, d, s, te},
		Presence: map[registry.Name][]registry.PresenceUser{
			presenceCh: {
				{UserID: "alice", Name: "Alice", OnlineSince: now.Add(-9 * time.Minute), Metas: 1, Self: true},
				{UserID: "bob", Name: "Bob", OnlineSince: now.Add(-4 * time.Minute), Metas: 2},
				{UserID: "carol", Name: "Carol", OnlineSince: now.Add(-30 * time.Second), Metas: 1},
			},
		},
		Stats: registry.Stats{Total: 4, Limit: 100},
		Metrics: registry.Metrics{InRate: 12.5, OutRate: 0.4, InHistory: []float64{1, 5, 12, 9, 14, 12},
			OutHistory: []float64{0, 0, 1, 0, 0, 1}},
		Policy: registry.PolicyInfo{Name: "fixed", Spec: "fixed:3s,max=5", Description: "fixed delay 3s, at most 5 attempts", MaxAttempts: 5},
		Faults: registry.FaultState{Client: true, Server: true},
	}
}

// sampleEvents are stream events for the sample channels.
func sampleEvents(now time.Time) []registry.Event {
	var evs []registry.Event
	for i := 0; i < 8; i++ {
		evs = append(evs, registry.MessageEvent{Time: now.Add(time.Duration(i-8) * time.Second), Channel: docCh, Direction: registry.In,
			Kind: registry.MessageBroadcast, Event: "cursor", Payload: json.RawMessage(fmt.Sprintf(`{"user":"bob","x":%d,"y":%d}`, 10*i, 5*i)), Size: 30})
	}
	evs = append(evs,
		registry.FrameEvent{Time: now.Add(-20 * time.Second), Channel: presenceCh, Direction: registry.In, Topic: presenceCh.Topic(), Event: "presence_state",
			Text: `[null,null,"realtime:presence:contact:123","presence_state",{"bob":{"metas":[{"phx_ref":"F1","name":"Bob"}]}}]`, Size: 90},
		registry.FrameEvent{Time: now.Add(-10 * time.Second), Channel: presenceCh, Direction: registry.In, Topic: presenceCh.Topic(), Event: "presence_diff",
			Text: `[null,null,"realtime:presence:contact:123","presence_diff",{"joins":{"carol":{"metas":[{"phx_ref":"F2","name":"Carol"}]}},"leaves":{}}]`, Size: 120},
		registry.MessageEvent{Time: now.Add(-5 * time.Second), Channel: presenceCh, Direction: registry.Out, Kind: registry.MessagePresence,
			Event: "track", Payload: json.RawMessage(`{"user_id":"alice","name":"Alice","online_at":"2026-03-01T11:50:00Z"}`), Size: 70},
		registry.PresenceEvent{Time: now.Add(-30 * time.Second), Channel: presenceCh, Action: registry.PresenceJoin,
			User: registry.PresenceUser{UserID: "carol", Name: "Carol", Metas: 1}, Count: 3},
		registry.PresenceEvent{Time: now.Add(-25 * time.Second), Channel: presenceCh, Action: registry.PresenceLeave,
			User: registry.PresenceUser{UserID: "dave", Name: "Dave", Metas: 0}, Count: 3},
		registry.RetryEvent{Time: now.Add(-3 * time.Second), Scope: registry.ScopeChannel, Channel: projCh, Attempt: 1, Max: 5,
			Delay: 3 * time.Second, Reason: "CHANNEL_ERROR: kicked", Outcome: registry.RetryScheduled, Policy: "fixed:3s,max=5"},
		registry.RetryEvent{Time: now.Add(-2 * time.Second), Scope: registry.ScopeChannel, Channel: projCh, Attempt: 1, Max: 5,
			Outcome: registry.RetryFailed, Err: "RealtimeRestarting: Realtime is restarting"},
		registry.RetryEvent{Time: now.Add(-1500 * time.Millisecond), Scope: registry.ScopeChannel, Channel: projCh, Attempt: 2, Max: 5,
			Delay: 3 * time.Second, NextAt: now.Add(1500 * time.Millisecond), Outcome: registry.RetryScheduled},
		registry.FrameEvent{Time: now.Add(-10 * time.Minute), Direction: registry.Out, Channel: presenceCh, Topic: presenceCh.Topic(),
			Event: "phx_join", JoinRef: "3", Ref: "3", Text: `["3","3","realtime:presence:contact:123","phx_join",{"config":{"presence":{"key":"alice"}}}]`},
		registry.FrameEvent{Time: now.Add(-10 * time.Minute), Direction: registry.In, Channel: presenceCh, Topic: presenceCh.Topic(),
			Event: "phx_reply", JoinRef: "3", Ref: "3", Text: `["3","3","realtime:presence:contact:123","phx_reply",{"status":"ok","response":{}}]`},
	)
	logs := []registry.LogRecord{
		{Seq: 1, Time: now.Add(-10 * time.Minute), Level: slog.LevelInfo, Message: "Connected", Attrs: []registry.LogAttr{{Key: "url", Value: "ws://127.0.0.1:54321"}}},
		{Seq: 2, Time: now.Add(-10 * time.Minute), Level: slog.LevelInfo, Message: "Joined", Channel: presenceCh.String(), Attrs: []registry.LogAttr{{Key: "channel", Value: presenceCh.String()}}},
		{Seq: 3, Time: now.Add(-5 * time.Second), Level: slog.LevelWarn, Message: "Channel error, rejoin scheduled", Channel: projCh.String(),
			Attrs: []registry.LogAttr{{Key: "channel", Value: projCh.String()}, {Key: "attempt", Value: "1/5"}, {Key: "delay", Value: "3s"}}},
		{Seq: 4, Time: now.Add(-2 * time.Second), Level: slog.LevelError, Message: "Rejoin failed", Channel: projCh.String(),
			Attrs: []registry.LogAttr{{Key: "channel", Value: projCh.String()}, {Key: "err", Value: "RealtimeRestarting: Realtime is restarting"}}},
		{Seq: 5, Time: now.Add(-1 * time.Second), Level: slog.LevelDebug, Message: "Heartbeat", Attrs: []registry.LogAttr{{Key: "rtt", Value: "3ms"}}},
	}
	for _, r := range logs {
		evs = append(evs, registry.LogEvent{Record: r})
	}
	return evs
}

// newTestModel returns a model on the fixed clock, sized w x h, fed the
// sample state and events.
func newTestModel(t testing.TB, w, h int, opts ...func(*Options)) (*Model, *fakeManager) {
	t.Helper()
	fm := &fakeManager{errs: map[string]error{}}
	o := Options{
		Manager: fm,
		Now:     func() time.Time { return t0 },
		Theme:   func(bool) *theme.Styles { return theme.Default(true) },
		Schedule: func(d time.Duration, f func(time.Time) tea.Msg) tea.Cmd {
			return func() tea.Msg { return scheduledMsg{d: d, msg: f(t0.Add(d))} }
		},
	}
	for _, f := range opts {
		f(&o)
	}
	m := New(o)
	m.Update(tea.WindowSizeMsg{Width: w, Height: h})
	st := sampleState(t0)
	m.Update(EventsBatchMsg{Events: sampleEvents(t0), State: &st})
	return m, fm
}

// runCmd runs a Cmd synchronously (flattening batches) and returns the
// messages, skipping ticks that would sleep.
func runCmd(cmd tea.Cmd) []tea.Msg {
	if cmd == nil {
		return nil
	}
	msg := cmd()
	switch msg := msg.(type) {
	case tea.BatchMsg:
		var out []tea.Msg
		for _, c := range msg {
			out = append(out, runCmd(c)...)
		}
		return out
	case nil:
		return nil
	case scheduledMsg:
		return nil // timers are not run
	}
	return []tea.Msg{msg}
}

// scheduledMsg is what the test Schedule returns instead of waiting.
type scheduledMsg struct {
	d   time.Duration
	msg tea.Msg
}
