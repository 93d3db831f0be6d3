package scenario

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"rtm/registry"
	"rtm/registry/headless"
)

// MaxSize bounds a scenario file.
const MaxSize = 1 << 20

// Scenario is a parsed scenario file.
type Scenario struct {
	// File names the file ("" when parsed from a string).
	File string
	// Name and Description describe it (Name defaults to the file name).
	Name, Description string
	// Timeout bounds the whole run (default 2 minutes).
	Timeout time.Duration
	// Policy is the clients' default retry policy (nil: the registry's
	// default, fixed 3 s, 5 attempts); PolicySpec its text.
	Policy     registry.Policy
	PolicySpec string
	// ReconnectAfter is the socket reconnect delay of every client (0:
	// the client's ladder 1, 2, 5, 10 s); Heartbeat the heartbeat period
	// (0: 25 s); PushTimeout the join and push timeout (0: 10 s).
	ReconnectAfter, Heartbeat, PushTimeout time.Duration
	// ContinueOnFailure runs the remaining steps after a failure.
	ContinueOnFailure bool
	// Steps are the steps in order.
	Steps []Step
}

// The step kinds.
const (
	StepConnect      = "connect"
	StepJoin         = "join"
	StepLeave        = "leave"
	StepTrack        = "track"
	StepUntrack      = "untrack"
	StepBroadcast    = "broadcast"
	StepFault        = "fault"
	StepWait         = "wait"
	StepRefreshToken = "refresh_token"
	StepExpect       = "expect"
)

// The expectation kinds.
const (
	ExpectStatus   = "status"
	ExpectAttempts = "attempts"
	ExpectPresence = "presence"
	ExpectMessages = "messages"
	ExpectError    = "error"
	ExpectNoError  = "no_error"
)

// The faults.
const (
	FaultDrop         = "drop"
	FaultFreeze       = "freeze"
	FaultLatency      = "latency"
	FaultFailConnects = "fail-connects"
	FaultKick         = "kick"
	FaultRejectJoins  = "reject-joins"
	FaultExpireToken  = "expire-token"
	FaultChannelError = "channel-error"
	FaultDropAll      = "drop-all"
	FaultRestart      = "restart"
)

// StepKinds, ExpectKinds and FaultKinds list the names a scenario may
// use.
func StepKinds() []string {
	return []string{StepConnect, StepJoin, StepLeave, StepTrack, StepUntrack, StepBroadcast, StepFault, StepWait, StepRefreshToken, StepExpect}
}

// ExpectKinds lists the expectations.
func ExpectKinds() []string {
	return []string{ExpectStatus, ExpectAttempts, ExpectPresence, ExpectMessages, ExpectError, ExpectNoError}
}

// FaultKinds lists the faults.
func FaultKinds() []string {
	return []string{FaultDrop, FaultFreeze, FaultLatency, FaultFailConnects, FaultKick, FaultRejectJoins, FaultExpireToken, FaultChannelError, FaultDropAll, FaultRestart}
}

// Step is one step. Kind says which fields apply (see the README's
// scenario reference).
type Step struct {
	// Line is the step's line in the file; Text the step as written
	// (one line) for reports.
	Line int
	Text string
	// Kind is one of StepKinds; Expect one of ExpectKinds (Kind expect);
	// Fault one of FaultKinds (Kind fault).
	Kind, Expect, Fault string
	// Client names the client the step acts on or looks at.
	Client string
	// Channel is the channel (join, leave, track, untrack, broadcast,
	// kick, channel-error, expectations about a channel).
	Channel registry.Name
	// User and Role are the identity of connect; User also the user of
	// track and of presence expectations' Contains/Lacks.
	User, Role string
	// UserName and Payload complete a track; Payload is also a
	// broadcast's payload (a JSON object).
	UserName string
	Payload  json.RawMessage
	// Policy overrides the retry policy (connect).
	Policy registry.Policy
	// Join options.
	Track                *bool
	PresenceKey          string
	Private, Self, Ack   bool
	Event                string
	Count                int // broadcast count; fault count; messages count (-1: unset)
	Interval             time.Duration
	For, Within, Timeout time.Duration
	// Delay is a latency fault's delay.
	Delay time.Duration
	// Mode is a kick's mode; Reason a reject-joins reason, or the
	// reason an error expectation looks for.
	Mode   registry.KickMode
	Reason string
	// Status is the status expected.
	Status registry.Status
	// AtMost, AtLeast and Exactly bound attempts or messages (-1:
	// unset).
	AtMost, AtLeast, Exactly int
	// Contains and Lacks name a user expected present or absent; Count
	// (>= 0) a number of users present.
	Contains, Lacks string
	// Payloads are the expected messages' payloads in order (each a
	// subset of the payload received); OrderBy a payload member whose
	// values must increase.
	Payloads [][]byte
	OrderBy  string
	// MessageKind filters messages (default broadcast).
	MessageKind registry.MessageKind
	// Since is "start" (default) or "last_step" for error expectations.
	Since string
}

// Parse parses a scenario. Errors are *headless.LineError values naming
// the line and the reason (they wrap headless.ErrInvalid). It never
// panics.
func Parse(file string, data []byte) (*Scenario, error) {
	p := &parser{file: file}
	sc, err := p.parse(data)
	if err != nil {
		return nil, err
	}
	return sc, nil
}

type parser struct {
	file string
}

func (p *parser) errf(line int, format string, args ...any) error {
	if line < 1 {
		line = 1
	}
	return &headless.LineError{File: p.file, Line: line, Reason: fmt.Sprintf(format, args...)}
}

var yamlLine = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

func (p *parser) parse(data []byte) (*Scenario, error) {
	if len(data) > MaxSize {
		return nil, p.errf(1, "the file is larger than %d bytes", MaxSize)
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil, p.errf(1, "the scenario is empty: it needs steps")
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line, msg := yamlError(err)
		return nil, p.errf(max(line, problemLine(data, msg)), "YAML syntax: %s", msg)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, p.errf(1, "the scenario is empty: it needs steps")
	}
	root := doc.Content[0]
	if err := p.noAliases(root, 0); err != nil {
		return nil, err
	}
	top, err := p.mapping(root, "the scenario", []string{"name", "description", "timeout", "policy", "reconnect_after", "heartbeat", "push_timeout", "continue_on_failure", "steps"})
	if err != nil {
		return nil, err
	}
	sc := &Scenario{File: p.file, Timeout: 2 * time.Minute}
	if n := top["name"]; n != nil {
		if sc.Name, err = p.str(n, "name"); err != nil {
			return nil, err
		}
	}
	if n := top["description"]; n != nil {
		if sc.Description, err = p.str(n, "description"); err != nil {
			return nil, err
		}
	}
	if n := top["timeout"]; n != nil {
		if sc.Timeout, err = p.duration(n, "timeout"); err != nil {
			return nil, err
		}
	}
	if n := top["policy"]; n != nil {
		if sc.Policy, sc.PolicySpec, err = p.policy(n); err != nil {
			return nil, err
		}
	}
	for _, d := range []struct {
		key string
		dst *time.Duration
	}{{"reconnect_after", &sc.ReconnectAfter}, {"heartbeat", &sc.Heartbeat}, {"push_timeout", &sc.PushTimeout}} {
		key, dst := d.key, d.dst
		if n := top[key]; n != nil {
			if *dst, err = p.duration(n, key); err != nil {
				return nil, err
			}
		}
	}
	if n := top["continue_on_failure"]; n != nil {
		if sc.ContinueOnFailure, err = p.boolean(n, "continue_on_failure"); err != nil {
			return nil, err
		}
	}
	steps := top["steps"]
	if steps == nil {
		return nil, p.errf(root.Line, "the scenario has no steps: add steps: with a list of steps")
	}
	if steps.Kind != yaml.SequenceNode {
		return nil, p.errf(steps.Line, "steps must be a list (- connect: ..., - join: ...), not %s", kindName(steps))
	}
	if len(steps.Content) == 0 {
		return nil, p.errf(steps.Line, "steps is empty")
	}
	clients := map[string]bool{}
	for _, n := range steps.Content {
		st, err := p.step(n, clients)
		if err != nil {
			return nil, err
		}
		sc.Steps = append(sc.Steps, st)
	}
	if sc.Name == "" {
		sc.Name = p.file
	}
	return sc, nil
}

// yamlError splits a YAML library error into its line and message.
func yamlError(err error) (int, string) {
	msg := err.Error()
	line := 1
	if m := yamlLine.FindStringSubmatch(strings.SplitN(msg, "\n", 2)[0]); m != nil {
		if m[1] != "" {
			line, _ = strconv.Atoi(m[1])
		}
		msg = m[2]
	}
	return line, msg
}

// problemLine finds the line of a YAML syntax error: the YAML library
// names the line where the construct that fails began (a list, a flow
// mapping), not the line that breaks it. The first prefix of the file
// that fails with the same message ends at the line at fault. 0 when
// not found (or the file is too long to search).
func problemLine(data []byte, msg string) int {
	lines := strings.SplitAfter(string(data), "\n")
	if len(lines) > 2000 {
		return 0
	}
	var prefix strings.Builder
	for i, l := range lines {
		prefix.WriteString(l)
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(prefix.String()), &n); err != nil {
			if _, m := yamlError(err); m == msg {
				return i + 1
			}
		}
	}
	return 0
}

func (p *parser) noAliases(n *yaml.Node, depth int) error {
	if depth > 64 {
		return p.errf(n.Line, "nested more than 64 levels deep")
	}
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		return p.errf(n.Line, "anchors and aliases (& and *) are not supported in scenarios")
	}
	for _, c := range n.Content {
		if err := p.noAliases(c, depth+1); err != nil {
			return err
		}
	}
	return nil
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "empty"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

// mapping checks that n is a mapping with only allowed keys, no key
// twice, and returns the values by key.
func (p *parser) mapping(n *yaml.Node, what string, allowed []string) (map[string]*yaml.Node, error) {
	if n.Kind != yaml.MappingNode {
		return nil, p.errf(n.Line, "%s must be a mapping (key: value lines), not %s", what, kindName(n))
	}
	out := map[string]*yaml.Node{}
	lines := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, p.errf(k.Line, "%s: keys must be words", what)
		}
		if !slices.Contains(allowed, k.Value) {
			return nil, p.errf(k.Line, "unknown key %q in %s (want %s)", k.Value, what, strings.Join(allowed, ", "))
		}
		if l, dup := lines[k.Value]; dup {
			return nil, p.errf(k.Line, "%s: key %q given twice (first at line %d)", what, k.Value, l)
		}
		lines[k.Value] = k.Line
		out[k.Value] = v
	}
	return out, nil
}

func (p *parser) str(n *yaml.Node, key string) (string, error) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return "", p.errf(n.Line, "%s must be a text, not %s", key, kindName(n))
	}
	if n.Value == "" {
		return "", p.errf(n.Line, "%s is empty", key)
	}
	return n.Value, nil
}

func (p *parser) boolean(n *yaml.Node, key string) (bool, error) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
		var b bool
		if err := n.Decode(&b); err == nil {
			return b, nil
		}
	}
	return false, p.errf(n.Line, "%s must be true or false, not %s", key, kindName(n))
}

func (p *parser) integer(n *yaml.Node, key string, least int) (int, error) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" {
		v, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
		if err == nil && v >= int64(least) && v <= math.MaxInt32 {
			return int(v), nil
		}
	}
	return 0, p.errf(n.Line, "%s must be a whole number of at least %d, not %s", key, least, kindName(n))
}

func (p *parser) duration(n *yaml.Node, key string) (time.Duration, error) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return 0, p.errf(n.Line, "%s must be a duration such as 500ms, 2s or 1m, not %s", key, kindName(n))
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		return 0, p.errf(n.Line, "%s: %q is not a duration (write 500ms, 2s, 1m)", key, n.Value)
	}
	if d <= 0 {
		return 0, p.errf(n.Line, "%s must be more than 0, not %s", key, n.Value)
	}
	if d > 24*time.Hour {
		return 0, p.errf(n.Line, "%s %s is longer than a day", key, n.Value)
	}
	return d, nil
}

func (p *parser) policy(n *yaml.Node) (registry.Policy, string, error) {
	s, err := p.str(n, "policy")
	if err != nil {
		return nil, "", err
	}
	pol, err := registry.ParsePolicy(s)
	if err != nil {
		return nil, "", p.errf(n.Line, "policy %q: %v", s, err)
	}
	return pol, s, nil
}

func (p *parser) channel(n *yaml.Node) (registry.Name, error) {
	s, err := p.str(n, "channel")
	if err != nil {
		return registry.Name{}, err
	}
	name, err := registry.ParseName(s)
	if err != nil {
		return registry.Name{}, p.errf(n.Line, "channel %q: %v", s, err)
	}
	return name, nil
}

func (p *parser) user(n *yaml.Node, key string) (string, error) {
	s, err := p.str(n, key)
	if err != nil {
		return "", err
	}
	if strings.ContainsAny(s, "\r\n\t") || len(s) > 255 {
		return "", p.errf(n.Line, "%s %q must be one line of at most 255 bytes", key, s)
	}
	return s, nil
}

// object converts a YAML mapping to a JSON object.
func (p *parser) object(n *yaml.Node, key string) (json.RawMessage, error) {
	if n.Kind != yaml.MappingNode {
		return nil, p.errf(n.Line, "%s must be a mapping (a JSON object), not %s", key, kindName(n))
	}
	v, err := p.toJSON(n, key)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, p.errf(n.Line, "%s: %v", key, err)
	}
	return b, nil
}

func (p *parser) toJSON(n *yaml.Node, key string) (any, error) {
	switch n.Kind {
	case yaml.MappingNode:
		out := make(map[string]any, len(n.Content)/2)
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode {
				return nil, p.errf(k.Line, "%s: keys must be texts", key)
			}
			if seen[k.Value] {
				return nil, p.errf(k.Line, "%s: key %q given twice", key, k.Value)
			}
			seen[k.Value] = true
			v, err := p.toJSON(n.Content[i+1], key)
			if err != nil {
				return nil, err
			}
			out[k.Value] = v
		}
		return out, nil
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := p.toJSON(c, key)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return nil, nil
		case "!!bool":
			var b bool
			if err := n.Decode(&b); err != nil {
				return nil, p.errf(n.Line, "%s: %v", key, err)
			}
			return b, nil
		case "!!int", "!!float":
			var f float64
			if err := n.Decode(&f); err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
				return nil, p.errf(n.Line, "%s: %q is not a number JSON can hold", key, n.Value)
			}
			if n.Tag == "!!int" {
				if i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64); err == nil {
					return json.Number(strconv.FormatInt(i, 10)), nil
				}
			}
			return f, nil
		case "!!str":
			return n.Value, nil
		default:
			return nil, p.errf(n.Line, "%s: values tagged %s are not supported", key, n.Tag)
		}
	}
	return nil, p.errf(n.Line, "%s: unsupported value", key)
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
	var err error
	switch st.Kind {
	case StepWait:
		if v.Kind == yaml.ScalarNode {
			st.For, err = p.duration(v, "wait")
			return st, err
		}
		f, err := p.mapping(v, "wait", []string{"for"})
		if err != nil {
			return st, err
		}
		if f["for"] == nil {
			return st, p.errf(v.Line, "wait needs for: a duration (or write wait: 2s)")
		}
		st.For, err = p.duration(f["for"], "for")
		return st, err
	case StepExpect:
		return p.expect(st, v, clients)
	}
	allowed := map[string][]string{
		StepConnect:      {"client", "user", "role", "policy", "timeout"},
		StepJoin:         {"client", "channel", "track", "presence_key", "private", "self", "ack"},
		StepLeave:        {"client", "channel"},
		StepTrack:        {"client", "channel", "user", "name", "payload"},
		StepUntrack:      {"client", "channel"},
		StepBroadcast:    {"client", "channel", "event", "payload", "count", "interval"},
		StepFault:        {"client", "kind", "channel", "for", "delay", "count", "mode", "reason"},
		StepRefreshToken: {"client"},
	}[st.Kind]
	if v.Kind == yaml.ScalarNode && v.Tag == "!!null" && (st.Kind == StepConnect || st.Kind == StepRefreshToken) {
		// "- connect:" alone: the target's own identity.
		v = &yaml.Node{Kind: yaml.MappingNode, Line: v.Line}
	}
	f, err := p.mapping(v, st.Kind, allowed)
	if err != nil {
		return st, err
	}
	if err := p.common(&st, f, clients, v.Line); err != nil {
		return st, err
	}
	need := func(key string) error {
		if f[key] == nil {
			return p.errf(v.Line, "%s needs %s", st.Kind, key)
		}
		return nil
	}
	switch st.Kind {
	case StepConnect:
		if n := f["user"]; n != nil {
			if st.User, err = p.user(n, "user"); err != nil {
				return st, err
			}
		}
		if n := f["role"]; n != nil {
			if st.Role, err = p.str(n, "role"); err != nil {
				return st, err
			}
			if !slices.Contains(headless.Roles(), st.Role) {
				return st, p.errf(n.Line, "role %q: want %s", st.Role, strings.Join(headless.Roles(), ", "))
			}
			if st.User != "" {
				return st, p.errf(n.Line, "connect takes user or role, not both (a user's token has role authenticated)")
			}
		}
		if n := f["policy"]; n != nil {
			if st.Policy, _, err = p.policy(n); err != nil {
				return st, err
			}
		}
		if n := f["timeout"]; n != nil {
			if st.Timeout, err = p.duration(n, "timeout"); err != nil {
				return st, err
			}
		}
		if f["client"] == nil {
			st.Client = firstNonEmpty(st.User, st.Role, "main")
		}
		if clients[st.Client] {
			return st, p.errf(k.Line, "client %q is already connected (name another one with client:)", st.Client)
		}
		clients[st.Client] = true
		return st, nil
	case StepJoin, StepLeave, StepTrack, StepUntrack, StepBroadcast:
		if err := need("channel"); err != nil {
			return st, err
		}
	}
	switch st.Kind {
	case StepJoin:
		if n := f["track"]; n != nil {
			b, err := p.boolean(n, "track")
			if err != nil {
				return st, err
			}
			st.Track = &b
		}
		if n := f["presence_key"]; n != nil {
			if st.PresenceKey, err = p.user(n, "presence_key"); err != nil {
				return st, err
			}
		}
		for _, b := range []struct {
			key string
			dst *bool
		}{{"private", &st.Private}, {"self", &st.Self}, {"ack", &st.Ack}} {
			key, dst := b.key, b.dst
			if n := f[key]; n != nil {
				if *dst, err = p.boolean(n, key); err != nil {
					return st, err
				}
			}
		}
	case StepTrack:
		if st.Channel.Kind != registry.KindPresence {
			return st, p.errf(f["channel"].Line, "track needs a presence channel (presence:...), not %s", st.Channel)
		}
		if n := f["user"]; n != nil {
			if st.User, err = p.user(n, "user"); err != nil {
				return st, err
			}
		}
		if n := f["name"]; n != nil {
			if st.UserName, err = p.str(n, "name"); err != nil {
				return st, err
			}
		}
		if n := f["payload"]; n != nil {
			if st.Payload, err = p.object(n, "payload"); err != nil {
				return st, err
			}
		}
	case StepBroadcast:
		if err := need("event"); err != nil {
			return st, err
		}
		if st.Event, err = p.str(f["event"], "event"); err != nil {
			return st, err
		}
		st.Payload = json.RawMessage("{}")
		if n := f["payload"]; n != nil {
			if st.Payload, err = p.object(n, "payload"); err != nil {
				return st, err
			}
		}
		st.Count = 1
		if n := f["count"]; n != nil {
			if st.Count, err = p.integer(n, "count", 1); err != nil {
				return st, err
			}
			if st.Count > 100000 {
				return st, p.errf(n.Line, "count %d: at most 100000 broadcasts per step", st.Count)
			}
		}
		if n := f["interval"]; n != nil {
			if st.Interval, err = p.duration(n, "interval"); err != nil {
				return st, err
			}
		}
	case StepFault:
		return p.fault(st, f, v.Line)
	}
	return st, nil
}

// common reads client and channel, and checks the client exists.
func (p *parser) common(st *Step, f map[string]*yaml.Node, clients map[string]bool, line int) error {
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

func (p *parser) fault(st Step, f map[string]*yaml.Node, line int) (Step, error) {
	if f["kind"] == nil {
		return st, p.errf(line, "fault needs kind: one of %s", strings.Join(FaultKinds(), ", "))
	}
	kind, err := p.str(f["kind"], "kind")
	if err != nil {
		return st, err
	}
	if !slices.Contains(FaultKinds(), kind) {
		return st, p.errf(f["kind"].Line, "unknown fault %q (want %s)", kind, strings.Join(FaultKinds(), ", "))
	}
	st.Fault = kind
	// Which settings each fault takes, and which it needs.
	takes := map[string][]string{
		FaultDrop: {}, FaultDropAll: {}, FaultExpireToken: {},
		FaultFreeze:       {"for"},
		FaultLatency:      {"delay"},
		FaultFailConnects: {"count"},
		FaultKick:         {"channel", "mode"},
		FaultRejectJoins:  {"count", "for", "reason"},
		FaultChannelError: {"channel"},
		FaultRestart:      {"for"},
	}[kind]
	for _, key := range []string{"channel", "for", "delay", "count", "mode", "reason"} {
		if n := f[key]; n != nil && !slices.Contains(takes, key) {
			if len(takes) == 0 {
				return st, p.errf(n.Line, "fault %s takes no %s", kind, key)
			}
			return st, p.errf(n.Line, "fault %s takes no %s (it takes %s)", kind, key, strings.Join(takes, ", "))
		}
	}
	needs := map[string][]string{
		FaultFreeze: {"for"}, FaultLatency: {"delay"}, FaultFailConnects: {"count"},
		FaultKick: {"channel"}, FaultChannelError: {"channel"}, FaultRestart: {"for"},
	}[kind]
	for _, key := range needs {
		if f[key] == nil {
			return st, p.errf(line, "fault %s needs %s", kind, key)
		}
	}
	if kind == FaultRejectJoins && f["count"] == nil && f["for"] == nil {
		return st, p.errf(line, "fault reject-joins needs count (the next N joins), for (a duration) or both")
	}
	if n := f["for"]; n != nil {
		if st.For, err = p.duration(n, "for"); err != nil {
			return st, err
		}
	}
	if n := f["delay"]; n != nil {
		// A latency of 0 removes it.
		if n.Kind == yaml.ScalarNode && (n.Value == "0" || n.Value == "0s") {
			st.Delay = 0
		} else if st.Delay, err = p.duration(n, "delay"); err != nil {
			return st, err
		}
	}
	if n := f["count"]; n != nil {
		if st.Count, err = p.integer(n, "count", 0); err != nil {
			return st, err
		}
	}
	st.Mode = registry.KickError
	if n := f["mode"]; n != nil {
		s, err := p.str(n, "mode")
		if err != nil {
			return st, err
		}
		if st.Mode, err = registry.ParseKickMode(s); err != nil {
			return st, p.errf(n.Line, "mode %q: want error or close", s)
		}
	}
	if n := f["reason"]; n != nil {
		if st.Reason, err = p.str(n, "reason"); err != nil {
			return st, err
		}
	}
	return st, nil
}

func (p *parser) expect(st Step, v *yaml.Node, clients map[string]bool) (Step, error) {
	if v.Kind != yaml.MappingNode || len(v.Content) != 2 {
		if v.Kind == yaml.MappingNode && len(v.Content) > 2 {
			return st, p.errf(v.Content[2].Line, "an expect step holds one expectation; put %q in its own - expect: step", v.Content[2].Value)
		}
		return st, p.errf(v.Line, "expect must name one expectation (%s), not %s", strings.Join(ExpectKinds(), ", "), kindName(v))
	}
	k, body := v.Content[0], v.Content[1]
	st.Expect = k.Value
	if !slices.Contains(ExpectKinds(), st.Expect) {
		return st, p.errf(k.Line, "unknown expectation %q (want %s)", st.Expect, strings.Join(ExpectKinds(), ", "))
	}
	allowed := map[string][]string{
		ExpectStatus:   {"client", "channel", "is", "within"},
		ExpectAttempts: {"client", "channel", "at_most", "at_least", "exactly", "within", "for"},
		ExpectPresence: {"client", "channel", "contains", "lacks", "count", "within"},
		ExpectMessages: {"client", "channel", "event", "kind", "count", "at_least", "payloads", "order_by", "within"},
		ExpectError:    {"client", "channel", "reason", "within", "since"},
		ExpectNoError:  {"client", "channel", "for", "since"},
	}[st.Expect]
	if body.Kind == yaml.ScalarNode && body.Tag == "!!null" && st.Expect == ExpectNoError {
		body = &yaml.Node{Kind: yaml.MappingNode, Line: body.Line}
	}
	f, err := p.mapping(body, "expect "+st.Expect, allowed)
	if err != nil {
		return st, err
	}
	if err := p.common(&st, f, clients, k.Line); err != nil {
		return st, err
	}
	st.Within = 5 * time.Second
	if n := f["within"]; n != nil {
		if st.Within, err = p.duration(n, "within"); err != nil {
			return st, err
		}
	}
	if n := f["for"]; n != nil {
		if st.For, err = p.duration(n, "for"); err != nil {
			return st, err
		}
	}
	if st.Expect != ExpectError && st.Expect != ExpectNoError && f["channel"] == nil {
		return st, p.errf(k.Line, "expect %s needs channel", st.Expect)
	}
	switch st.Expect {
	case ExpectStatus:
		if f["is"] == nil {
			return st, p.errf(k.Line, "expect status needs is: connecting, connected, disconnected or error")
		}
		s, err := p.str(f["is"], "is")
		if err != nil {
			return st, err
		}
		if st.Status, err = registry.ParseStatus(s); err != nil {
			return st, p.errf(f["is"].Line, "is %q: want connecting, connected, disconnected or error", s)
		}
	case ExpectAttempts:
		for _, b := range []struct {
			key string
			dst *int
		}{{"at_most", &st.AtMost}, {"at_least", &st.AtLeast}, {"exactly", &st.Exactly}} {
			key, dst := b.key, b.dst
			if n := f[key]; n != nil {
				if *dst, err = p.integer(n, key, 0); err != nil {
					return st, err
				}
			}
		}
		if st.AtMost < 0 && st.AtLeast < 0 && st.Exactly < 0 {
			return st, p.errf(k.Line, "expect attempts needs at_most, at_least or exactly")
		}
		if st.Exactly >= 0 && (st.AtMost >= 0 || st.AtLeast >= 0) {
			return st, p.errf(k.Line, "expect attempts: exactly excludes at_most and at_least")
		}
		if st.AtMost >= 0 && st.AtLeast > st.AtMost {
			return st, p.errf(k.Line, "expect attempts: at_least %d is more than at_most %d", st.AtLeast, st.AtMost)
		}
	case ExpectPresence:
		if st.Channel.Kind != registry.KindPresence {
			return st, p.errf(f["channel"].Line, "expect presence needs a presence channel (presence:...), not %s", st.Channel)
		}
		set := 0
		if n := f["contains"]; n != nil {
			set++
			if st.Contains, err = p.user(n, "contains"); err != nil {
				return st, err
			}
		}
		if n := f["lacks"]; n != nil {
			set++
			if st.Lacks, err = p.user(n, "lacks"); err != nil {
				return st, err
			}
		}
		if n := f["count"]; n != nil {
			set++
			if st.Count, err = p.integer(n, "count", 0); err != nil {
				return st, err
			}
		}
		if set != 1 {
			return st, p.errf(k.Line, "expect presence needs exactly one of contains, lacks or count")
		}
	case ExpectMessages:
		st.MessageKind = registry.MessageBroadcast
		if n := f["kind"]; n != nil {
			s, err := p.str(n, "kind")
			if err != nil {
				return st, err
			}
			switch registry.MessageKind(s) {
			case registry.MessageBroadcast, registry.MessagePostgresChanges, registry.MessageSystem:
				st.MessageKind = registry.MessageKind(s)
			default:
				return st, p.errf(n.Line, "kind %q: want broadcast, postgres_changes or system", s)
			}
		}
		if n := f["event"]; n != nil {
			if st.Event, err = p.str(n, "event"); err != nil {
				return st, err
			}
		}
		if n := f["count"]; n != nil {
			if st.Count, err = p.integer(n, "count", 0); err != nil {
				return st, err
			}
		}
		if n := f["at_least"]; n != nil {
			if st.AtLeast, err = p.integer(n, "at_least", 0); err != nil {
				return st, err
			}
		}
		if n := f["payloads"]; n != nil {
			if n.Kind != yaml.SequenceNode {
				return st, p.errf(n.Line, "payloads must be a list of mappings, in the order expected")
			}
			for _, c := range n.Content {
				b, err := p.object(c, "payloads item")
				if err != nil {
					return st, err
				}
				st.Payloads = append(st.Payloads, b)
			}
			if st.Count >= 0 && st.Count != len(st.Payloads) {
				return st, p.errf(f["count"].Line, "count %d disagrees with the %d payloads listed", st.Count, len(st.Payloads))
			}
			if st.Count < 0 {
				st.Count = len(st.Payloads)
			}
		}
		if n := f["order_by"]; n != nil {
			if st.OrderBy, err = p.str(n, "order_by"); err != nil {
				return st, err
			}
		}
		if st.Count < 0 && st.AtLeast < 0 {
			return st, p.errf(k.Line, "expect messages needs count, at_least or payloads")
		}
		if st.Count >= 0 && st.AtLeast >= 0 {
			return st, p.errf(k.Line, "expect messages: count excludes at_least")
		}
	case ExpectError:
		if f["reason"] == nil {
			return st, p.errf(k.Line, "expect error needs reason: a code or words of the error (use no_error for none)")
		}
		if st.Reason, err = p.str(f["reason"], "reason"); err != nil {
			return st, err
		}
	}
	st.Since = "start"
	if n := f["since"]; n != nil {
		s, err := p.str(n, "since")
		if err != nil {
			return st, err
		}
		if s != "start" && s != "last_step" {
			return st, p.errf(n.Line, "since %q: want start or last_step", s)
		}
		st.Since = s
	}
	return st, nil
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// IsInvalid reports whether err is about the scenario itself (exit 2).
func IsInvalid(err error) bool { return errors.Is(err, headless.ErrInvalid) }
