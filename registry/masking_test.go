package registry_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"rtm/realtime/mask/masktest"
	"rtm/realtime/protocol"
	"rtm/realtime/server/servertest"
	"rtm/registry"
)

// syncBuf is a log file written by the manager while the test reads it.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// escapedKeys are the server's service_role JWT and sb_secret_ key and a
// user token with '=' padding, and a payload that spells them so that
// the old masking let them through.
func escapedKeys(t *testing.T, srv *servertest.Server) (payload json.RawMessage, keys []string) {
	t.Helper()
	padded := masktest.PaddedJWT(srv.Secret(), map[string]any{"role": "authenticated", "sub": "mallory", "exp": time.Now().Add(time.Hour).Unix()})
	keys = []string{srv.ServiceRoleKey(), srv.SecretKey(), padded, padded[strings.LastIndexByte(padded, '.')+1:]}
	return masktest.Payload(srv.ServiceRoleKey(), srv.SecretKey(), padded), keys
}

func assertNoKeys(t *testing.T, what string, b []byte, keys []string) {
	t.Helper()
	for _, k := range keys {
		if masktest.Holds(b, k) {
			t.Fatalf("%s holds a key (%s…) unmasked:\n%s", what, k[:8], b)
		}
	}
}

// TestFramesMaskEscapedSecrets: a peer broadcasts, as a text frame
// (1.0.0), as a binary frame with a JSON payload and as a raw binary
// frame (2.0.0), a payload that spells a service_role JWT and an
// sb_secret_ key with \u escapes and holds a padded JWT (which the
// server accepts: the peer joins with it). The frames (and every other
// event but the messages themselves, which a subscriber gets as they
// came) that the manager publishes and keeps, its export and its JSONL
// log hold none of them, however decoded, and the frames still decode.
func TestFramesMaskEscapedSecrets(t *testing.T) {
	var logFile syncBuf
	e := newEnv(t, withOpts(func(o *registry.Options) { o.LogFile = &logFile; o.LogLevel = slog.LevelDebug }))
	payload, keys := escapedKeys(t, e.srv)
	n := registry.MustName(registry.KindBroadcast, "vault", "1", "")
	sub := e.m.Subscribe(ctx(t), registry.SubscribeOptions{Frames: true, Buffer: 1 << 12})
	defer sub.Close()
	e.m.SetFrameCapture(true)
	if _, err := e.m.Join(ctx(t), n); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(n, registry.StatusConnected)

	for _, vsn := range []string{"1.0.0", "2.0.0"} {
		peer, err := registry.New(registry.Options{URL: e.srv.URL, APIKey: e.srv.AnonKey(), Token: keys[2], Serializer: vsn})
		if err != nil {
			t.Fatal(err)
		}
		defer peer.Close()
		if err := peer.Connect(ctx(t)); err != nil {
			t.Fatal(err)
		}
		h, err := peer.Join(ctx(t), n)
		if err == nil {
			err = h.Ready(ctx(t))
		}
		if err != nil {
			t.Fatalf("the peer joins with the padded JWT: %v", err)
		}
		if err := h.Broadcast(ctx(t), "rotate", payload); err != nil {
			t.Fatal(err)
		}
		if vsn == "2.0.0" {
			if err := h.BroadcastBinary(ctx(t), "raw", []byte("raw "+string(payload))); err != nil {
				t.Fatal(err)
			}
		}
	}

	var frames []registry.FrameEvent
	var published bytes.Buffer
	eventually(t, "three broadcast frames", func() bool {
		for _, ev := range sub.Drain(nil) {
			switch ev.(type) {
			case registry.MessageEvent:
				continue // the payload as received, for the subscriber to use
			}
			b, _ := json.Marshal(ev)
			published.Write(append(b, '\n'))
			if f, ok := ev.(registry.FrameEvent); ok && f.Direction == registry.In && f.Event == "broadcast" {
				frames = append(frames, f)
			}
		}
		return len(frames) >= 3
	})
	assertNoKeys(t, "the published events", published.Bytes(), keys)
	var text, binary int
	for _, f := range frames {
		if f.Text != "" {
			text++
			if _, err := protocol.V2.DecodeServer([]byte(f.Text), false); err != nil {
				t.Fatalf("a masked text frame no longer decodes: %v: %s", err, f.Text)
			}
			continue
		}
		binary++
		if _, err := protocol.V2.DecodeServer(f.Data, true); err != nil {
			t.Fatalf("a masked binary frame no longer decodes: %v: %q", err, f.Data)
		}
	}
	if text != 1 || binary != 2 {
		t.Fatalf("%d text and %d binary broadcast frames, want 1 and 2", text, binary)
	}

	kept, err := e.m.Frames(n, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(kept)
	assertNoKeys(t, "the kept frames", b, keys)
	var export bytes.Buffer
	if err := e.m.Export(&export); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(export.String(), `"kind":"broadcast"`) {
		t.Fatalf("the export holds no message:\n%s", export.String())
	}
	assertNoKeys(t, "the export", export.Bytes(), keys)
	assertNoKeys(t, "the JSONL log", logFile.Bytes(), keys)
}

// TestLogHandlerMasksEscapedSecrets: log messages and attributes that
// spell keys with escapes (a JSON payload logged as text, an error
// quoting one, a URL with a percent escape) or hold a padded JWT reach
// neither the ring, the sink nor the JSONL file.
func TestLogHandlerMasksEscapedSecrets(t *testing.T) {
	jwt := "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIiwiZXhwIjo0MTAyNDQ0ODAwfQ.eT2n8YVbO2C3hH1lqM5qL3dJb0uQx5R6wYf7mS1kK08"
	sb := "sb_secret_Zm9vYmFyYmF6cXV4cXV1eGNvcmdl"
	padded := masktest.PaddedJWT([]byte("secret"), map[string]any{"role": "authenticated"})
	keys := []string{jwt, sb, padded}
	var file bytes.Buffer
	h := registry.NewLogHandler(registry.LogOptions{File: &file})
	var sunk []registry.LogRecord
	h.SetSink(func(r registry.LogRecord) { sunk = append(sunk, r) })
	log := slog.New(h)
	log.Info("Broadcast received", "payload", `{"note":"`+masktest.EscapeOne(jwt, 2)+`","k":"`+masktest.EscapeOne(sb, 2)+`"}`)
	log.Warn("Join refused: "+masktest.EscapeOne(jwt, 0), "err", &json.SyntaxError{}, "detail", "token "+padded)
	log.Info("Connecting", "url", "ws://h/socket?x=ey%4a"+jwt[3:]+"&vsn=2.0.0")
	var ring bytes.Buffer
	for _, r := range append(h.Records(0), sunk...) {
		b, _ := json.Marshal(r)
		ring.Write(append(b, '\n'))
	}
	assertNoKeys(t, "the ring and the sink", ring.Bytes(), keys)
	assertNoKeys(t, "the JSONL file", file.Bytes(), keys)
	if !strings.Contains(ring.String(), "eyJh…") || !strings.Contains(file.String(), "sb_s…") {
		t.Fatalf("the masked forms are missing:\n%s\n%s", ring.String(), file.String())
	}
}
