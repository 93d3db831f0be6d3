package tui

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"rtm/realtime/mask/masktest"
	"rtm/realtime/server/servertest"
	"rtm/registry"
	"rtm/registry/apps"
)

// selectChannel selects n in the channel list and opens tab k ("1"
// messages, "2" presence, "4" info).
func selectChannel(t *testing.T, m *Model, n registry.Name, k string) {
	t.Helper()
	for i, r := range m.chans.rows {
		if r.name == n {
			m.channelSelected(m.chans.selectRow(i))
			keys(m, k)
			return
		}
	}
	t.Fatalf("no row for %s", n)
}

// TestViewsMaskEscapedSecrets drives the UI with the events of a real
// manager on a real server while peers broadcast (text frame, binary
// frame, raw binary) and track presence with a payload that spells a
// service_role JWT and an sb_secret_ key with \u escapes and holds a
// padded JWT. The messages (list and detail), the raw presence frames
// and the info tab's raw frames show none of them, however decoded.
func TestViewsMaskEscapedSecrets(t *testing.T) {
	srv := servertest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	padded := masktest.PaddedJWT(srv.Secret(), map[string]any{"role": "authenticated", "sub": "mallory", "exp": time.Now().Add(time.Hour).Unix()})
	secrets := []string{srv.ServiceRoleKey(), srv.SecretKey(), padded, padded[strings.LastIndexByte(padded, '.')+1:]}
	payload := masktest.Payload(srv.ServiceRoleKey(), srv.SecretKey(), padded)
	room := registry.MustName(registry.KindBroadcast, "vault", "1", "")
	lobby := registry.MustName(registry.KindPresence, "vault", "2", "")

	mgr, err := registry.New(registry.Options{URL: srv.URL, APIKey: srv.AnonKey()})
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Close()
	sub := mgr.Subscribe(ctx, registry.SubscribeOptions{Frames: true, Buffer: 1 << 12})
	defer sub.Close()
	if err := mgr.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range []registry.Name{room, lobby} {
		h, err := mgr.Join(ctx, n)
		if err == nil {
			err = h.Ready(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := mgr.Track(ctx, lobby, registry.PresenceUser{UserID: "watcher"}); err != nil {
		t.Fatal(err)
	}
	// Tracking on a channel joined without presence rejoins it with its
	// presence key: wait until that is done (the watcher is present), so
	// the peer's track below reaches it as a presence_diff, not inside
	// the presence_state of the rejoin.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if slices.ContainsFunc(mgr.Snapshot().Presence[lobby], func(u registry.PresenceUser) bool { return u.UserID == "watcher" }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the watcher never showed as present")
		}
	}
	for _, vsn := range []string{"1.0.0", "2.0.0"} {
		peer, err := registry.New(registry.Options{URL: srv.URL, APIKey: srv.AnonKey(), Token: padded, Serializer: vsn})
		if err != nil {
			t.Fatal(err)
		}
		defer peer.Close()
		if err := peer.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		h, err := peer.Join(ctx, room)
		if err == nil {
			err = h.Ready(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Broadcast(ctx, "rotate", payload); err != nil {
			t.Fatal(err)
		}
		if vsn == "2.0.0" {
			if err := h.BroadcastBinary(ctx, "raw", []byte("raw "+string(payload))); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if ph, err := peer.Join(ctx, lobby); err != nil || ph.Ready(ctx) != nil {
			t.Fatalf("peer join: %v", err)
		}
		if err := peer.Track(ctx, lobby, registry.PresenceUser{UserID: "mallory", Payload: payload}); err != nil {
			t.Fatal(err)
		}
	}

	m, _ := newTestModel(t, 1600, 60)
	var evs []registry.Event
	deadline := time.Now().Add(20 * time.Second)
	for msgs, diffs := 0, 0; msgs < 3 || diffs < 1; {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %d broadcasts, %d presence diffs", msgs, diffs)
		}
		select {
		case <-sub.Ready():
		case <-time.After(10 * time.Millisecond):
		}
		for _, ev := range sub.Drain(nil) {
			evs = append(evs, ev)
			if me, ok := ev.(registry.MessageEvent); ok && me.Direction == registry.In && me.Kind == registry.MessageBroadcast {
				msgs++
			}
			if f, ok := ev.(registry.FrameEvent); ok && f.Event == "presence_diff" && strings.Contains(f.Text, "mallory") {
				diffs++
			}
		}
	}
	st := mgr.Snapshot()
	m.Update(EventsBatchMsg{Events: evs, State: &st})

	var screens []string
	selectChannel(t, m, room, "1")
	screens = append(screens, screen(m))
	for range 3 {
		keys(m, "k")
		screens = append(screens, screen(m))
	}
	if !strings.Contains(strings.Join(screens, "\n"), "eyJh…") {
		t.Fatalf("the messages tab shows no masked key:\n%s", screens[0])
	}
	keys(m, "4")
	screens = append(screens, screen(m))
	selectChannel(t, m, lobby, "2")
	keys(m, "v")
	raw := screen(m)
	if !strings.Contains(raw, "presence_diff") {
		t.Fatalf("no raw presence frame:\n%s", raw)
	}
	screens = append(screens, raw)
	keys(m, "v", "4")
	screens = append(screens, screen(m))
	for i, s := range screens {
		for _, k := range secrets {
			if masktest.Holds([]byte(s), k) {
				t.Fatalf("screen %d shows a key (%s…):\n%s", i, k[:8], s)
			}
		}
	}
}

// TestReplayedFramesMasked: frames that reach the UI unmasked (a
// recording from elsewhere, any Manager) are masked when shown: the info
// tab's raw frames, the raw presence frames, the messages.
func TestReplayedFramesMasked(t *testing.T) {
	jwt := "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIiwiZXhwIjo0MTAyNDQ0ODAwfQ.eT2n8YVbO2C3hH1lqM5qL3dJb0uQx5R6wYf7mS1kK08"
	esc := masktest.EscapeOne(jwt, 2)
	m, _ := newTestModel(t, 1000, 50)
	text := `["3","9","realtime:presence:contact:123","presence_diff",{"joins":{"eve":{"metas":[{"t":"` + esc + `"}]}},"leaves":{}}]`
	m.Update(EventsBatchMsg{Events: []registry.Event{
		registry.FrameEvent{Time: t0, Direction: registry.In, Channel: presenceCh, Topic: presenceCh.Topic(), Event: "presence_diff", Text: text, Size: len(text)},
		registry.MessageEvent{Time: t0, Channel: presenceCh, Direction: registry.In, Kind: registry.MessagePresenceDiff, Payload: json.RawMessage(`{"joins":{"eve":{"metas":[{"t":"` + esc + `"}]}},"leaves":{}}`)},
		registry.MessageEvent{Time: t0, Channel: presenceCh, Direction: registry.In, Kind: registry.MessageBroadcast, Event: "e", Payload: json.RawMessage(`{"t":"` + esc + `"}`)},
	}})
	var screens []string
	for _, k := range [][]string{{"4"}, {"2", "v"}, {"1"}} {
		keys(m, k...)
		screens = append(screens, screen(m))
	}
	for i, s := range screens {
		if masktest.Holds([]byte(s), jwt) {
			t.Fatalf("screen %d shows the key:\n%s", i, s)
		}
	}
	if !strings.Contains(strings.Join(screens, ""), "eyJh…") {
		t.Fatal("the masked key is not shown")
	}
}

// TestAppsAnonKeyMasked: the embedded server's anon key
// (Options.AppsAnonKey) shows masked on every screen that names it —
// the header, the Apps view with no app and with sockets, the status
// lines of c and w, the help — at every size, however it is spelled;
// only the clipboard and the file get it in full.
func TestAppsAnonKeyMasked(t *testing.T) {
	srv := servertest.New(t)
	key := srv.AnonKey()
	for _, sz := range append(goldenSizes, [2]int{250, 70}) {
		for _, snap := range []apps.Snapshot{{}, sampleApps()} {
			path := filepath.Join(t.TempDir(), DefaultAppsEnvFile)
			m, _ := newTestModel(t, sz[0], sz[1], func(o *Options) { o.AppsAnonKey, o.AppsEnvFile = key, path })
			withApps(m, snap)
			screens := []string{screen(m)}
			keys(m, "A")
			screens = append(screens, screen(m))
			keys(m, "c")
			screens = append(screens, screen(m))
			feed(m, keys(m, "w")[0])
			screens = append(screens, screen(m))
			keys(m, "?")
			screens = append(screens, screen(m))
			if !strings.Contains(strings.Join(screens, "\n"), registry.MaskSecret(key)) {
				t.Fatalf("%dx%d: the masked key is not shown:\n%s", sz[0], sz[1], screens[1])
			}
			for i, s := range screens {
				if masktest.Holds([]byte(s), key) || showsPart(s, key) {
					t.Fatalf("%dx%d: screen %d shows the anon key:\n%s", sz[0], sz[1], i, s)
				}
			}
			if b, err := os.ReadFile(path); err != nil || !strings.Contains(string(b), "SUPABASE_ANON_KEY="+key+"\n") {
				t.Fatalf("the env file lacks the key: %v\n%s", err, b)
			}
		}
	}
}

// showsPart tells whether s shows 16 bytes in a row of the key's
// claims or signature (a key cut to the width still leaks them).
func showsPart(s, key string) bool {
	_, rest, _ := strings.Cut(key, ".")
	for i := 0; i+16 <= len(rest); i++ {
		if strings.Contains(s, rest[i:i+16]) {
			return true
		}
	}
	return false
}
