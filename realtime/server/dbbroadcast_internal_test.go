package server

import (
	"testing"
	"time"
)

// replayParams reads config.broadcast.replay as Supabase does.
func TestReplayParams(t *testing.T) {
	for _, tc := range []struct {
		payload            string
		present, isMap, ok bool
		since              int64
		limit              int
	}{
		{`{"config":{}}`, false, false, false, 0, 0},
		{`{"config":{"broadcast":{"replay":null}}}`, true, false, false, 0, 0},
		{`{"config":{"broadcast":{"replay":[1]}}}`, true, false, false, 0, 0},
		{`{"config":{"broadcast":{"replay":{"since":1700000000000}}}}`, true, true, true, 1700000000000, 25},
		{`{"config":{"broadcast":{"replay":{"since":5,"limit":null}}}}`, true, true, true, 5, 25},
		{`{"config":{"broadcast":{"replay":{"since":5,"limit":100}}}}`, true, true, true, 5, 25},
		{`{"config":{"broadcast":{"replay":{"since":5,"limit":-3}}}}`, true, true, true, 5, 1},
		{`{"config":{"broadcast":{"replay":{"since":-5,"limit":3}}}}`, true, true, true, -5, 3},
		{`{"config":{"broadcast":{"replay":{"since":5,"limit":"3"}}}}`, true, true, false, 0, 0},
		{`{"config":{"broadcast":{"replay":{"since":5.0}}}}`, true, true, false, 0, 0},
		{`{"config":{"broadcast":{"replay":{"since":1e3}}}}`, true, true, false, 0, 0},
		{`{"config":{"broadcast":{"replay":{"since":253402300800000}}}}`, true, true, false, 0, 0},
		{`{"config":{"broadcast":{"replay":{"since":99999999999999999999999}}}}`, true, true, false, 0, 0},
		{`{"config":{"broadcast":{"replay":{}}}}`, true, true, false, 0, 0},
	} {
		req, present, isMap, ok := replayParams([]byte(tc.payload))
		if present != tc.present || isMap != tc.isMap || ok != tc.ok {
			t.Errorf("%s: present %v map %v ok %v", tc.payload, present, isMap, ok)
			continue
		}
		if ok && (!req.Since.Equal(time.UnixMilli(tc.since)) || req.Limit != tc.limit) {
			t.Errorf("%s: since %v limit %d", tc.payload, req.Since, req.Limit)
		}
	}
}

func FuzzReplayParams(f *testing.F) {
	f.Add([]byte(`{"config":{"broadcast":{"replay":{"since":5,"limit":100}}}}`))
	f.Add([]byte(`{"config":{"broadcast":{"replay":{"since":-9e99}}}}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		req, _, _, ok := replayParams(payload)
		if ok && (req.Limit < 1 || req.Limit > maxReplay) {
			t.Fatalf("limit %d", req.Limit)
		}
	})
}
