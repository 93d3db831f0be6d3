package compare

import (
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"rtm/realtime/protocol"
	"rtm/registry"
)

// explainLocked says why name (holding t as h) did not receive a
// message that came at at, from what the comparer knows; RLS is
// checked later, outside the lock (Tick).
func (c *Comparer) explainLocked(t *topic, name string, h *holder, at time.Time) (Reason, string) {
	id := c.identities[name]
	if n, err := registry.ParseName(t.name); err == nil && n.Tenant != "" && id != nil && id.Tenant != n.Tenant {
		has := "has no tenant_id claim"
		if id.Tenant != "" {
			has = "is for tenant " + id.Tenant
		}
		return ReasonTenant, fmt.Sprintf("the topic is tenant %s's; %s's token %s", n.Tenant, name, has)
	}
	fault := func(from, to time.Time) (faultAt, bool) {
		if id == nil {
			return faultAt{}, false
		}
		for i := len(id.faults) - 1; i >= 0; i-- {
			f := id.faults[i]
			if (f.channel == "" || f.channel == t.name) && !f.at.Before(from) && !f.at.After(to) {
				return f, true
			}
		}
		return faultAt{}, false
	}
	if !h.connectedAt(at) {
		if h.private && h.joinError != "" {
			return ReasonPrivate, h.joinError
		}
		if f, ok := fault(at.Add(-c.o.FaultWindow), at); ok {
			return ReasonFault, faultText(f, at)
		}
		if j, ok := h.joinedAfter(at); ok {
			return ReasonNotJoined, fmt.Sprintf("%s joined %s after the message", name, j.Sub(at).Round(time.Millisecond))
		}
		if h.joinError != "" {
			return ReasonNotJoined, name + "'s join failed: " + h.joinError
		}
		return ReasonNotJoined, name + " had not joined"
	}
	if f, ok := fault(at.Add(-c.o.FaultWindow), at.Add(c.o.FaultWindow)); ok {
		return ReasonFault, faultText(f, at)
	}
	return ReasonUnknown, ""
}

func faultText(f faultAt, at time.Time) string {
	on := "socket"
	if f.channel != "" {
		on = "channel"
	}
	d := at.Sub(f.at)
	when := d.Round(time.Millisecond).String() + " before the message"
	if d < 0 {
		when = (-d).Round(time.Millisecond).String() + " after the message"
	}
	return fmt.Sprintf("%s on its %s %s", f.what, on, when)
}

// connectedAt reports whether the channel was joined at at.
func (h *holder) connectedAt(at time.Time) bool {
	ok := false
	for _, tr := range h.transitions {
		if tr.at.After(at) {
			break
		}
		ok = tr.connected
	}
	return ok
}

// joinedAfter returns the first time the channel was joined after at.
func (h *holder) joinedAfter(at time.Time) (time.Time, bool) {
	for _, tr := range h.transitions {
		if tr.connected && tr.at.After(at) {
			return tr.at, true
		}
	}
	return time.Time{}, false
}

// Observe feeds one event of identity's manager: frames in (the
// subscription must ask for frames) become [Comparer.Received] messages
// (phoenix replies, errors, closes and heartbeats are left out: the
// channel states carry them), outbound broadcasts (the manager's
// message events, direction out, sent rather than queued)
// [Comparer.Sent], channel states [Comparer.Channel] (and whether the
// channel echoes its own broadcasts, its config's self), "Fault: ..."
// log records [Comparer.Fault].
func (c *Comparer) Observe(identity string, e registry.Event) {
	switch e := e.(type) {
	case registry.FrameEvent:
		if e.Direction != registry.In {
			return
		}
		m, err := decode(e)
		if err != nil || m.Topic == protocol.PhoenixTopic {
			return
		}
		switch m.Event {
		case protocol.EventReply, protocol.EventError, protocol.EventClose, protocol.EventHeartbeat:
			return
		}
		ch := e.Channel.String()
		if e.Channel.IsZero() {
			ch = protocol.SubTopic(m.Topic)
		}
		if m.Event == protocol.EventPresenceState {
			c.ResetPresence(identity, ch)
		}
		for _, msg := range Normalize(ch, &m) {
			c.Received(identity, msg, e.Time)
		}
	case registry.MessageEvent:
		c.observeSent(identity, &e)
	case registry.MessageBatchEvent:
		for i := range e.Messages {
			c.observeSent(identity, &e.Messages[i])
		}
	case registry.ChannelStateEvent:
		c.Channel(identity, e.Channel.String(), e.Status, e.Info.LastError, e.Info.Config.Private, e.Removed, e.Time)
		if !e.Removed {
			c.echoes(identity, e.Channel.String(), e.Info.Config.Self)
		}
	case registry.LogEvent:
		if what, ok := strings.CutPrefix(e.Record.Message, "Fault: "); ok {
			c.Fault(identity, e.Record.Channel, "fault: "+what, e.Record.Time)
		}
	}
}

// observeSent feeds a broadcast identity sent: not one only queued
// (another event follows when it is sent), nor one whose payload was
// cut (it could not be matched).
func (c *Comparer) observeSent(identity string, e *registry.MessageEvent) {
	if e.Direction != registry.Out || e.Kind != registry.MessageBroadcast || e.Queued || e.Truncated {
		return
	}
	m := Message{Channel: e.Channel.String(), Event: "broadcast " + e.Event, Value: Canonical(e.Payload)}
	if e.Binary != nil {
		m.Value = JSON(map[string]string{"binary": base64.StdEncoding.EncodeToString(e.Binary)})
	}
	c.Sent(identity, m, e.Time)
}

// echoes records whether identity's channel topicName echoes its own
// broadcasts (its config's self).
func (c *Comparer) echoes(identity, topicName string, self bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h := c.holderLocked(identity, topicName); h != nil {
		h.self = self
	}
}

// decode decodes a frame from the server: binary frames are 2.0.0's,
// text frames 2.0.0's when they are an array, 1.0.0's otherwise.
func decode(f registry.FrameEvent) (protocol.Message, error) {
	if len(f.Data) > 0 {
		return protocol.V2.DecodeServer(f.Data, true)
	}
	vsn := protocol.V1
	if strings.HasPrefix(strings.TrimSpace(f.Text), "[") {
		vsn = protocol.V2
	}
	return vsn.DecodeServer([]byte(f.Text), false)
}
