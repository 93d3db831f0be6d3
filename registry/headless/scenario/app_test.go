package scenario_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"rtm/registry/headless/scenario"
)

// appHead starts a scenario whose app is rtm's own client connected
// through the scenario's proxy, joined and seen joined.
const appHead = "proxy: true\npolicy: fixed:50ms,max=3\nreconnect_after: 100ms\ncontinue_on_failure: true\nsteps:\n" +
	"  - connect: {client: app, user: carol, proxy: true}\n  - join: {client: app, channel: presence:room:1}\n" +
	"  - expect:\n      app_status: {topic: presence:room:1, is: joined}\n"

// TestAppFailingExpectations: each app expectation fails with a report
// saying what the app did.
func TestAppFailingExpectations(t *testing.T) {
	for _, tc := range []struct {
		name, steps string
		observed    string
	}{
		{"status", "  - expect:\n      app_status: {topic: presence:room:1, is: errored, within: 200ms}\n", "joined on socket 1, 1 joins"},
		{"status-no-topic", "  - expect:\n      app_status: {topic: room9, is: joined, within: 200ms}\n", "socket 1 (open): [realtime:presence:room:1 joined]"},
		{"status-socket", "  - expect:\n      app_status: {topic: presence:room:1, socket: 2, is: joined, within: 200ms}\n", "socket 1 (open)"},
		{"attempts", "  - fault: {app: all, kind: drop}\n  - expect:\n      app_attempts: {topic: presence:room:1, at_most: 0, for: 2s}\n", "1 rejoins (2 joins); now"},
		{"attempts-least", "  - expect:\n      app_attempts: {topic: presence:room:1, exactly: 1, within: 200ms}\n", "0 rejoins (1 joins)"},
		{"delays", "  - fault: {app: all, kind: drop}\n  - expect:\n      app_delays: {topic: presence:room:1, min: 5s, within: 3s}\n", ": retry 1 waited 1"},
		{"delays-none", "  - expect:\n      app_delays: {max: 1s, within: 200ms}\n", "delays []"},
		{"presence", "  - expect:\n      app_presence: {topic: presence:room:1, contains: zed, within: 200ms}\n", "1 present on socket 1: [carol]"},
		// (carol seen first: a lacks checked before the app's presence_state
		// arrived would hold.)
		{"lacks", "  - expect:\n      app_presence: {topic: presence:room:1, contains: carol, within: 5s}\n  - expect:\n      app_presence: {topic: presence:room:1, lacks: carol, within: 200ms}\n", "1 present on socket 1: [carol]"},
		{"messages", "  - broadcast: {client: app, channel: presence:room:1, event: e}\n  - expect:\n      app_messages: {topic: presence:room:1, event: e, count: 1, within: 300ms}\n", "0 messages"},
		{"fault-no-socket", "  - fault: {app: 7, kind: drop}\n", "no such socket"},
		// An app that could not start: the failure says so.
		{"app-died", "  - exec: {name: app, command: 'echo \"sh: 1: node: not found\" >&2; exit 127', background: true}\n  - expect:\n      exit: {exec: app, code: 127}\n" +
			"  - expect:\n      app_attempts: {topic: room2, at_least: 1, within: 200ms}\n", "0 rejoins (0 joins); app exited with code 127 after "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc, err := scenario.Parse(tc.name+".yaml", []byte(appHead+tc.steps))
			if err != nil {
				t.Fatal(err)
			}
			rep := run(t, sc)
			f := rep.FirstFailure
			if rep.OK || f == nil || rep.Failed != 1 {
				t.Fatalf("want one failure: %+v", rep)
			}
			last := sc.Steps[len(sc.Steps)-1]
			if f.Line != last.Line || !strings.Contains(f.Observed+f.Reason, tc.observed) {
				t.Fatalf("failure %+v: want line %d, observed containing %q", f, last.Line, tc.observed)
			}
			if strings.HasPrefix(f.Step, "expect ") && !strings.Contains(f.Reason, "expected "+f.Expected) {
				t.Fatalf("reason %q does not say what was expected", f.Reason)
			}
			if rep.Proxy == "" || !strings.HasPrefix(rep.Proxy, "http://127.0.0.1:") {
				t.Fatalf("report proxy %q", rep.Proxy)
			}
		})
	}
}

// TestExecSteps: a foreground exec that fails fails its step with the
// end of its output; the output in the report is bounded and masked;
// a time limit kills the process group; a background exec still running
// at the end is stopped, and expect exit checks its code.
func TestExecSteps(t *testing.T) {
	src := "proxy: true\ncontinue_on_failure: true\nsteps:\n" +
		// 4: fails, with its output quoted
		"  - exec: {name: fails, command: 'echo starting; echo \"broken: $REASON\" >&2; exit 3', env: {REASON: on purpose}}\n" +
		// 5: prints the key rtm gave it, and more than the report keeps
		"  - exec: {name: loud, command: 'echo \"key=$SUPABASE_ANON_KEY url=$NEXT_PUBLIC_SUPABASE_URL\"; yes \"a b\" | head -c 100000; echo \"again $EXPO_PUBLIC_SUPABASE_ANON_KEY\"'}\n" +
		// 6: killed at its time limit, with what it started
		"  - exec: {name: slow, command: 'sleep 30 & sleep 30', timeout: 300ms}\n" +
		// 7-9: background, exits 5: expect exit 0 fails, the report has 5
		"  - exec: {name: five, command: [sh, -c, 'sleep 0.1; exit 5'], background: true}\n" +
		"  - expect:\n      exit: {exec: five, code: 0, within: 5s}\n" +
		// 10-12: background, never exits: expect exit fails, the run stops it
		"  - exec: {name: forever, command: [sleep, '60'], background: true}\n" +
		"  - expect:\n      exit: {exec: forever, within: 200ms}\n" +
		// 13: a program that does not exist
		"  - exec: {name: missing, command: [rtm-no-such-program]}\n"
	sc, err := scenario.Parse("exec.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	rep := run(t, sc)
	if rep.OK || rep.Failed != 5 || rep.Passed != 3 {
		t.Fatalf("want 5 failures and 3 passes: %+v", rep)
	}
	byLine := map[int]scenario.StepResult{}
	for _, s := range rep.Steps {
		byLine[s.Line] = s
	}
	for line, want := range map[int]string{
		4:  "fails exited with code 3 after ",
		6:  "(stopped by rtm: timeout)",
		8:  "expected five exits with code 0 within 5s; observed five exited with code 5",
		11: "observed forever still running after",
		13: "exec missing: exec: \"rtm-no-such-program\": executable file not found",
	} {
		if s := byLine[line]; s.Result != scenario.Failed || !strings.Contains(s.Reason, want) {
			t.Errorf("line %d: %+v, want a failure saying %q", line, s, want)
		}
	}
	if r := byLine[4].Reason; !strings.Contains(r, "its output ends with:\nstarting\nbroken: on purpose") {
		t.Errorf("the failure does not quote the output: %q", r)
	}
	execs := map[string]scenario.ExecResult{}
	for _, x := range rep.Execs {
		execs[x.Name] = x
	}
	if len(rep.Execs) != 6 {
		t.Fatalf("execs %+v", rep.Execs)
	}
	loud := execs["loud"]
	if loud.ExitCode != 0 || loud.OutputBytes < 100000 || len(loud.Output) > scenario.MaxExecOutput || len(loud.Output) < scenario.MaxExecOutput-1024 ||
		!strings.Contains(loud.Output, "again eyJh…") {
		t.Errorf("loud: code %d, %d bytes, %d kept, ends %q", loud.ExitCode, loud.OutputBytes, len(loud.Output), loud.Output[max(0, len(loud.Output)-80):])
	}
	if s := execs["slow"]; s.Stopped != "timeout" || s.ExitCode != -1 || s.Signal == "" || s.DurationMS > 5000 {
		t.Errorf("slow %+v", s)
	}
	if s := execs["five"]; s.ExitCode != 5 || s.Stopped != "" || !s.Background {
		t.Errorf("five %+v", s)
	}
	if s := execs["forever"]; s.Stopped != "end of run" || s.ExitCode != -1 {
		t.Errorf("forever %+v", s)
	}
	if s := execs["missing"]; s.Error == "" || s.ExitCode != -1 {
		t.Errorf("missing %+v", s)
	}
	b, _ := json.Marshal(rep)
	if k := regexp.MustCompile(`eyJ[A-Za-z0-9_-]{16,}`).Find(b); k != nil {
		t.Errorf("the report holds a token: %s…", k[:20])
	}
}

// TestAppParse: app faults, exec steps and app expectations parse into
// their settings; their errors name the line of the setting at fault.
func TestAppParse(t *testing.T) {
	head := "proxy: {listen: '127.0.0.1:0'}\nsteps:\n"
	for _, tc := range []struct {
		step string
		want func(scenario.Step) bool
	}{
		{"  - fault: {app: 3, kind: close, code: 4000, reason: bye}\n", func(s scenario.Step) bool {
			f := s.Fault
			return f.App && f.Socket == 3 && f.Code == 4000 && f.Reason == "bye" && f.String() == "app 3 close 4000 bye"
		}},
		{"  - fault: {app: all, kind: reject-joins, topic: room1, count: 2}\n", func(s scenario.Step) bool {
			return s.Fault.App && s.Fault.Socket == 0 && s.Fault.Topic == "realtime:room1" && s.Fault.Count == 2
		}},
		{"  - fault: {app: true, kind: latency, delay: 10ms, jitter: 5ms}\n", func(s scenario.Step) bool {
			return s.Fault.Delay.Milliseconds() == 10 && s.Fault.Jitter.Milliseconds() == 5
		}},
		{"  - exec: {command: node app.mjs, env: {B: 2, A: x}, dir: ../realtimejs, timeout: 3s}\n", func(s scenario.Step) bool {
			x := s.Exec
			return x.Name == "exec-3" && strings.Join(x.Args, "|") == "sh|-c|node app.mjs" && strings.Join(x.Env, "|") == "B=2|A=x" &&
				x.Dir == "../realtimejs" && x.Timeout.Seconds() == 3 && !x.Background
		}},
		{"  - exec: {name: app, command: [node, app.mjs], background: true}\n", func(s scenario.Step) bool {
			return s.Exec.Name == "app" && strings.Join(s.Exec.Args, "|") == "node|app.mjs" && s.Exec.Background
		}},
		{"  - expect:\n      app_status: {topic: room1, socket: 2, is: left}\n", func(s scenario.Step) bool {
			return s.Topic == "realtime:room1" && s.Socket == 2 && s.AppStatus == "left" && s.Within.Seconds() == 5
		}},
		{"  - expect:\n      app_delays: {max: 2s}\n", func(s scenario.Step) bool { return s.Max.Seconds() == 2 && s.AtLeast == 1 && s.Topic == "" }},
		{"  - expect:\n      app_no_duplicates:\n", func(s scenario.Step) bool { return s.Expect == scenario.ExpectAppNoDuplicates }},
	} {
		sc, err := scenario.Parse("a.yaml", []byte(head+tc.step))
		if err != nil {
			t.Errorf("%q: %v", tc.step, err)
			continue
		}
		if sc.Proxy == nil || sc.Proxy.Listen != "127.0.0.1:0" || !tc.want(sc.Steps[0]) {
			t.Errorf("%q: %+v %+v", tc.step, sc.Proxy, sc.Steps[0])
		}
	}
	for _, tc := range []struct{ step, want string }{
		{"  - fault:\n      kind: latency\n      app: 2\n      delay: 1s\n", "a.yaml:5: fault latency takes no socket (it takes delay, jitter, app)"},
		{"  - fault: {app: all, kind: kick}\n", "a.yaml:3: fault kick needs topic"},
		{"  - fault: {app: all, kind: close, code: 1005}\n", "a.yaml:3: fault close: code 1005 is not one an app may be sent (1000, 1001, 1008, 1011-1014 or 3000-4999)"},
		{"  - fault: {app: all, kind: drop, socket: 2}\n", `a.yaml:3: unknown key "socket" in fault`},
		{"  - exec: {name: x}\n", "a.yaml:3: exec needs command: a shell command (node app.mjs) or a list ([node, app.mjs])"},
		{"  - exec: {command: []}\n", "a.yaml:3: command is an empty list"},
		{"  - expect:\n      app_status: {is: joined}\n", "a.yaml:4: expect app_status needs topic (the app's channel: room1 or realtime:room1)"},
		{"  - expect:\n      app_delays: {topic: r, min: 2s, max: 1s}\n", "a.yaml:4: expect app_delays: min 2s is more than max 1s"},
		{"  - expect:\n      app_messages: {topic: r, count: 1}\n", "a.yaml:4: expect app_messages needs event (a broadcast's event, or presence_diff, system, ...)"},
		{"  - expect:\n      app_messages: {topic: r, event: e}\n", "a.yaml:4: expect app_messages needs count or at_least"},
		{"  - expect:\n      app_attempts: {topic: r}\n", "a.yaml:4: expect app_attempts needs at_most, at_least or exactly"},
		{"  - expect:\n      app_presence: {topic: r, contains: a, count: 1}\n", "a.yaml:4: expect app_presence needs exactly one of contains, lacks or count"},
		{"  - expect:\n      exit: {code: 0}\n", "a.yaml:4: expect exit needs exec: the name of a background exec step before it"},
	} {
		_, err := scenario.Parse("a.yaml", []byte(head+tc.step))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant %s", tc.step, err, tc.want)
		}
	}
	if sc, err := scenario.Parse("a.yaml", []byte("proxy: false\nsteps:\n  - connect:\n")); err != nil || sc.Proxy != nil {
		t.Errorf("proxy: false: %v %+v", err, sc)
	}
}
