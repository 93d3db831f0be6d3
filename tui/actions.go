package tui

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"

	tea "charm.land/bubbletea/v2"

	"rtm/registry"
)

// errReadOnly is returned for every action under --readonly.
var errReadOnly = errors.New("read-only mode: actions are off (restart without --readonly)")

// actionDoneMsg is the result of an action Cmd.
type actionDoneMsg struct {
	op, subject, ok string
	err             error
}

// action returns a Cmd that runs f against the manager with a timeout and
// reports the outcome as an actionDoneMsg. It shows a pending status now.
func (m *Model) action(op, subject, ok string, f func(ctx context.Context, mgr Manager) error) tea.Cmd {
	if m.opts.ReadOnly {
		return m.fail(op, subject, errReadOnly)
	}
	mgr := m.ids[m.active].Manager // the selected channel's identity
	if mgr == nil {
		return m.fail(op, subject, errors.New("no channel manager"))
	}
	parent, timeout := m.opts.Context, m.opts.ActionTimeout
	m.setStatus(slog.LevelInfo, strings.TrimSpace(op+" "+subject)+" …")
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(parent, timeout)
		defer cancel()
		err := f(ctx, mgr)
		return actionDoneMsg{op: op, subject: subject, ok: ok, err: err}
	}
}

func (m *Model) join(req JoinRequest) tea.Cmd {
	ok := "joined " + req.Name.String()
	if req.As != "" {
		ok += " as " + req.As
	}
	return m.action("join", req.Name.String(), ok, func(ctx context.Context, mgr Manager) error {
		return mgr.Join(ctx, req)
	})
}

func (m *Model) leave(n registry.Name) tea.Cmd {
	return m.action("leave", n.String(), "left "+n.String(), func(ctx context.Context, mgr Manager) error {
		return mgr.Leave(ctx, n)
	})
}

func (m *Model) track(n registry.Name, u registry.PresenceUser) tea.Cmd {
	return m.action("track", n.String(), "tracking "+u.UserID+" on "+n.String(), func(ctx context.Context, mgr Manager) error {
		return mgr.Track(ctx, n, u)
	})
}

func (m *Model) untrack(n registry.Name) tea.Cmd {
	return m.action("untrack", n.String(), "untracked on "+n.String(), func(ctx context.Context, mgr Manager) error {
		return mgr.Untrack(ctx, n)
	})
}

func (m *Model) broadcast(n registry.Name, event string, p json.RawMessage) tea.Cmd {
	return m.action("broadcast", n.String(), "sent "+event+" on "+n.String(), func(ctx context.Context, mgr Manager) error {
		return mgr.Broadcast(ctx, n, event, p)
	})
}

func (m *Model) retry(n registry.Name) tea.Cmd {
	return m.action("retry", n.String(), "retrying "+n.String()+" now", func(ctx context.Context, mgr Manager) error {
		return mgr.RetryNow(ctx, n)
	})
}

// actionDone reports an action's outcome.
func (m *Model) actionDone(msg actionDoneMsg) tea.Cmd {
	if msg.err != nil {
		return m.fail(msg.op, msg.subject, msg.err)
	}
	return m.setStatus(slog.LevelInfo, msg.ok)
}

// fail shows an action's error in the status line and the log, with a
// hint, and logs it to the log file (from a Cmd).
func (m *Model) fail(op, subject string, err error) tea.Cmd {
	hint := hintFor(err)
	text := op
	if subject != "" {
		text += " " + subject
	}
	text += ": " + trimPrefix(err.Error())
	if hint != "" {
		text += " — " + hint
	}
	attrs := []registry.LogAttr{{Key: "op", Value: op}}
	if subject != "" {
		attrs = append(attrs, registry.LogAttr{Key: "subject", Value: subject})
	}
	attrs = append(attrs, registry.LogAttr{Key: "err", Value: trimPrefix(err.Error())})
	if hint != "" {
		attrs = append(attrs, registry.LogAttr{Key: "hint", Value: hint})
	}
	m.log.add(m.localLog(slog.LevelError, "Action failed", attrs...), true)
	status := m.setStatus(slog.LevelError, text)
	logger := m.opts.Logger
	if logger == nil {
		return status
	}
	args := make([]any, 0, 2*len(attrs))
	for _, a := range attrs {
		args = append(args, a.Key, a.Value)
	}
	ctx := m.opts.Context
	return tea.Batch(status, func() tea.Msg {
		logger.ErrorContext(ctx, "Action failed", args...)
		return nil
	})
}

// trimPrefix drops "registry: " style package prefixes from messages.
func trimPrefix(s string) string {
	for _, p := range []string{"registry: ", "tui: ", "realtime: "} {
		s = strings.TrimPrefix(s, p)
	}
	return s
}

// hintFor suggests what to do about an error.
func hintFor(err error) string {
	var ce *registry.ChannelError
	var capErr *registry.CapError
	switch {
	case errors.As(err, &ce):
		return registry.Hint(ce.Code, ce.Reason)
	case errors.As(err, &capErr):
		return registry.Hint("CapReached", "")
	case errors.Is(err, registry.ErrQueueFull):
		return registry.Hint("QueueFull", "")
	case errors.Is(err, registry.ErrUnsupported):
		return "server-side faults need the embedded server (rtm with no project) or rtm serve"
	case errors.Is(err, registry.ErrNotFound):
		return "the channel is not in the registry (it may have been left): :join it first"
	case errors.Is(err, registry.ErrInvalidName):
		return "names are [tenant:ID:]TYPE:ENTITY_TYPE:ENTITY_ID, e.g. presence:contact:123"
	case errors.Is(err, registry.ErrInvalidPayload):
		return "payloads are JSON objects"
	case errors.Is(err, registry.ErrClosed):
		return "the manager is closed: restart rtm"
	case errors.Is(err, context.DeadlineExceeded):
		return "no answer in time: the connection may be down or frozen — see the Retries tab"
	case errors.Is(err, errUsage):
		return "tab completes commands and names; :help lists the keys"
	case errors.Is(err, errReadOnly):
		return ""
	case errors.Is(err, ErrNoDatabase):
		return "start rtm with --db <postgres url> (or DATABASE_URL) of the database whose changes Realtime streams; the embedded server's --db auto needs PostgreSQL installed"
	}
	return registry.Hint("", err.Error())
}
