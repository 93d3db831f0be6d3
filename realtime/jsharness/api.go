package jsharness

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Endpoint returns the endpoint realtime-js takes for a project URL
// ("http://127.0.0.1:4000" -> "ws://127.0.0.1:4000/realtime/v1"), as
// supabase-js builds it; realtime-js appends "/websocket".
func Endpoint(projectURL string) string {
	u := strings.TrimRight(projectURL, "/")
	switch {
	case strings.HasPrefix(u, "https://"):
		u = "wss://" + strings.TrimPrefix(u, "https://")
	case strings.HasPrefix(u, "http://"):
		u = "ws://" + strings.TrimPrefix(u, "http://")
	}
	return u + "/realtime/v1"
}

// LibSupabaseJS is the ClientOptions.Lib of a client made by
// @supabase/supabase-js.
const LibSupabaseJS = "supabase-js"

// ClientOptions are the RealtimeClient options a test sets. Zero fields
// keep realtime-js's defaults.
type ClientOptions struct {
	// Lib is who makes the client: "" is `new RealtimeClient(endpoint,
	// opts)` of @supabase/realtime-js (RealtimeJSVersion); LibSupabaseJS
	// is the realtime client of @supabase/supabase-js
	// (SupabaseJSVersion, with the realtime-js it bundles): the endpoint
	// given to NewClient is then the project URL (http://host:port, what
	// an app sets as SUPABASE_URL), APIKey the key given to
	// createClient(url, key, {realtime: opts}), and every option below
	// goes into its realtime options (AccessToken becomes supabase-js's
	// accessToken callback). The other ops work the same on both.
	Lib string
	// APIKey is params.apikey (required by realtime-js).
	APIKey string
	// Params are further query parameters.
	Params map[string]string
	// Vsn is the serializer, "1.0.0" or "2.0.0" (realtime-js default).
	Vsn string
	// HeartbeatIntervalMs defaults to 25000 in realtime-js.
	HeartbeatIntervalMs int
	// TimeoutMs is the push/join timeout, 10000 by default.
	TimeoutMs int
	// LogLevel is the logLevel option (adds log_level to the URL).
	LogLevel string
	// AccessToken, when set, installs an accessToken() callback returning
	// it; [Client.SetAccessToken] changes what it returns.
	AccessToken string
	// ReconnectAfterMs replaces the reconnect schedule (1 s, 2 s, 5 s,
	// 10 s); the last value repeats.
	ReconnectAfterMs []int
	// DisconnectOnEmptyChannelsAfterMs, when set, replaces the default
	// (two heartbeat intervals).
	DisconnectOnEmptyChannelsAfterMs *int
	// Logger turns realtime-js's log lines into KindLog events.
	Logger bool
	// Extra are further options passed verbatim.
	Extra map[string]any
}

func (o ClientOptions) toMap() map[string]any {
	params := map[string]any{}
	if o.APIKey != "" {
		params["apikey"] = o.APIKey
	}
	for k, v := range o.Params {
		params[k] = v
	}
	m := map[string]any{"params": params}
	if o.Vsn != "" {
		m["vsn"] = o.Vsn
	}
	if o.HeartbeatIntervalMs > 0 {
		m["heartbeatIntervalMs"] = o.HeartbeatIntervalMs
	}
	if o.TimeoutMs > 0 {
		m["timeout"] = o.TimeoutMs
	}
	if o.LogLevel != "" {
		m["logLevel"] = o.LogLevel
	}
	if o.AccessToken != "" {
		m["accessToken"] = o.AccessToken
	}
	if len(o.ReconnectAfterMs) > 0 {
		m["reconnectAfterMs"] = o.ReconnectAfterMs
	}
	if o.DisconnectOnEmptyChannelsAfterMs != nil {
		m["disconnectOnEmptyChannelsAfterMs"] = *o.DisconnectOnEmptyChannelsAfterMs
	}
	if o.Logger {
		m["logger"] = true
	}
	for k, v := range o.Extra {
		m[k] = v
	}
	return m
}

// must runs a command for the typed API and fails tb on error.
func (d *Driver) must(tb testing.TB, op string, args map[string]any) json.RawMessage {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	res, err := d.Do(ctx, op, args)
	if err != nil {
		tb.Fatalf("%v\nrecent events:\n%s", err, d.Dump(40))
	}
	return res
}

func mustString(tb testing.TB, raw json.RawMessage) string {
	tb.Helper()
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		tb.Fatalf("jsharness: want a string result, got %s", raw)
	}
	return s
}

// Client is a RealtimeClient in the driver.
type Client struct {
	d    *Driver
	Name string
	// EndpointURL is the WebSocket URL realtime-js connects to.
	EndpointURL string
	// HTTPEndpoint is its REST broadcast URL.
	HTTPEndpoint string
	// SupabaseJSVersion and RealtimeJSVersion are the versions of a
	// LibSupabaseJS client (supabase-js and the realtime-js it bundles).
	SupabaseJSVersion, RealtimeJSVersion string
}

// NewClient creates `new RealtimeClient(endpoint, opts)` named name (names
// appear in events), or with opts.Lib LibSupabaseJS the realtime client
// of `createClient(endpoint, opts.APIKey, ...)`. It does not connect.
func (d *Driver) NewClient(tb testing.TB, name, endpoint string, opts ClientOptions) *Client {
	tb.Helper()
	c, err := d.TryNewClient(context.Background(), name, endpoint, opts)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// TryNewClient is NewClient returning the constructor's exception.
func (d *Driver) TryNewClient(ctx context.Context, name, endpoint string, opts ClientOptions) (*Client, error) {
	ctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
	defer cancel()
	args := map[string]any{"client": name, "url": endpoint, "options": opts.toMap()}
	if opts.Lib != "" {
		args["lib"] = opts.Lib
	}
	res, err := d.Do(ctx, "client.new", args)
	if err != nil {
		return nil, err
	}
	var info struct {
		EndpointURL  string `json:"endpointURL"`
		HTTPEndpoint string `json:"httpEndpoint"`
		SupabaseJS   string `json:"supabaseJs"`
		RealtimeJS   string `json:"realtimeJs"`
	}
	json.Unmarshal(res, &info)
	if opts.Lib == LibSupabaseJS && (info.SupabaseJS != SupabaseJSVersion || info.RealtimeJS != SupabaseJSVersion) {
		return nil, fmt.Errorf("jsharness: the driver runs supabase-js %s with realtime-js %s, want %s with its own realtime-js", info.SupabaseJS, info.RealtimeJS, SupabaseJSVersion)
	}
	return &Client{d: d, Name: name, EndpointURL: info.EndpointURL, HTTPEndpoint: info.HTTPEndpoint,
		SupabaseJSVersion: info.SupabaseJS, RealtimeJSVersion: info.RealtimeJS}, nil
}

// Connect calls client.connect().
func (c *Client) Connect(tb testing.TB) {
	tb.Helper()
	c.d.must(tb, "client.connect", map[string]any{"client": c.Name})
}

// Disconnect calls client.disconnect(code, reason) (code 0: none) and
// returns its result ("ok" or "timeout").
func (c *Client) Disconnect(tb testing.TB, code int, reason string) string {
	tb.Helper()
	args := map[string]any{"client": c.Name}
	if code != 0 {
		args["code"] = code
		args["reason"] = reason
	}
	return mustString(tb, c.d.must(tb, "client.disconnect", args))
}

// SetAuth calls client.setAuth(token); an empty token passes null.
func (c *Client) SetAuth(tb testing.TB, token string) {
	tb.Helper()
	args := map[string]any{"client": c.Name}
	if token != "" {
		args["token"] = token
	}
	c.d.must(tb, "client.setAuth", args)
}

// SetAccessToken changes what the accessToken() callback returns (clients
// created with ClientOptions.AccessToken).
func (c *Client) SetAccessToken(tb testing.TB, token string) {
	tb.Helper()
	c.d.must(tb, "client.setAccessToken", map[string]any{"client": c.Name, "token": token})
}

// OnHeartbeat registers client.onHeartbeat(cb); its calls are KindHeartbeat
// events with Source "onHeartbeat" (the heartbeatCallback option always
// reports with Source "option").
func (c *Client) OnHeartbeat(tb testing.TB) {
	tb.Helper()
	c.d.must(tb, "client.onHeartbeat", map[string]any{"client": c.Name})
}

// ClientState is what client.state reports.
type ClientState struct {
	ConnectionState string   `json:"connectionState"`
	IsConnected     bool     `json:"isConnected"`
	Channels        []string `json:"channels"`
	AccessToken     *string  `json:"accessToken"`
}

// State returns the client's connection state and channel topics.
func (c *Client) State(tb testing.TB) ClientState {
	tb.Helper()
	var s ClientState
	if err := json.Unmarshal(c.d.must(tb, "client.state", map[string]any{"client": c.Name}), &s); err != nil {
		tb.Fatal(err)
	}
	return s
}

// RemoveChannel calls client.removeChannel(ch) and returns its result.
func (c *Client) RemoveChannel(tb testing.TB, ch *Channel) string {
	tb.Helper()
	return mustString(tb, c.d.must(tb, "client.removeChannel", map[string]any{"client": c.Name, "channel": ch.Name}))
}

// Channel calls client.channel(topic, {config}) and names the channel
// name in events; topic is without "realtime:". A nil config passes no
// params.
func (c *Client) Channel(tb testing.TB, name, topic string, config map[string]any) *Channel {
	tb.Helper()
	args := map[string]any{"client": c.Name, "channel": name, "topic": topic}
	if config != nil {
		args["params"] = map[string]any{"config": config}
	}
	var info ChannelInfo
	if err := json.Unmarshal(c.d.must(tb, "channel.new", args), &info); err != nil {
		tb.Fatal(err)
	}
	return &Channel{d: c.d, Client: c, Name: name, Topic: info.Topic}
}

// Channel is a RealtimeChannel in the driver.
type Channel struct {
	d      *Driver
	Client *Client
	// Name names the channel in events (Event.Channel).
	Name string
	// Topic is the wire topic, "realtime:<topic>".
	Topic string
}

// ChannelInfo is a channel's state.
type ChannelInfo struct {
	Topic      string `json:"topic"`
	State      string `json:"state"`
	JoinedOnce bool   `json:"joinedOnce"`
	// JoinRef is the ref of the current join push (the join_ref).
	JoinRef *string `json:"joinRef"`
}

// On calls channel.on(typ, filter, cb); every call of cb becomes an event
// of kind typ with the callback's argument as Payload.
func (ch *Channel) On(tb testing.TB, typ string, filter map[string]any) *Channel {
	tb.Helper()
	if filter == nil {
		filter = map[string]any{}
	}
	ch.d.must(tb, "channel.on", map[string]any{"client": ch.Client.Name, "channel": ch.Name, "type": typ, "filter": filter})
	return ch
}

// Subscribe calls channel.subscribe(cb[, timeoutMs]) (timeoutMs 0: the
// client's); statuses arrive as KindStatus events.
func (ch *Channel) Subscribe(tb testing.TB, timeoutMs int) ChannelInfo {
	tb.Helper()
	args := map[string]any{"client": ch.Client.Name, "channel": ch.Name}
	if timeoutMs > 0 {
		args["timeout"] = timeoutMs
	}
	var info ChannelInfo
	if err := json.Unmarshal(ch.d.must(tb, "channel.subscribe", args), &info); err != nil {
		tb.Fatal(err)
	}
	return info
}

// Info returns the channel's state and join ref.
func (ch *Channel) Info(tb testing.TB) ChannelInfo {
	tb.Helper()
	var info ChannelInfo
	if err := json.Unmarshal(ch.d.must(tb, "channel.state", map[string]any{"client": ch.Client.Name, "channel": ch.Name}), &info); err != nil {
		tb.Fatal(err)
	}
	return info
}

// State returns channel.state.
func (ch *Channel) State(tb testing.TB) string {
	tb.Helper()
	return ch.Info(tb).State
}

// Send calls channel.send(msg) and returns its result ("ok", "timed out",
// "error"). Binary values in msg are made with [Base64].
func (ch *Channel) Send(tb testing.TB, msg map[string]any) string {
	tb.Helper()
	return mustString(tb, ch.d.must(tb, "channel.send", map[string]any{"client": ch.Client.Name, "channel": ch.Name, "message": msg}))
}

// SendAsync starts channel.send(msg, opts) without waiting for its result.
func (ch *Channel) SendAsync(tb testing.TB, msg map[string]any, opts map[string]any) *Pending {
	tb.Helper()
	args := map[string]any{"client": ch.Client.Name, "channel": ch.Name, "message": msg}
	if opts != nil {
		args["opts"] = opts
	}
	p, err := ch.d.DoAsync(context.Background(), "channel.send", args)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// Broadcast sends {type:"broadcast", event, payload} and returns the
// result.
func (ch *Channel) Broadcast(tb testing.TB, event string, payload any) string {
	tb.Helper()
	return ch.Send(tb, map[string]any{"type": "broadcast", "event": event, "payload": payload})
}

// HTTPSend calls channel.httpSend(event, payload) and returns its result
// ({success:true}) or realtime-js's rejection.
func (ch *Channel) HTTPSend(ctx context.Context, event string, payload any) (json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
	defer cancel()
	return ch.d.Do(ctx, "channel.httpSend", map[string]any{"client": ch.Client.Name, "channel": ch.Name, "event": event, "payload": payload})
}

// Track calls channel.track(meta) and returns its result.
func (ch *Channel) Track(tb testing.TB, meta map[string]any) string {
	tb.Helper()
	return mustString(tb, ch.d.must(tb, "channel.track", map[string]any{"client": ch.Client.Name, "channel": ch.Name, "meta": meta}))
}

// Untrack calls channel.untrack() and returns its result.
func (ch *Channel) Untrack(tb testing.TB) string {
	tb.Helper()
	return mustString(tb, ch.d.must(tb, "channel.untrack", map[string]any{"client": ch.Client.Name, "channel": ch.Name}))
}

// Presence is one entry of presenceState(): the tracked meta plus
// presence_ref.
type Presence map[string]any

// Ref returns presence_ref.
func (p Presence) Ref() string {
	s, _ := p["presence_ref"].(string)
	return s
}

// PresenceState returns channel.presenceState().
func (ch *Channel) PresenceState(tb testing.TB) map[string][]Presence {
	tb.Helper()
	var st map[string][]Presence
	if err := json.Unmarshal(ch.d.must(tb, "channel.presenceState", map[string]any{"client": ch.Client.Name, "channel": ch.Name}), &st); err != nil {
		tb.Fatal(err)
	}
	return st
}

// Unsubscribe calls channel.unsubscribe() and returns its result.
func (ch *Channel) Unsubscribe(tb testing.TB) string {
	tb.Helper()
	return mustString(tb, ch.d.must(tb, "channel.unsubscribe", map[string]any{"client": ch.Client.Name, "channel": ch.Name}))
}

// Await waits for an event of this channel that m matches (m's Client
// and Channel are filled in).
func (ch *Channel) Await(tb testing.TB, timeout time.Duration, m Match) Event {
	tb.Helper()
	m.Client, m.Channel = ch.Client.Name, ch.Name
	return ch.d.Await(tb, timeout, m)
}

// AwaitStatus waits for the subscribe status st after mark and fails tb
// if another terminal status comes first.
func (ch *Channel) AwaitStatus(tb testing.TB, timeout time.Duration, after int, st string) Event {
	tb.Helper()
	e := ch.d.Await(tb, timeout, Match{Kind: KindStatus, Client: ch.Client.Name, Channel: ch.Name, After: after})
	if e.Status != st {
		tb.Fatalf("channel %s: want status %s, got %s (error %q)\nrecent events:\n%s", ch.Name, st, e.Status, e.Error, ch.d.Dump(60))
	}
	return e
}
