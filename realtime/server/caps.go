package server

import (
	"encoding/json"
	"fmt"
	"strings"

	"rtm/realtime/protocol"
)

// Name caps. The binary frames of serializer 2.0.0 count the topic, the
// user event and each ref in one byte, so nothing longer travels in them
// (realtime-js refuses to encode it). The server holds text frames of both
// serializers and the REST API to the same caps, so a name never works
// with one serializer and fails with the other, and a client cannot make
// the server keep megabytes per name.
const (
	// MaxTopicBytes caps a channel topic as on the wire ("realtime:" and
	// the name, so a name has at most 246 bytes). A join of a longer
	// topic is refused at once with "TopicTooLong: …" (without
	// Config.JoinErrorDelay, which would keep the topic meanwhile); any
	// other push on one gets the "unmatched topic" reply, as no channel
	// can have it. A REST broadcast to a longer topic gets 422.
	MaxTopicBytes = 255

	// MaxEventBytes caps event names: the event of a push and the user
	// event of a broadcast. A push with a longer event gets the error
	// reply "EventTooLong: …"; a broadcast with a longer user event is
	// dropped, and answered so when the channel asked for acks (as an
	// oversize broadcast is). A REST broadcast with one gets 422.
	MaxEventBytes = 255

	// MaxPresenceKeyBytes caps config.presence.key: a join with a longer
	// key is refused with "PresenceKeyTooLong: …".
	MaxPresenceKeyBytes = 255

	// MaxRefBytes caps the ref and join_ref of a join, which its channel
	// keeps: a join with a longer one is refused at once with
	// "RefTooLong: …".
	MaxRefBytes = 255

	// MaxBindings and MaxBindingBytes cap the postgres_changes bindings of
	// one join, which its channel keeps (realtime-js sends one per
	// on('postgres_changes') listener: a few, of a hundred bytes each): a
	// join with more, or with more bytes in all, is refused with
	// "PostgresChangesTooLarge: …".
	MaxBindings     = 100
	MaxBindingBytes = 64 << 10
)

// maxSubTopicBytes caps a topic's name (REST takes names, not topics).
const maxSubTopicBytes = MaxTopicBytes - len(protocol.TopicPrefix)

func topicTooLong(n int) string {
	return fmt.Sprintf("TopicTooLong: Topics are limited to %d bytes (%q and a name of up to %d); this one has %d",
		MaxTopicBytes, protocol.TopicPrefix, maxSubTopicBytes, n)
}

func eventTooLong(n int) string {
	return fmt.Sprintf("EventTooLong: Event names are limited to %d bytes; this one has %d", MaxEventBytes, n)
}

func presenceKeyTooLong(n int) string {
	return fmt.Sprintf("PresenceKeyTooLong: Presence keys are limited to %d bytes; this one has %d", MaxPresenceKeyBytes, n)
}

// bindingsTooLarge returns the join error for bindings over the caps, or
// "".
func bindingsTooLarge(bindings []json.RawMessage) string {
	size := 0
	for _, b := range bindings {
		size += len(b)
	}
	if len(bindings) <= MaxBindings && size <= MaxBindingBytes {
		return ""
	}
	return fmt.Sprintf("PostgresChangesTooLarge: A join may hold at most %d postgres_changes bindings of %d bytes in all; this one has %d of %d bytes",
		MaxBindings, MaxBindingBytes, len(bindings), size)
}

func refTooLong(n int) string {
	return fmt.Sprintf("RefTooLong: ref and join_ref are limited to %d bytes; this one has %d", MaxRefBytes, n)
}

// refuseLongNames answers a push whose names exceed the caps, and reports
// whether it did: the push is then not handled, and nothing of it is
// kept.
func (c *conn) refuseLongNames(m *protocol.Message) bool {
	switch {
	case len(m.Event) > MaxEventBytes:
		c.s.stats.badFrames.Add(1)
		c.log.Warn("Refusing push: event name too long", logKeyTopic, clipLog(m.Topic), logKeyEvent, clipLog(m.Event), "bytes", len(m.Event))
		c.replyError(m, eventTooLong(len(m.Event)))
		return true
	case len(m.Topic) > MaxTopicBytes && m.Event == protocol.EventJoin:
		c.refuseJoinNow(m, topicTooLong(len(m.Topic)))
		return true
	case len(m.Topic) > MaxTopicBytes:
		c.log.Debug("Push on a topic too long to be joined", logKeyTopic, clipLog(m.Topic), logKeyEvent, m.Event, "bytes", len(m.Topic))
		c.unmatched(m)
		return true
	case m.Event == protocol.EventJoin && max(len(m.Ref), len(m.JoinRef)) > MaxRefBytes:
		c.refuseJoinNow(m, refTooLong(max(len(m.Ref), len(m.JoinRef))))
		return true
	}
	return false
}

// refuseJoinNow answers a join with an error reply at once: the delay of
// joinError would keep the over-long names of m meanwhile.
func (c *conn) refuseJoinNow(m *protocol.Message, reason string) {
	c.s.stats.joinErrors.Add(1)
	c.log.Info("Join refused", logKeyTopic, clipLog(m.Topic), logKeyReason, reason)
	c.replyError(m, reason)
}

// longBroadcastEvent returns the byte length of the user event of a JSON
// broadcast payload when it exceeds MaxEventBytes, else 0. A payload
// without an event is forwarded as it is, as before; one too short to
// hold a longer event (decoding never lengthens a JSON string) is not
// scanned.
func longBroadcastEvent(payload []byte) int {
	if len(payload) <= MaxEventBytes {
		return 0
	}
	b, err := protocol.ParseBroadcast(payload)
	if err != nil || len(b.Event) <= MaxEventBytes {
		return 0
	}
	return len(b.Event)
}

// clipLog shortens a client-chosen name for a log line (clip is for
// error answers).
func clipLog(s string) string {
	const keep = 64
	if len(s) <= keep {
		return s
	}
	return fmt.Sprintf("%s…(%d bytes)", strings.ToValidUTF8(s[:keep], ""), len(s))
}
