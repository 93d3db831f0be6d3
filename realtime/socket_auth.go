package realtime

import (
	"time"

	"rtm/realtime/protocol"
)

// SetAuth sets the access token used by joins and pushes it
// (access_token) to every joined channel, as realtime-js's setAuth does:
// only when it differs from the current one. An empty token makes later
// joins use the API key.
func (s *Socket) SetAuth(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if token == s.token {
		return
	}
	s.token = token
	if s.conn == nil {
		return
	}
	for _, ch := range s.channels {
		if ch.state == ChannelJoined {
			s.pushTokenLocked(ch)
		}
	}
}

// pushTokenLocked pushes the current token to the joined channel ch
// (access_token). A channel whose join was under way when the token
// changed gets it once joined (onJoinReply): the server keeps the token
// of the join until told otherwise.
func (s *Socket) pushTokenLocked(ch *Channel) {
	ch.joinToken = s.token
	payload := append(protocol.AppendString([]byte(`{"access_token":`), s.token), '}')
	m := protocol.Message{JoinRef: ch.joinRef, Ref: s.makeRefLocked(), Topic: ch.topic, Event: protocol.EventAccessToken, Payload: payload}
	if _, err := s.conn.enqueue(&m, false); err != nil {
		s.log.Warn("Cannot push access_token", logTopic, ch.topic, logErr, err)
	}
}

// AccessToken returns the token joins use (empty: the API key).
func (s *Socket) AccessToken() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.token
}

// TokenExpiry returns the exp of the access token in use (of the API key
// when no token is set); ok is false when it has none or is not a JWT.
func (s *Socket) TokenExpiry() (exp time.Time, ok bool) {
	s.mu.Lock()
	tok := s.token
	s.mu.Unlock()
	if tok == "" {
		tok = s.opts.APIKey
	}
	exp, err := TokenExpiry(tok)
	return exp, err == nil
}
