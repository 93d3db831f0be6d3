package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Reply statuses.
const (
	StatusOK    = "ok"
	StatusError = "error"
)

// Topic returns the wire topic of a channel name: "realtime:" + name.
func Topic(name string) string { return TopicPrefix + name }

// SubTopic returns topic without a leading "realtime:" (matched without
// regard to case), as realtime-js and the server compute it for REST calls
// and system messages.
func SubTopic(topic string) string {
	if len(topic) >= len(TopicPrefix) && strings.EqualFold(topic[:len(TopicPrefix)], TopicPrefix) {
		return topic[len(TopicPrefix):]
	}
	return topic
}

// FlexBool is a boolean that also accepts the strings "true" and "false"
// in any case, as the server's join parser does. It encodes as a JSON
// boolean.
type FlexBool bool

// UnmarshalJSON implements json.Unmarshaler.
func (b *FlexBool) UnmarshalJSON(data []byte) error {
	switch strings.ToLower(strings.Trim(string(data), `"`)) {
	case "true":
		*b = true
	case "false", "null":
		*b = false
	default:
		return fmt.Errorf("%w: %s is not a boolean", ErrMalformed, data)
	}
	return nil
}

// JoinPayload is the payload of phx_join.
type JoinPayload struct {
	Config JoinConfig `json:"config"`
	// AccessToken is the channel's JWT; empty means the connection's apikey.
	AccessToken string `json:"access_token,omitempty"`
	// UserToken is a legacy alias of AccessToken, read by servers.
	UserToken string `json:"user_token,omitempty"`
	// Version names the client ("realtime-js/2.119.0"); ignored by servers.
	Version string `json:"version,omitempty"`
}

// Token returns the channel token: access_token, else user_token.
func (p *JoinPayload) Token() string {
	if p.AccessToken != "" {
		return p.AccessToken
	}
	return p.UserToken
}

// JoinConfig is phx_join's "config".
type JoinConfig struct {
	Broadcast       BroadcastConfig  `json:"broadcast"`
	Presence        PresenceConfig   `json:"presence"`
	PostgresChanges []PostgresChange `json:"postgres_changes"`
	Private         FlexBool         `json:"private"`
}

// BroadcastConfig configures broadcast on a channel.
type BroadcastConfig struct {
	// Ack asks the server to reply to every broadcast push.
	Ack FlexBool `json:"ack"`
	// Self asks the server to deliver the channel's own broadcasts to it.
	Self FlexBool `json:"self"`
}

// PresenceConfig configures presence on a channel.
type PresenceConfig struct {
	// Key is this client's presence key; empty lets the server assign one.
	Key string `json:"key"`
	// Enabled asks for presence_state and presence_diff.
	Enabled FlexBool `json:"enabled"`
}

// PostgresChange is one postgres_changes binding of a join and, with ID
// set, its echo in the join reply.
type PostgresChange struct {
	// Event is "INSERT", "UPDATE", "DELETE" or "*".
	Event  string `json:"event"`
	Schema string `json:"schema,omitempty"`
	Table  string `json:"table,omitempty"`
	// Filter is "column=op.value", e.g. "id=eq.1".
	Filter string `json:"filter,omitempty"`
	// ID is the server's id of the subscription (join replies only).
	ID int64 `json:"id,omitempty"`
}

// Reply is the payload of phx_reply.
type Reply struct {
	Status   string          `json:"status"`
	Response json.RawMessage `json:"response"`
}

// ReplyPayload encodes {"status":status,"response":response}; an empty
// response is {}.
func ReplyPayload(status string, response []byte) json.RawMessage {
	out := make([]byte, 0, 32+len(response))
	out = append(out, `{"status":`...)
	out = appendString(out, status)
	out = append(out, `,"response":`...)
	out = append(out, payloadOrEmpty(response)...)
	return append(out, '}')
}

// ReasonResponse encodes {"reason":reason}, the response of error replies.
func ReasonResponse(reason string) json.RawMessage {
	return append(appendString([]byte(`{"reason":`), reason), '}')
}

// ErrorReplyPayload encodes {"status":"error","response":{"reason":reason}}.
func ErrorReplyPayload(reason string) json.RawMessage {
	return ReplyPayload(StatusError, ReasonResponse(reason))
}

// ParseReply decodes a phx_reply payload.
func ParseReply(payload []byte) (Reply, error) {
	var r Reply
	if err := json.Unmarshal(payload, &r); err != nil {
		return Reply{}, fmt.Errorf("%w: reply: %v", ErrMalformed, err)
	}
	if r.Status == "" {
		return Reply{}, fmt.Errorf("%w: reply without status", ErrMalformed)
	}
	return r, nil
}

// Reason returns the "reason" of an error reply's response, or the
// response text itself when it is a string (as for
// "payload_size_exceeded"), or the response's JSON.
func (r Reply) Reason() string {
	var obj struct {
		Reason string `json:"reason"`
	}
	if json.Unmarshal(r.Response, &obj) == nil && obj.Reason != "" {
		return obj.Reason
	}
	var s string
	if json.Unmarshal(r.Response, &s) == nil {
		return s
	}
	return string(r.Response)
}

// SplitReason splits a join error reason "Code: message" into its code and
// message. A reason without a code returns an empty code.
func SplitReason(reason string) (code, message string) {
	c, m, ok := strings.Cut(reason, ": ")
	if !ok || c == "" || strings.ContainsAny(c, " \t") {
		return "", reason
	}
	return c, m
}

// System is the payload of a "system" message.
type System struct {
	// Extension is "system" or "postgres_changes".
	Extension string `json:"extension"`
	// Status is "ok" or "error".
	Status  string `json:"status"`
	Message string `json:"message"`
	// Channel is the sub-topic; absent on socket-wide messages.
	Channel string `json:"channel,omitempty"`
}

// AccessTokenPayload is the payload of an access_token push.
type AccessTokenPayload struct {
	AccessToken string `json:"access_token"`
}

// PresencePush is the payload of a "presence" push: track or untrack.
type PresencePush struct {
	Type  string `json:"type"`  // "presence"
	Event string `json:"event"` // "track" or "untrack"
	// Payload is the tracked meta (track only).
	Payload json.RawMessage `json:"payload,omitempty"`
}

// PresenceMeta is one presence meta: the tracked object plus the server's
// phx_ref (and phx_ref_prev on updates).
type PresenceMeta struct {
	// Ref is phx_ref, unique per tracked meta.
	Ref string
	// PrevRef is phx_ref_prev, the ref this meta replaced.
	PrevRef string
	// Raw is the meta object as on the wire, phx_ref fields included.
	Raw json.RawMessage
}

// UnmarshalJSON implements json.Unmarshaler. The meta must be an object.
func (m *PresenceMeta) UnmarshalJSON(data []byte) error {
	s := scanner{data: data}
	var ref, prev string
	err := s.objectFields(func(key string) error {
		var err error
		switch key {
		case "phx_ref":
			ref, _, err = s.stringOrNull()
		case "phx_ref_prev":
			prev, _, err = s.stringOrNull()
		default:
			_, err = s.value()
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("presence meta: %w", err)
	}
	m.Ref, m.PrevRef = ref, prev
	m.Raw = append(m.Raw[:0:0], bytes.TrimSpace(data)...)
	return nil
}

// MarshalJSON implements json.Marshaler.
func (m PresenceMeta) MarshalJSON() ([]byte, error) {
	if len(m.Raw) == 0 {
		out := []byte(`{"phx_ref":`)
		out = appendString(out, m.Ref)
		if m.PrevRef != "" {
			out = append(out, `,"phx_ref_prev":`...)
			out = appendString(out, m.PrevRef)
		}
		return append(out, '}'), nil
	}
	return m.Raw, nil
}

// UserFields returns the meta object without phx_ref and phx_ref_prev:
// what the tracking client sent.
func (m PresenceMeta) UserFields() json.RawMessage {
	out, err := filterMembers(nil, m.Raw, "phx_ref", "phx_ref_prev")
	if err != nil {
		return json.RawMessage("{}")
	}
	return append(out, '}')
}

// NewPresenceMeta builds the meta a server stores for a track: the user's
// object with phx_ref (and phx_ref_prev when prevRef is not empty) set.
// Any phx_ref fields the user sent are replaced. payload must be a JSON
// object.
func NewPresenceMeta(payload []byte, ref, prevRef string) (PresenceMeta, error) {
	out := make([]byte, 0, len(payload)+64)
	out, err := filterMembers(out, payload, "phx_ref", "phx_ref_prev")
	if err != nil {
		return PresenceMeta{}, err
	}
	if len(out) > 1 {
		out = append(out, ',')
	}
	out = append(out, `"phx_ref":`...)
	out = appendString(out, ref)
	if prevRef != "" {
		out = append(out, `,"phx_ref_prev":`...)
		out = appendString(out, prevRef)
	}
	out = append(out, '}')
	return PresenceMeta{Ref: ref, PrevRef: prevRef, Raw: out}, nil
}

// filterMembers appends '{' and the members of the object obj except the
// named keys, comma-separated, without the closing brace.
func filterMembers(dst, obj []byte, drop ...string) ([]byte, error) {
	s := scanner{data: obj}
	dst = append(dst, '{')
	first := true
	err := s.objectFields(func(key string) error {
		v, err := s.value()
		if err != nil {
			return err
		}
		for _, d := range drop {
			if key == d {
				return nil
			}
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendString(dst, key)
		dst = append(dst, ':')
		dst = append(dst, v...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := s.end(); err != nil {
		return nil, err
	}
	return dst, nil
}

// PresenceEntry is the presence of one key: its metas.
type PresenceEntry struct {
	Metas []PresenceMeta `json:"metas"`
}

// PresenceState is the payload of presence_state: key -> metas.
type PresenceState map[string]PresenceEntry

// PresenceDiff is the payload of presence_diff.
type PresenceDiff struct {
	Joins  PresenceState `json:"joins"`
	Leaves PresenceState `json:"leaves"`
}

// Column is one column of a postgres change.
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// ChangeData is the "data" of a postgres_changes message.
type ChangeData struct {
	Schema string `json:"schema"`
	Table  string `json:"table"`
	// CommitTimestamp is UTC, "2006-01-02T15:04:05.000Z".
	CommitTimestamp string   `json:"commit_timestamp"`
	Type            string   `json:"type"`
	Columns         []Column `json:"columns"`
	// Record is the row after the change (INSERT, UPDATE).
	Record json.RawMessage `json:"record,omitempty"`
	// OldRecord is the row before the change (UPDATE, DELETE).
	OldRecord json.RawMessage `json:"old_record,omitempty"`
	// Errors is null or a list such as "Error 401: Unauthorized".
	Errors []string `json:"errors"`
}

// PostgresChangesPayload is the payload of a postgres_changes message.
type PostgresChangesPayload struct {
	// IDs are the server ids of the channel's bindings the change matched.
	IDs  []int64    `json:"ids"`
	Data ChangeData `json:"data"`
}

// SetMember returns a copy of the JSON object obj with member key set to
// the raw JSON value: any existing members named key are dropped and the
// new member is appended last; the other members keep their order and
// bytes. It is how a server echoes a client's object with a field added
// (the "id" of a postgres_changes binding in a join reply). obj must be a
// JSON object and value valid JSON.
func SetMember(obj []byte, key string, value []byte) ([]byte, error) {
	if !Valid(value) {
		return nil, fmt.Errorf("%w: member value is not valid JSON", ErrMalformed)
	}
	out := make([]byte, 0, len(obj)+len(key)+len(value)+4)
	out, err := filterMembers(out, obj, key)
	if err != nil {
		return nil, err
	}
	if len(out) > 1 {
		out = append(out, ',')
	}
	out = appendString(out, key)
	out = append(out, ':')
	out = append(out, bytes.TrimSpace(value)...)
	return append(out, '}'), nil
}
