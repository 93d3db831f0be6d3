package tui

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"

	"rtm/registry"
)

// What the UI keeps is bounded in bytes: each ring by its count and its
// bytes (Options), and each message and frame cut to Options.Preview
// first, so that a 30 MiB payload costs the UI its preview. What is kept
// is a copy: it shares nothing with the manager's buffers or the frames
// the client read.
const (
	// DefaultPreview is the most of a payload or frame the UI keeps.
	DefaultPreview = registry.PreviewBytes
	// rawPreview is the most of a raw presence frame kept (the raw view
	// shows whole states up to that).
	rawPreview = 256 << 10
	// rawBytes bounds the raw presence frames kept per channel.
	rawBytes = 1 << 20
	// maxEventName is the most of an event name kept.
	maxEventName = 256
	// entryOverhead is what a kept value costs besides its text.
	entryOverhead = 200
)

// keepMessage returns the copy of a message the UI keeps: its payload
// cut to n bytes (registry.MessageEvent.Truncate: truncated, with its
// size) and its event name to maxEventName.
func keepMessage(e registry.MessageEvent, n int) registry.MessageEvent {
	cut := len(e.Payload) > n || len(e.Binary) > n
	e = e.Truncate(n)
	if !cut {
		// Truncate shares what it does not cut: copy it.
		e.Payload = bytes.Clone(e.Payload)
		e.Binary = bytes.Clone(e.Binary)
		e.Preview = strings.Clone(e.Preview)
	}
	e.Event = clipKept(e.Event, maxEventName)
	return e
}

// keepFrame returns the copy of a frame the UI keeps: its text or bytes
// cut to n (Size still says how big it was).
func keepFrame(e registry.FrameEvent, n int) registry.FrameEvent {
	e.Text = clipKept(e.Text, n)
	if len(e.Data) > n {
		e.Data = bytes.Clone(e.Data[:n])
	}
	return e
}

// clipKept returns s cut to at most n bytes at a UTF-8 boundary, as a
// copy when it is cut (a substring would keep the whole alive).
func clipKept(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && i > n-utf8.UTFMax && !utf8.RuneStart(s[i]) {
		i--
	}
	return strings.Clone(s[:i])
}

// frameCut reports whether a kept frame lost bytes.
func frameCut(f *registry.FrameEvent) bool {
	return f.Size > len(f.Text)+len(f.Data) && (f.Text != "" || len(f.Data) > 0)
}

// sizeText formats a byte count: "512 B", "16.0 KiB", "30.0 MiB".
func sizeText(n int) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	default:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
}

func msgEntryBytes(e *msgEntry) int { return entryOverhead + e.ev.Bytes() }

func frameBytes(f *registry.FrameEvent) int {
	return entryOverhead + len(f.Text) + len(f.Data) + len(f.Topic) + len(f.Event) + len(f.JoinRef) + len(f.Ref)
}

func rawFrameBytes(f *rawFrame) int { return entryOverhead + len(f.text) + len(f.event) }

func logEntryBytes(e *logEntry) int {
	n := entryOverhead + len(e.rec.Message) + len(e.rec.Channel)
	for _, a := range e.rec.Attrs {
		n += 32 + len(a.Key) + len(a.Value)
	}
	return n
}

func retryBytes(e *registry.RetryEvent) int {
	return entryOverhead + len(e.Reason) + len(e.Err) + len(e.Policy)
}

func feedBytes(e *registry.PresenceEvent) int {
	return entryOverhead + len(e.User.UserID) + len(e.User.Name) + len(e.User.Payload)
}
