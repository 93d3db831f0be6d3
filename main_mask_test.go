package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"rtm/internal/mask/masktest"
	"rtm/realtime/server/servertest"
	"rtm/registry"
	"rtm/registry/headless"
	"rtm/registry/target"
)

// TestWatchFramesAndRecordMaskEscapedSecrets: `rtm watch --frames` and
// `rtm record --log-file`, run as the command line runs them against a
// server on loopback, while peers broadcast (a text frame, a binary
// frame, a raw binary frame) a payload that spells the service_role JWT
// and the sb_secret_ key with a \u escape and holds a JWT with '='
// padding — which the server accepts: the peers connect and join with
// it. Neither stdout, the recording nor the log file holds a key,
// however decoded, and `rtm diff` still reads the recording.
func TestWatchFramesAndRecordMaskEscapedSecrets(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the server's cleanup
	noProjectEnv(t)
	srv := servertest.New(t)
	flags := []string{"--url", srv.URL, "--key", srv.AnonKey(), "--jwt-secret", string(srv.Secret())}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	recPath, logPath := filepath.Join(dir, "rec.ndjson"), filepath.Join(dir, "log.jsonl")
	padded := masktest.PaddedJWT(srv.Secret(), map[string]any{"role": "authenticated", "sub": "mallory", "exp": time.Now().Add(time.Hour).Unix()})
	secrets := []string{srv.ServiceRoleKey(), srv.SecretKey(), padded, padded[strings.LastIndexByte(padded, '.')+1:], string(srv.Secret())}
	payload := masktest.Payload(srv.ServiceRoleKey(), srv.SecretKey(), padded)
	room := registry.MustName(registry.KindBroadcast, "vault", "3", "")

	sctx, stop := context.WithCancel(ctx)
	var watchOut, recOut lockedBuf
	wwait := background(sctx, &watchOut, append([]string{"watch", "--frames", "--join", room.String()}, flags...)...)
	rwait := background(sctx, &recOut, append([]string{"record", "--out", recPath, "--log-file", logPath, "--join", room.String()}, flags...)...)
	joined := `"channel":"broadcast:vault:3","status":"connected"`
	waitFor(t, "both joined", func() bool {
		b, _ := os.ReadFile(recPath)
		return strings.Contains(watchOut.String(), joined) && strings.Contains(string(b), joined)
	})

	env, err := headless.Open(target.Input{URL: srv.URL, Key: srv.AnonKey(), JWTSecret: string(srv.Secret()), NoDotenv: true}, headless.EnvOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	for _, vsn := range []string{"1.0.0", "2.0.0"} {
		peer, err := env.NewManager(headless.Identity{}, headless.ManagerOptions{Tune: func(o *registry.Options) {
			o.APIKey, o.Token, o.Serializer = padded, padded, vsn
		}})
		if err != nil {
			t.Fatal(err)
		}
		defer peer.Close()
		if err := peer.Connect(ctx); err != nil {
			t.Fatalf("connect with the padded JWT: %v", err)
		}
		h, err := peer.Join(ctx, room)
		if err == nil {
			err = h.Ready(ctx)
		}
		if err != nil {
			t.Fatalf("join with the padded JWT: %v", err)
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
	inFrames := `"direction":"in","channel":"broadcast:vault:3","topic":"realtime:broadcast:vault:3","event":"broadcast"`
	waitFor(t, "three broadcast frames watched and recorded", func() bool {
		b, _ := os.ReadFile(recPath)
		return strings.Count(watchOut.String(), inFrames) >= 3 && strings.Count(string(b), inFrames) >= 3
	})
	stop()
	if code, errs := wwait(); code != 0 {
		t.Fatalf("watch: exit %d: %s", code, errs)
	}
	if code, errs := rwait(); code != 0 {
		t.Fatalf("record: exit %d: %s", code, errs)
	}

	rec, _ := os.ReadFile(recPath)
	logs, _ := os.ReadFile(logPath)
	for _, out := range []struct {
		what string
		b    []byte
	}{{"rtm watch --frames", []byte(watchOut.String())}, {"the recording", rec}, {"the log file", logs}} {
		if len(out.b) == 0 {
			t.Fatalf("%s is empty", out.what)
		}
		for _, k := range secrets {
			if masktest.Holds(out.b, k) {
				t.Fatalf("%s holds a key (%s…):\n%s", out.what, k[:8], out.b)
			}
		}
	}
	if code, out, errs := rtmRun(ctx, "diff", recPath, recPath); code != 0 || !strings.HasPrefix(out, "no differences") {
		t.Fatalf("diff of the masked recording: exit %d: %s %s", code, out, errs)
	}
}

// TestErrorsMasked: an error that quotes what was typed or received (a
// flag's value, a server's reason) is printed with its keys masked.
func TestErrorsMasked(t *testing.T) {
	noProjectEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	padded := masktest.PaddedJWT([]byte("secret"), map[string]any{"role": "service_role"})
	code, _, errs := rtmRun(ctx, "watch", "--join", "broadcast:a:1", "--connect-timeout", padded)
	if code != 2 || !strings.Contains(errs, "--connect-timeout") {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if masktest.Holds([]byte(errs), padded) || !strings.Contains(errs, "eyJh…") {
		t.Fatalf("the error shows the key: %s", errs)
	}
}

// TestServeLogsMasked: `rtm serve` logs what clients send (a topic) with
// the keys in it masked, however the frame spelled them.
func TestServeLogsMasked(t *testing.T) {
	defer goleak.VerifyNone(t)
	noProjectEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sctx, stop := context.WithCancel(ctx)
	var out lockedBuf
	var errs lockedBuf
	done := make(chan int, 1)
	go func() {
		done <- run(sctx, []string{"serve", "--addr", "127.0.0.1:0", "--jwt-secret", "serve-mask-test-secret", "--log-level", "debug"}, &out, &errs)
	}()
	var addr string
	waitFor(t, "the banner", func() bool {
		for _, l := range strings.Split(out.String(), "\n") {
			if a, ok := strings.CutPrefix(strings.TrimSpace(l), "Realtime URL: ws://"); ok {
				addr, _, _ = strings.Cut(a, "/")
			}
		}
		return addr != ""
	})
	anon := ""
	for _, l := range strings.Split(out.String(), "\n") {
		if k, ok := strings.CutPrefix(strings.TrimSpace(l), "anon key: "); ok {
			anon = k
		}
	}
	jwt := masktest.PaddedJWT([]byte("serve-mask-test-secret"), map[string]any{"role": "service_role"})
	c, _, err := websocket.DefaultDialer.DialContext(ctx, "ws://"+addr+"/realtime/v1/websocket?vsn=1.0.0&apikey="+anon, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	frame := `{"topic":"realtime:` + masktest.EscapeOne(jwt, 2) + `","event":"phx_join","payload":{},"ref":"1","join_ref":"1"}`
	if err := c.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the join logged", func() bool { return strings.Contains(errs.String(), "Joined") })
	_ = c.Close()
	stop()
	if code := <-done; code != 0 {
		t.Fatalf("serve: exit %d: %s", code, errs.String())
	}
	if masktest.Holds([]byte(errs.String()), jwt) || !strings.Contains(errs.String(), "eyJh…") {
		t.Fatalf("the server's log shows the key:\n%s", errs.String())
	}
}
