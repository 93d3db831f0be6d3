package jsharness

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"rtm/realtime/protocol"
	"rtm/realtime/server/servertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestDriverRunsPinnedVersions(t *testing.T) {
	d := Start(t)
	if d.RealtimeJSVersion != RealtimeJSVersion {
		t.Errorf("realtime-js %s, want %s", d.RealtimeJSVersion, RealtimeJSVersion)
	}
	if !strings.HasPrefix(d.NodeVersion, "v22.") && !strings.HasPrefix(d.NodeVersion, "v2") {
		t.Errorf("node %s, want >= 22", d.NodeVersion)
	}
	res, err := d.Do(context.Background(), "ping", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(res), d.NodeVersion) {
		t.Errorf("ping = %s, want node %s", res, d.NodeVersion)
	}
}

func TestConstructorExceptions(t *testing.T) {
	d := Start(t)
	ctx := context.Background()
	tests := []struct {
		name string
		opts ClientOptions
		want string
	}{
		{"no apikey", ClientOptions{}, "API key is required to connect to Realtime"},
		{"bad vsn", ClientOptions{APIKey: "k", Vsn: "3.0.0"}, "Unsupported serializer version: 3.0.0"},
	}
	for _, tt := range tests {
		_, err := d.TryNewClient(ctx, tt.name, "ws://127.0.0.1:1/realtime/v1", tt.opts)
		var ce *CommandError
		if !errors.As(err, &ce) || ce.Message != tt.want {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
	}
	if _, err := d.Do(ctx, "no.such.op", nil); err == nil {
		t.Error("unknown op: no error")
	}
}

func TestEndpointURLs(t *testing.T) {
	d := Start(t)
	c := d.NewClient(t, "a", Endpoint("http://127.0.0.1:1"), ClientOptions{APIKey: "k y", LogLevel: "info", Vsn: "1.0.0"})
	if want := "ws://127.0.0.1:1/realtime/v1/websocket?apikey=k%20y&log_level=info&vsn=1.0.0"; c.EndpointURL != want {
		t.Errorf("endpoint URL %s, want %s", c.EndpointURL, want)
	}
	if want := "http://127.0.0.1:1/realtime/v1/api/broadcast"; c.HTTPEndpoint != want {
		t.Errorf("http endpoint %s, want %s", c.HTTPEndpoint, want)
	}
	st := c.State(t)
	if st.IsConnected || st.ConnectionState != "closed" || len(st.Channels) != 0 {
		t.Errorf("fresh client state %+v", st)
	}
}

// A refused connection reaches the channel as a transport failure.
func TestRefusedConnection(t *testing.T) {
	d := Start(t)
	c := d.NewClient(t, "a", Endpoint("http://"+freeAddr(t)), ClientOptions{APIKey: "k"})
	ch := c.Channel(t, "room", "room1", nil)
	if ch.Topic != "realtime:room1" {
		t.Errorf("topic %s", ch.Topic)
	}
	mark := d.Mark()
	ch.Subscribe(t, 0)
	d.Await(t, 10*time.Second, Match{Kind: KindSocket, Client: "a", State: "error", After: mark})
	st := ch.AwaitStatus(t, 10*time.Second, mark, "CHANNEL_ERROR")
	if st.Error != "channel error: transport failure" {
		t.Errorf("error %q", st.Error)
	}
	if got := len(d.Events(Match{Kind: KindFrame})); got != 0 {
		t.Errorf("%d frames without a connection", got)
	}
}

func TestParseEvent(t *testing.T) {
	frame := append([]byte{4, 14, 6, 0, 1}, `realtime:room1cursor{"x":1}`...)
	line := []byte(`{"ev":"frame","t":1700000000123.5,"client":"a","conn":2,"dir":"in","vsn":"2.0.0","binary":true,"hex":"` + hex.EncodeToString(frame) + `"}`)
	e, err := parseEvent(line)
	if err != nil {
		t.Fatal(err)
	}
	if e.Time.UnixMilli() != 1700000000123 || e.Conn != 2 || e.Client != "a" {
		t.Errorf("parsed %+v", e)
	}
	msg, err := e.Message()
	if err != nil {
		t.Fatal(err)
	}
	if msg.Topic != "realtime:room1" || msg.Event != protocol.EventBroadcast || msg.Broadcast == nil ||
		msg.Broadcast.Event != "cursor" || string(msg.Broadcast.Payload) != `{"x":1}` {
		t.Errorf("message %+v", msg)
	}
	e.Seq = 5
	m := Match{Kind: KindFrame, Dir: "in", Event: "broadcast", Topic: "realtime:room1"}
	if !m.Matches(e) {
		t.Errorf("%v does not match %v", m, e)
	}
	for _, no := range []Match{{After: 5}, {Dir: "out"}, {Event: "phx_reply"}, {Client: "b"}} {
		if no.Matches(e) {
			t.Errorf("%v matches %v", no, e)
		}
	}
	text, err := parseEvent([]byte(`{"ev":"frame","t":1,"client":"a","dir":"out","vsn":"1.0.0","binary":false,"text":"{\"topic\":\"phoenix\",\"event\":\"heartbeat\",\"payload\":{},\"ref\":\"3\"}"}`))
	if err != nil {
		t.Fatal(err)
	}
	msg, err = text.Message()
	if err != nil || msg.Event != "heartbeat" || msg.Ref != "3" || msg.JoinRef != "" {
		t.Errorf("v1 heartbeat %+v, %v", msg, err)
	}
	b64 := Base64([]byte{0, 1, 255})
	if b64["$base64"] != "AAH/" {
		t.Errorf("base64 %v", b64)
	}
	if b, err := DecodeBase64([]byte(`{"$base64":"AAH/"}`)); err != nil || string(b) != "\x00\x01\xff" {
		t.Errorf("DecodeBase64 = %v, %v", b, err)
	}
}

func TestEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:4000":  "ws://127.0.0.1:4000/realtime/v1",
		"https://x.supabase.co/": "wss://x.supabase.co/realtime/v1",
		"ws://127.0.0.1:9/":      "ws://127.0.0.1:9/realtime/v1",
	} {
		if got := Endpoint(in); got != want {
			t.Errorf("Endpoint(%q) = %q, want %q", in, got, want)
		}
	}
}

// The harness against the embedded server: a socket opens, heartbeats
// round-trip, every frame is logged and decodes, a channel subscribes and
// a self broadcast comes back through the callback.
func TestAgainstServer(t *testing.T) {
	srv := servertest.New(t)
	d := Start(t)
	c := d.NewClient(t, "a", Endpoint(srv.URL), ClientOptions{APIKey: srv.AnonKey(), HeartbeatIntervalMs: 500})
	c.Connect(t)
	d.Await(t, 10*time.Second, Match{Kind: KindSocket, Client: "a", State: "open"})
	d.AwaitN(t, 10*time.Second, Match{Kind: KindHeartbeat, Client: "a", Status: "ok"}, 2)
	if st := c.State(t); !st.IsConnected || st.ConnectionState != "open" {
		t.Errorf("state %+v", st)
	}
	hb := d.Await(t, time.Second, Match{Kind: KindFrame, Client: "a", Dir: "out", Event: "heartbeat"})
	m, err := hb.Message()
	if err != nil || m.Topic != "phoenix" || m.Ref == "" {
		t.Errorf("heartbeat frame %s: %+v %v", hb, m, err)
	}
	d.Await(t, time.Second, Match{Kind: KindFrame, Client: "a", Dir: "in", Event: "phx_reply", Topic: "phoenix"})

	ch := c.Channel(t, "room", "room1", map[string]any{"broadcast": map[string]any{"self": true, "ack": true}}).
		On(t, "broadcast", map[string]any{"event": "*"})
	mark := d.Mark()
	info := ch.Subscribe(t, 0)
	if info.Topic != "realtime:room1" {
		t.Errorf("subscribe info %+v", info)
	}
	ch.AwaitStatus(t, 10*time.Second, mark, "SUBSCRIBED")
	if info := ch.Info(t); info.State != "joined" || info.JoinRef == nil {
		t.Errorf("channel info %+v", info)
	}
	p := ch.SendAsync(t, map[string]any{"type": "broadcast", "event": "bin", "payload": Base64([]byte{1, 2, 3})}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := p.Wait(ctx)
	if err != nil || string(res) != `"ok"` || !p.Done() {
		t.Errorf("async send: %s, %v", res, err)
	}
	got := ch.Await(t, 10*time.Second, Match{Kind: KindBroadcast, Event: "bin", After: mark})
	var pl struct {
		Payload json.RawMessage `json:"payload"`
	}
	got.Decode(&pl)
	if b, err := DecodeBase64(pl.Payload); err != nil || string(b) != "\x01\x02\x03" || !got.Binary {
		t.Errorf("binary callback %s: %x %v", got.Payload, b, err)
	}
	out := d.Await(t, time.Second, Match{Kind: KindFrame, Client: "a", Dir: "out", Event: "broadcast", After: mark})
	if !out.Binary || out.Bytes()[0] != 3 {
		t.Errorf("broadcast push %s", out)
	}
	if n := len(d.Events(Match{Kind: KindUncaught})); n != 0 {
		t.Errorf("%d uncaught exceptions", n)
	}
}

// Dumps leave out the heartbeats that went well, which would otherwise
// fill a long wait's dump, and keep everything else.
func TestRoutineHeartbeat(t *testing.T) {
	for _, tt := range []struct {
		e    Event
		want bool
	}{
		{Event{Kind: KindHeartbeat, Status: "sent"}, true},
		{Event{Kind: KindHeartbeat, Status: "ok"}, true},
		{Event{Kind: KindHeartbeat, Status: "timeout"}, false},
		{Event{Kind: KindFrame, Dir: "out", Text: `[null,"12","phoenix","heartbeat",{}]`}, true},
		{Event{Kind: KindFrame, Dir: "in", Text: `[null,"12","phoenix","phx_reply",{"status":"ok","response":{}}]`}, true},
		{Event{Kind: KindFrame, Dir: "in", Text: `[null,"12","phoenix","phx_reply",{"status":"error","response":{}}]`}, false},
		{Event{Kind: KindFrame, Dir: "in", Text: `[null,null,"realtime:bob","postgres_changes",{}]`}, false},
		{Event{Kind: KindSystem}, false},
	} {
		if got := routineHeartbeat(&tt.e); got != tt.want {
			t.Errorf("routineHeartbeat(%s %s %q) = %v", tt.e.Kind, tt.e.Status, tt.e.Text, got)
		}
	}
}
