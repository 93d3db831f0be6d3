package tui

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	tea "charm.land/bubbletea/v2"

	"rtm/registry"
)

// The identity commands: ":as" adds an identity (its own socket),
// ":drop-identity" drops one, ":join ... --for a,b" and the J key join
// one topic as several.

// identityCommands are the commands' specs, for completion and help.
func identityCommands() []commandSpec {
	return []commandSpec{
		{"as", "USER | --role anon|authenticated|service_role | --jwt TOKEN", "add an identity beside the others: its own socket and token (minted for USER or the role, or the pasted token, masked)", true},
		{"drop-identity", "[name]", "drop an identity (default: the selected channel's) and close its socket", true},
	}
}

// identityAddedMsg is the outcome of ":as".
type identityAddedMsg struct {
	spec string // masked
	id   Identity
	err  error
}

// identityDroppedMsg is the outcome of ":drop-identity".
type identityDroppedMsg struct {
	name string
	err  error
}

// identityCommand runs the identity commands; ok is false for others.
func (m *Model) identityCommand(c command) (cmd tea.Cmd, ok bool) {
	switch c.name {
	case "as":
		return m.addIdentity(c.rest), true
	case "drop-identity":
		if len(c.args) > 1 {
			return m.fail(c.name, "", fmt.Errorf("%w: %s", errUsage, usage(c.name))), true
		}
		name := m.activeName()
		if len(c.args) == 1 {
			name = c.args[0]
		}
		return m.dropIdentity(name), true
	}
	return nil, false
}

// addIdentity asks Options.Identities for the identity spec describes.
func (m *Model) addIdentity(spec string) tea.Cmd {
	shown := maskSpec(spec)
	switch {
	case m.opts.ReadOnly:
		return m.fail("as", shown, errReadOnly)
	case m.opts.Identities == nil:
		return m.fail("as", shown, errors.New("this rtm cannot add identities (no identity builder)"))
	case strings.TrimSpace(spec) == "":
		return m.fail("as", "", fmt.Errorf("%w: %s", errUsage, usage("as")))
	case len(m.ids) >= maxIdentities:
		return m.fail("as", shown, fmt.Errorf("at most %d identities: drop one first (:drop-identity NAME)", maxIdentities))
	}
	ids, parent, timeout := m.opts.Identities, m.opts.Context, m.opts.ActionTimeout
	m.setStatus(slog.LevelInfo, "as "+shown+" …")
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(parent, timeout)
		defer cancel()
		id, err := ids.Add(ctx, spec)
		return identityAddedMsg{spec: shown, id: id, err: err}
	}
}

// identityAdded adds the built identity; its bridge feeds it already.
func (m *Model) identityAdded(msg identityAddedMsg) tea.Cmd {
	if msg.err != nil {
		return m.fail("as", msg.spec, msg.err)
	}
	if m.identityIndex(msg.id.Name) >= 0 {
		return m.fail("as", msg.spec, fmt.Errorf("identity %q exists already", msg.id.Name))
	}
	m.ids = append(m.ids, m.newIdentity(msg.id))
	m.identitiesChanged()
	m.rebuildRows()
	m.invalidate()
	text := "added identity " + msg.id.Name
	if msg.id.Detail != "" {
		text += " (" + registry.MaskText(msg.id.Detail) + ")"
	}
	return m.setStatus(slog.LevelInfo, text+": :join ... --for "+msg.id.Name+", or J on a channel")
}

// dropIdentity drops a held identity (never the first: Options.Manager
// is the UI's own).
func (m *Model) dropIdentity(name string) tea.Cmd {
	i := m.identityIndex(name)
	switch {
	case m.opts.ReadOnly:
		return m.fail("drop-identity", name, errReadOnly)
	case i < 0:
		return m.fail("drop-identity", name, fmt.Errorf("no identity %q (have %s)", name, strings.Join(m.identityNames(), ", ")))
	case i == 0:
		return m.fail("drop-identity", name, errors.New("the first identity is rtm's own: it stays (drop the others)"))
	case m.opts.Identities == nil:
		return m.fail("drop-identity", name, errors.New("this rtm cannot drop identities (no identity builder)"))
	}
	ids, parent, timeout := m.opts.Identities, m.opts.Context, m.opts.ActionTimeout
	m.setStatus(slog.LevelInfo, "drop-identity "+name+" …")
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(parent, timeout)
		defer cancel()
		return identityDroppedMsg{name: name, err: ids.Drop(ctx, name)}
	}
}

// identityDropped forgets a dropped identity and its channels' data.
func (m *Model) identityDropped(msg identityDroppedMsg) tea.Cmd {
	if msg.err != nil {
		return m.fail("drop-identity", msg.name, msg.err)
	}
	i := m.identityIndex(msg.name)
	if i <= 0 {
		return nil
	}
	if i == m.active {
		m.activate(0)
	}
	active := m.ids[m.active]
	m.ids = append(m.ids[:i:i], m.ids[i+1:]...)
	m.active = m.identityIndex(active.Name)
	m.identitiesChanged()
	m.rebuildRows()
	m.clearRowCaches()
	m.invalidate()
	return m.setStatus(slog.LevelInfo, "dropped identity "+msg.name+" (its socket is closed)")
}

// identityNames returns the names of the identities held.
func (m *Model) identityNames() []string {
	out := make([]string, len(m.ids))
	for i, id := range m.ids {
		out[i] = id.Name
	}
	return out
}

// joinFor joins req's topic as each identity of the comma-separated
// list, each through its own manager.
func (m *Model) joinFor(req JoinRequest, list string) tea.Cmd {
	var names []string
	for _, n := range strings.Split(list, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return m.fail("join", req.Name.String(), errors.New("--for needs identity names, e.g. --for alice,bob"))
	}
	var mgrs []Manager
	for _, n := range names {
		i := m.identityIndex(n)
		if i < 0 {
			return m.fail("join", req.Name.String(), fmt.Errorf("no identity %q (have %s): add it with :as %s", n, strings.Join(m.identityNames(), ", "), n))
		}
		mgrs = append(mgrs, m.ids[i].Manager)
	}
	return m.joinAs(req, names, mgrs)
}

// joinOthers joins the selected channel's topic as every other identity
// (the J key).
func (m *Model) joinOthers() tea.Cmd {
	c, ok := m.selected()
	if !ok {
		return m.fail("join", "", errors.New("no channel selected"))
	}
	if !m.multi() {
		return m.fail("join", c.Name.String(), errors.New("one identity only: add another with :as USER (or --role anon)"))
	}
	have := map[string]bool{}
	for _, h := range m.holders(c.Name) {
		have[h] = true
	}
	var (
		names []string
		mgrs  []Manager
	)
	for _, id := range m.ids {
		if !have[id.Name] {
			names, mgrs = append(names, id.Name), append(mgrs, id.Manager)
		}
	}
	if len(names) == 0 {
		return m.setStatus(slog.LevelInfo, "every identity holds "+c.Name.String()+" already")
	}
	return m.joinAs(JoinRequest{Name: c.Name, Private: c.Config.Private}, names, mgrs)
}

// joinAs runs one join per identity and reports them together.
func (m *Model) joinAs(req JoinRequest, names []string, mgrs []Manager) tea.Cmd {
	subject := req.Name.String()
	if m.opts.ReadOnly {
		return m.fail("join", subject, errReadOnly)
	}
	for _, mg := range mgrs {
		if mg == nil {
			return m.fail("join", subject, errors.New("no channel manager"))
		}
	}
	parent, timeout := m.opts.Context, m.opts.ActionTimeout
	who := strings.Join(names, ", ")
	m.setStatus(slog.LevelInfo, "join "+subject+" for "+who+" …")
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(parent, timeout)
		defer cancel()
		errs := make([]error, len(mgrs))
		done := make(chan struct{}, len(mgrs))
		for i, mg := range mgrs {
			go func() {
				defer func() { done <- struct{}{} }()
				if err := mg.Join(ctx, req); err != nil {
					errs[i] = fmt.Errorf("as %s: %w", names[i], err)
				}
			}()
		}
		for range mgrs {
			<-done
		}
		return actionDoneMsg{op: "join", subject: subject, ok: "joined " + subject + " as " + who, err: errors.Join(errs...)}
	}
}

// maskSpec masks the token of an identity spec ("--jwt TOKEN",
// "--jwt=TOKEN") and any other secret in it, for the status line, the
// log and the command history.
func maskSpec(spec string) string {
	f := strings.Fields(spec)
	for i := 0; i < len(f); i++ {
		switch {
		case f[i] == "--jwt" && i+1 < len(f):
			f[i+1] = registry.MaskSecret(f[i+1])
			i++
		case strings.HasPrefix(f[i], "--jwt="):
			f[i] = "--jwt=" + registry.MaskSecret(strings.TrimPrefix(f[i], "--jwt="))
		}
	}
	return registry.MaskText(strings.Join(f, " "))
}
