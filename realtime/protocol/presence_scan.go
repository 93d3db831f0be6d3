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
	s := scanner{data: data}
	if s.peek() != '{' {
		return fmt.Errorf("%w: presence state must be a JSON object", ErrMalformed)
	}
	err := s.objectFields(func(key string) error {
		if s.peek() != '{' {
			return fmt.Errorf("%w: presence entry %q is not an object", ErrMalformed, key)
		}
		var metas []PresenceMeta
		err := s.objectFields(func(field string) error {
			if field != "metas" {
				_, err := s.value()
				return err
			}
			if s.peek() != '[' {
				return fmt.Errorf("%w: metas of presence %q are not an array", ErrMalformed, key)
			}
			metas = metas[:0]
			s.pos++
			if s.peek() == ']' {
				s.pos++
				return nil
			}
			for {
				m, err := s.presenceMeta()
				if err != nil {
					return err
				}
				metas = append(metas, m)
				switch s.peek() {
				case ',':
					s.pos++
				case ']':
					s.pos++
					return nil
				default:
					return s.errorf("want ',' or ']' in array")
				}
			}
		})
		if err != nil {
			return err
		}
		return fn(key, metas)
	})
	if err != nil {
		return err
	}
	return s.end()
}

// presenceMeta reads one meta object at the current position.
func (s *scanner) presenceMeta() (PresenceMeta, error) {
	var m PresenceMeta
	if s.peek() != '{' {
		return m, fmt.Errorf("%w: presence meta is not an object", ErrMalformed)
	}
	start := s.pos
	err := s.objectFields(func(key string) error {
		var err error
		switch key {
		case "phx_ref":
			m.Ref, _, err = s.stringOrNull()
		case "phx_ref_prev":
			m.PrevRef, _, err = s.stringOrNull()
		default:
			_, err = s.value()
		}
		return err
	})
	if err != nil {
		return PresenceMeta{}, fmt.Errorf("presence meta: %w", err)
	}
	m.Raw = s.data[start:s.pos:s.pos]
	return m, nil
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
