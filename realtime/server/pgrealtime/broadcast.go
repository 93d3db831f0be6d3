package pgrealtime

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"rtm/realtime/server"
	"rtm/realtime/server/pgcdc"
)

// MessagesPublication is the publication Broadcast from Database reads,
// as Supabase names it (created FOR TABLE realtime.messages when
// missing).
const MessagesPublication = "supabase_realtime_messages_publication"

// messagesSlotPrefix prefixes the temporary slot's name, as Supabase's
// supabase_realtime_messages_replication_slot_<suffix>.
const messagesSlotPrefix = "supabase_realtime_messages_replication_slot_"

// Broadcasts is Broadcast from Database on a [DB]'s database: the rows
// inserted into realtime.messages, streamed by logical replication, and
// the replay of stored private broadcasts. It implements
// server.DatabaseBroadcasts; use it as server.Config.Broadcasts.
type Broadcasts struct {
	db      *DB
	feed    *pgcdc.Feed
	deliver atomic.Pointer[func(server.DatabaseBroadcast)]
	done    chan struct{} // closed by Close
	once    sync.Once
}

// OpenBroadcasts starts streaming realtime.messages: the publication
// MessagesPublication (created when missing), a temporary slot, on a
// feed of package pgcdc (its connection handling, reconnection and
// errors). Rows inserted before it streams, or while its connection is
// down, are never delivered live (the slot is temporary, as Supabase's);
// replay still finds them. Close stops it.
func (db *DB) OpenBroadcasts(ctx context.Context) (*Broadcasts, error) {
	b := &Broadcasts{db: db, done: make(chan struct{})}
	feed, err := pgcdc.Open(ctx, pgcdc.Config{
		URL: db.cfg.URL, Publication: MessagesPublication, Table: "realtime.messages",
		SlotPrefix: messagesSlotPrefix, Logger: db.log.With("component", "broadcast-from-database"),
		Inserts: b.insert,
	})
	if err != nil {
		return nil, fmt.Errorf("pgrealtime: broadcast from database: %w", err)
	}
	b.feed = feed
	return b, nil
}

// Close stops the stream.
func (b *Broadcasts) Close() error {
	b.once.Do(func() { close(b.done) })
	return b.feed.Close()
}

// Ready implements server.DatabaseBroadcasts with the feed's readiness
// rule (package pgcdc): ready once the stream has carried a logical
// decoding message emitted after the call, so every row committed after
// it reaches Listen.
func (b *Broadcasts) Ready(ready func()) (cancel func()) {
	ctx, cancelCtx := context.WithCancel(context.Background())
	go func() {
		defer cancelCtx()
		ok := make(chan struct{})
		var once sync.Once
		sub, err := b.feed.Subscribe(ctx, pgcdc.Request{OnStatus: func(st pgcdc.Status) {
			if st.Kind == pgcdc.StatusReady {
				once.Do(func() { close(ok) })
			}
		}})
		if err != nil {
			b.db.log.Warn("Cannot await the replication stream", "err", err)
			return
		}
		defer sub.Close()
		select {
		case <-ok:
			ready()
		case <-ctx.Done():
		case <-b.done:
		}
	}()
	return cancelCtx
}

// Streaming reports whether the replication stream is up.
func (b *Broadcasts) Streaming() bool { return b.feed.Stats().Streaming }

// Listen implements server.DatabaseBroadcasts: rows go to deliver until
// stop.
func (b *Broadcasts) Listen(deliver func(server.DatabaseBroadcast)) (stop func()) {
	b.deliver.Store(&deliver)
	return func() { b.deliver.CompareAndSwap(&deliver, nil) }
}

// insert turns a streamed row of realtime.messages (or of one of its
// partitions) into a delivery, checking it as Supabase does: inserted_at,
// event, id, topic and private are required, and payload or
// binary_payload; a row without them is logged UnableToBroadcastChanges.
func (b *Broadcasts) insert(in pgcdc.Insert) {
	if in.Schema != "realtime" || (in.Table != "messages" && !strings.HasPrefix(in.Table, "messages_")) {
		return
	}
	d := b.deliver.Load()
	if d == nil {
		return
	}
	var missing []string
	get := func(col string) string {
		v, ok := in.Value(col)
		if !ok {
			missing = append(missing, col)
		}
		return string(v) // a copy: the row's buffer is the stream's
	}
	m := server.DatabaseBroadcast{ID: get("id"), Topic: get("topic"), Event: get("event")}
	private := get("private")
	get("inserted_at")
	if len(missing) > 0 {
		b.db.log.Warn("UnableToBroadcastChanges: required fields are NULL", "fields", missing, "id", m.ID)
		return
	}
	m.Private = private == "t"
	if bin, ok := in.Value("binary_payload"); ok {
		raw, err := hex.DecodeString(strings.TrimPrefix(string(bin), `\x`))
		if err != nil {
			b.db.log.Warn("UnableToBroadcastChanges: undecodable binary_payload", "id", m.ID, "err", err)
			return
		}
		m.Payload, m.Binary = raw, true
	} else if p, ok := in.Value("payload"); ok {
		m.Payload = []byte(string(p))
	} else {
		b.db.log.Warn("UnableToBroadcastChanges: :payload_missing", "id", m.ID, "topic", m.Topic)
		return
	}
	(*d)(m)
}

// replayQuery is Supabase's (Realtime.Messages.messages/5), the newest
// first; Replay reverses them.
const replayQuery = `select id::text, event, payload::text, binary_payload from realtime.messages
where topic = $1 and private = true and extension = 'broadcast'
  and inserted_at >= $2::timestamp and inserted_at < $3::timestamp
  and event is not null and (payload is not null or binary_payload is not null)
order by inserted_at desc limit $4`

// pgTimestamp is the text of a timestamp without time zone.
const pgTimestamp = "2006-01-02 15:04:05.999999"

// Replay implements server.DatabaseBroadcasts: the stored private
// broadcasts of req.Topic inserted since req.Since and before a minute
// from now (UTC), the newest req.Limit, oldest first. It runs as the
// connecting user: no row-level security, the join's broadcast read is
// the only gate, as in Supabase.
func (b *Broadcasts) Replay(ctx context.Context, req server.ReplayRequest) ([]server.DatabaseBroadcast, error) {
	until := b.db.cfg.Now().UTC().Add(60e9)
	rows, err := b.db.pool.Query(ctx, replayQuery, req.Topic, req.Since.UTC().Format(pgTimestamp), until.Format(pgTimestamp), req.Limit)
	if err != nil {
		return nil, fmt.Errorf("pgrealtime: replay: %w", err)
	}
	defer rows.Close()
	var out []server.DatabaseBroadcast
	for rows.Next() {
		m := server.DatabaseBroadcast{Topic: req.Topic, Private: true}
		var payload *string
		var bin []byte
		if err := rows.Scan(&m.ID, &m.Event, &payload, &bin); err != nil {
			return nil, fmt.Errorf("pgrealtime: replay: %w", err)
		}
		if bin != nil {
			m.Payload, m.Binary = bin, true
		} else if payload != nil {
			m.Payload = []byte(*payload)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgrealtime: replay: %w", err)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}
