package headless

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"unicode/utf8"

	"rtm/registry"
)

// bigField is the size from which a message's payload, or a frame's text
// or bytes, is written straight to the output after the rest of its line
// instead of being encoded into the line: a line of a 30 MiB payload then
// costs about one copy of the payload (its masking) on top of the
// payload, not the half dozen copies that encoding the whole line takes.
// The member comes last in such a line; the line decodes to the same
// event.
const bigField = 64 << 10

// chunk is the piece of a big text encoded at a time.
const chunk = 32 << 10

// writeBig writes e if it has a big field (see bigField), reporting
// whether it did. e is already masked by registry.MaskEvent.
func (w *Writer) writeBig(e registry.Event) (bool, error) {
	switch v := e.(type) {
	case registry.MessageEvent:
		if len(v.Payload) <= bigField {
			return false, nil
		}
		payload := v.Payload
		v.Payload = nil
		return true, w.split(v, "payload", func(out io.Writer) error {
			p := registry.MaskJSON(payload)
			if bytes.ContainsAny(p, "\r\n") {
				// NDJSON: one line per event.
				var b bytes.Buffer
				if err := json.Compact(&b, p); err != nil {
					return err
				}
				p = b.Bytes()
			}
			_, err := out.Write(p)
			return err
		})
	case registry.FrameEvent:
		switch {
		case len(v.Text) > bigField:
			text := v.Text
			v.Text = ""
			return true, w.split(v, "text", func(out io.Writer) error {
				return writeJSONString(out, registry.MaskText(text))
			})
		case len(v.Data) > bigField:
			data := v.Data
			v.Data = nil
			return true, w.split(v, "data", func(out io.Writer) error {
				if _, err := io.WriteString(out, `"`); err != nil {
					return err
				}
				enc := base64.NewEncoder(base64.StdEncoding, out)
				if _, err := enc.Write(data); err != nil {
					return err
				}
				if err := enc.Close(); err != nil {
					return err
				}
				_, err := io.WriteString(out, `"`)
				return err
			})
		}
	}
	return false, nil
}

// split writes e's line, masked, with the member key written by field
// last.
func (w *Writer) split(e registry.Event, key string, field func(io.Writer) error) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode %s event: %w", e.EventType(), err)
	}
	b = registry.MaskJSON(b)
	w.count(e)
	if err := w.object(b[:len(b)-1]); err != nil { // without its "}"
		return err
	}
	if _, err := fmt.Fprintf(w.w, ",%q:", key); err != nil {
		return err
	}
	if err := field(w.w); err != nil {
		return err
	}
	_, err = w.w.WriteString("}\n")
	return err
}

// writeJSONString writes s as a JSON string, encoded a chunk at a time
// (cut at UTF-8 boundaries, so each chunk is escaped as it would be in
// the whole).
func writeJSONString(out io.Writer, s string) error { return writeJSONStringBy(out, s, chunk) }

func writeJSONStringBy(out io.Writer, s string, size int) error {
	if _, err := io.WriteString(out, `"`); err != nil {
		return err
	}
	for len(s) > 0 {
		n := min(len(s), size)
		for n < len(s) && n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		if n == 0 { // a rune longer than size
			_, n = utf8.DecodeRuneInString(s)
		}
		b, err := json.Marshal(s[:n])
		if err != nil {
			return err
		}
		if _, err := out.Write(b[1 : len(b)-1]); err != nil {
			return err
		}
		s = s[n:]
	}
	_, err := io.WriteString(out, `"`)
	return err
}
