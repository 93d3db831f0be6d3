package protocol

import (
	"fmt"
)

// ScanPresenceState reads a presence_state payload (or the "joins" or
// "leaves" object of a presence_diff), {"<key>":{"metas":[{...},...]},...},
// and calls fn for each key in the order of the JSON, with its metas.
// Members of an entry other than "metas" are ignored; an entry without
// metas has none. The metas' Raw aliases data (copy data first to keep
// them beyond its lifetime). The whole payload is validated; on a
// malformed one the error wraps ErrMalformed (fn may have been called for
// the keys before the error). An error from fn stops the scan and is
// returned.
//
// It is the fast path of a client applying large states: no reflection,
// one allocation per key and one per key's metas slice.
func ScanPresenceState(data []byte, fn func(key string, metas []PresenceMeta) error) error {
	i := skipWS(data, 0)
	if i >= len(data) || data[i] != '{' {
		return fmt.Errorf("%w: presence state must be a JSON object", ErrMalformed)
	}
	i, err := scanPresenceObject(data, i, 0, fn)
	if err != nil {
		return err
	}
	if i = skipWS(data, i); i < len(data) {
		return syntaxError(i, "trailing data")
	}
	return nil
}

// ScanPresenceDiff reads a presence_diff payload {"joins":{...},"leaves":{...}}
// in one pass, calling join for each key of "joins" and leave for each key
// of "leaves", in the order of the JSON (phoenix applies all joins before
// all leaves: buffer them). Absent or null parts have no keys; other
// members are ignored. Validation and aliasing are those of
// [ScanPresenceState].
func ScanPresenceDiff(data []byte, join, leave func(key string, metas []PresenceMeta) error) error {
	i := skipWS(data, 0)
	if i >= len(data) || data[i] != '{' {
		return fmt.Errorf("%w: presence diff must be a JSON object", ErrMalformed)
	}
	i, err := scanMembers(data, i, func(key []byte, escaped bool, i int) (int, error) {
		var fn func(string, []PresenceMeta) error
		switch {
		case keyIs(key, escaped, "joins"):
			fn = join
		case keyIs(key, escaped, "leaves"):
			fn = leave
		default:
			return fastValue(data, i, 1)
		}
		if i < len(data) && data[i] == 'n' {
			return fastLiteral(data, i, "null")
		}
		if i >= len(data) || data[i] != '{' {
			return i, fmt.Errorf("%w: presence diff part is not an object", ErrMalformed)
		}
		return scanPresenceObject(data, i, 1, fn)
	})
	if err != nil {
		return err
	}
	if i = skipWS(data, i); i < len(data) {
		return syntaxError(i, "trailing data")
	}
	return nil
}

// scanMembers iterates over the members of the object at d[i] == '{',
// calling fn with each raw key and the index of its value (after space);
// fn returns the index after the value.
func scanMembers(d []byte, i int, fn func(key []byte, escaped bool, i int) (int, error)) (int, error) {
	i = skipWS(d, i+1)
	if i < len(d) && d[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(d) || d[i] != '"' {
			return i, syntaxError(i, "want string")
		}
		end, ks, ke, esc, err := fastString(d, i)
		if err != nil {
			return end, err
		}
		if i, err = expectByte(d, end, ':'); err != nil {
			return i, err
		}
		if i, err = fn(d[ks:ke], esc, skipWS(d, i)); err != nil {
			return i, err
		}
		i = skipWS(d, i)
		if i >= len(d) {
			return i, syntaxError(i, "want ',' or '}' in object")
		}
		switch d[i] {
		case ',':
			i = skipWS(d, i+1)
		case '}':
			return i + 1, nil
		default:
			return i, syntaxError(i, "want ',' or '}' in object")
		}
	}
}

// keyString returns an object key as a string.
func keyString(raw []byte, escaped bool) (string, error) {
	if !escaped {
		return string(raw), nil
	}
	return unescape(raw)
}

// scanPresenceObject reads {"<key>":{"metas":[...]},...} at d[i] == '{'
// (nested depth deep in its frame).
func scanPresenceObject(d []byte, i, depth int, fn func(key string, metas []PresenceMeta) error) (int, error) {
	return scanMembers(d, i, func(rawKey []byte, escaped bool, i int) (int, error) {
		key, err := keyString(rawKey, escaped)
		if err != nil {
			return i, err
		}
		if i >= len(d) || d[i] != '{' {
			return i, fmt.Errorf("%w: presence entry %q is not an object", ErrMalformed, key)
		}
		var metas []PresenceMeta
		i, err = scanMembers(d, i, func(field []byte, fesc bool, i int) (int, error) {
			if !keyIs(field, fesc, "metas") {
				return fastValue(d, i, depth+2)
			}
			if i >= len(d) || d[i] != '[' {
				return i, fmt.Errorf("%w: metas of presence %q are not an array", ErrMalformed, key)
			}
			metas = metas[:0]
			i = skipWS(d, i+1)
			if i < len(d) && d[i] == ']' {
				return i + 1, nil
			}
			for {
				var m PresenceMeta
				var err error
				if m, i, err = scanMeta(d, i, depth+3); err != nil {
					return i, err
				}
				metas = append(metas, m)
				i = skipWS(d, i)
				if i >= len(d) {
					return i, syntaxError(i, "want ',' or ']' in array")
				}
				switch d[i] {
				case ',':
					i = skipWS(d, i+1)
				case ']':
					return i + 1, nil
				default:
					return i, syntaxError(i, "want ',' or ']' in array")
				}
			}
		})
		if err != nil {
			return i, err
		}
		return i, fn(key, metas)
	})
}

// scanMeta reads one meta object at d[i].
func scanMeta(d []byte, i, depth int) (PresenceMeta, int, error) {
	var m PresenceMeta
	if i >= len(d) || d[i] != '{' {
		return m, i, fmt.Errorf("%w: presence meta is not an object", ErrMalformed)
	}
	start := i
	end, err := scanMembers(d, i, func(key []byte, escaped bool, i int) (int, error) {
		var dst *string
		switch {
		case keyIs(key, escaped, "phx_ref"):
			dst = &m.Ref
		case keyIs(key, escaped, "phx_ref_prev"):
			dst = &m.PrevRef
		default:
			return fastValue(d, i, depth+1)
		}
		v, end, err := refAt(d, i, "phx_ref")
		if err != nil {
			return end, fmt.Errorf("presence meta: %w", err)
		}
		*dst = string(v)
		return end, nil
	})
	if err != nil {
		return PresenceMeta{}, end, err
	}
	m.Raw = d[start:end:end]
	return m, end, nil
}

// SplitPresenceDiff returns the raw "joins" and "leaves" objects of a
// presence_diff payload (nil when absent or null). The payload is
// validated; the parts alias data.
func SplitPresenceDiff(data []byte) (joins, leaves []byte, err error) {
	s := scanner{data: data}
	if s.peek() != '{' {
		return nil, nil, fmt.Errorf("%w: presence diff must be a JSON object", ErrMalformed)
	}
	err = s.objectFields(func(key string) error {
		v, err := s.value()
		if err != nil {
			return err
		}
		if string(v) == "null" {
			v = nil
		}
		switch key {
		case "joins":
			joins = v
		case "leaves":
			leaves = v
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if err := s.end(); err != nil {
		return nil, nil, err
	}
	return joins, leaves, nil
}
