package pgrealtime

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"rtm/realtime/protocol"
	"rtm/realtime/server"
)

// BenchmarkJoin: a private join decided by an RLS policy (the probe
// transaction on a local PostgreSQL) beside a public join, which never
// asks the database; each join is followed by its leave. Reported: join
// round-trip p50, p99 and max (Supabase's target for the policy check:
// p99 ≤ 10 ms with a local database).
func BenchmarkJoin(b *testing.B) {
	for _, tc := range []struct {
		name    string
		private bool
	}{{"public", false}, {"private", true}} {
		b.Run(tc.name, func(b *testing.B) {
			e := newEnv(b, `create policy bench on realtime.messages for select to authenticated using ( realtime.topic() like 'room-%' )`,
				func(c *server.Config) { c.Limits = server.Limits{Off: true} })
			c := dialWS(b, e.srv, e.srv.UserToken(b, alice, time.Hour, nil))
			cfg := `{"private":` + strconv.FormatBool(tc.private) + `}`
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				topic := "realtime:room-" + strconv.Itoa(i%8)
				start := time.Now()
				j, r := c.join(topic, cfg)
				lat = append(lat, time.Since(start))
				if !strings.Contains(r, `"status":"ok"`) {
					b.Fatalf("join: %s", r)
				}
				c.reply(c.push(j, topic, protocol.EventLeave, `{}`))
			}
			b.StopTimer()
			slices.Sort(lat)
			q := func(p float64) float64 {
				return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000
			}
			b.ReportMetric(q(0.50), "p50_ms")
			b.ReportMetric(q(0.99), "p99_ms")
			b.ReportMetric(q(1), "max_ms")
		})
	}
}
