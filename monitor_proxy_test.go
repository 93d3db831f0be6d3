package main

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"rtm/registry/target"
)

// TestMonitorProxy: the monitor's app proxy forwards to its target; a
// taken --listen port turns it off with a status, not an error;
// --no-proxy runs none.
func TestMonitorProxy(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "upstream "+r.URL.Path)
	}))
	defer up.Close()
	tg := &target.Target{URL: target.Setting{Value: up.URL}}
	log := slog.New(slog.DiscardHandler)

	ap := monitorCmd{Listen: "127.0.0.1:0"}.startProxy(monitorTarget{}, tg, log)
	if ap.model == nil || !strings.HasPrefix(ap.url, "http://127.0.0.1:") || ap.status != "" {
		t.Fatalf("proxy: %+v", ap)
	}
	res, err := http.Get(ap.url + "/rest/v1/x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if string(body) != "upstream /rest/v1/x" {
		t.Fatalf("forwarded: %q", body)
	}
	ap.close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := monitorCmd{Listen: ln.Addr().String()}.startProxy(monitorTarget{}, tg, log)
	if taken.model != nil || !strings.Contains(taken.status, "app proxy off: --listen: ") || !strings.Contains(taken.status, "in use") {
		t.Fatalf("taken port: %+v", taken)
	}
	taken.close()

	if off := (monitorCmd{NoProxy: true, Listen: "127.0.0.1:0"}).startProxy(monitorTarget{}, tg, log); off.model != nil || off.status != "" {
		t.Fatalf("--no-proxy: %+v", off)
	}
}
