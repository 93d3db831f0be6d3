package apps

import (
	"net/url"
	"slices"
	"time"

	"rtm/realtime/mask"
	"rtm/realtime/protocol"
	"rtm/realtime/proxy"
)

// The app's Realtime REST broadcasts (see the package doc, "REST
// broadcasts"): each request is kept in the model's REST list, and each
// of its messages is an app message via "rest", on the channel of the
// open socket of the same app when there is one, else on the request.

var _ proxy.RESTObserver = (*Model)(nil)

// ViaREST is the Via of a message the app sent by the REST broadcast
// API rather than on its socket.
const ViaREST = "rest"

// RESTRequest is one REST broadcast request of an app in a [Snapshot].
type RESTRequest struct {
	// Time is when the request arrived, Answered when the upstream
	// answered it.
	Time       time.Time `json:"time"`
	Answered   time.Time `json:"answered,omitzero"`
	RemoteAddr string    `json:"remote_addr"`
	ClientInfo string    `json:"client_info,omitempty"`
	Path       string    `json:"path"`
	// Token is what the request's token reads (masked).
	Token TokenInfo `json:"token"`
	// Status is the upstream's HTTP status (502: unreachable).
	Status int   `json:"status"`
	Bytes  int64 `json:"bytes"`
	// Decoded is false when the body was not decoded: Clipped (over the
	// proxy's copy bound) or Error says why.
	Decoded bool   `json:"decoded"`
	Clipped bool   `json:"clipped,omitempty"`
	Error   string `json:"error,omitempty"`
	// MessageCount is how many messages the body held. Socket is the
	// socket they were attached to (0: none open of the same app; they
	// are then in Messages, the first Options.MaxRESTMessages of them).
	MessageCount int       `json:"message_count"`
	Socket       uint64    `json:"socket,omitempty"`
	Messages     []Message `json:"messages,omitempty"`
}

// REST implements [proxy.RESTObserver]: a REST broadcast the app sent.
func (m *Model) REST(rb proxy.RESTBroadcast) {
	q, _ := url.ParseQuery(rb.RawQuery)
	m.restBroadcast(rb, tokenInfo(restToken(q, rb.Header)), nil)
}

// restBroadcast handles rb, whose token reads tok (from rb by REST, from
// a recording by Apply); sizes, when set, are the messages' payload
// sizes as the app sent them (a recording's payloads are masked).
func (m *Model) restBroadcast(rb proxy.RESTBroadcast, tok TokenInfo, sizes []int) {
	req := RESTRequest{Time: rb.Time, RemoteAddr: clip(mask.Text(rb.RemoteAddr), 256),
		ClientInfo: clip(mask.Text(rb.Header.Get("X-Client-Info")), 256), Path: clip(mask.Text(rb.Path), 256),
		Token: tok, Status: rb.Status, Bytes: rb.Bytes, Decoded: rb.Decoded, Clipped: rb.Clipped,
		Error: clip(mask.Text(rb.Error), 256), MessageCount: len(rb.Messages)}
	req.Answered = rb.Answered
	at := rb.Answered
	if at.IsZero() {
		at = rb.Time
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.version++
	m.stats.RESTRequests++
	base := Event{Type: TypeMessage, Time: at, Dir: proxy.FromApp.String(), Via: ViaREST, HTTPStatus: rb.Status,
		Role: tok.Role, Subject: tok.Subject}
	if !rb.Decoded {
		ev := base
		ev.Action, ev.Bytes, ev.Reason = "undecoded", int(min(rb.Bytes, 1<<40)), req.Error
		if rb.Clipped {
			ev.Text = "clipped"
		}
		m.publish(ev)
		m.keepREST(req)
		return
	}
	var s *socket
	if len(rb.Messages) > 0 {
		s = m.restSocket(req.ClientInfo, tok, protocol.Topic(rb.Messages[0].Topic))
	}
	for i, rm := range rb.Messages {
		m.stats.RESTMessages++
		size := len(rm.Payload)
		if i < len(sizes) {
			size = sizes[i]
		}
		topic := protocol.Topic(rm.Topic)
		mm := Message{Time: at, Dir: proxy.FromApp.String(), Event: protocol.EventBroadcast, Via: ViaREST,
			HTTPStatus: rb.Status, UserEvent: clip(mask.Text(rm.Event), 128), Bytes: size, Binary: rm.Binary}
		mm.Payload, mm.Clipped = m.payloadText(rm.Payload, rm.Binary)
		ev := base
		ev.Action, ev.Topic, ev.Event, ev.UserEvent, ev.Bytes, ev.Payload, ev.Binary, ev.Private =
			"message", clip(mask.Text(topic), 256), mm.Event, mm.UserEvent, mm.Bytes, mm.Payload, mm.Binary, rm.Private
		if ch := m.restChannel(s, topic); ch != nil {
			req.Socket, ev.Socket = s.s.ID, s.s.ID
			ch.c.MessagesFromApp++
			ch.c.BytesFromApp += uint64(mm.Bytes)
			m.push(ch, mm)
		} else if len(req.Messages) < m.opt.MaxRESTMessages && m.bytes+len(mm.Payload) <= m.opt.MaxBytes {
			req.Messages = append(req.Messages, mm)
			m.bytes += len(mm.Payload)
		}
		m.publish(ev)
	}
	m.keepREST(req)
}

// restSocket returns the open socket of the app that sent a REST
// request: the same x-client-info, and the token's role and subject
// those of the socket's token or of one of its channels' joins;
// preferably the latest that holds topic (the first message's), else
// the latest opened. Nil when none.
func (m *Model) restSocket(clientInfo string, tok TokenInfo, topic string) *socket {
	var best *socket
	bestHolds := false
	for _, s := range m.order { // in the order they opened
		if !s.s.Closed.IsZero() || s.s.ClientInfo != clientInfo || !s.sameIdentity(tok) {
			continue
		}
		if _, holds := s.chans[topic]; holds || !bestHolds {
			best, bestHolds = s, holds
		}
	}
	return best
}

// sameIdentity tells whether tok is the role and subject of the
// socket's token or of a join on it.
func (s *socket) sameIdentity(tok TokenInfo) bool {
	if s.s.Token.Role == tok.Role && s.s.Token.Subject == tok.Subject {
		return true
	}
	for _, ch := range s.corder {
		if ch.c.Token.Role == tok.Role && ch.c.Token.Subject == tok.Subject {
			return true
		}
	}
	return false
}

// restChannel returns the channel of topic on s, adding it (within
// MaxChannels) when s has none; nil when s is nil or full.
func (m *Model) restChannel(s *socket, topic string) *channel {
	if s == nil {
		return nil
	}
	if ch := s.chans[topic]; ch != nil {
		return ch
	}
	if len(s.chans) >= m.opt.MaxChannels {
		s.s.ChannelFramesDropped++
		return nil
	}
	ch := &channel{c: Channel{Topic: clip(mask.Text(topic), 256)}, members: make(map[string][]Meta)}
	s.chans[topic] = ch
	s.corder = append(s.corder, ch)
	return ch
}

// keepREST adds req to the REST list, dropping the oldest beyond
// MaxRESTRequests.
func (m *Model) keepREST(req RESTRequest) {
	if len(m.restLog) >= m.opt.MaxRESTRequests {
		for _, mm := range m.restLog[0].Messages {
			m.bytes -= len(mm.Payload)
		}
		m.restLog = slices.Delete(m.restLog, 0, 1)
		m.stats.RESTDropped++
	}
	m.restLog = append(m.restLog, req)
}
