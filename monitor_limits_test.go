package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"rtm/realtime/server"
	"rtm/registry"
	"rtm/registry/headless"
	"rtm/registry/limits"
	"rtm/registry/target"
)

// TestMonitorLimitFlags: the UI's --plan and --limit are parsed as rtm
// watch's; bad values fail naming the flag.
func TestMonitorLimitFlags(t *testing.T) {
	noProjectEnv(t)
	s, err := monitorCmd{Policy: "fixed:3s,max=5", LogLevel: "info",
		planFlags: planFlags{Plan: "pro", Limit: []string{"channels_per_connection=50", "payload_size=off"}}}.settings()
	if err != nil {
		t.Fatal(err)
	}
	if v, src := s.plan.Get(limits.MessagesPerSecond); v != 500 || src != "plan pro" {
		t.Errorf("plan: %d from %q", v, src)
	}
	if v, src := s.overrides.Get(limits.ChannelsPerConnection); v != 50 || src != "--limit" {
		t.Errorf("override: %d from %q", v, src)
	}
	if v, src := s.overrides.Get(limits.PayloadSize); v != 0 || src != "--limit" {
		t.Errorf("off: %d from %q", v, src)
	}
	for _, bad := range []planFlags{{Plan: "gold"}, {Limit: []string{"channels=5"}}, {Limit: []string{"joins_per_second=-3"}}} {
		_, err := monitorCmd{Policy: "fixed:3s,max=5", LogLevel: "info", planFlags: bad}.settings()
		flag := "--limit"
		if bad.Plan != "" {
			flag = "--plan"
		}
		if !errors.Is(err, headless.ErrInvalid) || !strings.Contains(err.Error(), flag) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}

// TestMonitorLimits runs the UI's meter against the embedded server
// allowing 5 channels per socket, the plan free under it and an
// override over both: its gauges read the server's limits through the
// embedded adapter, the manager's channels (4 of 5: a warning) and its
// throttle; a second meter without a source counts the app proxy's
// socket beside rtm's own.
func TestMonitorLimits(t *testing.T) {
	noProjectEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	et, err := startEmbedded(ctx, embeddedConfig{logger: log, limits: server.Limits{MaxChannelsPerClient: 5}})
	if err != nil {
		t.Fatal(err)
	}
	defer et.Close()
	mt := monitorTarget{embedded: et, control: et.control()}
	ap := monitorCmd{Listen: "127.0.0.1:0"}.startProxy(mt, &target.Target{Embedded: true}, log)
	defer ap.close()
	if ap.model == nil {
		t.Fatalf("no proxy: %s", ap.status)
	}
	newMgr := func(url string) *registry.Manager {
		t.Helper()
		m, err := registry.New(registry.Options{URL: url, APIKey: et.srv.AnonKey(), Policy: registry.Fixed{Interval: time.Hour, Max: 1}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Close() })
		if err := m.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		return m
	}
	mgr := newMgr(et.srv.URL())
	plan, _ := limits.Plan("free")
	ov, _ := limits.Override(limits.Limits{}, []string{"joins_per_second=40"})
	src, ok := mt.control.(limits.Source)
	if !ok {
		t.Fatal("the embedded control is no limits source")
	}
	ml := startLimits(ctx, mgr, ap.model, src, plan, ov, 50*time.Millisecond)
	defer ml.stop()
	apps := startLimits(ctx, mgr, ap.model, nil, limits.Limits{}, limits.Limits{}, 50*time.Millisecond)
	defer apps.stop()

	app := newMgr(ap.url)
	if _, err := app.Join(ctx, registry.MustName(registry.KindBroadcast, "app", "1", "")); err != nil {
		t.Fatal(err)
	}
	gauge := func(m *limits.Meter, n limits.Name) limits.Gauge { g, _ := m.Gauge(n); return g }
	waitFor(t, "rtm's socket and the app's on the sourceless meter", func() bool {
		return gauge(apps.meter, limits.ConcurrentClients).Usage == 2
	})
	for i := 1; i <= 4; i++ {
		if _, err := mgr.Join(ctx, registry.MustName(registry.KindBroadcast, "room", fmt.Sprint(i), "")); err != nil {
			t.Fatal(err)
		}
	}
	var g limits.Gauge
	waitFor(t, "4 of the server's 5 channels", func() bool {
		g = gauge(ml.meter, limits.ChannelsPerConnection)
		return g.Usage == 4 && g.Limit == 5
	})
	if g.Source != "server" || g.Level != limits.LevelWarning {
		t.Fatalf("channels: %+v", g)
	}
	if j := gauge(ml.meter, limits.JoinsPerSecond); j.Limit != 40 || j.Source != "--limit" {
		t.Fatalf("joins: %+v", j)
	}
	if p := gauge(ml.meter, limits.PostgresChangePayload); p.Source != "plan free" {
		t.Fatalf("postgres changes: %+v", p)
	}
	if r := ml.meter.Report(); r.Throttle == nil {
		t.Fatal("no throttle in the report")
	}
	// Without a source nothing is known of the limits.
	if g := gauge(apps.meter, limits.ChannelsPerConnection); g.Limit != 0 || g.Source != "" {
		t.Fatalf("sourceless: %+v", g)
	}
}
