package protocol

import (
	"fmt"
)

// PresenceSpans holds the keys and metas of a presence_state or
// presence_diff payload as located by [ScanPresenceStateSpans],
// [ScanPresenceDiffSpans] or [Version.ScanServerPresence]: slices of the
// scanned bytes, not copies (only a key or ref holding JSON escapes is
// unescaped into bytes of its own). Reusing one PresenceSpans across
// scans makes scanning allocation-free once its slices have grown.
type PresenceSpans struct {
	// Entries are the keys in the order of the JSON. For a diff, the keys
	// of "joins" and of "leaves" come as they appear (phoenix applies all
	// joins before all leaves: see Leave).
	Entries []PresenceEntrySpan
	// Metas holds the metas of every entry (see [PresenceSpans.MetasOf]).
	Metas []PresenceMetaSpan
	// Err is set by [Version.ScanServerPresence] when the frame is valid
	// but its presence payload is not (the spans are then empty).
	Err error
}

// PresenceEntrySpan is one key of a presence payload.
type PresenceEntrySpan struct {
	// Key is the unescaped key.
	Key []byte
	// Leave marks a key of the "leaves" of a diff.
	Leave bool
	// First and N locate the entry's metas: Metas[First:First+N].
	First, N int
}

// PresenceMetaSpan is one meta of a presence payload.
type PresenceMetaSpan struct {
	// Raw is the meta object as on the wire.
	Raw []byte
	// Ref and PrevRef are the unescaped phx_ref and phx_ref_prev (nil
	// when absent or null; the last one wins when repeated).
	Ref, PrevRef []byte
}

// Reset empties ps, keeping its slices' capacity.
func (ps *PresenceSpans) Reset() {
	clear(ps.Entries)
	clear(ps.Metas)
	ps.Entries, ps.Metas, ps.Err = ps.Entries[:0], ps.Metas[:0], nil
}

// MetasOf returns the metas of e (an entry of ps), capacity-limited.
func (ps *PresenceSpans) MetasOf(e *PresenceEntrySpan) []PresenceMetaSpan {
	return ps.Metas[e.First : e.First+e.N : e.First+e.N]
}

// Meta returns m as a [PresenceMeta] whose strings and Raw are new
// copies (it no longer aliases the scanned bytes).
func (m *PresenceMetaSpan) Meta() PresenceMeta {
	return PresenceMeta{Ref: string(m.Ref), PrevRef: string(m.PrevRef), Raw: append([]byte(nil), m.Raw...)}
}

// ScanPresenceStateSpans resets ps and reads the presence_state payload
// data, {"<key>":{"metas":[{...},...]},...}, into it. Members of an entry
// other than "metas" are ignored (the last "metas" wins); an entry
// without metas has none. The whole payload is validated as
// [ScanPresenceState] does; on error, which wraps ErrMalformed, ps holds
// nothing usable.
func ScanPresenceStateSpans(data []byte, ps *PresenceSpans) error {
	ps.Reset()
	i := skipWS(data, 0)
	if i >= len(data) || data[i] != '{' {
		return fmt.Errorf("%w: presence state must be a JSON object", ErrMalformed)
	}
	i, err := ps.scanObject(data, i, 0, false)
	if err == nil {
		if i = skipWS(data, i); i < len(data) {
			err = syntaxError(i, "trailing data")
		}
	}
	if err != nil {
		ps.Reset()
	}
	return err
}

// ScanPresenceDiffSpans resets ps and reads the presence_diff payload
// data, {"joins":{...},"leaves":{...}}, into it: the keys of "joins", and
// those of "leaves" marked Leave, in the order of the JSON. Absent or null
// parts have no keys; other members are ignored. Validation is that of
// [ScanPresenceDiff].
func ScanPresenceDiffSpans(data []byte, ps *PresenceSpans) error {
	ps.Reset()
	i := skipWS(data, 0)
	if i >= len(data) || data[i] != '{' {
		return fmt.Errorf("%w: presence diff must be a JSON object", ErrMalformed)
	}
	i, err := ps.scanDiff(data, i)
	if err == nil {
		if i = skipWS(data, i); i < len(data) {
			err = syntaxError(i, "trailing data")
		}
	}
	if err != nil {
		ps.Reset()
	}
	return err
}

// ScanServerPresence is [Version.ScanServer] that also reads the payload
// of a presence_state or presence_diff frame into ps while validating it
// (one pass over the bytes for a V2 text frame). After a nil error, for
// such a frame, ps holds its keys and metas, or ps.Err says why the
// payload, valid JSON, is not a presence payload; for any other frame ps
// is empty. It accepts exactly the frames ScanServer accepts.
func (v Version) ScanServerPresence(data []byte, binary bool, f *ServerFrame, ps *PresenceSpans) error {
	ps.Reset()
	if binary || v != V2 {
		if err := v.ScanServer(data, binary, f); err != nil {
			return err
		}
		switch f.Event {
		case EventPresenceDiff:
			ps.Err = ScanPresenceDiffSpans(f.Payload, ps)
		case EventPresenceState:
			ps.Err = ScanPresenceStateSpans(f.Payload, ps)
		}
		return nil
	}
	*f = ServerFrame{}
	if err := scanArray(data, f, ps); err != nil {
		ps.Reset()
		return err
	}
	return nil
}

// scanPresencePayload validates the payload at d[i] (after space) of a
// frame whose event is f.Event, reading it into ps for a presence event.
func scanPresencePayload(d []byte, i int, f *ServerFrame, ps *PresenceSpans) (int, error) {
	if ps == nil || i >= len(d) || (f.Event != EventPresenceDiff && f.Event != EventPresenceState) {
		return fastValue(d, i, 0)
	}
	start := i
	var end int
	var perr error
	switch {
	case d[i] != '{' && f.Event == EventPresenceDiff:
		perr = fmt.Errorf("%w: presence diff must be a JSON object", ErrMalformed)
	case d[i] != '{':
		perr = fmt.Errorf("%w: presence state must be a JSON object", ErrMalformed)
	case f.Event == EventPresenceDiff:
		end, perr = ps.scanDiff(d, i)
	default:
		end, perr = ps.scanObject(d, i, 0, false)
	}
	if perr == nil {
		return end, nil
	}
	// Not a presence payload: the frame stands or falls with the payload
	// as plain JSON.
	ps.Reset()
	end, err := fastValue(d, start, 0)
	if err == nil {
		ps.Err = perr
	}
	return end, err
}

// scanDiff reads the diff object at d[i] == '{' (depth 0).
func (ps *PresenceSpans) scanDiff(d []byte, i int) (int, error) {
	i = skipWS(d, i+1)
	if i < len(d) && d[i] == '}' {
		return i + 1, nil
	}
	for {
		var ks, ke int
		var esc bool
		var err error
		if i, ks, ke, esc, err = memberKey(d, i); err != nil {
			return i, err
		}
		key := d[ks:ke]
		var leave bool
		switch {
		case isKey(key, esc, "joins"):
		case isKey(key, esc, "leaves"):
			leave = true
		default:
			if i, err = fastValue(d, i, 1); err != nil {
				return i, err
			}
			goto next
		}
		switch {
		case i < len(d) && d[i] == 'n':
			i, err = fastLiteral(d, i, "null")
		case i >= len(d) || d[i] != '{':
			return i, fmt.Errorf("%w: presence diff part is not an object", ErrMalformed)
		default:
			i, err = ps.scanObject(d, i, 1, leave)
		}
		if err != nil {
			return i, err
		}
	next:
		var done bool
		if i, done, err = nextMember(d, i, '}'); done || err != nil {
			return i, err
		}
	}
}

// scanObject reads {"<key>":{"metas":[...]},...} at d[i] == '{', nested
// depth deep in its payload, appending its entries.
func (ps *PresenceSpans) scanObject(d []byte, i, depth int, leave bool) (int, error) {
	i = skipWS(d, i+1)
	if i < len(d) && d[i] == '}' {
		return i + 1, nil
	}
	for {
		var ks, ke int
		var esc bool
		var err error
		if i, ks, ke, esc, err = memberKey(d, i); err != nil {
			return i, err
		}
		key := d[ks:ke:ke]
		if esc {
			s, err := unescape(key)
			if err != nil {
				return ks, err
			}
			key = []byte(s)
		}
		if i >= len(d) || d[i] != '{' {
			return i, fmt.Errorf("%w: presence entry %q is not an object", ErrMalformed, key)
		}
		ps.Entries = append(ps.Entries, PresenceEntrySpan{Key: key, Leave: leave, First: len(ps.Metas)})
		// scanEntry appends metas only: e stays valid.
		if i, err = ps.scanEntry(d, i, depth+1, &ps.Entries[len(ps.Entries)-1]); err != nil {
			return i, err
		}
		var done bool
		if i, done, err = nextMember(d, i, '}'); done || err != nil {
			return i, err
		}
	}
}

// scanEntry reads an entry {...,"metas":[...],...} at d[i] == '{' (depth
// deep), appending its metas.
func (ps *PresenceSpans) scanEntry(d []byte, i, depth int, e *PresenceEntrySpan) (int, error) {
	i = skipWS(d, i+1)
	if i < len(d) && d[i] == '}' {
		return i + 1, nil
	}
	for {
		var ks, ke int
		var esc bool
		var err error
		if i, ks, ke, esc, err = memberKey(d, i); err != nil {
			return i, err
		}
		if !isKey(d[ks:ke], esc, "metas") {
			i, err = fastValue(d, i, depth+1)
		} else {
			i, err = ps.scanMetas(d, i, depth+1, e)
		}
		if err != nil {
			return i, err
		}
		var done bool
		if i, done, err = nextMember(d, i, '}'); done || err != nil {
			return i, err
		}
	}
}

// scanMetas reads the metas array at d[i] (depth deep); it replaces the
// metas of e read so far (the last "metas" member wins).
func (ps *PresenceSpans) scanMetas(d []byte, i, depth int, e *PresenceEntrySpan) (int, error) {
	if i >= len(d) || d[i] != '[' {
		return i, fmt.Errorf("%w: metas of presence %q are not an array", ErrMalformed, e.Key)
	}
	clear(ps.Metas[e.First:])
	ps.Metas = ps.Metas[:e.First]
	e.N = 0
	i = skipWS(d, i+1)
	if i < len(d) && d[i] == ']' {
		return i + 1, nil
	}
	for {
		ps.Metas = append(ps.Metas, PresenceMetaSpan{})
		var err error
		if i, err = scanMetaSpan(d, i, depth+1, &ps.Metas[len(ps.Metas)-1]); err != nil {
			return i, err
		}
		e.N++
		var done bool
		if i, done, err = nextMember(d, i, ']'); done || err != nil {
			return i, err
		}
	}
}

// scanMetaSpan reads one meta object at d[i] (depth deep) into m.
func scanMetaSpan(d []byte, i, depth int, m *PresenceMetaSpan) (int, error) {
	if i >= len(d) || d[i] != '{' {
		return i, fmt.Errorf("%w: presence meta is not an object", ErrMalformed)
	}
	start := i
	i = skipWS(d, i+1)
	if i < len(d) && d[i] == '}' {
		m.Raw = d[start : i+1 : i+1]
		return i + 1, nil
	}
	for {
		var ks, ke int
		var esc bool
		var err error
		if i, ks, ke, esc, err = memberKey(d, i); err != nil {
			return i, err
		}
		var dst *[]byte
		switch key := d[ks:ke]; {
		case isKey(key, esc, "phx_ref"):
			dst = &m.Ref
		case isKey(key, esc, "phx_ref_prev"):
			dst = &m.PrevRef
		}
		if dst == nil {
			i, err = memberValue(d, i, depth+1)
		} else {
			var v []byte
			if v, i, err = refAt(d, i, "phx_ref"); err != nil {
				err = fmt.Errorf("presence meta: %w", err)
			}
			*dst = v
		}
		if err != nil {
			return i, err
		}
		var done bool
		if i, done, err = nextMember(d, i, '}'); err != nil {
			return i, err
		}
		if done {
			m.Raw = d[start:i:i]
			return i, nil
		}
	}
}

// memberKey reads a member's key at d[i] and the ':' after it. It returns
// where the value starts (after space), or where the error is, and the
// key's raw span d[ks:ke] (esc: it holds escapes).
func memberKey(d []byte, i int) (value, ks, ke int, esc bool, err error) {
	if i >= len(d) || d[i] != '"' {
		return i, 0, 0, false, syntaxError(i, "want string")
	}
	end, ks, ke, esc, err := fastString(d, i)
	if err != nil {
		return end, 0, 0, false, err
	}
	if i, err = expectByte(d, end, ':'); err != nil {
		return i, 0, 0, false, err
	}
	return skipWS(d, i), ks, ke, esc, nil
}

// nextMember reads what follows a member of an object (end '}') or an
// element of an array (end ']') at d[i], after optional space: a ','
// (next is the following non-space byte) or the end (done; next is past
// it).
func nextMember(d []byte, i int, end byte) (next int, done bool, err error) {
	i = skipWS(d, i)
	switch {
	case i < len(d) && d[i] == ',':
		return skipWS(d, i+1), false, nil
	case i < len(d) && d[i] == end:
		return i + 1, true, nil
	case end == '}':
		return i, false, syntaxError(i, "want ',' or '}' in object")
	default:
		return i, false, syntaxError(i, "want ',' or ']' in array")
	}
}

// memberValue validates the value at d[i] (after space), depth deep, as
// fastValue does, with the common scalars (strings, numbers) read
// directly.
func memberValue(d []byte, i, depth int) (int, error) {
	if i < len(d) && depth <= maxDepth {
		switch c := d[i]; {
		case c == '"':
			end, _, _, _, err := fastString(d, i)
			return end, err
		case c == '-' || '0' <= c && c <= '9':
			return fastNumber(d, i)
		}
	}
	return fastValue(d, i, depth)
}

// isKey is keyIs with the common case (no escapes) inlined.
func isKey(raw []byte, escaped bool, name string) bool {
	if !escaped {
		return string(raw) == name
	}
	return keyIs(raw, true, name)
}
