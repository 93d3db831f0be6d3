package scenario

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"rtm/registry"
	"rtm/registry/headless"
)

// fields are a step's settings by key.
type fields = map[string]*yaml.Node

// stepKeys lists the settings a step of kind takes (wait and expect
// have their own parsers).
func stepKeys(kind string) []string {
	switch kind {
	case StepConnect:
		return []string{"client", "user", "role", "policy", "timeout", "proxy"}
	case StepJoin:
		return []string{"client", "channel", "track", "presence_key", "private", "self", "ack"}
	case StepLeave, StepUntrack:
		return []string{"client", "channel"}
	case StepTrack:
		return []string{"client", "channel", "user", "name", "payload"}
	case StepBroadcast:
		return []string{"client", "channel", "event", "payload", "count", "interval"}
	case StepFault:
		keys := []string{"client", "kind"}
		for _, s := range registry.FaultSettings() {
			// An app fault names its socket with app: N.
			if s != registry.SettingSocket {
				keys = append(keys, string(s))
			}
		}
		return keys
	case StepExec:
		return []string{"name", "command", "env", "dir", "timeout", "background"}
	case StepRefreshToken:
		return []string{"client"}
	}
	return nil
}

// step parses one step; clients are the clients connected so far.
func (p *parser) step(n *yaml.Node, clients map[string]bool) (Step, error) {
	if n.Kind != yaml.MappingNode || len(n.Content) != 2 {
		if n.Kind == yaml.MappingNode && len(n.Content) > 2 {
			return Step{}, p.errf(n.Content[2].Line, "a step has one kind (%s); %q and %q are two steps: put each on its own \"- \" line", strings.Join(StepKinds(), ", "), n.Content[0].Value, n.Content[2].Value)
		}
		return Step{}, p.errf(n.Line, "a step must be one of %s followed by its settings, not %s", strings.Join(StepKinds(), ", "), kindName(n))
	}
	k, v := n.Content[0], n.Content[1]
	st := Step{Line: k.Line, Kind: k.Value, Count: -1, AtMost: -1, AtLeast: -1, Exactly: -1}
	if out, err := yaml.Marshal(&yaml.Node{Kind: yaml.MappingNode, Content: n.Content, Style: yaml.FlowStyle}); err == nil {
		st.Text = strings.TrimSpace(string(out))
	}
	if !slices.Contains(StepKinds(), st.Kind) {
		return st, p.errf(k.Line, "unknown step %q (want %s)", st.Kind, strings.Join(StepKinds(), ", "))
	}
	switch st.Kind {
	case StepWait:
		return st, p.wait(&st, v)
	case StepExpect:
		return p.expect(st, v, clients)
	}
	if v.Kind == yaml.ScalarNode && v.Tag == "!!null" && (st.Kind == StepConnect || st.Kind == StepRefreshToken) {
		// "- connect:" alone: the target's own identity.
		v = &yaml.Node{Kind: yaml.MappingNode, Line: v.Line}
	}
	f, err := p.mapping(v, st.Kind, stepKeys(st.Kind))
	if err != nil {
		return st, err
	}
	switch {
	case st.Kind == StepExec:
		return st, p.exec(&st, f, k.Line)
	case st.Kind == StepFault && f[string(registry.SettingApp)] != nil:
		// An app fault acts on the app behind the proxy, not on a client.
		if n := f["client"]; n != nil {
			return st, p.errf(n.Line, "an app fault acts on the app behind rtm's proxy, not on a client: remove client:")
		}
		st.Client = "app"
		return st, p.fault(&st, f, v.Line)
	}
	if err := p.common(&st, f, clients, v.Line); err != nil {
		return st, err
	}
	switch st.Kind {
	case StepJoin, StepLeave, StepTrack, StepUntrack, StepBroadcast:
		if f["channel"] == nil {
			return st, p.errf(v.Line, "%s needs channel", st.Kind)
		}
	}
	switch st.Kind {
	case StepConnect:
		err = p.connect(&st, f, k.Line, clients)
	case StepJoin:
		err = p.join(&st, f)
	case StepTrack:
		err = p.track(&st, f)
	case StepBroadcast:
		err = p.broadcast(&st, f, v.Line)
	case StepFault:
		err = p.fault(&st, f, v.Line)
	}
	return st, err
}

// common reads client and channel, and checks the client exists.
func (p *parser) common(st *Step, f fields, clients map[string]bool, line int) error {
	var err error
	if n := f["client"]; n != nil {
		if st.Client, err = p.user(n, "client"); err != nil {
			return err
		}
	}
	if n := f["channel"]; n != nil {
		if st.Channel, err = p.channel(n); err != nil {
			return err
		}
	}
	if st.Kind == StepConnect {
		return nil
	}
	if len(clients) == 0 {
		return p.errf(line, "%s before any connect step: start with - connect: {user: alice} (or role: anon)", st.Kind)
	}
	if st.Client == "" {
		if len(clients) > 1 {
			names := make([]string, 0, len(clients))
			for c := range clients {
				names = append(names, c)
			}
			slices.Sort(names)
			return p.errf(line, "%s: several clients are connected (%s): say which with client:", st.Kind, strings.Join(names, ", "))
		}
		for c := range clients {
			st.Client = c
		}
	}
	if !clients[st.Client] {
		ln := line
		if n := f["client"]; n != nil {
			ln = n.Line
		}
		return p.errf(ln, "client %q is not connected by an earlier step", st.Client)
	}
	return nil
}

// wait parses "wait: 2s" or "wait: {for: 2s}".
func (p *parser) wait(st *Step, v *yaml.Node) error {
	var err error
	if v.Kind == yaml.ScalarNode {
		st.For, err = p.duration(v, "wait")
		return err
	}
	f, err := p.mapping(v, "wait", []string{"for"})
	if err != nil {
		return err
	}
	if f["for"] == nil {
		return p.errf(v.Line, "wait needs for: a duration (or write wait: 2s)")
	}
	st.For, err = p.duration(f["for"], "for")
	return err
}

// connect parses a connect step; line is the step's line.
func (p *parser) connect(st *Step, f fields, line int, clients map[string]bool) error {
	var err error
	if n := f["user"]; n != nil {
		if st.User, err = p.user(n, "user"); err != nil {
			return err
		}
	}
	if n := f["role"]; n != nil {
		if st.Role, err = p.str(n, "role"); err != nil {
			return err
		}
		if !slices.Contains(headless.Roles(), st.Role) {
			return p.errf(n.Line, "role %q: want %s", st.Role, strings.Join(headless.Roles(), ", "))
		}
		if st.User != "" {
			return p.errf(n.Line, "connect takes user or role, not both (a user's token has role authenticated)")
		}
	}
	if n := f["policy"]; n != nil {
		if st.Policy, _, err = p.policy(n); err != nil {
			return err
		}
	}
	if n := f["timeout"]; n != nil {
		if st.Timeout, err = p.duration(n, "timeout"); err != nil {
			return err
		}
	}
	if n := f["proxy"]; n != nil {
		if st.ViaProxy, err = p.boolean(n, "proxy"); err != nil {
			return err
		}
		if st.ViaProxy && p.proxy == nil {
			return p.errf(n.Line, "connect through rtm's proxy needs the proxy: add proxy: true to the scenario's settings")
		}
	}
	if f["client"] == nil {
		st.Client = firstNonEmpty(st.User, st.Role, "main")
	}
	if clients[st.Client] {
		return p.errf(line, "client %q is already connected (name another one with client:)", st.Client)
	}
	clients[st.Client] = true
	return nil
}

// join parses a join step's options.
func (p *parser) join(st *Step, f fields) error {
	var err error
	if n := f["track"]; n != nil {
		b, err := p.boolean(n, "track")
		if err != nil {
			return err
		}
		st.Track = &b
	}
	if n := f["presence_key"]; n != nil {
		if st.PresenceKey, err = p.user(n, "presence_key"); err != nil {
			return err
		}
	}
	for _, b := range []struct {
		key string
		dst *bool
	}{{"private", &st.Private}, {"self", &st.Self}, {"ack", &st.Ack}} {
		if n := f[b.key]; n != nil {
			if *b.dst, err = p.boolean(n, b.key); err != nil {
				return err
			}
		}
	}
	return nil
}

// track parses a track step.
func (p *parser) track(st *Step, f fields) error {
	if st.Channel.Kind != registry.KindPresence {
		return p.errf(f["channel"].Line, "track needs a presence channel (presence:...), not %s", st.Channel)
	}
	var err error
	if n := f["user"]; n != nil {
		if st.User, err = p.user(n, "user"); err != nil {
			return err
		}
	}
	if n := f["name"]; n != nil {
		if st.UserName, err = p.str(n, "name"); err != nil {
			return err
		}
	}
	if n := f["payload"]; n != nil {
		if st.Payload, err = p.object(n, "payload"); err != nil {
			return err
		}
	}
	return nil
}

// broadcast parses a broadcast step; line is the line of its settings.
func (p *parser) broadcast(st *Step, f fields, line int) error {
	if f["event"] == nil {
		return p.errf(line, "broadcast needs event")
	}
	var err error
	if st.Event, err = p.str(f["event"], "event"); err != nil {
		return err
	}
	st.Payload = json.RawMessage("{}")
	if n := f["payload"]; n != nil {
		if st.Payload, err = p.object(n, "payload"); err != nil {
			return err
		}
	}
	st.Count = 1
	if n := f["count"]; n != nil {
		if st.Count, err = p.integer(n, "count", 1); err != nil {
			return err
		}
		if st.Count > 100000 {
			return p.errf(n.Line, "count %d: at most 100000 broadcasts per step", st.Count)
		}
	}
	if n := f["interval"]; n != nil {
		if st.Interval, err = p.duration(n, "interval"); err != nil {
			return err
		}
	}
	return nil
}

// fault parses a fault step into st.Fault: its kind, then the settings
// the kind takes and needs (the table of registry.FaultKind.CheckSettings),
// then their values. line is the line of its settings.
func (p *parser) fault(st *Step, f fields, line int) error {
	if f["kind"] == nil {
		return p.errf(line, "fault needs kind: one of %s", strings.Join(registry.FaultKindNames(), ", "))
	}
	name, err := p.str(f["kind"], "kind")
	if err != nil {
		return err
	}
	kind, err := registry.ParseFaultKind(name)
	if err != nil {
		return p.errf(f["kind"].Line, "%v", err)
	}
	flt := registry.Fault{Kind: kind}
	appNode := f[string(registry.SettingApp)]
	if appNode != nil {
		if p.proxy == nil {
			return p.errf(appNode.Line, "app faults act on the app behind rtm's proxy: add proxy: true to the scenario's settings")
		}
		flt.App = true
		if flt.Socket, err = p.appSocket(appNode); err != nil {
			return err
		}
	}
	given := func(s registry.FaultSetting) bool {
		if s == registry.SettingSocket {
			return flt.Socket != 0
		}
		return f[string(s)] != nil
	}
	if err := kind.CheckSettings(given); err != nil {
		ln := line
		var se *registry.FaultSettingError
		if errors.As(err, &se) && !se.Missing {
			if se.Setting == registry.SettingSocket {
				ln = appNode.Line
			} else {
				ln = f[string(se.Setting)].Line
			}
		}
		return p.errf(ln, "%v", err)
	}
	if f["channel"] != nil {
		flt.Channel = st.Channel
	}
	if n := f["for"]; n != nil {
		if flt.Duration, err = p.duration(n, "for"); err != nil {
			return err
		}
	}
	if n := f["delay"]; n != nil {
		// A latency of 0 removes it.
		if !(n.Kind == yaml.ScalarNode && (n.Value == "0" || n.Value == "0s")) {
			if flt.Delay, err = p.duration(n, "delay"); err != nil {
				return err
			}
		}
	}
	if n := f["count"]; n != nil {
		if flt.Count, err = p.integer(n, "count", 0); err != nil {
			return err
		}
	}
	if kind == registry.FaultKick {
		flt.Mode = registry.KickError
	}
	if n := f["mode"]; n != nil {
		s, err := p.str(n, "mode")
		if err != nil {
			return err
		}
		if flt.Mode, err = registry.ParseKickMode(s); err != nil {
			return p.errf(n.Line, "mode %q: want error or close", s)
		}
	}
	if n := f["reason"]; n != nil {
		if flt.Reason, err = p.str(n, "reason"); err != nil {
			return err
		}
	}
	if err := p.appFault(&flt, f); err != nil {
		return err
	}
	if err := flt.Validate(); err != nil {
		return p.errf(line, "%v", err)
	}
	st.Fault = flt
	return nil
}
