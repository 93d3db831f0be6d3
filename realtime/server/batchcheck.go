package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"rtm/realtime/protocol"
)

// maxBatchErrors bounds the per-message errors of a 422 answer to a batch
// broadcast. A batch of at most maxBatchErrors messages gets Supabase's
// answer, one entry per message in order ({} for a valid one):
//
//	{"errors":{"messages":[{},{"event":["can't be blank"],"topic":["is invalid"]}]}}
//
// A larger batch gets the first maxBatchErrors failing messages, each
// with its "index" in the batch, and the counts of failing and of all
// messages beside "errors":
//
//	{"errors":{"messages":[{"index":7,"topic":["can't be blank"]},…]},"failed":1000000,"total":1000000}
//
// Under Supabase's default of 100 events per second no batch of more than
// 100 messages can be accepted anyway.
const maxBatchErrors = 100

// fieldErr is the error of one field of a batch message.
type fieldErr uint8

const (
	fieldOK fieldErr = iota
	fieldBlank
	fieldInvalid
	fieldTooBig
	fieldTooLong // a topic or event name over its cap (caps.go)
)

// list is the field's entry in an error answer, nil when the field is
// fine.
func (e fieldErr) list() []string {
	switch e {
	case fieldBlank:
		return []string{"can't be blank"}
	case fieldInvalid:
		return []string{"is invalid"}
	case fieldTooBig:
		return []string{"Payload size exceeds tenant limit"}
	}
	return nil
}

// Answers for names over their caps.
var (
	topicTooLongErr = fmt.Sprintf("must be at most %d bytes (%d with the %q prefix)", maxSubTopicBytes, MaxTopicBytes, protocol.TopicPrefix)
	eventTooLongErr = fmt.Sprintf("must be at most %d bytes", MaxEventBytes)
)

// nameList is list for a topic or event name, whose too-long answer
// names its cap (tooLong).
func (e fieldErr) nameList(tooLong string) []string {
	if e == fieldTooLong {
		return []string{tooLong}
	}
	return e.list()
}

// itemErrs are the errors of one batch message; message is set alone
// when the item is not an object.
type itemErrs struct {
	index                                   int
	message, topic, event, payload, private fieldErr
}

func (e *itemErrs) failed() bool {
	return e.message|e.topic|e.event|e.payload|e.private != fieldOK
}

// itemErrsJSON is an itemErrs as answered. The fields are in the order
// encoding/json gives a map's keys, so a positional entry reads as
// Supabase's (and as this server's answer built from maps did).
type itemErrsJSON struct {
	Event   []string `json:"event,omitempty"`
	Index   *int     `json:"index,omitempty"`
	Message []string `json:"message,omitempty"`
	Payload []string `json:"payload,omitempty"`
	Private []string `json:"private,omitempty"`
	Topic   []string `json:"topic,omitempty"`
}

func (e *itemErrs) json(withIndex bool) itemErrsJSON {
	j := itemErrsJSON{Event: e.event.nameList(eventTooLongErr), Message: e.message.list(), Payload: e.payload.list(),
		Private: e.private.list(), Topic: e.topic.nameList(topicTooLongErr)}
	if withIndex {
		j.Index = &e.index
	}
	return j
}

// batchItem is one message of a batch as it lies in the body: the raw
// JSON values of the fields the server reads, nil when absent. A field
// given twice takes its last value, as in a JSON object decoded into a
// map.
type batchItem struct {
	object                             bool
	topic, event, payload, private, id []byte
}

// check validates the item as Supabase does, in the terms of its answer.
func (it *batchItem) check(maxPayload int) itemErrs {
	var e itemErrs
	if !it.object {
		e.message = fieldInvalid
		return e
	}
	e.topic = checkName(it.topic, maxSubTopicBytes)
	e.event = checkName(it.event, MaxEventBytes)
	switch p := it.payload; {
	case p == nil || isNull(p):
		e.payload = fieldBlank
	case !protocol.IsObject(p):
		e.payload = fieldInvalid
	case maxPayload > 0 && len(p) > maxPayload:
		e.payload = fieldTooBig
	}
	if p := it.private; p != nil && !isNull(p) {
		var b protocol.FlexBool
		if b.UnmarshalJSON(p) != nil {
			e.private = fieldInvalid
		}
	}
	return e
}

// message decodes a checked item.
func (it *batchItem) message() restMessage {
	m := restMessage{topic: decodeJSONString(it.topic), event: decodeJSONString(it.event), payload: it.payload}
	if p := it.private; p != nil && !isNull(p) {
		var b protocol.FlexBool
		_ = b.UnmarshalJSON(p)
		m.private = bool(b)
	}
	if it.id != nil && !isNull(it.id) {
		m.id = it.id
	}
	return m
}

// checkNonEmptyString checks a field that must be a non-empty string.
func checkNonEmptyString(raw []byte) fieldErr {
	switch {
	case raw == nil || isNull(raw):
		return fieldBlank
	case raw[0] != '"':
		return fieldInvalid
	case len(raw) == 2: // an escape or any byte decodes to at least one
		return fieldBlank
	}
	return fieldOK
}

// checkName is checkNonEmptyString for a name of at most limit bytes
// once decoded (decoded only when it could be longer: an invalid UTF-8
// byte decodes to three).
func checkName(raw []byte, limit int) fieldErr {
	if e := checkNonEmptyString(raw); e != fieldOK {
		return e
	}
	if 3*(len(raw)-2) > limit && len(decodeJSONString(raw)) > limit {
		return fieldTooLong
	}
	return fieldOK
}

// decodeJSONString decodes a valid JSON string as encoding/json does
// (invalid UTF-8 and lone surrogates become U+FFFD).
func decodeJSONString(raw []byte) string {
	if content := raw[1 : len(raw)-1]; bytes.IndexByte(content, '\\') < 0 && utf8.Valid(content) {
		return string(content)
	}
	var s string
	_ = json.Unmarshal(raw, &s)
	return s
}

// errors returns the 422 answer's body, or nil when the batch is valid.
func (b *batch) errors() map[string]any {
	if b.bodyErr != nil {
		return map[string]any{"errors": b.bodyErr}
	}
	if b.failed == 0 {
		return nil
	}
	if b.total <= maxBatchErrors {
		list := make([]itemErrsJSON, len(b.positional))
		for i := range b.positional {
			list[i] = b.positional[i].json(false)
		}
		return map[string]any{"errors": map[string]any{"messages": list}}
	}
	list := make([]itemErrsJSON, len(b.failing))
	for i := range b.failing {
		list[i] = b.failing[i].json(true)
	}
	return map[string]any{"errors": map[string]any{"messages": list}, "failed": b.failed, "total": b.total}
}
