package headless_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"rtm/realtime/mask/masktest"
	"rtm/realtime/server/servertest"
	"rtm/registry"
	"rtm/registry/headless"
	"rtm/registry/target"
)

// TestRecordAndWatchMaskEscapedSecrets: `rtm record` and `rtm watch
// --frames` run while peers broadcast — as a text frame (1.0.0), as a
// binary frame with a JSON payload and as a raw binary frame (2.0.0) — a
// payload that spells the server's service_role JWT and its sb_secret_
// key with a \u escape and holds a JWT with '=' padding (the peers join
// with it: the server accepts it). Neither output nor the managers'
// JSONL log holds a key, however decoded; both read back, and the
// recording's frames still decode.
func TestRecordAndWatchMaskEscapedSecrets(t *testing.T) {
	srv := servertest.New(t)
	var logFile syncBuffer
	env, err := headless.Open(target.Input{URL: srv.URL, Key: srv.AnonKey(), JWTSecret: string(srv.Secret()),
		NoDotenv: true, LookupEnv: func(string) (string, bool) { return "", false }},
		headless.EnvOptions{Server: serverControl(t, srv), LogFile: &logFile, LogLevel: slog.LevelDebug})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Close() })
	padded := masktest.PaddedJWT(srv.Secret(), map[string]any{"role": "authenticated", "sub": "mallory", "exp": time.Now().Add(time.Hour).Unix()})
	keys := []string{srv.ServiceRoleKey(), srv.SecretKey(), padded, padded[strings.LastIndexByte(padded, '.')+1:]}
	payload := masktest.Payload(srv.ServiceRoleKey(), srv.SecretKey(), padded)
	room := registry.MustName(registry.KindBroadcast, "vault", "7", "")

	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	var rec, watch syncBuffer
	done := make(chan error, 2)
	ready := make(chan struct{}, 2)
	onReady := func(*registry.Manager) { ready <- struct{}{} }
	go func() {
		_, err := headless.Record(ctx, env, &rec, headless.StreamOptions{Joins: []registry.Name{room}, OnReady: onReady})
		done <- err
	}()
	go func() {
		_, err := headless.Watch(ctx, env, &watch, headless.StreamOptions{Joins: []registry.Name{room}, Frames: true, OnReady: onReady})
		done <- err
	}()
	<-ready
	<-ready
	// The channel joined, not only the socket (whose status line says
	// "connected" too): a peer's broadcast before it would not reach it.
	joined := func(out string) bool {
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, `"type":"channel_state"`) && strings.Contains(l, `"status":"connected"`) {
				return true
			}
		}
		return false
	}
	eventually(t, "both joined", func() bool { return joined(rec.String()) && joined(watch.String()) })

	for _, vsn := range []string{"1.0.0", "2.0.0"} {
		peer, err := env.NewManager(headless.Identity{}, headless.ManagerOptions{Tune: func(o *registry.Options) {
			o.Serializer, o.Token = vsn, padded
		}})
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
			t.Fatalf("a peer joins with the padded JWT: %v", err)
		}
		if err := h.Broadcast(ctx, "rotate", payload); err != nil {
			t.Fatal(err)
		}
		if vsn == "2.0.0" {
			if err := h.BroadcastBinary(ctx, "raw", []byte("raw "+string(payload))); err != nil {
				t.Fatal(err)
			}
		}
	}
	frames := func(s string) int {
		return strings.Count(s, `"direction":"in","channel":"broadcast:vault:7","topic":"realtime:broadcast:vault:7","event":"broadcast"`)
	}
	eventually(t, "three broadcast frames in each output", func() bool { return frames(rec.String()) >= 3 && frames(watch.String()) >= 3 })
	cancel()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}

	for _, out := range []struct{ what, s string }{{"the recording", rec.String()}, {"the watch output", watch.String()}, {"the JSONL log", logFile.String()}} {
		for _, k := range keys {
			if masktest.Holds([]byte(out.s), k) {
				t.Fatalf("%s holds a key (%s…):\n%s", out.what, k[:8], out.s)
			}
		}
	}
	for _, s := range []string{rec.String(), watch.String()} {
		r := readRec(t, s)
		var n int
		for _, m := range headless.ReceivedMessages(r) {
			if strings.HasPrefix(m.Event, "broadcast ") {
				n++
				if !json.Valid(m.Value) && m.Event == "broadcast rotate" {
					t.Fatalf("a masked payload is not JSON: %s", m.Value)
				}
			}
		}
		if n != 3 {
			t.Fatalf("%d broadcasts decode from the output, want 3:\n%s", n, s)
		}
	}
	if !strings.Contains(rec.String(), `eyJh…`) {
		t.Fatalf("the masked forms are missing:\n%s", rec.String())
	}
}

// TestReadRecordingMasks: a recording written elsewhere (or by an older
// rtm) with keys in it is masked as it is read, so that replaying it
// shows and sends none.
func TestReadRecordingMasks(t *testing.T) {
	jwt := "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIiwiZXhwIjo0MTAyNDQ0ODAwfQ.eT2n8YVbO2C3hH1lqM5qL3dJb0uQx5R6wYf7mS1kK08"
	text := `[null,null,"realtime:broadcast:a:b","broadcast",{"type":"broadcast","event":"e","payload":{"t":"` + masktest.EscapeOne(jwt, 2) + `"}}]`
	line, _ := json.Marshal(registry.FrameEvent{Time: time.Now(), Direction: registry.In, Topic: "realtime:broadcast:a:b", Event: "broadcast", Text: text, Size: len(text)})
	rec := readRec(t, `{"type":"recording","version":1,"started":"2026-01-01T00:00:00Z","target":"ws://h/socket?apikey=`+jwt+`","serializer":"2.0.0","channels":[]}`+"\n"+string(line))
	b, _ := json.Marshal(rec)
	if masktest.Holds(b, jwt) {
		t.Fatalf("the recording read back holds the key: %s", b)
	}
	if ms := headless.ReceivedMessages(rec); len(ms) != 1 || !strings.Contains(string(ms[0].Value), "eyJh…") {
		t.Fatalf("the masked frame must still decode: %+v", ms)
	}
}
