package tui

import (
	"errors"
	"strings"

	tea "charm.land/bubbletea/v2"

	"rtm/registry"
)

// openBroadcastForm opens the broadcast form for a channel.
func (m *Model) openBroadcastForm(c registry.ChannelInfo) tea.Cmd {
	name := c.Name
	f := newForm(m.st, "Broadcast", "on "+name.String()+" — the payload is checked before sending", func(v []string) (tea.Cmd, error) {
		ev := strings.TrimSpace(v[0])
		if ev == "" {
			return nil, errors.New("event is empty")
		}
		p, err := parseObject("payload", v[1])
		if err != nil {
			return nil, err
		}
		return m.broadcast(name, ev, p), nil
	},
		[3]string{"Event", "message", "cursor"},
		[3]string{"Payload (JSON object)", `{"text":"hello"}`, `{"x":1,"y":2}`},
	)
	return m.openForm(f)
}
