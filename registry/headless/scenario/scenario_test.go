package scenario_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"rtm/realtime/server/servertest"
	"rtm/registry"
	"rtm/registry/headless"
	"rtm/registry/headless/scenario"
	"rtm/registry/serverctl"
	"rtm/registry/target"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const dir = "../../../testdata/scenarios"

// testEnv is an Env on a fresh embedded server, reached over loopback.
func testEnv(t *testing.T) *headless.Env {
	t.Helper()
	srv := servertest.New(t)
	control, err := serverctl.NewHTTP(srv.URL, srv.ServiceRoleKey(), nil)
	if err != nil {
		t.Fatal(err)
	}
	env, err := headless.Open(target.Input{URL: srv.URL, Key: srv.AnonKey(), JWTSecret: string(srv.Secret()),
		NoDotenv: true, LookupEnv: func(string) (string, bool) { return "", false }},
		headless.EnvOptions{Server: control})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Close() })
	return env
}

func parseFile(t *testing.T, path string) *scenario.Scenario {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := scenario.Parse(filepath.Base(path), data)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func run(t *testing.T, sc *scenario.Scenario) scenario.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep := scenario.Run(ctx, sc, scenario.Options{Env: testEnv(t)})
	b, _ := json.MarshalIndent(rep, "", "  ")
	t.Logf("report of %s:\n%s", sc.File, b)
	return rep
}

// TestExampleScenarios runs every example that must hold; together they
// use every step, fault and expectation, and every app fault.
func TestExampleScenarios(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) < 4 {
		t.Fatalf("examples: %v %v", files, err)
	}
	steps, expects, faults, appFaults := map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, f := range files {
		sc := parseFile(t, f)
		for _, st := range sc.Steps {
			steps[st.Kind] = true
			if st.Expect != "" {
				expects[st.Expect] = true
			}
			if st.Kind == scenario.StepFault && st.Fault.App {
				appFaults[st.Fault.Kind.String()] = true
			} else if st.Kind == scenario.StepFault {
				faults[st.Fault.Kind.String()] = true
			}
		}
		switch filepath.Base(f) {
		case "broken-reconnect.yaml":
			continue // must fail: TestBrokenReconnectFails
		case "app-reconnect.yaml":
			continue // needs Node: TestSupabaseJSAppReconnects
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			rep := run(t, sc)
			if !rep.OK || rep.Failed != 0 || rep.Skipped != 0 || rep.Passed != len(sc.Steps) || rep.FirstFailure != nil {
				t.Fatalf("%s: ok %v, %d passed, %d failed, %d skipped of %d; first failure %+v", f, rep.OK, rep.Passed, rep.Failed, rep.Skipped, len(sc.Steps), rep.FirstFailure)
			}
			for _, s := range rep.Steps {
				if s.Result != scenario.Passed || s.Line == 0 || s.Text == "" {
					t.Fatalf("step %+v", s)
				}
				if strings.HasPrefix(s.Step, "expect ") && (s.Expected == "" || s.Observed == "") {
					t.Fatalf("expectation without expected/observed: %+v", s)
				}
			}
		})
	}
	for _, k := range scenario.StepKinds() {
		if !steps[k] {
			t.Errorf("no example uses step %s", k)
		}
	}
	for _, k := range scenario.ExpectKinds() {
		if !expects[k] {
			t.Errorf("no example uses expectation %s", k)
		}
	}
	for _, k := range registry.FaultKinds() {
		if !k.OnlyApp() && !faults[k.String()] {
			t.Errorf("no example uses fault %s", k)
		}
		if k.App() && !appFaults[k.String()] {
			t.Errorf("no example uses app fault %s", k)
		}
	}
}

// TestBrokenReconnectFails is the CI check: a reconnect broken by
// refused rejoins (more than the policy's attempts) fails the run at the
// expectation of recovery, and the report says why.
func TestBrokenReconnectFails(t *testing.T) {
	sc := parseFile(t, filepath.Join(dir, "broken-reconnect.yaml"))
	rep := run(t, sc)
	f := rep.FirstFailure
	if rep.OK || rep.Failed != 1 || f == nil {
		t.Fatalf("a broken reconnect must fail the run: %+v", rep)
	}
	if f.Line != 20 || f.Step != "expect status" || f.Result != scenario.Failed ||
		!strings.Contains(f.Expected, "broadcast:room:2 connected within 5s") ||
		!strings.Contains(f.Observed, "error (gave up after 3 attempts") || !strings.Contains(f.Reason, "RealtimeRestarting") {
		t.Fatalf("first failure %+v", f)
	}
	if rep.Skipped != 1 || rep.Steps[len(rep.Steps)-1].Result != scenario.Skipped {
		t.Fatalf("the steps after the failure must be skipped: %+v", rep.Steps)
	}
}

// TestFailingExpectations: each kind of expectation fails with a report
// saying which and why.
func TestFailingExpectations(t *testing.T) {
	head := "policy: fixed:50ms,max=2\nreconnect_after: 100ms\ncontinue_on_failure: true\nsteps:\n  - connect: {user: alice}\n  - join: {channel: presence:room:1}\n  - join: {channel: broadcast:room:1}\n" +
		"  - expect:\n      status: {channel: presence:room:1, is: connected}\n  - expect:\n      status: {channel: broadcast:room:1, is: connected}\n"
	for _, tc := range []struct {
		name, steps string
		observed    string
	}{
		{"status", "  - expect:\n      status: {channel: broadcast:room:1, is: error, within: 300ms}\n", "connected"},
		{"presence", "  - expect:\n      presence: {channel: presence:room:1, contains: alice}\n  - expect:\n      presence: {channel: presence:room:1, contains: bob, within: 300ms}\n", "1 present: [alice]"},
		{"lacks", "  - expect:\n      presence: {channel: presence:room:1, contains: alice}\n  - expect:\n      presence: {channel: presence:room:1, lacks: alice, within: 300ms}\n", "1 present: [alice]"},
		{"messages", "  - broadcast: {channel: broadcast:room:1, event: e, count: 2}\n  - expect:\n      messages: {channel: broadcast:room:1, count: 2, within: 300ms}\n", "0 messages"},
		{"payloads", "  - connect: {user: bob}\n  - join: {client: bob, channel: broadcast:room:1}\n  - expect:\n      status: {client: bob, channel: broadcast:room:1, is: connected}\n  - broadcast: {client: alice, channel: broadcast:room:1, event: e, count: 2}\n  - expect:\n      messages: {client: bob, channel: broadcast:room:1, payloads: [{seq: 2}, {seq: 1}]}\n", `message 1 is {"seq":1}, expected it to contain {"seq":2}`},
		{"order", "  - connect: {user: bob}\n  - join: {client: bob, channel: broadcast:room:1}\n  - expect:\n      status: {client: bob, channel: broadcast:room:1, is: connected}\n  - broadcast: {client: alice, channel: broadcast:room:1, event: e, payload: {k: 5}}\n  - broadcast: {client: alice, channel: broadcast:room:1, event: e, payload: {k: 3}}\n  - expect:\n      messages: {client: bob, channel: broadcast:room:1, count: 2, order_by: k}\n", "out of order at message 2: k 3 after 5"},
		{"attempts", "  - fault: {kind: reject-joins, count: 100}\n  - fault: {kind: channel-error, channel: broadcast:room:1}\n  - expect:\n      attempts: {channel: broadcast:room:1, at_most: 1, for: 2s}\n", "2 attempts"},
		{"error", "  - expect:\n      error: {reason: ChannelRateLimitReached, within: 200ms}\n", "no error"},
		{"no_error", "  - fault: {kind: reject-joins, count: 100}\n  - fault: {kind: channel-error, channel: broadcast:room:1}\n  - expect:\n      no_error: {channel: broadcast:room:1, for: 2s}\n", "CHANNEL_ERROR: channel error reported by the server"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc, err := scenario.Parse(tc.name+".yaml", []byte(head+tc.steps))
			if err != nil {
				t.Fatal(err)
			}
			rep := run(t, sc)
			f := rep.FirstFailure
			if rep.OK || f == nil || !strings.HasPrefix(f.Step, "expect ") {
				t.Fatalf("want a failed expectation: %+v", rep)
			}
			last := sc.Steps[len(sc.Steps)-1]
			if f.Line != last.Line || !strings.Contains(f.Observed, tc.observed) || !strings.Contains(f.Reason, "expected "+f.Expected) {
				t.Fatalf("failure %+v: want line %d, observed containing %q", f, last.Line, tc.observed)
			}
		})
	}
}

// TestFailureReportMasks: a failed payload expectation quotes the
// payload received, with the keys in it masked, and the steps the report
// quotes are masked too.
func TestFailureReportMasks(t *testing.T) {
	jwt := "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImsifQ==.eyJyb2xlIjoic2VydmljZV9yb2xlIn0=.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU="
	src := "steps:\n  - connect: {user: alice}\n  - connect: {user: bob}\n  - join: {client: bob, channel: broadcast:room:1}\n" +
		"  - join: {client: alice, channel: broadcast:room:1}\n" +
		"  - expect:\n      status: {client: bob, channel: broadcast:room:1, is: connected}\n" +
		"  - expect:\n      status: {client: alice, channel: broadcast:room:1, is: connected}\n" +
		"  - broadcast: {client: alice, channel: broadcast:room:1, event: e, payload: {t: \"" + jwt + "\", k: sb_secret_Zm9vYmFyYmF6cXV4cXV1eGNvcmdl}}\n" +
		"  - expect:\n      messages: {client: bob, channel: broadcast:room:1, payloads: [{seq: 1}], within: 2s}\n"
	sc, err := scenario.Parse("mask.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	rep := run(t, sc)
	f := rep.FirstFailure
	if f == nil || !strings.Contains(f.Observed, `"t":"eyJh…`) {
		t.Fatalf("want a failure quoting the masked payload: %+v", f)
	}
	b, _ := json.Marshal(rep)
	for _, k := range []string{jwt, "c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU", "sb_secret_Zm9vYmFyYmF6cXV4cXV1eGNvcmdl"} {
		if strings.Contains(string(b), k) {
			t.Fatalf("the report holds a key: %s", b)
		}
	}
}

// TestInvalidScenarios: bad files give the line and the reason.
func TestInvalidScenarios(t *testing.T) {
	want := map[string]string{
		"alias.yaml":                   "alias.yaml:2: anchors and aliases (& and *) are not supported in scenarios",
		"attempts-no-bound.yaml":       "attempts-no-bound.yaml:4: expect attempts needs at_most, at_least or exactly",
		"bad-channel.yaml":             `bad-channel.yaml:3: channel "presence:room": invalid channel name "presence:room": has 2 ':'-separated parts (want TYPE:ENTITY_TYPE:ENTITY_ID or tenant:ID:TYPE:ENTITY_TYPE:ENTITY_ID; parts may not contain ':')`,
		"bad-duration.yaml":            `bad-duration.yaml:5: within: "5 sec" is not a duration (write 500ms, 2s, 1m)`,
		"bad-policy.yaml":              `bad-policy.yaml:1: policy "linear": registry: unknown policy "linear" (want fixed[:3s], exp or breaker, with ,key=value options)`,
		"duplicate-key.yaml":           `duplicate-key.yaml:3: join: key "channel" given twice (first at line 3)`,
		"empty.yaml":                   "empty.yaml:1: the scenario is empty: it needs steps",
		"fault-extra.yaml":             "fault-extra.yaml:3: fault drop takes no for",
		"fault-app.yaml":               "fault-app.yaml:3: app faults act on the app behind rtm's proxy: add proxy: true to the scenario's settings",
		"app-expect-no-proxy.yaml":     "app-expect-no-proxy.yaml:4: expect app_status looks at the app behind rtm's proxy: add proxy: true to the scenario's settings",
		"exec-no-proxy.yaml":           "exec-no-proxy.yaml:2: exec runs the app under test behind rtm's proxy (SUPABASE_URL points at it): add proxy: true to the scenario's settings",
		"connect-proxy-no-proxy.yaml":  "connect-proxy-no-proxy.yaml:2: connect through rtm's proxy needs the proxy: add proxy: true to the scenario's settings",
		"exit-foreground.yaml":         `exit-foreground.yaml:5: exec "seed" runs in the foreground (its step fails on a non-zero exit): expect exit waits for a background: true exec`,
		"exit-unknown.yaml":            `exit-unknown.yaml:5: exec "ap" is not started by an earlier exec step`,
		"exec-same-name.yaml":          `exec-same-name.yaml:4: exec "app" is named twice: give each exec its own name:`,
		"exec-bad-env.yaml":            `exec-bad-env.yaml:5: env: "SUPABASE-URL" is not a variable name (letters, digits and _)`,
		"proxy-not-loopback.yaml":      `proxy-not-loopback.yaml:2: listen "0.0.0.0:54340": the scenario's proxy listens on loopback only (127.0.0.1, ::1 or localhost)`,
		"app-fault-client.yaml":        "app-fault-client.yaml:4: an app fault acts on the app behind rtm's proxy, not on a client: remove client:",
		"app-fault-bad-app.yaml":       `app-fault-bad-app.yaml:3: app must be all (every app socket) or a socket number (1 is the first the app opened), not "first"`,
		"app-fault-not-app.yaml":       "app-fault-not-app.yaml:3: fault channel-error does not act on an app (app faults: " + strings.Join(appFaultNames(), ", ") + ")",
		"app-status-bad.yaml":          `app-status-bad.yaml:4: is "connected": want joining, joined, errored, closed, left`,
		"fault-app-only.yaml":          "fault-app-only.yaml:3: fault close acts only on an app's sockets behind rtm's proxy (app)",
		"fault-needs-for.yaml":         "fault-needs-for.yaml:3: fault freeze needs for",
		"join-before-connect.yaml":     "join-before-connect.yaml:2: join before any connect step: start with - connect: {user: alice} (or role: anon)",
		"messages-count-mismatch.yaml": "messages-count-mismatch.yaml:4: count 3 disagrees with the 1 payloads listed",
		"negative-wait.yaml":           "negative-wait.yaml:3: wait must be more than 0, not -1s",
		"no-steps.yaml":                "no-steps.yaml:1: the scenario has no steps: add steps: with a list of steps",
		"presence-two.yaml":            "presence-two.yaml:4: expect presence needs exactly one of contains, lacks or count",
		"same-one-client.yaml":         "same-one-client.yaml:4: expect same_messages needs clients: the two clients to compare, e.g. [alice, bob]",
		"same-unknown-client.yaml":     `same-unknown-client.yaml:5: client "zoe" is not connected by an earlier step`,
		"steps-not-list.yaml":          "steps-not-list.yaml:1: steps must be a list (- connect: ..., - join: ...), not a mapping",
		"syntax.yaml":                  "syntax.yaml:4: YAML syntax: did not find expected '-' indicator",
		"unclosed.yaml":                "unclosed.yaml:2: YAML syntax: did not find expected ',' or '}'",
		"two-kinds.yaml":               `two-kinds.yaml:3: a step has one kind (connect, join, leave, track, untrack, broadcast, fault, wait, refresh_token, exec, expect); "connect" and "join" are two steps: put each on its own "- " line`,
		"unknown-client.yaml":          `unknown-client.yaml:3: client "zoe" is not connected by an earlier step`,
		"unknown-key.yaml":             `unknown-key.yaml:5: unknown key "colour" in join (want client, channel, track, presence_key, private, self, ack)`,
		"unknown-step.yaml":            `unknown-step.yaml:3: unknown step "jump" (want connect, join, leave, track, untrack, broadcast, fault, wait, refresh_token, exec, expect)`,
		"user-and-role.yaml":           "user-and-role.yaml:2: connect takes user or role, not both (a user's token has role authenticated)",
		"which-client.yaml":            "which-client.yaml:4: join: several clients are connected (alice, bob): say which with client:",
	}
	files, err := filepath.Glob(filepath.Join(dir, "invalid", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	for name := range want {
		if !slices.Contains(names, name) {
			t.Errorf("missing test file %s", name)
		}
	}
	for _, f := range files {
		name := filepath.Base(f)
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		_, err = scenario.Parse(name, data)
		var le *headless.LineError
		if !errors.As(err, &le) || !scenario.IsInvalid(err) {
			t.Errorf("%s: err = %v, want a line error", name, err)
			continue
		}
		w, ok := want[name]
		if !ok {
			t.Errorf("%s: no expected message in the table (got %q)", name, err)
			continue
		}
		if err.Error() != w {
			t.Errorf("%s:\n got %s\nwant %s", name, err, w)
		}
	}
}

func appFaultNames() []string {
	var out []string
	for _, k := range registry.AppFaultKinds() {
		out = append(out, k.String())
	}
	return out
}

// FuzzParse: the parser never panics, and errors name a line inside the
// input.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	bad, _ := filepath.Glob(filepath.Join(dir, "invalid", "*.yaml"))
	for _, p := range append(files, bad...) {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("steps:\n  - connect: {user: a}\n  - broadcast: {channel: broadcast:a:b, event: e, payload: {a: [1, 2.5, true, null, {b: c}], n: 0x10}}\n"))
	f.Add([]byte("plan: pro\nlimits: {max_channels_per_client: 5, payload_size: off}\nsteps:\n  - connect: {user: a}\n  - expect:\n      limits: {name: joins_per_second, over: 85%, within: 1s}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sc, err := scenario.Parse("f.yaml", data)
		if err != nil {
			var le *headless.LineError
			if !errors.As(err, &le) {
				t.Fatalf("error %v is not a LineError", err)
			}
			if lines := strings.Count(string(data), "\n") + 1; le.Line < 1 || le.Line > lines+1 {
				t.Fatalf("error line %d outside 1..%d: %v", le.Line, lines, err)
			}
			return
		}
		if len(sc.Steps) == 0 {
			t.Fatal("a scenario without steps parsed")
		}
		for _, st := range sc.Steps {
			if st.Line < 1 || st.Client == "" && st.Kind != scenario.StepWait {
				t.Fatalf("step %+v", st)
			}
			if st.Payload != nil && !json.Valid(st.Payload) {
				t.Fatalf("payload %q is not JSON", st.Payload)
			}
		}
	})
}

// TestFaultSteps: a fault step's kind and settings are checked against
// the registry's table, with the line of the setting at fault.
func TestFaultSteps(t *testing.T) {
	head := "steps:\n  - connect: {user: alice}\n  - join: {channel: broadcast:room:1}\n"
	for _, tc := range []struct {
		step, want string
	}{
		{"  - fault: {channel: broadcast:room:1}\n", "f.yaml:4: fault needs kind: one of " + strings.Join(registry.FaultKindNames(), ", ")},
		{"  - fault: {kind: explode}\n", `f.yaml:4: unknown fault "explode" (want ` + strings.Join(registry.FaultKindNames(), ", ") + ")"},
		{"  - fault:\n      kind: kick\n      channel: broadcast:room:1\n      for: 1s\n", "f.yaml:7: fault kick takes no for (it takes channel, mode)"},
		{"  - fault: {kind: kick}\n", "f.yaml:4: fault kick needs channel"},
		{"  - fault: {kind: reject-joins, reason: busy}\n", "f.yaml:4: fault reject-joins needs count (the next N joins), for (a duration) or both"},
		{"  - fault: {kind: kick, channel: broadcast:room:1, mode: gently}\n", `f.yaml:4: mode "gently": want error or close`},
		{"  - fault: {kind: latency, delay: -1s}\n", "f.yaml:4: delay must be more than 0, not -1s"},
		{"  - fault: {kind: fail-connects, count: -1}\n", "f.yaml:4: count must be a whole number of at least 0, not \"-1\""},
	} {
		_, err := scenario.Parse("f.yaml", []byte(head+tc.step))
		if err == nil || err.Error() != tc.want {
			t.Errorf("%q:\n got %v\nwant %s", tc.step, err, tc.want)
		}
	}
	room := registry.MustName(registry.KindBroadcast, "room", "1", "")
	for _, tc := range []struct {
		step string
		want registry.Fault
	}{
		{"  - fault: {kind: kick, channel: broadcast:room:1}\n", registry.Fault{Kind: registry.FaultKick, Channel: room, Mode: registry.KickError}},
		{"  - fault: {kind: latency, delay: 0s}\n", registry.Fault{Kind: registry.FaultLatency}},
		{"  - fault: {kind: reject-joins, count: 2, for: 1s, reason: busy}\n", registry.Fault{Kind: registry.FaultRejectJoins, Count: 2, Duration: time.Second, Reason: "busy"}},
		// A restart without for: no downtime.
		{"  - fault: {kind: restart}\n", registry.Fault{Kind: registry.FaultRestart}},
	} {
		sc, err := scenario.Parse("f.yaml", []byte(head+tc.step))
		if err != nil {
			t.Fatalf("%q: %v", tc.step, err)
		}
		if st := sc.Steps[2]; st.Kind != scenario.StepFault || st.Fault != tc.want {
			t.Errorf("%q: %+v, want %+v", tc.step, st.Fault, tc.want)
		}
	}
}
