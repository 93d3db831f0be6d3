package apps

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// EventType is the "type" of an [Event]; the names are stable.
type EventType string

// The event types.
const (
	TypeSocket   EventType = "app_socket"
	TypeChannel  EventType = "app_channel"
	TypeMessage  EventType = "app_message"
	TypePresence EventType = "app_presence"
	TypeFlag     EventType = "app_flag"
	TypeFault    EventType = "app_fault"
)

// Event is one change of the model, for headless use (see the package
// doc for the fields of each type). Everything in it is masked.
type Event struct {
	Type   EventType `json:"type"`
	Time   time.Time `json:"time"`
	Socket uint64    `json:"socket"`
	Topic  string    `json:"topic,omitempty"`
	Action string    `json:"action,omitempty"`

	RemoteAddr string  `json:"remote_addr,omitempty"`
	ClientInfo string  `json:"client_info,omitempty"`
	Vsn        string  `json:"vsn,omitempty"`
	Token      string  `json:"token,omitempty"`
	Role       string  `json:"role,omitempty"`
	Subject    string  `json:"subject,omitempty"`
	Expiry     string  `json:"expiry,omitempty"`
	Connection uint64  `json:"connection,omitempty"`
	Attempt    int     `json:"attempt,omitempty"`
	DelayMS    float64 `json:"delay_ms,omitempty"`
	Code       int     `json:"code,omitempty"`
	ClosedBy   string  `json:"closed_by,omitempty"`

	Status  Status `json:"status,omitempty"`
	Ref     string `json:"ref,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Private bool   `json:"private,omitempty"`

	Dir       string `json:"dir,omitempty"`
	Event     string `json:"event,omitempty"`
	UserEvent string `json:"user_event,omitempty"`
	Bytes     int    `json:"bytes,omitempty"`
	Payload   string `json:"payload,omitempty"`
	// Binary marks a binary payload, which Payload shows in hex.
	Binary bool `json:"binary,omitempty"`
	// Via is "rest" for a message the app sent by the REST broadcast
	// API, HTTPStatus the upstream's answer to it.
	Via        string `json:"via,omitempty"`
	HTTPStatus int    `json:"http_status,omitempty"`

	Key     string `json:"key,omitempty"`
	Metas   int    `json:"metas,omitempty"`
	Members int    `json:"members,omitempty"`

	Flag FlagKind `json:"flag,omitempty"`
	Text string   `json:"text,omitempty"`
}

// Subscription receives the model's events on a bounded queue: an
// event that finds the queue full is dropped and counted, never waited
// for.
type Subscription struct {
	m       *Model
	c       chan Event
	dropped uint64 // under m.mu
}

// Subscribe returns a subscription whose queue holds buffer events (0:
// Options.EventBuffer). Close it when done.
func (m *Model) Subscribe(buffer int) *Subscription {
	if buffer <= 0 {
		buffer = m.opt.EventBuffer
	}
	s := &Subscription{m: m, c: make(chan Event, buffer)}
	m.mu.Lock()
	m.subs[s] = struct{}{}
	m.mu.Unlock()
	return s
}

// Events is the queue; it is closed by Close.
func (s *Subscription) Events() <-chan Event { return s.c }

// Dropped returns how many events found the queue full.
func (s *Subscription) Dropped() uint64 {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	return s.dropped
}

// Close ends the subscription and closes its queue. It may be called
// more than once.
func (s *Subscription) Close() {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if _, ok := s.m.subs[s]; ok {
		delete(s.m.subs, s)
		close(s.c)
	}
}

// Stream writes the subscription's events to w as NDJSON until ctx ends
// (it returns ctx's error) or the subscription is closed (nil).
func (s *Subscription) Stream(ctx context.Context, w io.Writer) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-s.c:
			if !ok {
				return nil
			}
			if err := WriteNDJSON(w, ev); err != nil {
				return err
			}
		}
	}
}

// WriteNDJSON writes ev as one line of JSON (HTML characters such as
// '>' as they are, not escaped).
func WriteNDJSON(w io.Writer, ev Event) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ev); err != nil {
		return fmt.Errorf("apps: write event: %w", err)
	}
	return nil
}

// publish hands ev to every subscriber without waiting (m.mu held).
func (m *Model) publish(ev Event) {
	for s := range m.subs {
		select {
		case s.c <- ev:
		default:
			s.dropped++
			m.stats.EventsDropped++
		}
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func expiryText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
