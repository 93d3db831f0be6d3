package pgcdc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"rtm/realtime/internal/pgtest"
	"rtm/realtime/protocol"
	"rtm/realtime/server"
)

// Benchmarks of the change feed, each beside the ceiling in the same run:
// the raw replication stream read and decoded by pglogrepl alone.
//
//	go test -run XXX -bench . -benchtime 1x ./realtime/server/pgcdc
//
// Throughput: changes committed in transactions of 50 rows, timed from
// the first commit to the last delivery to each of 10 subscribers
// (metric changes/s). Latency: single-row transactions paced at 1000/s
// for 3 s, from just before each commit to its delivery (p50, p99).

const benchSubs = 10

func benchSetup(b *testing.B) *pgtest.DB {
	b.Helper()
	db := pg.DB(b)
	setupRoles(b, db)
	db.Exec(b, `create table bench(id int8 primary key, v int8 not null, t text not null);
		create publication supabase_realtime for table bench`)
	return db
}

// consumer is whatever counts the changes: it reports per-change arrival
// through got(id) and is closed by stop.
type consumer struct {
	stop func()
}

// rawStream reads the publication with pglogrepl alone (no feed): the
// ceiling. onInsert receives the id of each inserted row.
func rawStream(b *testing.B, db *pgtest.DB, onInsert func(id int64)) consumer {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cfg, err := pgconn.ParseConfig(db.URL)
	if err != nil {
		b.Fatal(err)
	}
	cfg.RuntimeParams["replication"] = "database"
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := pglogrepl.CreateReplicationSlot(ctx, conn, "raw_bench", "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Temporary: true, Mode: pglogrepl.LogicalReplication}); err != nil {
		b.Fatal(err)
	}
	if err := pglogrepl.StartReplication(ctx, conn, "raw_bench", 0, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names 'supabase_realtime'"}}); err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		next := time.Now().Add(5 * time.Second)
		var pos pglogrepl.LSN
		for {
			if time.Now().After(next) {
				pglogrepl.SendStandbyStatusUpdate(ctx, conn, pglogrepl.StandbyStatusUpdate{WALWritePosition: pos})
				next = time.Now().Add(5 * time.Second)
			}
			rctx, rcancel := context.WithDeadline(ctx, next)
			msg, err := conn.ReceiveMessage(rctx)
			rcancel()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				if pgconn.Timeout(err) {
					continue
				}
				return
			}
			cd, ok := msg.(*pgproto3.CopyData)
			if !ok || len(cd.Data) == 0 || cd.Data[0] != pglogrepl.XLogDataByteID {
				continue
			}
			xld, err := pglogrepl.ParseXLogData(cd.Data[1:])
			if err != nil {
				continue
			}
			pos = xld.WALStart + pglogrepl.LSN(len(xld.WALData))
			m, err := pglogrepl.Parse(xld.WALData)
			if err != nil {
				continue
			}
			if ins, ok := m.(*pglogrepl.InsertMessage); ok {
				id, _ := ins.Tuple.Columns[0].Int64()
				onInsert(id)
			}
		}
	}()
	return consumer{stop: func() {
		cancel()
		<-done
		conn.Close(context.Background())
	}}
}

// feedSubs opens a feed with n subscriptions of the table.
func feedSubs(b *testing.B, db *pgtest.DB, n int, needIDs bool, onDelivery func(sub int, id int64)) consumer {
	b.Helper()
	ctx := context.Background()
	f, err := Open(ctx, Config{URL: db.URL})
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		i := i
		wg.Add(1)
		var once sync.Once
		_, err := f.Subscribe(ctx, Request{Role: "anon", Bindings: []Binding{{ID: 1, Event: "INSERT", Table: "bench"}},
			Deliver: func(d Delivery) {
				if needIDs {
					onDelivery(i, idOf(d.Data))
				} else {
					onDelivery(i, 0)
				}
			},
			OnStatus: func(s Status) {
				if s.Kind == StatusReady {
					once.Do(wg.Done)
				}
			}})
		if err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	return consumer{stop: func() { f.Close() }}
}

// idOf reads record.id from change data (0 when ids are not needed:
// throughput runs only count).
func idOf(data []byte) int64 {
	if data == nil {
		return 0
	}
	var d struct {
		Record struct {
			ID int64 `json:"id"`
		} `json:"record"`
	}
	json.Unmarshal(data, &d)
	return d.Record.ID
}

// serverSubs runs the embedded server on the feed and n WebSocket clients
// joined to a channel bound to the table.
func serverSubs(b *testing.B, db *pgtest.DB, n int, needIDs bool, onDelivery func(sub int, id int64)) consumer {
	b.Helper()
	ctx := context.Background()
	f, err := Open(ctx, Config{URL: db.URL})
	if err != nil {
		b.Fatal(err)
	}
	srv, err := server.New(server.Config{JWTSecret: []byte("bench-secret-bench-secret-bench!"), Limits: server.Limits{Off: true},
		Changes: f.Source(), OutboundQueue: 1 << 16})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	var readers sync.WaitGroup
	var conns []*websocket.Conn
	ready := make(chan struct{}, n)
	for i := 0; i < n; i++ {
		ws, _, err := websocket.DefaultDialer.Dial(fmt.Sprintf("ws://%s/realtime/v1/websocket?apikey=%s&vsn=2.0.0", srv.Addr(), srv.AnonKey()), nil)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, ws)
		join := `["1","1","realtime:bench","phx_join",{"config":{"postgres_changes":[{"event":"INSERT","schema":"public","table":"bench"}]}}]`
		if err := ws.WriteMessage(websocket.TextMessage, []byte(join)); err != nil {
			b.Fatal(err)
		}
		readers.Add(1)
		go func(i int, ws *websocket.Conn) {
			defer readers.Done()
			for {
				_, data, err := ws.ReadMessage()
				if err != nil {
					return
				}
				if !needIDs && bytes.Contains(data[:min(len(data), 64)], []byte(`"postgres_changes"`)) {
					onDelivery(i, 0) // count only
					continue
				}
				m, err := protocol.V2.DecodeServer(data, false)
				if err != nil {
					continue
				}
				switch m.Event {
				case protocol.EventSystem:
					ready <- struct{}{}
				case protocol.EventPostgresChanges:
					var p struct {
						Data json.RawMessage `json:"data"`
					}
					json.Unmarshal(m.Payload, &p)
					onDelivery(i, idOf(p.Data))
				}
			}
		}(i, ws)
	}
	for range n {
		<-ready
	}
	return consumer{stop: func() {
		for _, ws := range conns {
			ws.Close()
		}
		srv.Close()
		readers.Wait()
		f.Close()
	}}
}

// nextID returns an id above every row of the bench table.
func nextID(b *testing.B, db *pgtest.DB) int64 {
	var id int64
	db.QueryRow(b, "select coalesce(max(id), 0) + 1 from bench", nil, &id)
	return id
}

func BenchmarkThroughput(b *testing.B) {
	db := benchSetup(b)
	const changes = 20000
	type setup func(b *testing.B, db *pgtest.DB, counts []atomic.Int64, all *atomic.Int64, want int64, done chan struct{}) consumer
	count := func(counts []atomic.Int64, all *atomic.Int64, want int64, done chan struct{}) func(int, int64) {
		return func(sub int, id int64) {
			if counts[sub].Add(1) == want && all.Add(-1) == 0 {
				close(done)
			}
		}
	}
	cases := []struct {
		name string
		subs int
		open setup
	}{
		{"pglogrepl_raw", 1, func(b *testing.B, db *pgtest.DB, counts []atomic.Int64, all *atomic.Int64, want int64, done chan struct{}) consumer {
			c := count(counts, all, want, done)
			return rawStream(b, db, func(id int64) { c(0, id) })
		}},
		{"pgcdc_10subs", benchSubs, func(b *testing.B, db *pgtest.DB, counts []atomic.Int64, all *atomic.Int64, want int64, done chan struct{}) consumer {
			return feedSubs(b, db, benchSubs, false, count(counts, all, want, done))
		}},
		{"server_10ws", benchSubs, func(b *testing.B, db *pgtest.DB, counts []atomic.Int64, all *atomic.Int64, want int64, done chan struct{}) consumer {
			return serverSubs(b, db, benchSubs, false, count(counts, all, want, done))
		}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			for range b.N {
				counts := make([]atomic.Int64, tc.subs)
				var all atomic.Int64
				all.Store(int64(tc.subs))
				done := make(chan struct{})
				c := tc.open(b, db, counts, &all, changes, done)
				conn := db.Conn(b)
				ctx := context.Background()
				start := nextID(b, db)
				t0 := time.Now()
				for i := int64(0); i < changes; i += 50 {
					if _, err := conn.Exec(ctx, "insert into bench(id, v, t) select g, g, 'payload' from generate_series($1::int8, $2::int8) g",
						start+i, start+i+49); err != nil {
						b.Fatal(err)
					}
				}
				committed := time.Since(t0)
				select {
				case <-done:
				case <-time.After(2 * time.Minute):
					b.Fatalf("deliveries stalled: %v", snapshot(counts))
				}
				el := time.Since(t0)
				c.stop()
				b.ReportMetric(float64(changes)/el.Seconds(), "changes/s")
				b.ReportMetric(float64(changes*int64(tc.subs))/el.Seconds(), "deliveries/s")
				b.ReportMetric(float64(changes)/committed.Seconds(), "commits_rows/s")
			}
		})
	}
}

func snapshot(c []atomic.Int64) []int64 {
	out := make([]int64, len(c))
	for i := range c {
		out[i] = c[i].Load()
	}
	return out
}

func BenchmarkLatency(b *testing.B) {
	db := benchSetup(b)
	const rate, dur = 1000, 3 * time.Second
	n := int(rate * dur.Seconds())
	cases := []struct {
		name string
		subs int
		open func(b *testing.B, db *pgtest.DB, on func(int, int64)) consumer
	}{
		{"pglogrepl_raw", 1, func(b *testing.B, db *pgtest.DB, on func(int, int64)) consumer {
			return rawStream(b, db, func(id int64) { on(0, id) })
		}},
		{"pgcdc_10subs", benchSubs, func(b *testing.B, db *pgtest.DB, on func(int, int64)) consumer {
			return feedSubs(b, db, benchSubs, true, on)
		}},
		{"server_10ws", benchSubs, func(b *testing.B, db *pgtest.DB, on func(int, int64)) consumer {
			return serverSubs(b, db, benchSubs, true, on)
		}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			for range b.N {
				start := nextID(b, db)
				sent := make([]atomic.Int64, n) // unix nanos before the commit
				var mu sync.Mutex
				lat := make([]time.Duration, 0, n*tc.subs)
				var remaining atomic.Int64
				remaining.Store(int64(n * tc.subs))
				done := make(chan struct{})
				c := tc.open(b, db, func(_ int, id int64) {
					now := time.Now().UnixNano()
					i := id - start
					if i < 0 || i >= int64(n) {
						return
					}
					mu.Lock()
					lat = append(lat, time.Duration(now-sent[i].Load()))
					mu.Unlock()
					if remaining.Add(-1) == 0 {
						close(done)
					}
				})
				conn := db.Conn(b)
				ctx := context.Background()
				tick := time.NewTicker(time.Second / rate)
				for i := 0; i < n; i++ {
					<-tick.C
					sent[i].Store(time.Now().UnixNano())
					if _, err := conn.Exec(ctx, "insert into bench(id, v, t) values ($1, $1, 'payload')", start+int64(i)); err != nil {
						b.Fatal(err)
					}
				}
				tick.Stop()
				select {
				case <-done:
				case <-time.After(time.Minute):
					b.Fatalf("stalled with %d deliveries missing", remaining.Load())
				}
				c.stop()
				sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
				q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
				b.ReportMetric(q(0.50), "p50_ms")
				b.ReportMetric(q(0.99), "p99_ms")
				b.ReportMetric(q(1), "max_ms")
			}
		})
	}
}
