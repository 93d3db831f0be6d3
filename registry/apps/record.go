package apps

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
	"unicode/utf8"

	"rtm/realtime/mask"
	"rtm/realtime/proxy"
)

// The line types of an app recording (see [Input]).
const (
	LineOpen  = "app_open"
	LineFrame = "app_frame"
	LineClose = "app_close"
	LineFault = "app_fault"
	LineTick  = "app_tick"
	LineREST  = "app_rest"
	// LineDropped marks inputs the [Recorder] lost ({"type":"dropped",
	// "time":...,"count":N}, the registry's DroppedEvent).
	LineDropped = "dropped"
)

// Input is one recorded Observer call, one line of an app recording:
// what the proxy told the model, masked, with what the model reads from
// a secret kept beside it (Claims). [Model.Apply] feeds it to a model;
// the inputs of a recording, applied in order to a new model, rebuild
// the model that watched the traffic.
//
//	app_open  socket, time, remote_addr, client_info (masked), vsn,
//	          upstream (masked), claims (the socket token's role,
//	          subject, expiry and masked form)
//	app_frame socket, time, dir ("app->upstream", "upstream->app"),
//	          binary, text (a masked text frame) or data (base64: a
//	          masked binary frame, or a text frame that is not UTF-8),
//	          bytes (the size on the wire), claims (of the token a
//	          phx_join or access_token push carried), cut (the frame
//	          did not fit a line: its content is left out, and a
//	          replay counts it undecodable)
//	app_close socket, time, by ("app", "upstream", "proxy"), code, reason
//	app_fault socket, time, kind, armed, topic, detail
//	app_tick  time ([Model.Tick] flagged something)
//	app_rest  time, answered, remote_addr, client_info (masked), path,
//	          claims (of the request's token), status (the upstream's
//	          HTTP status), bytes (the body's), decoded, clipped, error,
//	          messages ([{topic, event, text or data (the payload,
//	          masked), bytes (its size as sent), binary, private}]), cut
//	          (the messages did not fit a line and are left out)
type Input struct {
	Type   string    `json:"type"`
	Time   time.Time `json:"time"`
	Socket uint64    `json:"socket,omitempty"`

	RemoteAddr string `json:"remote_addr,omitempty"`
	ClientInfo string `json:"client_info,omitempty"`
	Vsn        string `json:"vsn,omitempty"`
	Upstream   string `json:"upstream,omitempty"`
	// Claims is the token read before it was masked.
	Claims *TokenInfo `json:"claims,omitempty"`

	Dir    string `json:"dir,omitempty"`
	Binary bool   `json:"binary,omitempty"`
	Text   string `json:"text,omitempty"`
	Data   []byte `json:"data,omitempty"`
	Bytes  int    `json:"bytes,omitempty"`
	Cut    bool   `json:"cut,omitempty"`

	By     string `json:"by,omitempty"`
	Code   int    `json:"code,omitempty"`
	Reason string `json:"reason,omitempty"`

	Kind   string `json:"kind,omitempty"`
	Armed  bool   `json:"armed,omitempty"`
	Topic  string `json:"topic,omitempty"`
	Detail string `json:"detail,omitempty"`

	Answered time.Time      `json:"answered,omitzero"`
	Path     string         `json:"path,omitempty"`
	Status   int            `json:"status,omitempty"`
	Decoded  bool           `json:"decoded,omitempty"`
	Clipped  bool           `json:"clipped,omitempty"`
	Error    string         `json:"error,omitempty"`
	Messages []InputMessage `json:"messages,omitempty"`
}

// InputMessage is one message of an app_rest line.
type InputMessage struct {
	Topic string `json:"topic"`
	Event string `json:"event"`
	// Text (UTF-8) or Data is the payload, masked; Bytes its size as
	// the app sent it.
	Text    string `json:"text,omitempty"`
	Data    []byte `json:"data,omitempty"`
	Bytes   int    `json:"bytes,omitempty"`
	Binary  bool   `json:"binary,omitempty"`
	Private bool   `json:"private,omitempty"`
}

// maskMessage masks a REST message's fields and payload (raw: its bytes).
func maskMessage(im InputMessage, raw []byte) InputMessage {
	im.Topic, im.Event = clip(mask.Text(im.Topic), 256), clip(mask.Text(im.Event), 128)
	im.Text, im.Data = maskContent(false, raw)
	return im
}

// Content returns a frame's bytes (its text or data).
func (in *Input) Content() []byte {
	if in.Text != "" {
		return []byte(in.Text)
	}
	return in.Data
}

// DecodeInput reads one line of an app recording. It never panics; the
// frame's content is masked again (whoever wrote the line).
func DecodeInput(b []byte) (Input, error) {
	var in Input
	if err := json.Unmarshal(b, &in); err != nil {
		return Input{}, fmt.Errorf("not an app recording line: %w", err)
	}
	switch in.Type {
	case LineOpen, LineClose:
		if in.Socket == 0 {
			return Input{}, fmt.Errorf("%s without a socket", in.Type)
		}
	case LineFrame:
		if in.Socket == 0 {
			return Input{}, errors.New("app_frame without a socket")
		}
		if in.Dir != proxy.FromApp.String() && in.Dir != proxy.ToApp.String() {
			return Input{}, fmt.Errorf("app_frame: dir %q: want %q or %q", in.Dir, proxy.FromApp, proxy.ToApp)
		}
		if in.Text != "" && len(in.Data) > 0 {
			return Input{}, errors.New("app_frame with both text and data")
		}
		if in.Bytes < 0 {
			return Input{}, errors.New("app_frame with negative bytes")
		}
		in.Text, in.Data = maskContent(in.Binary, in.Content())
	case LineREST:
		if in.Bytes < 0 || in.Status < 0 || in.Status > 999 {
			return Input{}, errors.New("app_rest with negative bytes or a status out of range")
		}
		for i, im := range in.Messages {
			if im.Text != "" && len(im.Data) > 0 {
				return Input{}, errors.New("app_rest message with both text and data")
			}
			raw := im.Data
			if im.Text != "" {
				raw = []byte(im.Text)
			}
			in.Messages[i] = maskMessage(im, raw)
			in.Messages[i].Bytes = max(im.Bytes, 0)
		}
		in.Path, in.Error = mask.Text(in.Path), mask.Text(in.Error)
	case LineFault, LineTick:
	default:
		return Input{}, fmt.Errorf("unknown app recording line type %q", in.Type)
	}
	if in.Claims != nil {
		in.Claims.Masked = maskSecret(in.Claims.Masked)
		in.Claims.Role, in.Claims.Subject = clip(mask.Text(in.Claims.Role), 128), clip(mask.Text(in.Claims.Subject), 256)
	}
	in.RemoteAddr, in.ClientInfo = mask.Text(in.RemoteAddr), mask.Text(in.ClientInfo)
	in.Upstream, in.Reason = mask.URL(in.Upstream), mask.Text(in.Reason)
	in.Topic, in.Detail = mask.Text(in.Topic), mask.Text(in.Detail)
	return in, nil
}

// maskSecret masks s unless it is masked already.
func maskSecret(s string) string {
	if s == "" || mask.IsMasked(s) {
		return s
	}
	return mask.Secret(s)
}

// maskContent masks a frame and splits it into text (UTF-8 text frames)
// or data.
func maskContent(binary bool, raw []byte) (string, []byte) {
	if binary {
		return "", bytes.Clone(mask.Binary(raw))
	}
	m := mask.JSON(raw)
	if utf8.Valid(m) {
		return string(m), nil
	}
	return "", bytes.Clone(m)
}

// Apply feeds one recorded input to m as the proxy fed the original:
// Open with the recorded claims, Frame with the recorded size and the
// token claims of a join or push, Closed, Fault (when m is told of
// faults), Tick. A "dropped" line has nothing to apply.
func (m *Model) Apply(in Input) error {
	switch in.Type {
	case LineOpen:
		h := http.Header{}
		if in.ClientInfo != "" {
			h.Set("X-Client-Info", in.ClientInfo)
		}
		q := url.Values{}
		if in.Vsn != "" {
			q.Set("vsn", in.Vsn)
		}
		var tok TokenInfo
		if in.Claims != nil {
			tok = *in.Claims
		}
		m.open(proxy.ConnInfo{ID: in.Socket, RemoteAddr: in.RemoteAddr, Path: "/realtime/v1/websocket",
			RawQuery: q.Encode(), Header: h, Upstream: in.Upstream, Opened: in.Time}, tok)
	case LineFrame:
		dir := proxy.ToApp
		if in.Dir == proxy.FromApp.String() {
			dir = proxy.FromApp
		}
		data := in.Content()
		size := in.Bytes
		if size == 0 && !in.Cut {
			size = len(data)
		}
		m.frame(proxy.Frame{Conn: in.Socket, Dir: dir, Time: in.Time, Binary: in.Binary, Data: data}, size, in.Claims)
	case LineClose:
		m.Closed(proxy.Closed{Conn: in.Socket, Time: in.Time, By: closedBy(in.By), Code: in.Code, Reason: in.Reason})
	case LineFault:
		m.Fault(proxy.FaultEvent{Conn: in.Socket, Time: in.Time, Kind: in.Kind, Armed: in.Armed, Topic: in.Topic, Detail: in.Detail})
	case LineTick:
		m.Tick(in.Time)
	case LineREST:
		m.applyREST(in)
	case LineDropped:
	default:
		return fmt.Errorf("apps: unknown input type %q", in.Type)
	}
	return nil
}

// applyREST feeds an app_rest line to m as the proxy fed the original.
func (m *Model) applyREST(in Input) {
	h := http.Header{}
	if in.ClientInfo != "" {
		h.Set("X-Client-Info", in.ClientInfo)
	}
	rb := proxy.RESTBroadcast{Time: in.Time, Answered: in.Answered, RemoteAddr: in.RemoteAddr, Path: in.Path,
		Header: h, Status: in.Status, Bytes: int64(in.Bytes), Decoded: in.Decoded, Clipped: in.Clipped, Error: in.Error}
	sizes := make([]int, len(in.Messages))
	for i, im := range in.Messages {
		payload := im.Data
		if im.Text != "" {
			payload = []byte(im.Text)
		}
		rb.Messages = append(rb.Messages, proxy.RESTMessage{Topic: im.Topic, Event: im.Event, Payload: payload, Binary: im.Binary, Private: im.Private})
		sizes[i] = im.Bytes
	}
	var tok TokenInfo
	if in.Claims != nil {
		tok = *in.Claims
	}
	m.restBroadcast(rb, tok, sizes)
}

func closedBy(s string) proxy.Direction {
	switch s {
	case "app":
		return proxy.FromApp
	case "upstream":
		return proxy.ToApp
	}
	return 0
}

func byName(d proxy.Direction) string {
	switch d {
	case proxy.FromApp:
		return "app"
	case proxy.ToApp:
		return "upstream"
	}
	return "proxy"
}
