package scenario

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"rtm/registry"
	"rtm/registry/apps"
)

// The parsers of what tests an app behind rtm's proxy: the proxy
// setting, app faults' own settings, exec steps, and the app and exit
// expectations.

// needProxy is the error of an app step in a scenario without proxy.
func (p *parser) needProxy(line int, what string) error {
	return p.errf(line, "%s: add proxy: true to the scenario's settings", what)
}

// proxySetting parses "proxy: true" or "proxy: {listen: ADDR}".
func (p *parser) proxySetting(n *yaml.Node) (*ProxySetting, error) {
	ps := &ProxySetting{Line: n.Line, Listen: "127.0.0.1:0"}
	if n.Kind == yaml.ScalarNode {
		on, err := p.boolean(n, "proxy")
		if err != nil {
			return nil, p.errf(n.Line, "proxy must be true, false or {listen: 127.0.0.1:PORT}, not %s", kindName(n))
		}
		if !on {
			return nil, nil
		}
		return ps, nil
	}
	f, err := p.mapping(n, "proxy", []string{"listen"})
	if err != nil {
		return nil, err
	}
	if l := f["listen"]; l != nil {
		if ps.Listen, err = p.str(l, "listen"); err != nil {
			return nil, err
		}
		host, port, err := net.SplitHostPort(ps.Listen)
		if err != nil {
			return nil, p.errf(l.Line, "listen %q: want HOST:PORT (127.0.0.1:0 for a free port)", ps.Listen)
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return nil, p.errf(l.Line, "listen %q: port %q is not a port number", ps.Listen, port)
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return nil, p.errf(l.Line, "listen %q: the scenario's proxy listens on loopback only (127.0.0.1, ::1 or localhost)", ps.Listen)
		}
	}
	return ps, nil
}

// appSocket parses an app fault's app: all (or true) for every socket,
// N for the proxy's socket N.
func (p *parser) appSocket(n *yaml.Node) (uint64, error) {
	if n.Kind == yaml.ScalarNode {
		switch {
		case n.Value == "all" || n.Tag == "!!bool" && n.Value == "true":
			return 0, nil
		case n.Tag == "!!int":
			if id, err := strconv.ParseUint(n.Value, 10, 64); err == nil && id > 0 {
				return id, nil
			}
		}
	}
	return 0, p.errf(n.Line, "app must be all (every app socket) or a socket number (1 is the first the app opened), not %s", kindName(n))
}

// appFault reads the settings only app faults take: topic, code,
// jitter (CheckSettings has checked which are allowed).
func (p *parser) appFault(flt *registry.Fault, f fields) error {
	var err error
	if n := f[string(registry.SettingTopic)]; n != nil {
		if flt.Topic, err = p.topic(n); err != nil {
			return err
		}
	}
	if n := f[string(registry.SettingCode)]; n != nil {
		if flt.Code, err = p.integer(n, "code", 1000); err != nil {
			return err
		}
	}
	if n := f[string(registry.SettingJitter)]; n != nil {
		if flt.Jitter, err = p.duration(n, "jitter"); err != nil {
			return err
		}
	}
	return nil
}

// topic reads an app channel's topic ("room1" is "realtime:room1").
func (p *parser) topic(n *yaml.Node) (string, error) {
	s, err := p.user(n, "topic")
	if err != nil {
		return "", err
	}
	return registry.AppTopic(s), nil
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// exec parses an exec step; line is the step's line.
func (p *parser) exec(st *Step, f fields, line int) error {
	if p.proxy == nil {
		return p.needProxy(line, "exec runs the app under test behind rtm's proxy (SUPABASE_URL points at it)")
	}
	x := &Exec{Name: fmt.Sprintf("exec-%d", line)}
	var err error
	if n := f["name"]; n != nil {
		if x.Name, err = p.user(n, "name"); err != nil {
			return err
		}
	}
	if _, dup := p.execs[x.Name]; dup {
		ln := line
		if n := f["name"]; n != nil {
			ln = n.Line
		}
		return p.errf(ln, "exec %q is named twice: give each exec its own name:", x.Name)
	}
	c := f["command"]
	switch {
	case c == nil:
		return p.errf(line, "exec needs command: a shell command (node app.mjs) or a list ([node, app.mjs])")
	case c.Kind == yaml.SequenceNode:
		if len(c.Content) == 0 {
			return p.errf(c.Line, "command is an empty list")
		}
		for _, a := range c.Content {
			if a.Kind != yaml.ScalarNode || a.Tag == "!!null" {
				return p.errf(a.Line, "command: each argument must be a text, not %s", kindName(a))
			}
			x.Args = append(x.Args, a.Value)
		}
	default:
		s, err := p.str(c, "command")
		if err != nil {
			return err
		}
		x.Args = []string{"sh", "-c", s}
	}
	if n := f["env"]; n != nil {
		if n.Kind != yaml.MappingNode {
			return p.errf(n.Line, "env must be a mapping of NAME: value, not %s", kindName(n))
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode || !envName.MatchString(k.Value) {
				return p.errf(k.Line, "env: %q is not a variable name (letters, digits and _)", k.Value)
			}
			if seen[k.Value] {
				return p.errf(k.Line, "env: %s given twice", k.Value)
			}
			seen[k.Value] = true
			if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
				return p.errf(v.Line, "env %s must be a text, not %s", k.Value, kindName(v))
			}
			x.Env = append(x.Env, k.Value+"="+v.Value)
		}
	}
	if n := f["dir"]; n != nil {
		if x.Dir, err = p.str(n, "dir"); err != nil {
			return err
		}
	}
	if n := f["timeout"]; n != nil {
		if x.Timeout, err = p.duration(n, "timeout"); err != nil {
			return err
		}
	}
	if n := f["background"]; n != nil {
		if x.Background, err = p.boolean(n, "background"); err != nil {
			return err
		}
	}
	p.execs[x.Name] = x.Background
	st.Exec = x
	st.Client = x.Name
	return nil
}

// appExpectKeys lists the settings of the app and exit expectations.
func appExpectKeys(kind string) []string {
	sel := []string{"topic", "socket"}
	switch kind {
	case ExpectExit:
		return []string{"exec", "code", "within"}
	case ExpectAppStatus:
		return append(sel, "is", "within")
	case ExpectAppAttempts:
		return append(sel, "at_most", "at_least", "exactly", "within", "for")
	case ExpectAppDelays:
		return append(sel, "min", "max", "at_least", "within")
	case ExpectAppPresence:
		return append(sel, "contains", "lacks", "count", "within")
	case ExpectAppMessages:
		return append(sel, "event", "count", "at_least", "within")
	case ExpectAppNoDuplicates:
		return append(sel, "for")
	}
	return nil
}

// appStatuses are the statuses app_status takes.
func appStatuses() []apps.Status {
	return []apps.Status{apps.StatusJoining, apps.StatusJoined, apps.StatusErrored, apps.StatusClosed, apps.StatusLeft}
}

// appExpect parses an app or exit expectation; k is its key, body its
// settings.
func (p *parser) appExpect(st Step, k, body *yaml.Node) (Step, error) {
	if body.Kind == yaml.ScalarNode && body.Tag == "!!null" && st.Expect == ExpectAppNoDuplicates {
		body = &yaml.Node{Kind: yaml.MappingNode, Line: body.Line}
	}
	f, err := p.mapping(body, "expect "+st.Expect, appExpectKeys(st.Expect))
	if err != nil {
		return st, err
	}
	if st.Expect == ExpectExit {
		return st, p.expectExit(&st, f, k.Line)
	}
	if p.proxy == nil {
		return st, p.needProxy(k.Line, "expect "+st.Expect+" looks at the app behind rtm's proxy")
	}
	st.Client = "app"
	if err := p.timing(&st, f); err != nil {
		return st, err
	}
	if n := f["topic"]; n != nil {
		if st.Topic, err = p.topic(n); err != nil {
			return st, err
		}
	}
	if n := f["socket"]; n != nil {
		id, err := p.integer(n, "socket", 1)
		if err != nil {
			return st, err
		}
		st.Socket = uint64(id)
	}
	if st.Topic == "" && st.Expect != ExpectAppDelays && st.Expect != ExpectAppNoDuplicates {
		return st, p.errf(k.Line, "expect %s needs topic (the app's channel: room1 or realtime:room1)", st.Expect)
	}
	switch st.Expect {
	case ExpectAppStatus:
		if f["is"] == nil {
			return st, p.errf(k.Line, "expect app_status needs is: %s", joinStatuses())
		}
		s, err := p.str(f["is"], "is")
		if err != nil {
			return st, err
		}
		for _, a := range appStatuses() {
			if string(a) == s {
				st.AppStatus = a
			}
		}
		if st.AppStatus == "" {
			return st, p.errf(f["is"].Line, "is %q: want %s", s, joinStatuses())
		}
	case ExpectAppAttempts:
		err = p.expectAttempts(&st, f, k.Line)
	case ExpectAppDelays:
		err = p.expectDelays(&st, f, k.Line)
	case ExpectAppPresence:
		err = p.presenceBound(&st, f, k.Line)
	case ExpectAppMessages:
		if f["event"] == nil {
			return st, p.errf(k.Line, "expect app_messages needs event (a broadcast's event, or presence_diff, system, ...)")
		}
		if st.Event, err = p.str(f["event"], "event"); err != nil {
			return st, err
		}
		err = p.countBound(&st, f, k.Line)
	}
	return st, err
}

func joinStatuses() string {
	var ss []string
	for _, s := range appStatuses() {
		ss = append(ss, string(s))
	}
	return strings.Join(ss, ", ")
}

// expectExit parses an exit expectation: a background exec by name.
func (p *parser) expectExit(st *Step, f fields, line int) error {
	n := f["exec"]
	if n == nil {
		return p.errf(line, "expect exit needs exec: the name of a background exec step before it")
	}
	var err error
	if st.ExecName, err = p.user(n, "exec"); err != nil {
		return err
	}
	bg, ok := p.execs[st.ExecName]
	switch {
	case !ok:
		return p.errf(n.Line, "exec %q is not started by an earlier exec step", st.ExecName)
	case !bg:
		return p.errf(n.Line, "exec %q runs in the foreground (its step fails on a non-zero exit): expect exit waits for a background: true exec", st.ExecName)
	}
	st.Client = st.ExecName
	if c := f["code"]; c != nil {
		if st.Code, err = p.integer(c, "code", 0); err != nil {
			return err
		}
		if st.Code > 255 {
			return p.errf(c.Line, "code %d: exit codes are 0 to 255", st.Code)
		}
	}
	return p.timing(st, f)
}

// expectDelays parses app_delays: min and/or max, at_least delays seen
// (default 1).
func (p *parser) expectDelays(st *Step, f fields, line int) error {
	var err error
	if n := f["min"]; n != nil {
		if st.Min, err = p.duration(n, "min"); err != nil {
			return err
		}
	}
	if n := f["max"]; n != nil {
		if st.Max, err = p.duration(n, "max"); err != nil {
			return err
		}
	}
	switch {
	case f["min"] == nil && f["max"] == nil:
		return p.errf(line, "expect app_delays needs min, max or both (durations such as 500ms, 30s)")
	case st.Max > 0 && st.Min > st.Max:
		return p.errf(line, "expect app_delays: min %s is more than max %s", st.Min, st.Max)
	}
	st.AtLeast = 1
	if n := f["at_least"]; n != nil {
		if st.AtLeast, err = p.integer(n, "at_least", 1); err != nil {
			return err
		}
	}
	return nil
}

// countBound parses count or at_least, one of them.
func (p *parser) countBound(st *Step, f fields, line int) error {
	var err error
	if n := f["count"]; n != nil {
		if st.Count, err = p.integer(n, "count", 0); err != nil {
			return err
		}
	}
	if n := f["at_least"]; n != nil {
		if st.AtLeast, err = p.integer(n, "at_least", 0); err != nil {
			return err
		}
	}
	switch {
	case st.Count < 0 && st.AtLeast < 0:
		return p.errf(line, "expect %s needs count or at_least", st.Expect)
	case st.Count >= 0 && st.AtLeast >= 0:
		return p.errf(line, "expect %s: count excludes at_least", st.Expect)
	}
	return nil
}
