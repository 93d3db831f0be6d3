// Package demo runs the simulated peers of rtm's embedded demo, so the
// panes show life on a fresh machine: users who come and go on a presence
// channel (each on a connection of its own, tracking their own presence),
// cursor broadcasts on a document channel, and database changes on a
// project: real rows written to a database whose changes the server
// streams ([Options.WriteChange], e.g. the --db auto demo database), or,
// with no database, changes published through the embedded server's Go
// API ([Options.EmitChange]).
//
// Peers are ordinary clients of package realtime talking to a server over
// the network, exactly like the user's own client; nothing is injected
// into the manager. Every delay is a multiple of [Options.Pace] and every
// choice comes from [Options.Rand], so tests can run the demo fast and
// deterministically.
//
// [Start] starts the peers in the background; [Demo.Close] stops them,
// leaves their channels and waits for every goroutine. Peers never fail
// the program: connection errors are logged and retried.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"rtm/realtime"
	"rtm/realtime/protocol"
)

// Default topics (channel names as the channel manager names them; the
// wire topic is "realtime:" + name).
const (
	DefaultPresenceTopic     = "presence:contact:123"
	DefaultBroadcastTopic    = "broadcast:document:789"
	DefaultSubscriptionTopic = "subscription:project:456"
)

// User is a simulated person.
type User struct {
	ID, Name, Color string
}

// DefaultUsers returns the demo's people.
func DefaultUsers() []User {
	return []User{
		{"ana", "Ana Lima", "#e06c75"},
		{"ben", "Ben Okafor", "#61afef"},
		{"chen", "Chen Wei", "#98c379"},
		{"dara", "Dara Novak", "#c678dd"},
		{"eli", "Eli Cohen", "#e5c07b"},
	}
}

// Options configures the demo. URL and APIKey are required.
type Options struct {
	// URL is the server's project URL; APIKey its anon key.
	URL, APIKey string
	// Token mints a user token for a user id (nil: peers use the API
	// key).
	Token func(user string) (string, error)
	// WriteChange makes one real change in the database the server
	// streams (demodb.Writer.Step: an UPDATE of public.project row 456,
	// or a task of it inserted or finished) and returns the SQL verb.
	// When set, the change peer calls it on its pace instead of
	// EmitChange; its errors are logged and the peer goes on.
	WriteChange func(ctx context.Context) (string, error)
	// EmitChange publishes a simulated database change (the embedded
	// server's EmitChange) when there is no database: an UPDATE of
	// public.project row 456, which is what the channel manager's default
	// mapping of subscription:project:456 listens to (table = entity
	// type, filter id=eq.456). nil (and no WriteChange): no changes.
	EmitChange func(topic string, data protocol.ChangeData) int
	// PresenceTopic, BroadcastTopic and SubscriptionTopic are the
	// channel names used (defaults above). Empty SubscriptionTopic keeps
	// the default; changes go to every channel bound to the table.
	PresenceTopic, BroadcastTopic, SubscriptionTopic string
	// Users are the people simulated (default DefaultUsers). The first
	// two also move cursors.
	Users []User
	// Pace scales every delay (default 1 s: people stay 20-90 s, cursors
	// move 4 times a second while active).
	Pace time.Duration
	// Rand returns numbers in [0, 1) (default math/rand/v2.Float64); it
	// is called from several goroutines under a lock.
	Rand func() float64
	// Logger receives the demo's logs (default: discarded).
	Logger *slog.Logger
	// Now is the clock of payload timestamps (default time.Now).
	Now func() time.Time
	// Client tweaks the options of every peer's socket (heartbeat, dial).
	Client func(*realtime.Options)
}

// Stats counts what the peers did.
type Stats struct {
	Joins, Leaves, Disconnects, Broadcasts, Changes uint64
}

// Demo is a running set of peers.
type Demo struct {
	opts   Options
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	rmu    sync.Mutex

	joins, leaves, disconnects, broadcasts, changes atomic.Uint64
}

// Start starts the peers. They run until Close or until ctx is done.
func Start(ctx context.Context, opts Options) (*Demo, error) {
	if opts.URL == "" || opts.APIKey == "" {
		return nil, errors.New("demo: URL and APIKey are required")
	}
	if opts.PresenceTopic == "" {
		opts.PresenceTopic = DefaultPresenceTopic
	}
	if opts.BroadcastTopic == "" {
		opts.BroadcastTopic = DefaultBroadcastTopic
	}
	if opts.SubscriptionTopic == "" {
		opts.SubscriptionTopic = DefaultSubscriptionTopic
	}
	if len(opts.Users) == 0 {
		opts.Users = DefaultUsers()
	}
	if opts.Pace <= 0 {
		opts.Pace = time.Second
	}
	if opts.Rand == nil {
		opts.Rand = rand.Float64
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	d := &Demo{opts: opts, log: opts.Logger}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	d.ctx, d.cancel = context.WithCancel(ctx)
	for i, u := range opts.Users {
		// The first three are there from the start; the others arrive.
		first := time.Duration(float64(i) * 0.3 * float64(opts.Pace))
		if i >= 3 {
			first = d.between(10, 30)
		}
		d.goPeer(func() { d.presencePeer(u, first) })
	}
	d.goPeer(d.cursorPeer)
	switch {
	case opts.WriteChange != nil:
		d.goPeer(d.writePeer)
	case opts.EmitChange != nil:
		d.goPeer(d.changePeer)
	}
	return d, nil
}

// Close stops every peer and waits for them.
func (d *Demo) Close() error {
	d.cancel()
	d.wg.Wait()
	return nil
}

// Stats returns what the peers did so far.
func (d *Demo) Stats() Stats {
	return Stats{Joins: d.joins.Load(), Leaves: d.leaves.Load(), Disconnects: d.disconnects.Load(),
		Broadcasts: d.broadcasts.Load(), Changes: d.changes.Load()}
}

func (d *Demo) goPeer(f func()) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer func() {
			if r := recover(); r != nil {
				d.log.Error("Demo peer panicked", "panic", fmt.Sprint(r))
			}
		}()
		f()
	}()
}

// rnd returns a number in [0, 1).
func (d *Demo) rnd() float64 {
	d.rmu.Lock()
	defer d.rmu.Unlock()
	return d.opts.Rand()
}

// between returns a random delay of lo..hi paces.
func (d *Demo) between(lo, hi float64) time.Duration {
	return time.Duration((lo + (hi-lo)*d.rnd()) * float64(d.opts.Pace))
}

// sleep waits for dur or the end of the demo; false when it ended.
func (d *Demo) sleep(dur time.Duration) bool {
	if dur <= 0 {
		return d.ctx.Err() == nil
	}
	t := time.NewTimer(dur)
	defer t.Stop()
	select {
	case <-d.ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// socket opens a connection for user ("" for the cursor peer).
func (d *Demo) socket(user string) (*realtime.Socket, error) {
	o := &realtime.Options{APIKey: d.opts.APIKey, Logger: d.log}
	if d.opts.Token != nil && user != "" {
		tok, err := d.opts.Token(user)
		if err != nil {
			return nil, fmt.Errorf("demo: token for %s: %w", user, err)
		}
		o.AccessToken = tok
	}
	if d.opts.Client != nil {
		d.opts.Client(o)
	}
	s, err := realtime.NewSocket(d.opts.URL, o)
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	ctx, cancel := context.WithTimeout(d.ctx, 10*d.opts.Pace+5*time.Second)
	defer cancel()
	if err := s.Connect(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("demo: connect: %w", err)
	}
	return s, nil
}

// presencePeer makes u come and go on the presence channel.
func (d *Demo) presencePeer(u User, first time.Duration) {
	if !d.sleep(first) {
		return
	}
	for d.ctx.Err() == nil {
		if !d.visit(u) {
			return
		}
		if !d.sleep(d.between(8, 40)) {
			return
		}
	}
}

// visit connects, tracks u for a while and leaves (politely or by
// dropping the connection). It returns false when the demo ended.
func (d *Demo) visit(u User) bool {
	s, err := d.socket(u.ID)
	if err != nil {
		d.log.Warn("Demo peer cannot connect", "user", u.ID, "err", err)
		return d.sleep(d.between(3, 6))
	}
	defer s.Close()
	ch, err := s.Channel(d.opts.PresenceTopic, realtime.ChannelConfig{
		Presence: realtime.PresenceConfig{Key: u.ID, Enabled: true},
	})
	if err != nil {
		d.log.Warn("Demo channel", "err", err)
		return d.sleep(d.between(3, 6))
	}
	ctx, cancel := context.WithTimeout(d.ctx, 15*time.Second)
	err = ch.Subscribe(ctx)
	cancel()
	if err != nil {
		d.log.Warn("Demo peer cannot join", "user", u.ID, "err", err)
		return d.sleep(d.between(3, 6))
	}
	status := "viewing"
	since := d.opts.Now().UTC()
	if err := d.track(ch, u, status, since); err != nil {
		d.log.Warn("Demo peer cannot track", "user", u.ID, "err", err)
		return d.sleep(d.between(3, 6))
	}
	d.joins.Add(1)
	stay := d.opts.Now().Add(d.between(20, 90))
	for d.opts.Now().Before(stay) {
		if !d.sleep(d.between(8, 20)) {
			return false
		}
		// People change what they do now and then.
		if d.rnd() < 0.5 {
			status = []string{"viewing", "editing", "idle"}[int(d.rnd()*3)%3]
			if err := d.track(ch, u, status, since); err != nil {
				d.log.Debug("Demo re-track", "user", u.ID, "err", err)
			}
		}
	}
	if d.rnd() < 0.3 {
		// Vanish without a word: the server notices the closed socket.
		d.disconnects.Add(1)
		return d.ctx.Err() == nil
	}
	ctx, cancel = context.WithTimeout(d.ctx, 5*time.Second)
	if err := ch.Untrack(ctx); err == nil {
		d.leaves.Add(1)
	}
	ch.Leave(ctx)
	cancel()
	return d.ctx.Err() == nil
}

// track tracks u with status; online_at stays the start of the visit
// across re-tracks, as apps do.
func (d *Demo) track(ch *realtime.Channel, u User, status string, since time.Time) error {
	payload, err := json.Marshal(map[string]any{
		"user_id":   u.ID,
		"name":      u.Name,
		"color":     u.Color,
		"status":    status,
		"online_at": since.Format(time.RFC3339),
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(d.ctx, 10*time.Second)
	defer cancel()
	return ch.Track(ctx, payload)
}

// cursorPeer moves the first users' cursors over the document in bursts.
func (d *Demo) cursorPeer() {
	for d.ctx.Err() == nil {
		s, err := d.socket("")
		if err != nil {
			d.log.Warn("Demo cursor peer cannot connect", "err", err)
			if !d.sleep(d.between(3, 6)) {
				return
			}
			continue
		}
		d.cursors(s)
		s.Close()
	}
}

func (d *Demo) cursors(s *realtime.Socket) {
	ch, err := s.Channel(d.opts.BroadcastTopic, realtime.ChannelConfig{})
	if err != nil {
		d.log.Warn("Demo channel", "err", err)
		d.sleep(d.between(3, 6))
		return
	}
	ctx, cancel := context.WithTimeout(d.ctx, 15*time.Second)
	err = ch.Subscribe(ctx)
	cancel()
	if err != nil {
		d.log.Warn("Demo cursor peer cannot join", "err", err)
		d.sleep(d.between(3, 6))
		return
	}
	movers := d.opts.Users
	if len(movers) > 2 {
		movers = movers[:2]
	}
	t := 0.0
	for d.ctx.Err() == nil {
		// A burst of movement by one person, then a pause.
		u := movers[int(d.rnd()*float64(len(movers)))%len(movers)]
		end := d.opts.Now().Add(d.between(4, 12))
		phase := d.rnd() * 2 * math.Pi
		for d.opts.Now().Before(end) {
			t += 0.15
			x := int(400 + 300*math.Sin(t+phase))
			y := int(300 + 200*math.Sin(2*t))
			p, _ := json.Marshal(cursor{UserID: u.ID, X: x, Y: y, Color: u.Color})
			sctx, scancel := context.WithTimeout(d.ctx, 5*time.Second)
			err := ch.Send(sctx, "cursor", p)
			scancel()
			if err != nil {
				if errors.Is(err, realtime.ErrClosed) || d.ctx.Err() != nil {
					return
				}
				d.log.Debug("Demo cursor send", "err", err)
			} else {
				d.broadcasts.Add(1)
			}
			if !d.sleep(d.opts.Pace / 4) {
				return
			}
		}
		if d.rnd() < 0.5 {
			p, _ := json.Marshal(map[string]any{"user_id": u.ID, "from": int(d.rnd() * 500), "to": 500 + int(d.rnd()*200)})
			sctx, scancel := context.WithTimeout(d.ctx, 5*time.Second)
			if ch.Send(sctx, "selection", p) == nil {
				d.broadcasts.Add(1)
			}
			scancel()
		}
		if !d.sleep(d.between(2, 8)) {
			return
		}
	}
}

// cursor is the payload of a cursor broadcast (a struct, so the fields
// keep this order on the wire).
type cursor struct {
	UserID string `json:"user_id"`
	X      int    `json:"x"`
	Y      int    `json:"y"`
	Color  string `json:"color"`
}

// writePeer makes real database changes on the change pace.
func (d *Demo) writePeer() {
	for {
		if !d.sleep(d.between(5, 15)) {
			return
		}
		ctx, cancel := context.WithTimeout(d.ctx, 10*time.Second)
		verb, err := d.opts.WriteChange(ctx)
		cancel()
		switch {
		case err == nil:
			d.changes.Add(1)
			d.log.Debug("Demo database change", "verb", verb)
		case d.ctx.Err() != nil:
			return
		default:
			d.log.Warn("Demo database change failed", "err", err)
		}
	}
}

// changePeer publishes database changes to the project's row, as the
// channel manager binds a subscription:project:456 channel by default
// (table public.project, filter id=eq.456).
func (d *Demo) changePeer() {
	stages := []string{"planning", "building", "reviewing", "shipping"}
	progress := 0
	for {
		if !d.sleep(d.between(5, 15)) {
			return
		}
		now := d.opts.Now().UTC()
		old, _ := json.Marshal(map[string]any{"id": 456, "progress": progress})
		progress = (progress + 1 + int(d.rnd()*10)) % 101
		rec, _ := json.Marshal(map[string]any{"id": 456, "name": "Realtime debugger", "progress": progress,
			"stage": stages[progress*len(stages)/101], "updated_at": now.Format(time.RFC3339)})
		data := protocol.ChangeData{Schema: "public", Table: "project", Type: "UPDATE", Record: rec, OldRecord: old,
			CommitTimestamp: now.Format("2006-01-02T15:04:05.000Z"),
			Columns: []protocol.Column{{Name: "id", Type: "int8"}, {Name: "name", Type: "text"}, {Name: "progress", Type: "int4"},
				{Name: "stage", Type: "text"}, {Name: "updated_at", Type: "timestamptz"}}}
		if d.opts.EmitChange("", data) > 0 {
			d.changes.Add(1)
		}
	}
}
