package registry

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

const testJWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJyb2xlIjoiYW5vbiIsImV4cCI6OTk5OTk5OTk5OX0.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU"

func TestLogHandlerRingAndMasking(t *testing.T) {
	var file bytes.Buffer
	h := NewLogHandler(LogOptions{Ring: 3, File: &file})
	var sunk []LogRecord
	h.SetSink(func(r LogRecord) { sunk = append(sunk, r) })
	log := slog.New(h).With(KeyChannel, "presence:contact:123")
	log.Info("Connecting to ws://127.0.0.1:1/realtime/v1/websocket?apikey="+testJWT+"&vsn=2.0.0", "token", "opaque-secret-token-value-123456")
	log.Warn("Channel error", KeyAttempt, 2, KeyErr, errors.New("join refused: access_token "+testJWT))
	log.WithGroup("join").Info("Joined", "access_token", testJWT, "payload", `{"access_token":"`+testJWT+`","x":1}`)
	log.Debug("Presence synced", KeyCount, 3)

	recs := h.Records(0)
	if len(recs) != 3 {
		t.Fatalf("ring holds %d records, want 3", len(recs))
	}
	if recs[0].Seq != 2 || recs[2].Seq != 4 || h.Total() != 4 {
		t.Fatalf("seqs %d..%d total %d", recs[0].Seq, recs[2].Seq, h.Total())
	}
	if recs[0].Message != "Channel error" || recs[0].Level != slog.LevelWarn || recs[0].Channel != "presence:contact:123" {
		t.Fatalf("record = %+v", recs[0])
	}
	if v, _ := recs[0].Attr(KeyAttempt); v != "2" {
		t.Fatalf("attempt attr = %q", v)
	}
	if v, _ := recs[1].Attr("join.access_token"); v == "" || strings.Contains(v, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ") {
		t.Fatalf("grouped token attr not masked: %q", v)
	}
	if len(sunk) != 4 || sunk[0].Seq != 1 {
		t.Fatalf("sink got %d records", len(sunk))
	}
	all, _ := json.Marshal(sunk)
	for _, secret := range []string{testJWT, "opaque-secret-token-value-123456", "c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU"} {
		if strings.Contains(string(all), secret) {
			t.Fatalf("secret %q in the ring: %s", secret, all)
		}
		if strings.Contains(file.String(), secret) {
			t.Fatalf("secret %q in the JSONL file: %s", secret, file.String())
		}
	}
	if !strings.Contains(sunk[0].Message, "vsn=2.0.0") || !strings.Contains(sunk[0].Message, "apikey=eyJh…") {
		t.Fatalf("message over-masked or not masked: %q", sunk[0].Message)
	}
	// The file is JSONL: one object per record, with the attrs.
	sc := bufio.NewScanner(&file)
	lines := 0
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %d not JSON: %v: %s", lines, err, sc.Bytes())
		}
		if m["channel"] != "presence:contact:123" || m["msg"] == nil || m["level"] == nil {
			t.Fatalf("line %d = %v", lines, m)
		}
		lines++
	}
	if lines != 4 {
		t.Fatalf("%d JSONL lines, want 4", lines)
	}
	slog.New(h).Info("Join refused", "topic", "realtime:broadcast:doc:1")
	if r := h.Records(1)[0]; r.Channel != "broadcast:doc:1" {
		t.Fatalf("the client's topic attr did not give the channel: %+v", r)
	}
	if got := h.Since(3); len(got) != 2 || got[0].Seq != 4 {
		t.Fatalf("Since(3) = %v", got)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestLogHandlerFileErrorsCounted(t *testing.T) {
	h := NewLogHandler(LogOptions{File: failingWriter{}, Level: slog.LevelInfo})
	log := slog.New(h)
	log.Info("a")
	log.Debug("filtered")
	log.Info("b")
	if h.FileErrors() != 2 || len(h.Records(0)) != 2 {
		t.Fatalf("file errors %d, records %d", h.FileErrors(), len(h.Records(0)))
	}
}

func TestMaskSecret(t *testing.T) {
	if MaskSecret("") != "" || MaskSecret("short") != "…" {
		t.Fatal("short secrets")
	}
	m := MaskSecret(testJWT)
	if len(m) > 12 || !strings.HasPrefix(m, "eyJh") {
		t.Fatalf("MaskSecret = %q", m)
	}
	if got := MaskText("key sb_publishable_abcdefghijklmnopqrstuvwxyz end"); strings.Contains(got, "klmnop") {
		t.Fatalf("opaque key not masked: %q", got)
	}
	if got := MaskText("nothing here"); got != "nothing here" {
		t.Fatalf("MaskText changed plain text: %q", got)
	}
}
