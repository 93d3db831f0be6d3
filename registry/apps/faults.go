package apps

import (
	"rtm/realtime/mask"
	"rtm/realtime/proxy"
)

// Fault implements [proxy.FaultObserver]: each fault the proxy arms or
// applies is published as an app_fault event (action: the proxy's fault
// kind, "armed" in text when it was armed rather than applied, reason:
// its detail, masked by the proxy), so that a fault and its effect on
// the app (a close, the rejoins that follow) read in order.
func (m *Model) Fault(ev proxy.FaultEvent) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := Event{Type: TypeFault, Time: ev.Time, Socket: ev.Conn, Topic: clip(mask.Text(ev.Topic), 256), Action: ev.Kind, Reason: clip(mask.Text(ev.Detail), 256)}
	if ev.Armed {
		e.Text = "armed"
	}
	if s := m.sockets[ev.Conn]; s != nil && !ev.Armed && endsSocket(ev.Kind) {
		s.faulted = true
	}
	m.publish(e)
}

var _ proxy.FaultObserver = (*Model)(nil)

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
