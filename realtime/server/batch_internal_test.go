package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"rtm/realtime/protocol"
)

// parseBatchMaps is the batch parser this server had before scanBatch:
// every message decoded into a map, an error object listed per message.
// It is the reference scanBatch must agree with.
func parseBatchMaps(body []byte, maxPayload int) ([]restMessage, map[string]any) {
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil || top == nil {
		return nil, map[string]any{"body": []string{"must be a JSON object"}}
	}
	raw, ok := top["messages"]
	if !ok || isNull(raw) {
		return nil, map[string]any{"messages": []string{"can't be blank"}}
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil {
		return nil, map[string]any{"messages": []string{"is invalid"}}
	}
	if len(list) == 0 {
		return nil, map[string]any{"messages": []string{"can't be blank"}}
	}
	msgs := make([]restMessage, 0, len(list))
	perMsg := make([]map[string][]string, len(list))
	valid := true
	for i, item := range list {
		errs := map[string][]string{}
		perMsg[i] = errs
		var m map[string]json.RawMessage
		if json.Unmarshal(item, &m) != nil || m == nil {
			errs["message"] = []string{"is invalid"}
			valid = false
			continue
		}
		var rm restMessage
		str := func(field string, dst *string) {
			v, ok := m[field]
			if !ok || isNull(v) {
				errs[field] = []string{"can't be blank"}
				return
			}
			if json.Unmarshal(v, dst) != nil {
				errs[field] = []string{"is invalid"}
				return
			}
			if *dst == "" {
				errs[field] = []string{"can't be blank"}
			}
		}
		str("topic", &rm.topic)
		str("event", &rm.event)
		if len(rm.topic) > maxSubTopicBytes {
			errs["topic"] = append(errs["topic"], fmt.Sprintf("must be at most %d bytes (%d with the %q prefix)", maxSubTopicBytes, MaxTopicBytes, protocol.TopicPrefix))
		}
		if len(rm.event) > MaxEventBytes {
			errs["event"] = append(errs["event"], fmt.Sprintf("must be at most %d bytes", MaxEventBytes))
		}
		switch p, ok := m["payload"]; {
		case !ok || isNull(p):
			errs["payload"] = []string{"can't be blank"}
		case !protocol.IsObject(p):
			errs["payload"] = []string{"is invalid"}
		case maxPayload > 0 && len(p) > maxPayload:
			errs["payload"] = []string{"Payload size exceeds tenant limit"}
		default:
			rm.payload = p
		}
		if p, ok := m["private"]; ok && !isNull(p) {
			var b protocol.FlexBool
			if json.Unmarshal(p, &b) != nil {
				errs["private"] = []string{"is invalid"}
			}
			rm.private = bool(b)
		}
		if id, ok := m["id"]; ok && !isNull(id) {
			rm.id = id
		}
		if len(errs) > 0 {
			valid = false
		}
		msgs = append(msgs, rm)
	}
	if !valid {
		return nil, map[string]any{"messages": perMsg}
	}
	return msgs, nil
}

var batchClaims = &Claims{Role: RoleAnon, TenantID: "t1"}

// checkBatchAgainstMaps fails t unless scanBatch answers body as
// parseBatchMaps and the old handler did: the same 422 body (the same
// bytes for up to maxBatchErrors messages; for more, the first failures
// with their index and the counts), the same refused topic, the same
// messages delivered.
func checkBatchAgainstMaps(t *testing.T, body []byte, maxPayload int) {
	t.Helper()
	msgs, errs := parseBatchMaps(body, maxPayload)
	b := scanBatch(body, maxPayload, batchClaims)
	got := b.errors()
	if errs != nil {
		if got == nil {
			t.Fatalf("%.300q: accepted, want errors %v", body, errs)
		}
		want, _ := json.Marshal(map[string]any{"errors": errs})
		gotJSON, _ := json.Marshal(got)
		perMsg, positional := errs["messages"].([]map[string][]string)
		if !positional || len(perMsg) <= maxBatchErrors {
			if !bytes.Equal(gotJSON, want) {
				t.Fatalf("%.300q: errors\n%s\nwant\n%s", body, gotJSON, want)
			}
			return
		}
		var wantList []map[string]any
		failed := 0
		for i, e := range perMsg {
			if len(e) == 0 {
				continue
			}
			failed++
			if len(wantList) < maxBatchErrors {
				m := map[string]any{"index": i}
				for k, v := range e {
					m[k] = v
				}
				wantList = append(wantList, m)
			}
		}
		want, _ = json.Marshal(map[string]any{"errors": map[string]any{"messages": wantList}, "failed": failed, "total": len(perMsg)})
		if !bytes.Equal(gotJSON, want) {
			t.Fatalf("%.300q: errors\n%s\nwant\n%s", body, gotJSON, want)
		}
		return
	}
	if got != nil {
		gotJSON, _ := json.Marshal(got)
		t.Fatalf("%.300q: errors %s, want accepted", body, gotJSON)
	}
	var refusedTopic, refusal string
	for _, m := range msgs {
		if why := tenantRefusal(m.topic, batchClaims); why != "" {
			refusedTopic, refusal = m.topic, why
			break
		}
	}
	if b.refusedTopic != refusedTopic || b.refusal != refusal {
		t.Fatalf("%.300q: refused %q (%s), want %q (%s)", body, b.refusedTopic, b.refusal, refusedTopic, refusal)
	}
	if b.total != len(msgs) {
		t.Fatalf("%.300q: total %d, want %d", body, b.total, len(msgs))
	}
	var delivered []restMessage
	b.each(func(m restMessage) { delivered = append(delivered, m) })
	if len(delivered) != len(msgs) {
		t.Fatalf("%.300q: %d messages, want %d", body, len(delivered), len(msgs))
	}
	for i, m := range msgs {
		d := delivered[i]
		if d.topic != m.topic || d.event != m.event || !bytes.Equal(d.payload, m.payload) || d.private != m.private ||
			!bytes.Equal(d.id, m.id) || (d.id == nil) != (m.id == nil) {
			t.Fatalf("%.300q: message %d = %+v, want %+v", body, i, d, m)
		}
	}
}

// batchSeeds are tricky bodies for scanBatch: escapes, repeated keys,
// JSON edge cases, invalid UTF-8, tenants.
var batchSeeds = []string{
	// Names at and over their caps, plain and escaped.
	`{"messages":[{"topic":"` + strings.Repeat("t", 246) + `","event":"` + strings.Repeat("e", 255) + `","payload":{}}]}`,
	`{"messages":[{"topic":"` + strings.Repeat("t", 247) + `","event":"` + strings.Repeat("\\u0065", 256) + `","payload":{}}]}`,
	`{"messages":[{"topic":"` + strings.Repeat("\xff", 90) + `","event":"e","payload":{}}]}`,
	`{"messages":[{"topic":"room1","event":"x","payload":{"y":2},"private":false}]}`,
	`{"messages":[{"topic":1,"payload":[1]},{}]}`, `{"messages":[]}`, `{}`, `[]`, `{"messages":null}`, `null`, ``, ` `,
	`{"messages":[{"topic":"a","event":"b","payload":{},"private":"TRUE","id":"m"}]}`,
	`{"messages":[{"topic":"a","event":"b","payload":{},"private":"yes","id":null}]}`,
	`{"messages":[{"topic":"a","event":"b","payload":{},"private":1}]}`,
	`{"messages":{"topic":"a"}}`, `{"messages":"x"}`, `{"messages":1}`, `{"messages":true}`,
	`{"messages":[null,1,"s",[],true]}`,
	`{"messages":[{"topic":"a","event":"b","payload":{}}],"messages":null}`,
	`{"messages":null,"messages":[{"topic":"a","event":"b","payload":{}}]}`,
	`{"messages":[{"topic":"a","event":"b","payload":{}}],"messages":[{"topic":"c","event":"d","payload":{"e":1}}]}`,
	`{"messages":[{"topic":"a","topic":"","event":"b","payload":{},"payload":null}]}`,
	`{"m\u0065ssages":[{"t\u006fpic":"a\u0062","event":"\ud800","payload":{"k":"\u00e9"}}]}`,
	"{\"messages\":[{\"topic\":\"\xff\xfe\",\"event\":\"e\",\"payload\":{\"a\":\"\xff\"}}]}",
	`{"messages":[{"topic":"a","event":"b","payload":{"x":"` + strings.Repeat("y", 200) + `"}}]}`,
	`{"messages":[{"topic":"a","event":"b","payload":{}}]} x`, `{"messages":[{"topic":"a","event":"b","payload":{}}],}`,
	`{"messages":[{"topic":"a","event":"b","payload":{}},]}`, `{"messages":[{"topic":"a","event":"b","payload":{},}]}`,
	`{"messages":[{"topic":"a","event":"b","payload":{"n":[1,-0,0.5,1e5,1E-5,-1.5e+3]}}]}`,
	`{"messages":[{"topic":"a","event":"b","payload":{"n":01}}]}`, `{"messages":[{"topic":"a","event":"b","payload":{"n":1.}}]}`,
	`{"messages":[{"topic":"a","event":"b","payload":{"n":-}}]}`, `{"messages":[{"topic":"a","event":"b","payload":{"n":1e}}]}`,
	`{"messages":[{"topic":"a","event":"b","payload":{"n":.5}}]}`, `{"messages":[{"topic":"a","event":"b","payload":{"n":tru}}]}`,
	"{\"messages\":[{\"topic\":\"a\tb\",\"event\":\"b\",\"payload\":{}}]}", `{"messages":[{"topic":"a\x","event":"b","payload":{}}]}`,
	`{"messages":[{"topic":"a\u00","event":"b","payload":{}}]}`, `{"messages":[{"topic":"a\/b\"\\\b\f\n\r\t","event":"b","payload":{}}]}`,
	" \t\r\n{ \"messages\" : [ { \"topic\" : \"a\" , \"event\" : \"b\" , \"payload\" : { } } ] } \n",
	`{"messages":[{"topic":"tenant:t1:x","event":"b","payload":{}},{"topic":"tenant:t2:x","event":"b","payload":{}}]}`,
	`{"messages":[{"topic":"\u0074enant:t2:x","event":"b","payload":{}}]}`,
	`{"messages":[{"topic":"tenant::x","event":"b","payload":{}},{"topic":1,"event":"b","payload":{}}]}`,
	`{"messages":[{"topic":"a","event":"b","payload":{"p":{"q":[{"r":null}]}},"id":{"x":[1]}}]}`,
	`{"other":{"a":[1,{"b":"c"}]},"messages":[{"topic":"a","event":"b","payload":{}}]}`,
	`{"messages":[{"topic":"a","event":"b","payload":{}}]`, `{"messages":[{"topic":"a","event":"b","payload":{}`, `{"messages"`, `{"messages":`, `{`, `{"`,
	`{"messages":[{"topic":"a","event":"b","payload":` + strings.Repeat(`{"a":`, 600) + `1` + strings.Repeat(`}`, 600) + `}]}`,
	`{"messages":[{"topic":"a","event":"b","payload":{}, "x":` + strings.Repeat(`[`, 9996) + strings.Repeat(`]`, 9996) + `}]}`,
	`{"messages":[{"topic":"a","event":"b","payload":{}, "x":` + strings.Repeat(`[`, 9997) + strings.Repeat(`]`, 9997) + `}]}`,
	`{"messages":[` + strings.Repeat(`[`, 9998) + strings.Repeat(`]`, 9998) + `]}`,
	`{"messages":[` + strings.Repeat(`[`, 9999) + strings.Repeat(`]`, 9999) + `]}`,
}

func TestScanBatchMatchesMaps(t *testing.T) {
	for _, s := range batchSeeds {
		checkBatchAgainstMaps(t, []byte(s), 100)
		checkBatchAgainstMaps(t, []byte(s), 0)
	}
	// Around maxBatchErrors: the positional answer up to it, the indexed
	// one beyond, failures listed up to maxBatchErrors.
	valid, blank := `{"topic":"a","event":"b","payload":{}}`, `{}`
	for _, n := range []int{1, 99, 100, 101, 250} {
		for _, every := range []int{1, 2, 7, n} {
			items := make([]string, n)
			for i := range items {
				items[i] = valid
				if i%every == every-1 {
					items[i] = blank
				}
			}
			checkBatchAgainstMaps(t, []byte(`{"messages":[`+strings.Join(items, ",")+`]}`), 100)
		}
	}
}

// TestScanBatchAnswerBounded: however many messages fail, the answer
// lists maxBatchErrors of them and counts them all.
func TestScanBatchAnswerBounded(t *testing.T) {
	const n = 100_000
	body := []byte(`{"messages":[` + strings.Repeat(`{"topic":1},`, n-1) + `{"topic":1}]}`)
	out, err := json.Marshal(scanBatch(body, 0, nil).errors())
	if err != nil {
		t.Fatal(err)
	}
	if len(out) > 16<<10 {
		t.Errorf("answer of %d bytes for %d failures", len(out), n)
	}
	want := fmt.Sprintf(`"failed":%d,"total":%d}`, n, n)
	if !bytes.HasSuffix(out, []byte(want)) || !bytes.Contains(out, []byte(`{"event":["can't be blank"],"index":99,"payload":["can't be blank"],"topic":["is invalid"]}]`)) {
		t.Errorf("answer %.300s…%s", out, out[len(out)-100:])
	}
}

func FuzzScanBatch(f *testing.F) {
	for _, s := range batchSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkBatchAgainstMaps(t, data, 100)
	})
}

func TestReadAllSized(t *testing.T) {
	for _, n := range []int{0, 1, 100, 64 << 10, 64<<10 + 1, 300 << 10, 3 << 20} {
		data := bytes.Repeat([]byte("x"), n)
		for _, hint := range []int64{int64(n), -1} {
			got, err := readAllSized(bytes.NewReader(data), hint)
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("n=%d hint=%d: %d bytes, %v", n, hint, len(got), err)
			}
			if hint >= 0 && cap(got) != n+1 {
				t.Errorf("n=%d: capacity %d, want %d", n, cap(got), n+1)
			}
		}
	}
	// A body shorter or longer than announced is still read whole.
	got, err := readAllSized(strings.NewReader("abc"), 10)
	if err != nil || string(got) != "abc" {
		t.Errorf("short: %q %v", got, err)
	}
	got, err = readAllSized(strings.NewReader(strings.Repeat("y", 100)), 3)
	if err != nil || len(got) != 100 {
		t.Errorf("long: %d %v", len(got), err)
	}
}

func TestClip(t *testing.T) {
	if got := clip("short"); got != "short" {
		t.Errorf("clip(short) = %q", got)
	}
	long := strings.Repeat("é", 150) // 300 bytes
	got := clip(long)
	if len(got) > maxEcho+len("…") || !strings.HasSuffix(got, "…") || !utf8.ValidString(got) {
		t.Errorf("clip(long) = %q (%d bytes)", got, len(got))
	}
}

// TestScanBatchAllocs: checking a batch allocates nothing per message,
// valid or not (but for keys with escapes, decoded by encoding/json).
func TestScanBatchAllocs(t *testing.T) {
	const n = 10_000
	for name, item := range map[string]string{
		"valid":   `{"topic":"room","event":"e","payload":{"a":[1,2,{"b":"c"}]},"private":false,"id":"x"}`,
		"invalid": `{"topic":1,"payload":[]}`,
		"escaped": `{"t\u006fpic":"room","event":"e","payload":{}}`,
	} {
		body := []byte(`{"messages":[` + strings.Repeat(item+",", n-1) + item + `]}`)
		allocs := testing.AllocsPerRun(5, func() { scanBatch(body, 0, nil) })
		limit := 20.0
		if name == "escaped" {
			limit = 5*n + 20 // the key is decoded by encoding/json, once
		}
		if allocs > limit {
			t.Errorf("%s: %.0f allocations for %d messages, want at most %.0f", name, allocs, n, limit)
		}
	}
}
