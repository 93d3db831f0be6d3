package scenario

import (
	"fmt"
	"regexp"
	"rtm/registry/headless"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"rtm/registry/limits"
)

type parser struct {
	file string
	// proxy is the scenario's proxy setting (nil: none); execs the exec
	// steps parsed so far, by name (true: in the background).
	proxy *ProxySetting
	execs map[string]bool
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
	top, err := p.mapping(root, "the scenario", []string{"name", "description", "timeout", "policy", "reconnect_after", "heartbeat", "push_timeout", "continue_on_failure", "proxy", "plan", "limits", "steps"})
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
	if n := top["proxy"]; n != nil {
		if sc.Proxy, err = p.proxySetting(n); err != nil {
			return nil, err
		}
		p.proxy = sc.Proxy
	}
	if err := p.limitSettings(sc, top); err != nil {
		return nil, err
	}
	p.execs = map[string]bool{}
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

// limitSettings reads plan (limits.Plan) and limits (a mapping NAME: N,
// limits.ParseOverride).
func (p *parser) limitSettings(sc *Scenario, top fields) error {
	if n := top["plan"]; n != nil {
		s, err := p.str(n, "plan")
		if err != nil {
			return err
		}
		if sc.Limits, err = limits.Plan(s); err != nil {
			return p.errf(n.Line, "plan %q: want %s", s, strings.Join(limits.Plans(), ", "))
		}
	}
	n := top["limits"]
	if n == nil {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return p.errf(n.Line, "limits must be a mapping of NAME: N (e.g. channels_per_connection: 50), not %s", kindName(n))
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if v.Kind != yaml.ScalarNode {
			return p.errf(v.Line, "limits %s must be a whole number or off, not %s", k.Value, kindName(v))
		}
		name, val, err := limits.ParseOverride(k.Value + "=" + v.Value)
		if err != nil {
			return p.errf(k.Line, "limits: %s", strings.TrimPrefix(err.Error(), limits.ErrInvalid.Error()+": "))
		}
		sc.Overrides = sc.Overrides.Set(name, val, "scenario")
	}
	return nil
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
