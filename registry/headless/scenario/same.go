package scenario

import (
	"context"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"

	"rtm/registry/compare"
)

// ExpectSameMessages: two clients received the same messages on a
// channel (normalized as `rtm diff` normalizes them, package
// registry/compare), but for the events except lists.
const ExpectSameMessages = "same_messages"

// expectSame parses a same_messages expectation: clients (two connected
// clients), channel, except (event prefixes, a text or a list), within.
func (p *parser) expectSame(st Step, k, body *yaml.Node, clients map[string]bool) (Step, error) {
	f, err := p.mapping(body, "expect "+st.Expect, []string{"clients", "channel", "except", "within"})
	if err != nil {
		return st, err
	}
	if err := p.timing(&st, f); err != nil {
		return st, err
	}
	if f["channel"] == nil {
		return st, p.errf(k.Line, "expect %s needs channel", st.Expect)
	}
	if st.Channel, err = p.channel(f["channel"]); err != nil {
		return st, err
	}
	n := f["clients"]
	if n == nil || n.Kind != yaml.SequenceNode || len(n.Content) != 2 {
		line := k.Line
		if n != nil {
			line = n.Line
		}
		return st, p.errf(line, "expect %s needs clients: the two clients to compare, e.g. [alice, bob]", st.Expect)
	}
	for _, c := range n.Content {
		name, err := p.user(c, "clients")
		if err != nil {
			return st, err
		}
		if !clients[name] {
			return st, p.errf(c.Line, "client %q is not connected by an earlier step", name)
		}
		st.Clients = append(st.Clients, name)
	}
	if st.Clients[0] == st.Clients[1] {
		return st, p.errf(n.Line, "expect %s compares two different clients, not %s with itself", st.Expect, st.Clients[0])
	}
	st.Client = st.Clients[0]
	if e := f["except"]; e != nil {
		items := []*yaml.Node{e}
		if e.Kind == yaml.SequenceNode {
			items = e.Content
		}
		for _, it := range items {
			s, err := p.str(it, "except")
			if err != nil {
				return st, err
			}
			if strings.TrimSpace(s) == "" {
				return st, p.errf(it.Line, "except: an empty event prefix would leave out every message")
			}
			st.Except = append(st.Except, s)
		}
	}
	return st, nil
}

// sameCheck: the two clients' comparer finds no difference on the
// channel (none decided, none pending); it fails, when time is up, with
// the first difference and its reason.
func (r *runner) sameCheck(ctx context.Context, st Step) (string, check) {
	a, b := st.Clients[0], st.Clients[1]
	expected := fmt.Sprintf("%s and %s received the same messages on %s within %s", a, b, st.Channel, st.Within)
	if len(st.Except) > 0 {
		expected += " (except " + strings.Join(st.Except, ", ") + ")"
	}
	look := func() (bool, bool, string) {
		ds := r.cmp.Between(ctx, st.Channel.String(), a, b, st.Except)
		if len(ds) == 0 {
			return true, true, "the same messages"
		}
		return false, false, describeDifference(ds[0], len(ds))
	}
	return expected, look
}

// describeDifference says what the first of n differences is and why.
func describeDifference(d compare.Difference, n int) string {
	s := fmt.Sprintf("%s did not receive %s %s that %s received: %s", d.MissingFrom, d.Message.Event, clip(string(d.Message.Value)), d.A, d.Reason)
	if d.Detail != "" {
		s += " (" + d.Detail + ")"
	}
	if n > 1 {
		s += fmt.Sprintf("; %d differences in all", n)
	}
	return s
}
