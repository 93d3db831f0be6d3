package headless

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"rtm/realtime/protocol"
	"rtm/registry"
	"rtm/registry/compare"
)

// Received is one message a recording received, normalized so that two
// runs of the same traffic compare equal (see compare.Message: the one
// normalizer, shared with the live comparison of identities).
type Received = compare.Message

// ReceivedMessages returns what r received (frames in), in order,
// normalized; heartbeat replies are left out. Frames that do not decode
// are returned with Event "undecodable".
//
// Of an app recording, it returns what the app received (app_frame lines
// upstream->app, each decoded in its socket's serializer), over all its
// sockets.
func ReceivedMessages(r *Recording) []Received {
	if r.IsApp() {
		return appReceived(r)
	}
	vsn := r.Version()
	var out []Received
	for _, e := range r.Events {
		f, ok := e.(registry.FrameEvent)
		if !ok || f.Direction != registry.In {
			continue
		}
		m, err := decodeFrame(vsn, f)
		ch := f.Channel.String()
		if f.Channel.IsZero() {
			ch = protocol.SubTopic(f.Topic)
		}
		if err != nil {
			out = append(out, Received{Channel: ch, Event: "undecodable", Value: compare.JSON(f.Text + base64.StdEncoding.EncodeToString(f.Data))})
			continue
		}
		if m.Topic == protocol.PhoenixTopic {
			continue
		}
		if f.Channel.IsZero() {
			ch = protocol.SubTopic(m.Topic)
		}
		out = append(out, compare.Normalize(ch, &m)...)
	}
	return out
}

// DiffItem is a normalized message and how many more times one side
// received it than the other.
type DiffItem struct {
	Value json.RawMessage `json:"value"`
	Count int             `json:"count"`
}

// EventDiff compares the messages of one channel and event.
type EventDiff struct {
	Event string `json:"event"`
	// A and B count the messages of each recording.
	A int `json:"a"`
	B int `json:"b"`
	// OnlyA are what A received that B did not (with multiplicity),
	// OnlyB the reverse, each in A's (B's) order of first arrival.
	OnlyA []DiffItem `json:"only_a,omitempty"`
	OnlyB []DiffItem `json:"only_b,omitempty"`
	// OrderDiffers is true when both received the same messages in a
	// different order.
	OrderDiffers bool `json:"order_differs,omitempty"`
}

// ChannelDiff is the differences on one channel.
type ChannelDiff struct {
	Channel string      `json:"channel"`
	Events  []EventDiff `json:"events"`
}

// DiffReport is the result of [Diff].
type DiffReport struct {
	A string `json:"a"`
	B string `json:"b"`
	// Identical is true when both received the same messages in the
	// same order on every channel.
	Identical bool `json:"identical"`
	// Same counts the (channel, event) pairs that agree.
	Same int `json:"same"`
	// Channels lists the pairs that differ, by channel.
	Channels []ChannelDiff `json:"channels"`
	// Gaps is set when a recording lost events (a "dropped" line) or was
	// cut short: the comparison may then show differences that are the
	// recorder's, not the server's.
	Gaps []string `json:"gaps,omitempty"`
}

// DiffOptions configures [Diff].
type DiffOptions struct {
	// Rename maps channel names of A to those of B before comparing
	// (a recording replayed into another channel).
	Rename map[string]string
	// Events, when not empty, compares only events with these prefixes
	// ("broadcast", "presence", "postgres_changes").
	Events []string
}

// Diff compares what two recordings received, per channel and event.
func Diff(nameA string, a *Recording, nameB string, b *Recording, o DiffOptions) DiffReport {
	type key struct{ ch, ev string }
	group := func(r *Recording, rename bool) (map[key][]string, []key) {
		g := map[key][]string{}
		var order []key
		for _, m := range ReceivedMessages(r) {
			if len(o.Events) > 0 && !hasPrefix(m.Event, o.Events) {
				continue
			}
			ch := m.Channel
			if to, ok := o.Rename[ch]; ok && rename {
				ch = to
			}
			k := key{ch, m.Event}
			if _, ok := g[k]; !ok {
				order = append(order, k)
			}
			g[k] = append(g[k], string(m.Value))
		}
		return g, order
	}
	ga, oa := group(a, true)
	gb, ob := group(b, false)
	keys := append([]key(nil), oa...)
	for _, k := range ob {
		if _, ok := ga[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.SliceStable(keys, func(i, j int) bool {
		if keys[i].ch != keys[j].ch {
			return keys[i].ch < keys[j].ch
		}
		return keys[i].ev < keys[j].ev
	})
	rep := DiffReport{A: nameA, B: nameB, Identical: true, Channels: []ChannelDiff{}}
	for _, k := range keys {
		va, vb := ga[k], gb[k]
		d := EventDiff{Event: k.ev, A: len(va), B: len(vb), OnlyA: minus(va, vb), OnlyB: minus(vb, va)}
		if len(d.OnlyA) == 0 && len(d.OnlyB) == 0 && !slices.Equal(va, vb) {
			d.OrderDiffers = true
		}
		if len(d.OnlyA) == 0 && len(d.OnlyB) == 0 && !d.OrderDiffers {
			rep.Same++
			continue
		}
		rep.Identical = false
		if n := len(rep.Channels); n == 0 || rep.Channels[n-1].Channel != k.ch {
			rep.Channels = append(rep.Channels, ChannelDiff{Channel: k.ch})
		}
		c := &rep.Channels[len(rep.Channels)-1]
		c.Events = append(c.Events, d)
	}
	for _, x := range []struct {
		name string
		r    *Recording
	}{{nameA, a}, {nameB, b}} {
		for _, e := range x.r.Events {
			if d, ok := e.(registry.DroppedEvent); ok {
				rep.Gaps = append(rep.Gaps, fmt.Sprintf("%s: the recorder lost %d events at %s", x.name, d.Count, d.Time.Format("15:04:05.000")))
			}
		}
		if x.r.Header.Type == TypeRecording && x.r.End == nil {
			rep.Gaps = append(rep.Gaps, x.name+": the recording was cut short (no end line)")
		}
	}
	return rep
}

func hasPrefix(s string, ps []string) bool {
	for _, p := range ps {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// minus returns the items of a not matched in b (multiset difference),
// in a's order of first arrival, with their counts.
func minus(a, b []string) []DiffItem {
	left := map[string]int{}
	for _, v := range b {
		left[v]++
	}
	var out []DiffItem
	idx := map[string]int{}
	for _, v := range a {
		if left[v] > 0 {
			left[v]--
			continue
		}
		if i, ok := idx[v]; ok {
			out[i].Count++
			continue
		}
		idx[v] = len(out)
		out = append(out, DiffItem{Value: json.RawMessage(v), Count: 1})
	}
	return out
}

// WriteText writes the report for a person: one line per difference.
func (r DiffReport) WriteText(w io.Writer) error {
	var b strings.Builder
	if r.Identical {
		fmt.Fprintf(&b, "no differences: %s and %s received the same messages in the same order (%d channel/event pairs)\n", r.A, r.B, r.Same)
	}
	for _, c := range r.Channels {
		fmt.Fprintf(&b, "%s\n", c.Channel)
		for _, e := range c.Events {
			fmt.Fprintf(&b, "  %s: %d in %s, %d in %s", e.Event, e.A, r.A, e.B, r.B)
			if e.OrderDiffers {
				b.WriteString(" (same messages, different order)")
			}
			b.WriteByte('\n')
			for _, it := range e.OnlyA {
				fmt.Fprintf(&b, "    only in %s%s: %s\n", r.A, times(it.Count), it.Value)
			}
			for _, it := range e.OnlyB {
				fmt.Fprintf(&b, "    only in %s%s: %s\n", r.B, times(it.Count), it.Value)
			}
		}
	}
	if !r.Identical {
		fmt.Fprintf(&b, "%d channel/event pairs agree\n", r.Same)
	}
	for _, g := range r.Gaps {
		fmt.Fprintf(&b, "warning: %s\n", g)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func times(n int) string {
	if n == 1 {
		return ""
	}
	return fmt.Sprintf(" (%dx)", n)
}
