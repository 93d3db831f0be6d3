package tui

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	tea "charm.land/bubbletea/v2"

	"rtm/registry"
)

// commandSpec describes one ":" command for completion and help.
type commandSpec struct {
	name, args, help string
	// action is false for commands that change nothing (help, quit).
	action bool
}

// commands returns the command set, in help order.
func commands() []commandSpec {
	return slices.Concat([]commandSpec{
		{"join", "presence|broadcast|subscription <entity_type>:<entity_id> [--tenant T] [--as USER] [--private] [--for ID,ID]", "join a channel (shared if it exists; --private: a private channel, authorised by the server's RLS policies; --for: as these identities)", true},
		{"leave", "<name>", "leave a channel (all references)", true},
		{"track", "<name> <json>", "track a presence, e.g. {\"user_id\":\"alice\",\"name\":\"Alice\"}", true},
		{"untrack", "<name>", "stop tracking your presence", true},
		{"broadcast", "<name> <event> <json>", "send a broadcast with a JSON object payload", true},
		{"retry", "<name>", "retry a channel now (fresh series)", true},
	}, identityCommands(), faultCommands(), []commandSpec{
		{"policy", "fixed:3s|exp|breaker", "set the retry policy", true},
		{"seek", "<1:30|+10s|-1m>", "replay: go to a position or step (rtm replay)", false},
		{"speed", "<x>", "replay: set the speed, e.g. 2 or 0.5 (rtm replay)", false},
		{"doctor", "[name]", "why no postgres changes? check a subscription channel against its database", false},
		{"apps", "", "the apps connected through rtm's app proxy: sockets, channels, flags", false},
		{"limits", "", "the budget meter: each Supabase limit's usage, peak, limit, forecast and the server's limit errors", false},
		{"export", "<file>", "write the log and events as NDJSON", true},
		{"cleanup", "", "leave every channel", true},
		{"help", "", "show the keys", false},
		{"quit", "", "quit rtm", false},
	})
}

// completions returns full command lines that extend value.
func completions(value string, names []string, replay bool) []string {
	fields := strings.Fields(value)
	trailing := strings.HasSuffix(value, " ")
	// Completing the command name.
	if len(fields) == 0 || (len(fields) == 1 && !trailing) {
		var out []string
		for _, c := range commands() {
			if !replay && (c.name == "seek" || c.name == "speed") {
				continue
			}
			s := c.name
			if c.args != "" {
				s += " "
			}
			out = append(out, s)
		}
		return out
	}
	cmd := fields[0]
	argIdx := len(fields) - 1 // index of the argument being typed
	if trailing {
		argIdx = len(fields)
	}
	prefix := strings.Join(fields[:argIdx], " ") + " "
	var cands []string
	switch cmd {
	case "join":
		switch argIdx {
		case 1:
			cands = []string{"presence ", "broadcast ", "subscription "}
		case 2:
			cands = exampleEntities(fields[1], names)
		default:
			cands = []string{"--tenant ", "--as ", "--private ", "--for "}
		}
	case "as":
		if argIdx == 1 {
			cands = []string{"--role anon", "--role authenticated", "--role service_role", "--jwt "}
		}
	case "leave", "untrack", "retry", "track", "broadcast":
		if argIdx == 1 {
			cands = names
		}
		if cmd == "broadcast" && argIdx == 2 {
			cands = []string{"cursor ", "message ", "ping "}
		}
		if cmd == "track" && argIdx == 2 {
			cands = []string{`{"user_id":"me","name":"Me"}`}
		}
		if cmd == "broadcast" && argIdx == 3 {
			cands = []string{`{"x":1,"y":2}`}
		}
	case "doctor":
		if argIdx == 1 {
			for _, n := range names {
				if strings.HasPrefix(n, "subscription:") || strings.Contains(n, ":subscription:") {
					cands = append(cands, n)
				}
			}
		}
	case "channel-error":
		if argIdx == 1 {
			cands = names
		}
	case "kick":
		switch argIdx {
		case 1:
			cands = names
		case 2:
			cands = []string{"error", "close"}
		}
	case "policy":
		if argIdx == 1 {
			cands = []string{"fixed:3s", "exp", "breaker", "fixed:1s,max=10"}
		}
	case "seek":
		cands = []string{"+10s", "-10s", "0:00"}
	case "speed":
		cands = []string{"1", "2", "10", "0.5"}
	case "freeze":
		cands = []string{"10s", "30s"}
	case "latency":
		cands = []string{"200ms", "1s", "0"}
	case "fail-connects":
		cands = []string{"3", "10"}
	case "reject-joins":
		cands = []string{"3", "10s"}
	case "restart":
		cands = []string{"3s", "0"}
	case "export":
		cands = []string{"rtm-export.ndjson"}
	}
	out := make([]string, 0, len(cands))
	for _, c := range cands {
		out = append(out, prefix+c)
	}
	return out
}

// exampleEntities suggests entities for a join of kind: the entities
// of existing channels of that kind, then the design's examples.
func exampleEntities(kind string, names []string) []string {
	var out []string
	for _, n := range names {
		if nm, err := registry.ParseName(n); err == nil && nm.Kind.String() == kind {
			out = append(out, nm.Entity())
		}
	}
	switch kind {
	case "presence":
		out = append(out, "contact:123")
	case "broadcast":
		out = append(out, "document:789")
	case "subscription":
		out = append(out, "project:456")
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// command is a parsed ":" command line.
type command struct {
	name  string
	args  []string
	rest  string // the raw text after the fixed arguments (JSON)
	flags map[string]string
}

// errUsage marks a command error that the usage line explains.
var errUsage = errors.New("usage")

// parseCommand splits line into the command name, nFixed arguments, the
// raw rest, and --flag value pairs (flags only where allowed).
func parseCommand(line string) (command, error) {
	line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), ":"))
	if line == "" {
		return command{}, fmt.Errorf("empty command: type help for the list")
	}
	name, rest, _ := strings.Cut(line, " ")
	c := command{name: name, flags: map[string]string{}}
	var spec *commandSpec
	for _, s := range commands() {
		if s.name == name {
			spec = &s
			break
		}
	}
	if name == "q" {
		c.name = "quit"
		return c, nil
	}
	if spec == nil {
		return c, fmt.Errorf("unknown command %q: type help for the list (tab completes)", name)
	}
	nFixed := 0
	switch name {
	case "track":
		nFixed = 1
	case "broadcast":
		nFixed = 2
	}
	rest = strings.TrimSpace(rest)
	if name == "as" { // the identity spec, whole (the token stays one piece)
		c.rest = rest
		return c, nil
	}
	if nFixed > 0 {
		for i := 0; i < nFixed; i++ {
			tok, r, _ := strings.Cut(rest, " ")
			if tok == "" {
				break
			}
			c.args = append(c.args, tok)
			rest = strings.TrimSpace(r)
		}
		c.rest = rest
		return c, nil
	}
	toks := strings.Fields(rest)
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if strings.HasPrefix(t, "--") && name == "join" {
			k, v, ok := strings.Cut(t[2:], "=")
			if k == "private" && !ok { // a switch: it takes no value
				c.flags[k] = "true"
				continue
			}
			if !ok {
				if i+1 >= len(toks) {
					return c, fmt.Errorf("flag --%s needs a value", k)
				}
				v = toks[i+1]
				i++
			}
			if k != "tenant" && k != "as" && k != "private" && k != "for" {
				return c, fmt.Errorf("unknown flag --%s for join (want --tenant, --as, --private or --for)", k)
			}
			c.flags[k] = v
			continue
		}
		c.args = append(c.args, t)
	}
	return c, nil
}

// usage returns the usage line of a command.
func usage(name string) string {
	for _, s := range commands() {
		if s.name == name {
			return strings.TrimSpace(":" + s.name + " " + s.args)
		}
	}
	return ""
}

// parseJoin builds a join request from "join <kind> <entity> [flags]" or
// "join <full name>".
func parseJoin(c command, defaultTenant string) (JoinRequest, error) {
	var n registry.Name
	var err error
	tenant := defaultTenant
	if t, ok := c.flags["tenant"]; ok {
		tenant = t
	}
	switch len(c.args) {
	case 1:
		n, err = registry.ParseName(c.args[0])
		if err == nil && n.Tenant == "" && tenant != "" {
			n.Tenant = tenant
			err = n.Validate()
		}
	case 2:
		kind, kerr := registry.ParseKind(c.args[0])
		if kerr != nil {
			return JoinRequest{}, fmt.Errorf("%w: %s", kerr, usage("join"))
		}
		et, id, ok := strings.Cut(c.args[1], ":")
		if !ok {
			return JoinRequest{}, fmt.Errorf("entity %q must be <entity_type>:<entity_id>, e.g. contact:123", c.args[1])
		}
		n, err = registry.NewName(kind, et, id, tenant)
	default:
		return JoinRequest{}, fmt.Errorf("%w: %s", errUsage, usage("join"))
	}
	if err != nil {
		return JoinRequest{}, err
	}
	req := JoinRequest{Name: n}
	if v, ok := c.flags["private"]; ok {
		p, err := strconv.ParseBool(v)
		if err != nil {
			return JoinRequest{}, fmt.Errorf("--private=%q: want true or false", v)
		}
		req.Private = p
	}
	if as, ok := c.flags["as"]; ok {
		if n.Kind != registry.KindPresence {
			return JoinRequest{}, fmt.Errorf("--as tracks a presence: it applies to presence channels only")
		}
		if strings.TrimSpace(as) == "" {
			return JoinRequest{}, fmt.Errorf("--as needs a user id")
		}
		req.As = as
		req.UserName = as
	}
	return req, nil
}

// resolveName finds the channel a command names: a full name, or the
// entity (or kind:entity) of exactly one existing channel.
func resolveName(arg string, chans []registry.ChannelInfo, defaultTenant string) (registry.Name, error) {
	if arg == "" {
		return registry.Name{}, fmt.Errorf("no channel named: give a channel name (tab completes)")
	}
	if n, err := registry.ParseName(arg); err == nil {
		return n, nil
	}
	var found []registry.Name
	for _, c := range chans {
		if c.Name.Entity() == arg || c.Name.String() == arg || strings.HasSuffix(c.Name.String(), ":"+arg) {
			found = append(found, c.Name)
		}
	}
	if len(found) > 1 {
		// Prefer the channel of the default tenant.
		var own []registry.Name
		for _, n := range found {
			if n.Tenant == defaultTenant {
				own = append(own, n)
			}
		}
		if len(own) == 1 {
			return own[0], nil
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return registry.Name{}, fmt.Errorf("no channel %q: use a full name like presence:contact:123 (tab completes)", arg)
	}
	return registry.Name{}, fmt.Errorf("%q is ambiguous (%d channels): use the full name", arg, len(found))
}

// parseObject validates a JSON object payload.
func parseObject(what, s string) (json.RawMessage, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("%s is empty: give a JSON object, e.g. {\"x\":1}", what)
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("%s is not valid JSON at offset %d: %v", what, se.Offset, err)
		}
		return nil, fmt.Errorf("%s is not valid JSON: %v", what, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s has text after the JSON value", what)
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, fmt.Errorf("%s must be a JSON object ({...}), not %s", what, jsonKind(v))
	}
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return json.RawMessage(b.Bytes()), nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case []any:
		return "an array"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return "a value"
}

// presenceUser builds the user of a track payload: user_id (or id, key)
// and name from the object.
func presenceUser(payload json.RawMessage, fallbackID string) (registry.PresenceUser, error) {
	var obj map[string]any
	if err := json.Unmarshal(payload, &obj); err != nil {
		return registry.PresenceUser{}, fmt.Errorf("presence payload: %w", err)
	}
	id := fallbackID
	for _, k := range []string{"user_id", "id", "key"} {
		if v, ok := obj[k].(string); ok && v != "" {
			id = v
			break
		}
	}
	if id == "" {
		return registry.PresenceUser{}, fmt.Errorf("the presence payload needs a \"user_id\" string")
	}
	name, _ := obj["name"].(string)
	return registry.PresenceUser{UserID: id, Name: name, Payload: payload}, nil
}

// runCommand parses and runs a ":" command line.
func (m *Model) runCommand(line string) tea.Cmd {
	c, err := parseCommand(line)
	if err != nil {
		return m.fail("command", line, err)
	}
	name := func(i int) (registry.Name, error) {
		if i >= len(c.args) {
			return registry.Name{}, fmt.Errorf("%w: %s", errUsage, usage(c.name))
		}
		return resolveName(c.args[i], m.state.Channels, m.state.Target.Tenant)
	}
	wantArgs := func(n int) error {
		if len(c.args) != n {
			return fmt.Errorf("%w: %s", errUsage, usage(c.name))
		}
		return nil
	}
	if cmd, ok := m.faultCommand(c); ok {
		return cmd
	}
	if cmd, ok := m.identityCommand(c); ok {
		return cmd
	}
	switch c.name {
	case "quit":
		m.quitting = true
		return tea.Quit
	case "help":
		m.openDialog(helpDialog{})
		return nil
	case "join":
		req, err := parseJoin(c, m.state.Target.Tenant)
		if err != nil {
			return m.fail("join", line, err)
		}
		if f, ok := c.flags["for"]; ok {
			return m.joinFor(req, f)
		}
		return m.join(req)
	case "leave", "untrack", "retry":
		if err := wantArgs(1); err != nil {
			return m.fail(c.name, "", err)
		}
		n, err := name(0)
		if err != nil {
			return m.fail(c.name, c.args[0], err)
		}
		switch c.name {
		case "leave":
			return m.leave(n)
		case "untrack":
			return m.untrack(n)
		}
		return m.retry(n)
	case "track":
		n, err := name(0)
		if err != nil {
			return m.fail("track", line, err)
		}
		p, err := parseObject("payload", c.rest)
		if err != nil {
			return m.fail("track", n.String(), err)
		}
		u, err := presenceUser(p, "")
		if err != nil {
			return m.fail("track", n.String(), err)
		}
		return m.track(n, u)
	case "broadcast":
		n, err := name(0)
		if err != nil {
			return m.fail("broadcast", line, err)
		}
		if len(c.args) < 2 {
			return m.fail("broadcast", n.String(), fmt.Errorf("%w: %s", errUsage, usage("broadcast")))
		}
		p, err := parseObject("payload", c.rest)
		if err != nil {
			return m.fail("broadcast", n.String(), err)
		}
		return m.broadcast(n, c.args[1], p)
	case "cleanup":
		if err := wantArgs(0); err != nil {
			return m.fail(c.name, "", err)
		}
		return m.action("cleanup", "", "left every channel", func(ctx context.Context, mgr Manager) error {
			return mgr.Cleanup(ctx)
		})
	case "apps":
		if err := wantArgs(0); err != nil {
			return m.fail(c.name, "", err)
		}
		m.openApps()
		return nil
	case "limits":
		if err := wantArgs(0); err != nil {
			return m.fail(c.name, "", err)
		}
		m.openLimits()
		return nil
	case "doctor":
		if len(c.args) > 1 {
			return m.fail(c.name, "", fmt.Errorf("%w: %s", errUsage, usage(c.name)))
		}
		sel, ok := m.selected()
		if len(c.args) == 1 {
			n, err := name(0)
			if err != nil {
				return m.fail(c.name, c.args[0], err)
			}
			if sel, ok = m.state.Channel(n); !ok {
				return m.fail(c.name, n.String(), registry.ErrNotFound)
			}
		}
		if !ok {
			return m.fail(c.name, "", errors.New("no channel selected: give a subscription or private channel, e.g. :doctor subscription:project:456"))
		}
		return m.runDoctor(sel)
	case "seek", "speed":
		if err := wantArgs(1); err != nil {
			return m.fail(c.name, "", err)
		}
		if c.name == "seek" {
			return m.seekCommand(c.args[0])
		}
		return m.speedCommand(c.args[0])
	case "policy":
		if err := wantArgs(1); err != nil {
			return m.fail(c.name, "", err)
		}
		spec := c.args[0]
		return m.action("policy", spec, "retry policy set to "+spec, func(ctx context.Context, mgr Manager) error {
			return mgr.SetPolicy(ctx, spec)
		})
	case "export":
		if err := wantArgs(1); err != nil {
			return m.fail(c.name, "", err)
		}
		path := c.args[0]
		return m.action("export", path, "exported the log and events to "+path, func(ctx context.Context, mgr Manager) error {
			return exportFile(ctx, mgr, path)
		})
	}
	return m.fail("command", line, fmt.Errorf("unknown command %q", c.name))
}

// exportFile writes the manager's NDJSON export to path (created, or
// truncated; a temporary file renamed in place so a failure loses
// nothing).
func exportFile(ctx context.Context, mgr Manager, path string) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".rtm-export-*")
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	tmp := f.Name()
	err = mgr.Export(ctx, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("export to %s: %w", path, err)
	}
	return nil
}
