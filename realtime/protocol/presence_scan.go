package protocol

import (
	"fmt"
)

// ScanPresenceState reads a presence_state payload (or the "joins" or
// "leaves" object of a presence_diff), {"<key>":{"metas":[{...},...]},...},
// and calls fn for each key in the order of the JSON, with its metas.
// Members of an entry other than "metas" are ignored; an entry without
// metas has none. The metas' Raw aliases data (copy data first to keep
// them beyond its lifetime). The whole payload is validated before fn is
// called; on a malformed one the error wraps ErrMalformed. An error from
// fn stops the scan and is returned.
//
// It has no reflection; it allocates the keys, the metas slices and the
// refs. [ScanPresenceStateSpans] locates the same without allocating.
func ScanPresenceState(data []byte, fn func(key string, metas []PresenceMeta) error) error {
	var ps PresenceSpans
	if err := ScanPresenceStateSpans(data, &ps); err != nil {
		return err
	}
	return ps.each(fn, fn)
}

// ScanPresenceDiff reads a presence_diff payload {"joins":{...},"leaves":{...}}
// in one pass, calling join for each key of "joins" and leave for each key
// of "leaves", in the order of the JSON (phoenix applies all joins before
// all leaves: buffer them). Absent or null parts have no keys; other
// members are ignored. Validation and aliasing are those of
// [ScanPresenceState].
func ScanPresenceDiff(data []byte, join, leave func(key string, metas []PresenceMeta) error) error {
	var ps PresenceSpans
	if err := ScanPresenceDiffSpans(data, &ps); err != nil {
		return err
	}
	return ps.each(join, leave)
}

// each calls join (leave for the entries marked Leave) for each entry of
// ps, with metas whose Raw aliases the scanned bytes.
func (ps *PresenceSpans) each(join, leave func(key string, metas []PresenceMeta) error) error {
	for k := range ps.Entries {
		e := &ps.Entries[k]
		var metas []PresenceMeta
		if e.N > 0 {
			metas = make([]PresenceMeta, e.N)
			for j, m := range ps.MetasOf(e) {
				metas[j] = PresenceMeta{Ref: string(m.Ref), PrevRef: string(m.PrevRef), Raw: m.Raw}
			}
		}
		fn := join
		if e.Leave {
			fn = leave
		}
		if err := fn(string(e.Key), metas); err != nil {
			return err
		}
	}
	return nil
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
