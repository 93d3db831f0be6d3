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
	m.publish(e)
}

var _ proxy.FaultObserver = (*Model)(nil)
