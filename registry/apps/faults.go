package apps

import (
	"time"

	"rtm/realtime/mask"
	"rtm/realtime/proxy"
)

// Fault implements [proxy.FaultObserver]: each fault the proxy arms or
// applies is published as an app_fault event (action: the proxy's fault
// kind, "armed" in text when it was armed rather than applied, reason:
// its detail, masked by the proxy), so that a fault and its effect on
// the app (a close, the rejoins that follow) read in order.
//
// A Freeze of a socket (its Detail the duration) is also remembered: a
// socket the app opens while another is frozen is linked to the frozen
// one as its next attempt, from the freeze's start (see Socket).
func (m *Model) Fault(ev proxy.FaultEvent) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.sockets[ev.Conn]
	if s != nil && !ev.Armed {
		if ev.Kind == proxy.FaultFreeze {
			s.freeze(ev.Time, ev.Detail) // not in Snapshot: no new version
		}
		// A freeze of 0 thaws the socket: it does not end it.
		if endsSocket(ev.Kind) && (ev.Kind != proxy.FaultFreeze || !s.frozenUntil.IsZero()) {
			s.faulted = true
		}
	}
	e := Event{Type: TypeFault, Time: ev.Time, Socket: ev.Conn, Topic: clip(mask.Text(ev.Topic), 256), Action: ev.Kind, Reason: clip(mask.Text(ev.Detail), 256)}
	if ev.Armed {
		e.Text = "armed"
	}
	m.publish(e)
}

var _ proxy.FaultObserver = (*Model)(nil)

// freeze records a Freeze of s at now for detail, its duration (0
// thaws; a freeze of a frozen socket moves its end, not its start).
func (s *socket) freeze(now time.Time, detail string) {
	d, err := time.ParseDuration(detail)
	switch {
	case err != nil:
	case d <= 0:
		s.frozenFrom, s.frozenUntil = time.Time{}, time.Time{}
	default:
		if s.frozenFrom.IsZero() || !now.Before(s.frozenUntil) {
			s.frozenFrom = now
		}
		s.frozenUntil = now.Add(d)
	}
}

// endsSocket tells whether a fault of kind, applied to a socket, ends it
// (a freeze by the app's heartbeat timeout): the socket's channels are
// then not flagged never_left.
func endsSocket(kind string) bool {
	switch kind {
	case proxy.FaultDrop, proxy.FaultClose, proxy.FaultFreeze, proxy.FaultExpireToken:
		return true
	}
	return false
}
