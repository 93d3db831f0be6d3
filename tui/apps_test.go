package tui

import (
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"

	"rtm/registry/apps"
)

// fakeApps is an [Apps] with a fixed snapshot of version ver (bumped
// where a test changes snap); calls counts the reads of its version.
type fakeApps struct {
	snap  apps.Snapshot
	ver   uint64
	calls int
}

func (f *fakeApps) Version() uint64 { f.calls++; return f.ver }

func (f *fakeApps) Snapshot() apps.Snapshot { return f.snap }

// appsURL is the proxy URL of the Apps tests.
const appsURL = "http://127.0.0.1:54340"

// sampleApps is a snapshot at t0: a socket the upstream closed, and its
// reconnection with a joined channel (two rejoins), a refused one, and
// two flags.
func sampleApps() apps.Snapshot {
	return apps.Snapshot{
		Sockets: []apps.Socket{
			{ID: 1, RemoteAddr: "127.0.0.1:50111", ClientInfo: "realtime-js/2.11.15", Vsn: "2.0.0",
				Token: apps.TokenInfo{Role: "authenticated", Subject: "alice"}, Opened: t0.Add(-10 * time.Minute),
				Closed: t0.Add(-2 * time.Minute), ClosedBy: "upstream", CloseCode: 1006, CloseReason: "abnormal closure",
				Connection: 1, Attempt: 1, FramesFromApp: 40, FramesToApp: 52},
			{ID: 2, RemoteAddr: "127.0.0.1:50222", ClientInfo: "realtime-js/2.11.15", Vsn: "2.0.0",
				Token: apps.TokenInfo{Role: "anon"}, Opened: t0.Add(-2*time.Minute + 1200*time.Millisecond),
				Connection: 1, Attempt: 2, Previous: 1, ReconnectDelay: 1200 * time.Millisecond, FramesFromApp: 12, FramesToApp: 30,
				Channels: []apps.Channel{
					{Topic: "realtime:room:1", Status: apps.StatusJoined,
						Attempts: []apps.Attempt{{Time: t0.Add(-time.Minute), Outcome: "error"},
							{Time: t0.Add(-59 * time.Second), Delay: time.Second, Outcome: "error"},
							{Time: t0.Add(-57 * time.Second), Delay: 2 * time.Second, Outcome: "ok"}},
						Presence:        []apps.Member{{Key: "alice"}, {Key: "bob"}},
						MessagesFromApp: 4, MessagesToApp: 10,
						Messages: []apps.Message{
							{Time: t0.Add(-50 * time.Second), Dir: "upstream->app", Event: "broadcast", UserEvent: "cursor", Bytes: 80, Payload: `{"x":1,"y":2}`},
							{Time: t0.Add(-40 * time.Second), Dir: "app->upstream", Event: "broadcast", UserEvent: "cursor", Bytes: 80, Payload: `{"x":3,"y":4}`},
							{Time: t0.Add(-30 * time.Second), Dir: "app->upstream", Event: "broadcast", UserEvent: "notify", Bytes: 20,
								Payload: `{"by":"server"}`, Via: apps.ViaREST, HTTPStatus: 202},
						}},
					{Topic: "realtime:private:secrets", Private: true, Status: apps.StatusErrored,
						Reason:   "Unauthorized: You do not have permissions to read from this Channel topic",
						Attempts: []apps.Attempt{{Time: t0.Add(-30 * time.Second), Outcome: "error"}}},
				}},
		},
		REST: []apps.RESTRequest{
			{Time: t0.Add(-30 * time.Second), RemoteAddr: "127.0.0.1:50222", ClientInfo: "realtime-js/2.11.15",
				Path: "/realtime/v1/api/broadcast", Token: apps.TokenInfo{Role: "anon"}, Status: 202, Decoded: true, MessageCount: 1, Socket: 2},
			{Time: t0.Add(-20 * time.Second), RemoteAddr: "127.0.0.1:50333", Path: "/realtime/v1/api/broadcast",
				Token: apps.TokenInfo{Role: "service_role"}, Status: 202, Decoded: true, MessageCount: 1,
				Messages: []apps.Message{{Time: t0.Add(-20 * time.Second), Dir: "app->upstream", Event: "broadcast", UserEvent: "job_done",
					Payload: `{"id":7}`, Via: apps.ViaREST, HTTPStatus: 202}}},
		},
		Stats: apps.Stats{RESTRequests: 2, RESTMessages: 2},
		Flags: []apps.Flag{
			{Kind: apps.FlagIdentityChanged, Time: t0.Add(-time.Minute), Socket: 2, Topic: "realtime:room:1",
				Text: "rejoined as anon, was authenticated alice"},
			{Kind: apps.FlagNeverLeft, Time: t0.Add(-2 * time.Minute), Socket: 1, Topic: "realtime:room:1",
				Text: "still joined when the socket closed"},
		},
	}
}

// appsAnonKey is an embedded server's anon key (Options.AppsAnonKey):
// a JWT of role anon.
const appsAnonKey = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJyb2xlIjoiYW5vbiIsImlzcyI6InN1cGFiYXNlIn0.YW5vbi1rZXktc2lnbmF0dXJlLW9mLXRoZS1lbWJlZGRlZA"

// withApps gives the model a fake Apps of snap and the proxy's URL.
func withApps(m *Model, snap apps.Snapshot) *fakeApps {
	f := &fakeApps{snap: snap}
	m.opts.Apps, m.opts.AppsURL = f, appsURL
	return f
}

// TestAppsView: A opens the view on the newest socket with its channels
// and flags; ↑ selects the older one; esc closes it.
func TestAppsView(t *testing.T) {
	m, _ := newTestModel(t, 160, 45)
	withApps(m, sampleApps())
	keys(m, "A")
	if _, ok := topDialog[*appsView](m); !ok {
		t.Fatal("A did not open the Apps view")
	}
	s := ansi.Strip(m.Render())
	for _, want := range []string{
		"Apps — proxy " + appsURL, "APP SOCKETS 2", "apps → " + appsURL,
		"#1 · 127.0.0.1:50111 · realtime-js/2.11.15 · vsn 2.0.0 · authenticated alice",
		"closed 1006 by upstream: abnormal closure", "frames in 52 out 40",
		"#2 · 127.0.0.1:50222", "attempt 2 of connection #1 after 1.2s", "since 1m ·",
		"CHANNELS of #2  2", "realtime:room:1", "joined", "3 (+1s +2s)",
		"errored: Unauthorized: You do not have permissions",
		"identity_changed  realtime:room:1  rejoined as anon",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("no %q in\n%s", want, s)
		}
	}
	if strings.Contains(s, "never_left") {
		t.Errorf("socket 1's flag shown for socket 2:\n%s", s)
	}
	keys(m, "up")
	s = ansi.Strip(m.Render())
	if !strings.Contains(s, "CHANNELS of #1  0") || !strings.Contains(s, "never_left") || !strings.Contains(s, "none joined") {
		t.Errorf("socket 1 selected:\n%s", s)
	}
	keys(m, "esc")
	if _, ok := topDialog[*appsView](m); ok {
		t.Fatal("esc did not close the Apps view")
	}
}

// TestAppsRefreshOnTick: the view reads the snapshot when it opens and
// on each tick while it is open (a new version only when it changed),
// never while closed, never in View.
func TestAppsRefreshOnTick(t *testing.T) {
	m, _ := newTestModel(t, 120, 40)
	f := withApps(m, apps.Snapshot{})
	tick := func() { m.Update(tickMsg{t: t0, gen: m.tickGen}) }
	tick()
	if f.calls != 0 {
		t.Fatalf("read while closed: %d calls", f.calls)
	}
	typeText(m, ":apps")
	keys(m, "enter")
	if _, ok := topDialog[*appsView](m); !ok || f.calls != 1 {
		t.Fatalf(":apps: open %v, %d calls", ok, f.calls)
	}
	if s := ansi.Strip(m.Render()); !strings.Contains(s, "No app has connected yet") ||
		!strings.Contains(s, "EXPO_PUBLIC_SUPABASE_URL="+appsURL) || !strings.Contains(s, "VITE_SUPABASE_URL="+appsURL) {
		t.Fatalf("empty view:\n%s", s)
	}
	gen := m.appsGen
	m.Render()
	tick()
	if f.calls != 2 || m.appsGen != gen {
		t.Fatalf("same snapshot: %d calls, gen %d -> %d", f.calls, gen, m.appsGen)
	}
	f.snap, f.ver = sampleApps(), f.ver+1
	tick()
	if m.appsGen != gen+1 {
		t.Fatalf("new snapshot: gen %d -> %d", gen, m.appsGen)
	}
	if s := ansi.Strip(m.Render()); !strings.Contains(s, "APP SOCKETS 2") {
		t.Fatalf("after the tick:\n%s", s)
	}
	keys(m, "esc")
	tick()
	if f.calls != 3 {
		t.Fatalf("read after close: %d calls", f.calls)
	}
}

// TestAppsOff: without Options.Apps the view says the proxy is off, and
// :apps takes no arguments.
func TestAppsOff(t *testing.T) {
	m, _ := newTestModel(t, 100, 30)
	keys(m, "A")
	if s := ansi.Strip(m.Render()); !strings.Contains(s, "The app proxy is off") || strings.Contains(s, "apps →") {
		t.Fatalf("off:\n%s", s)
	}
	keys(m, "esc", ":")
	typeText(m, "apps now")
	keys(m, "enter")
	if s := ansi.Strip(m.Render()); !strings.Contains(s, "apps") || m.status.text == "" {
		t.Fatalf(":apps now: %q\n%s", m.status.text, s)
	}
}

// TestAppsViewMasks: keys and tokens in what the app sent (client info,
// close reason, topic, flags, channel reasons) never show unmasked.
func TestAppsViewMasks(t *testing.T) {
	jwt := "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIiwiaXNzIjoic3VwYWJhc2UifQ.c2lnbmF0dXJlLW9mLXRoZS10b2tlbi1oZXJlLTEyMzQ1"
	secret := "sb_secret_abcdefghijklmnopqrstuv0123456789"
	snap := sampleApps()
	s := &snap.Sockets[1]
	s.ClientInfo, s.CloseReason, s.Token.Subject = "app "+jwt, "bad "+secret, jwt
	s.Channels[1].Reason = "Unauthorized: token " + jwt
	s.Channels[0].Topic = "realtime:" + secret
	snap.Flags[0].Text = "was " + jwt
	for _, sz := range goldenSizes {
		m, _ := newTestModel(t, sz[0], sz[1])
		withApps(m, snap)
		keys(m, "A")
		out := ansi.Strip(m.Render())
		for _, sec := range []string{jwt, secret, jwt[strings.LastIndexByte(jwt, '.')+1:]} {
			if strings.Contains(out, sec) {
				t.Fatalf("%dx%d: %q unmasked:\n%s", sz[0], sz[1], sec, out)
			}
		}
	}
}

// TestAppsRESTOnlyTopic: a topic the app only sent to by REST on its
// socket (a channel the model added without a status) is listed as such
// and not counted among the socket's channels; its messages show via
// REST, a refused one (HTTP 4xx) too.
func TestAppsRESTOnlyTopic(t *testing.T) {
	snap := sampleApps()
	s := &snap.Sockets[1]
	s.Channels = append(s.Channels, apps.Channel{Topic: "realtime:alerts", MessagesFromApp: 2, Messages: []apps.Message{
		{Time: t0.Add(-5 * time.Second), Dir: "app->upstream", Event: "broadcast", UserEvent: "alert", Payload: `{"level":1}`, Via: apps.ViaREST, HTTPStatus: 202},
		{Time: t0.Add(-4 * time.Second), Dir: "app->upstream", Event: "broadcast", UserEvent: "alert", Payload: `{"level":2}`, Via: apps.ViaREST, HTTPStatus: 429},
	}})
	m, _ := newTestModel(t, 160, 50)
	withApps(m, snap)
	keys(m, "A")
	out := screen(m)
	mustContain(t, out, "CHANNELS of #2  2  (+1 topic(s) sent to by REST only)", "realtime:alerts", restOnly, "APP SOCKETS 2")
	keys(m, "tab", "G")
	out = screen(m)
	mustContain(t, out, "MESSAGES of realtime:alerts  2", "broadcast alert via REST 202  {\"level\":1}", "broadcast alert via REST 429  {\"level\":2}")
}
