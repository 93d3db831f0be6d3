package tui

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	tea "charm.land/bubbletea/v2"

	"rtm/registry"
)

// openTrackForm opens the track-presence form for a channel.
func (m *Model) openTrackForm(c registry.ChannelInfo) tea.Cmd {
	if c.Name.Kind != registry.KindPresence {
		return m.setStatus(slog.LevelWarn, "p tracks presence: "+c.Name.String()+" is a "+c.Name.Kind.String()+" channel")
	}
	user := m.state.Token.Subject
	if user == "" {
		user = m.opts.User
	}
	if user == "" {
		user = "me"
	}
	intro := "on " + c.Name.String() + " — you show under this user id (your presence key), marked (you)"
	if c.Config.PresenceKey != "" {
		user = c.Config.PresenceKey
	}
	if c.Config.PresenceKey == "" || c.Tracked {
		intro += "; the channel rejoins with it"
	}
	name := c.Name
	f := newForm(m.st, "Track presence", intro, func(v []string) (tea.Cmd, error) {
		id := strings.TrimSpace(v[0])
		if id == "" {
			return nil, errors.New("user id is empty")
		}
		payload := json.RawMessage("{}")
		if strings.TrimSpace(v[2]) != "" {
			p, err := parseObject("payload", v[2])
			if err != nil {
				return nil, err
			}
			payload = p
		}
		payload, err := mergeUser(payload, id, strings.TrimSpace(v[1]))
		if err != nil {
			return nil, err
		}
		u := registry.PresenceUser{UserID: id, Name: strings.TrimSpace(v[1]), Payload: payload}
		return m.track(name, u), nil
	},
		[3]string{"User id (presence key)", user, "alice"},
		[3]string{"Name", user, "Alice"},
		[3]string{"Payload (JSON object)", `{"status":"online"}`, `{"status":"online"}`},
	)
	return m.openForm(f)
}

// mergeUser adds user_id and name to a presence payload object unless set.
func mergeUser(payload json.RawMessage, id, name string) (json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(payload, &obj); err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	if obj == nil {
		obj = map[string]json.RawMessage{}
	}
	if _, ok := obj["user_id"]; !ok {
		b, _ := json.Marshal(id)
		obj["user_id"] = b
	}
	if _, ok := obj["name"]; !ok && name != "" {
		b, _ := json.Marshal(name)
		obj["name"] = b
	}
	return json.Marshal(obj)
}
