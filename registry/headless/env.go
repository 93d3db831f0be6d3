package headless

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"rtm/realtime/token"
	"rtm/registry"
	"rtm/registry/limits"
	"rtm/registry/serverctl"
	"rtm/registry/target"
)

// ErrInvalid is wrapped by errors about bad input: flags, scenario files,
// recordings. Commands exit 2 on it.
var ErrInvalid = errors.New("headless: invalid input")

// EnvOptions configures [Open].
type EnvOptions struct {
	// ServiceKey is the service_role key of an `rtm serve` target: it
	// enables the server-side faults through its admin API.
	ServiceKey string
	// Server, when set, is the server-side fault control to use. It
	// wins over ServiceKey and the embedded target's.
	Server registry.ServerControl
	// StartEmbedded starts rtm's embedded server when no project is
	// configured (package main gives it; tests build one from
	// servertest). Nil: Open fails then, saying a project is needed.
	StartEmbedded func() (*EmbeddedTarget, error)
	// Logger receives the headless machinery's logs (nil: discarded).
	// Nothing is ever printed by this package.
	Logger *slog.Logger
	// LogFile receives every manager's JSONL log (nil: none).
	LogFile io.Writer
	// LogLevel is the level of LogFile (nil: info).
	LogLevel slog.Leveler
	// ReconnectAfter is the socket reconnect ladder of every manager
	// (nil: the client's 1, 2, 5, 10 s).
	ReconnectAfter func(tries int) time.Duration
	// HeartbeatInterval is every manager's heartbeat period (0: 25 s). A
	// freeze is noticed after one interval.
	HeartbeatInterval time.Duration
	// PushTimeout bounds joins and acknowledged pushes (0: 10 s).
	PushTimeout time.Duration
}

// EmbeddedTarget is rtm's embedded server running in-process, as [Open]
// needs it: where it listens, its anon key and JWT secret (Open completes
// the target with them, see target.Target.Embed; tokens are minted with
// the secret, package realtime/token), its server-side controls and how
// to stop it.
type EmbeddedTarget struct {
	// URL is the project URL (http://127.0.0.1:PORT).
	URL string
	// AnonKey is the server's anon key.
	AnonKey string
	// Secret is the server's JWT secret.
	Secret []byte
	// Control drives the server-side faults.
	Control registry.ServerControl
	// Close stops the server (nil: nothing to stop).
	Close func() error
}

// Env is a resolved target: a project, `rtm serve`, or rtm's embedded
// server started in-process when nothing is configured. It makes
// managers for identities (roles or users) on that target.
type Env struct {
	// Target is the resolved target (keys and tokens inside; show it
	// with Target.Describe, which masks them).
	Target *target.Target

	embedded *EmbeddedTarget // or nil
	control  registry.ServerControl
	opts     EnvOptions
	log      *slog.Logger
}

// Open resolves the target from in (flags, environment, .env files; see
// package target) and, when no project is configured, starts the embedded
// server with opts.StartEmbedded. Close releases it.
func Open(in target.Input, opts EnvOptions) (*Env, error) {
	tg, err := target.Resolve(in)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Env{Target: tg, opts: opts, log: log}
	if tg.Embedded {
		if opts.StartEmbedded == nil {
			return nil, fmt.Errorf("%w: no project configured (--url, SUPABASE_URL, .env) and no embedded server to start", ErrInvalid)
		}
		et, err := opts.StartEmbedded()
		if err != nil {
			return nil, err
		}
		e.embedded = et
		if err := tg.Embed(et.URL, et.AnonKey, et.Secret); err != nil {
			_ = e.Close()
			return nil, err
		}
		e.control = et.Control
	}
	switch {
	case opts.Server != nil:
		e.control = opts.Server
	case e.control == nil && opts.ServiceKey != "":
		c, err := serverctl.NewHTTP(tg.URL.Value, opts.ServiceKey, nil)
		if err != nil {
			_ = e.Close()
			return nil, fmt.Errorf("%w: --service-key: %w", ErrInvalid, err)
		}
		e.control = c
	}
	return e, nil
}

// Close stops the embedded server, if one was started.
func (e *Env) Close() error {
	if e.embedded != nil && e.embedded.Close != nil {
		return e.embedded.Close()
	}
	return nil
}

// ServerFaults reports whether server-side faults are available.
func (e *Env) ServerFaults() bool { return e.control != nil }

// LimitsSource returns what reads the target's configured limits and
// counters: the embedded server's, or `rtm serve`'s with a service key
// (nil for a hosted project, whose limits are its plan's).
func (e *Env) LimitsSource() limits.Source {
	if s, ok := e.control.(limits.Source); ok {
		return s
	}
	return nil
}

// Identity is who a manager connects as.
type Identity struct {
	// Name names the identity in the output of several identities
	// (the "identity" member of `rtm watch --as A --as B` lines).
	Name string
	// User is a user id: a token is minted for it (role authenticated).
	User string
	// Role is "anon" (the API key alone), "authenticated" or
	// "service_role": a token is minted with that role.
	Role string
	// JWT is a pasted user token, used as it is.
	JWT string
}

// IdentityOf returns the Identity of a parsed spec (target.ParseIdentity).
func IdentityOf(s target.IdentitySpec) Identity {
	return Identity{Name: s.Name, User: s.User, Role: s.Role, JWT: s.JWT}
}

// String describes the identity for reports.
func (id Identity) String() string {
	switch {
	case id.User != "":
		return "user " + id.User
	case id.Role != "":
		return "role " + id.Role
	case id.JWT != "":
		return "token " + registry.MaskSecret(id.JWT)
	default:
		return "the target's identity"
	}
}

// Roles returns the roles an Identity may name.
func Roles() []string { return target.Roles() }

// Token returns the token of id: minted for a user or a role when the JWT
// secret is known, "" for anon, the pasted token (checked) for JWT, and
// the target's own token (--jwt, --as) for the zero identity.
func (e *Env) Token(id Identity) (string, error) {
	if id.User == "" && id.Role == "" && id.JWT == "" {
		return e.Target.Token.Value, nil
	}
	tok, _, err := e.Target.IdentityToken(target.IdentitySpec{Name: id.Name, User: id.User, Role: id.Role, JWT: id.JWT})
	if err != nil {
		if id.User != "" {
			return "", fmt.Errorf("token for user %s: %w", id.User, err)
		}
		return "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return tok, nil
}

// ManagerOptions adjusts one manager made by [Env.NewManager].
type ManagerOptions struct {
	// Policy is the channel retry policy (nil: the default, fixed 3 s,
	// 5 attempts).
	Policy registry.Policy
	// Tune lets the caller change any other option last.
	Tune func(*registry.Options)
}

// NewManager returns a channel manager on the target, as id. It does not
// connect.
func (e *Env) NewManager(id Identity, o ManagerOptions) (*registry.Manager, error) {
	tok, err := e.Token(id)
	if err != nil {
		return nil, err
	}
	tg := e.Target
	opts := registry.Options{
		URL: tg.URL.Value, APIKey: tg.Key.Value, Token: tok, Tenant: tg.Tenant,
		Policy: o.Policy, Server: e.control, Embedded: tg.Embedded,
		ReconnectAfter:    e.opts.ReconnectAfter,
		HeartbeatInterval: e.opts.HeartbeatInterval,
		PushTimeout:       e.opts.PushTimeout,
		LogFile:           e.opts.LogFile,
		LogLevel:          e.opts.LogLevel,
		MintToken:         token.Signer(tg.JWTSecret),
	}
	if o.Tune != nil {
		o.Tune(&opts)
	}
	return registry.New(opts)
}

// joinAs joins name on m; a presence channel joined as a user uses the
// user id as its presence key and tracks the user.
func joinAs(ctx context.Context, m *registry.Manager, name registry.Name, user string, opts ...registry.JoinOption) (*registry.Handle, error) {
	if name.Kind == registry.KindPresence && user != "" {
		opts = append(opts, registry.WithTenant(name.Tenant))
		return m.JoinPresence(ctx, name.EntityType, name.EntityID, registry.PresenceUser{UserID: user, Name: user}, opts...)
	}
	return m.Join(ctx, name, opts...)
}

// ParseNames parses channel names given on the command line.
func ParseNames(flag string, names []string) ([]registry.Name, error) {
	out := make([]registry.Name, 0, len(names))
	for _, s := range names {
		n, err := registry.ParseName(s)
		if err != nil {
			return nil, fmt.Errorf("%w: %s %q: %w", ErrInvalid, flag, s, err)
		}
		out = append(out, n)
	}
	return out, nil
}
