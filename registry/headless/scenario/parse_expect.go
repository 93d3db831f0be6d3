package scenario

import (
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"rtm/registry"
	"rtm/registry/limits"
)

// defaultWithin is how long an expectation waits by default.
const defaultWithin = 5 * time.Second

// expectKeys lists the settings an expectation takes.
func expectKeys(kind string) []string {
	switch kind {
	case ExpectStatus:
		return []string{"client", "channel", "is", "within"}
	case ExpectAttempts:
		return []string{"client", "channel", "at_most", "at_least", "exactly", "within", "for"}
	case ExpectPresence:
		return []string{"client", "channel", "contains", "lacks", "count", "within"}
	case ExpectMessages:
		return []string{"client", "channel", "event", "kind", "count", "at_least", "payloads", "order_by", "within"}
	case ExpectError:
		return []string{"client", "channel", "reason", "within", "since"}
	case ExpectNoError:
		return []string{"client", "channel", "for", "since"}
	case ExpectLimits:
		return []string{"client", "name", "under", "over", "within", "for"}
	}
	return nil
}

// expect parses an expect step: one expectation and its settings.
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
	if isApp(st.Expect) || st.Expect == ExpectExit {
		return p.appExpect(st, k, body)
	}
	if st.Expect == ExpectSameMessages {
		return p.expectSame(st, k, body, clients)
	}
	if body.Kind == yaml.ScalarNode && body.Tag == "!!null" && st.Expect == ExpectNoError {
		body = &yaml.Node{Kind: yaml.MappingNode, Line: body.Line}
	}
	f, err := p.mapping(body, "expect "+st.Expect, expectKeys(st.Expect))
	if err != nil {
		return st, err
	}
	if err := p.common(&st, f, clients, k.Line); err != nil {
		return st, err
	}
	if err := p.timing(&st, f); err != nil {
		return st, err
	}
	if st.Expect != ExpectError && st.Expect != ExpectNoError && st.Expect != ExpectLimits && f["channel"] == nil {
		return st, p.errf(k.Line, "expect %s needs channel", st.Expect)
	}
	switch st.Expect {
	case ExpectStatus:
		err = p.expectStatus(&st, f, k.Line)
	case ExpectAttempts:
		err = p.expectAttempts(&st, f, k.Line)
	case ExpectPresence:
		err = p.expectPresence(&st, f, k.Line)
	case ExpectMessages:
		err = p.expectMessages(&st, f, k.Line)
	case ExpectLimits:
		err = p.expectLimits(&st, f, k.Line)
	case ExpectError:
		if f["reason"] == nil {
			return st, p.errf(k.Line, "expect error needs reason: a code or words of the error (use no_error for none)")
		}
		st.Reason, err = p.str(f["reason"], "reason")
	}
	if err != nil {
		return st, err
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

// expectStatus parses a status expectation; line is the expectation's.
func (p *parser) expectStatus(st *Step, f fields, line int) error {
	if f["is"] == nil {
		return p.errf(line, "expect status needs is: connecting, connected, disconnected or error")
	}
	s, err := p.str(f["is"], "is")
	if err != nil {
		return err
	}
	if st.Status, err = registry.ParseStatus(s); err != nil {
		return p.errf(f["is"].Line, "is %q: want connecting, connected, disconnected or error", s)
	}
	return nil
}

// expectAttempts parses an attempts expectation.
func (p *parser) expectAttempts(st *Step, f fields, line int) error {
	var err error
	for _, b := range []struct {
		key string
		dst *int
	}{{"at_most", &st.AtMost}, {"at_least", &st.AtLeast}, {"exactly", &st.Exactly}} {
		if n := f[b.key]; n != nil {
			if *b.dst, err = p.integer(n, b.key, 0); err != nil {
				return err
			}
		}
	}
	switch {
	case st.AtMost < 0 && st.AtLeast < 0 && st.Exactly < 0:
		return p.errf(line, "expect %s needs at_most, at_least or exactly", st.Expect)
	case st.Exactly >= 0 && (st.AtMost >= 0 || st.AtLeast >= 0):
		return p.errf(line, "expect %s: exactly excludes at_most and at_least", st.Expect)
	case st.AtMost >= 0 && st.AtLeast > st.AtMost:
		return p.errf(line, "expect %s: at_least %d is more than at_most %d", st.Expect, st.AtLeast, st.AtMost)
	}
	return nil
}

// expectPresence parses a presence expectation.
func (p *parser) expectPresence(st *Step, f fields, line int) error {
	if st.Channel.Kind != registry.KindPresence {
		return p.errf(f["channel"].Line, "expect presence needs a presence channel (presence:...), not %s", st.Channel)
	}
	return p.presenceBound(st, f, line)
}

// presenceBound parses contains, lacks or count (one of them) of a
// presence or app_presence expectation.
func (p *parser) presenceBound(st *Step, f fields, line int) error {
	var err error
	set := 0
	if n := f["contains"]; n != nil {
		set++
		if st.Contains, err = p.user(n, "contains"); err != nil {
			return err
		}
	}
	if n := f["lacks"]; n != nil {
		set++
		if st.Lacks, err = p.user(n, "lacks"); err != nil {
			return err
		}
	}
	if n := f["count"]; n != nil {
		set++
		if st.Count, err = p.integer(n, "count", 0); err != nil {
			return err
		}
	}
	if set != 1 {
		return p.errf(line, "expect %s needs exactly one of contains, lacks or count", st.Expect)
	}
	return nil
}

// expectMessages parses a messages expectation.
func (p *parser) expectMessages(st *Step, f fields, line int) error {
	var err error
	st.MessageKind = registry.MessageBroadcast
	if n := f["kind"]; n != nil {
		s, err := p.str(n, "kind")
		if err != nil {
			return err
		}
		switch registry.MessageKind(s) {
		case registry.MessageBroadcast, registry.MessagePostgresChanges, registry.MessageSystem:
			st.MessageKind = registry.MessageKind(s)
		default:
			return p.errf(n.Line, "kind %q: want broadcast, postgres_changes or system", s)
		}
	}
	if n := f["event"]; n != nil {
		if st.Event, err = p.str(n, "event"); err != nil {
			return err
		}
	}
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
	if n := f["payloads"]; n != nil {
		if n.Kind != yaml.SequenceNode {
			return p.errf(n.Line, "payloads must be a list of mappings, in the order expected")
		}
		for _, c := range n.Content {
			b, err := p.object(c, "payloads item")
			if err != nil {
				return err
			}
			st.Payloads = append(st.Payloads, b)
		}
		if st.Count >= 0 && st.Count != len(st.Payloads) {
			return p.errf(f["count"].Line, "count %d disagrees with the %d payloads listed", st.Count, len(st.Payloads))
		}
		if st.Count < 0 {
			st.Count = len(st.Payloads)
		}
	}
	if n := f["order_by"]; n != nil {
		if st.OrderBy, err = p.str(n, "order_by"); err != nil {
			return err
		}
	}
	if st.Count < 0 && st.AtLeast < 0 {
		return p.errf(line, "expect messages needs count, at_least or payloads")
	}
	if st.Count >= 0 && st.AtLeast >= 0 {
		return p.errf(line, "expect messages: count excludes at_least")
	}
	return nil
}

// expectLimits parses a limits expectation: name and one of under or
// over, percentages of the limit ("80%").
func (p *parser) expectLimits(st *Step, f fields, line int) error {
	st.Under, st.Over = -1, -1
	if f["name"] == nil {
		return p.errf(line, "expect limits needs name: one of %s", strings.Join(limitNames(), ", "))
	}
	s, err := p.str(f["name"], "name")
	if err != nil {
		return err
	}
	if st.Limit, err = limits.ParseName(s); err != nil {
		return p.errf(f["name"].Line, "name %q: want one of %s", s, strings.Join(limitNames(), ", "))
	}
	for _, b := range []struct {
		key string
		dst *float64
	}{{"under", &st.Under}, {"over", &st.Over}} {
		if n := f[b.key]; n != nil {
			if *b.dst, err = p.percent(n, b.key); err != nil {
				return err
			}
		}
	}
	if (st.Under < 0) == (st.Over < 0) {
		return p.errf(line, "expect limits needs one of under or over (a percentage of the limit, such as 80%%)")
	}
	if st.Over >= 0 && st.For > 0 {
		return p.errf(f["for"].Line, "expect limits: for goes with under (how long it keeps holding); over waits within")
	}
	return nil
}

func limitNames() []string {
	var out []string
	for _, n := range limits.Names() {
		out = append(out, string(n))
	}
	return out
}

// timing reads an expectation's within (default defaultWithin) and for.
func (p *parser) timing(st *Step, f fields) error {
	var err error
	st.Within = defaultWithin
	if n := f["within"]; n != nil {
		if st.Within, err = p.duration(n, "within"); err != nil {
			return err
		}
	}
	if n := f["for"]; n != nil {
		if st.For, err = p.duration(n, "for"); err != nil {
			return err
		}
	}
	return nil
}
