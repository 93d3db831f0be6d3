package pgcdc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// This file decodes the messages of PostgreSQL's pgoutput plugin
// (protocol version 1, with messages), as carried in XLogData. The
// decoder checks every length against the buffer: a truncated or
// malformed message is an error, never a panic. Tuple values alias the
// input buffer.

// Kinds of pgoutput messages.
const (
	msgBegin    = 'B'
	msgCommit   = 'C'
	msgOrigin   = 'O'
	msgRelation = 'R'
	msgType     = 'Y'
	msgInsert   = 'I'
	msgUpdate   = 'U'
	msgDelete   = 'D'
	msgTruncate = 'T'
	msgMessage  = 'M'
)

// Kinds of tuple values.
const (
	valNull      = 'n'
	valUnchanged = 'u' // an unchanged TOASTed value, not sent
	valText      = 't'
	valBinary    = 'b'
)

// errShort is a message shorter than its fields say.
var errShort = errors.New("pgoutput: message truncated")

// pgEpoch is 2000-01-01 UTC, the origin of PostgreSQL timestamps, in
// microseconds since the Unix epoch.
const pgEpoch = 946684800 * 1000000

// relation is a table as described by a Relation message.
type relation struct {
	id              uint32
	namespace, name string
	// replicaIdentity is 'd' (default: primary key), 'n' (nothing), 'f'
	// (full) or 'i' (index).
	replicaIdentity byte
	columns         []relColumn
}

// relColumn is a column of a relation.
type relColumn struct {
	name    string
	typeOID uint32
	typmod  int32
	key     bool // part of the replica identity
}

// value is one column of a tuple.
type value struct {
	kind byte
	data []byte
}

// walMessage is a decoded pgoutput message; which fields are set depends
// on typ.
type walMessage struct {
	typ byte

	// Begin: lsn is the final LSN, xid the transaction. Commit: lsn is
	// the commit LSN, endLSN the end of the transaction.
	lsn, endLSN uint64
	commitTime  time.Time
	xid         uint32

	rel *relation // Relation

	// Insert, Update, Delete.
	relID   uint32
	oldKind byte // 'K' (key), 'O' (old row) or 0
	oldRow  []value
	newRow  []value

	relIDs []uint32 // Truncate

	// Message: a logical decoding message.
	transactional bool
	prefix        string
	content       []byte
}

// reader reads big-endian fields, remembering the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = errShort
	}
	r.b = nil
}

func (r *reader) u8() byte {
	if len(r.b) < 1 {
		r.fail()
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) u16() uint16 {
	if len(r.b) < 2 {
		r.fail()
		return 0
	}
	v := binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return v
}

func (r *reader) u32() uint32 {
	if len(r.b) < 4 {
		r.fail()
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *reader) u64() uint64 {
	if len(r.b) < 8 {
		r.fail()
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *reader) time() time.Time {
	us := int64(r.u64())
	return time.UnixMicro(pgEpoch + us).UTC()
}

// str reads a NUL-terminated string.
func (r *reader) str() string {
	for i, c := range r.b {
		if c == 0 {
			s := string(r.b[:i])
			r.b = r.b[i+1:]
			return s
		}
	}
	r.fail()
	return ""
}

func (r *reader) bytes(n uint32) []byte {
	if uint64(len(r.b)) < uint64(n) {
		r.fail()
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// tuple reads TupleData.
func (r *reader) tuple() []value {
	n := int(r.u16())
	if r.err != nil {
		return nil
	}
	// Each column takes at least one byte: bound the allocation by the
	// input, not by the claimed count.
	if n > len(r.b) {
		r.fail()
		return nil
	}
	vals := make([]value, n)
	for i := range vals {
		k := r.u8()
		switch k {
		case valNull, valUnchanged:
			vals[i] = value{kind: k}
		case valText, valBinary:
			l := r.u32()
			vals[i] = value{kind: k, data: r.bytes(l)}
		default:
			if r.err == nil {
				r.err = fmt.Errorf("pgoutput: unknown tuple value kind %q", k)
			}
			return nil
		}
		if r.err != nil {
			return nil
		}
	}
	return vals
}

// decodeMessage decodes one pgoutput message.
func decodeMessage(data []byte) (walMessage, error) {
	if len(data) == 0 {
		return walMessage{}, errShort
	}
	m := walMessage{typ: data[0]}
	r := &reader{b: data[1:]}
	switch m.typ {
	case msgBegin:
		m.lsn = r.u64()
		m.commitTime = r.time()
		m.xid = r.u32()
	case msgCommit:
		r.u8() // flags
		m.lsn = r.u64()
		m.endLSN = r.u64()
		m.commitTime = r.time()
	case msgOrigin:
		m.lsn = r.u64()
		m.prefix = r.str()
	case msgRelation:
		rel := &relation{id: r.u32()}
		rel.namespace = r.str()
		rel.name = r.str()
		rel.replicaIdentity = r.u8()
		n := int(r.u16())
		if r.err == nil && n > len(r.b) {
			r.fail()
		}
		if r.err == nil {
			rel.columns = make([]relColumn, n)
			for i := range rel.columns {
				flags := r.u8()
				rel.columns[i] = relColumn{key: flags&1 != 0, name: r.str(), typeOID: r.u32(), typmod: int32(r.u32())}
				if r.err != nil {
					break
				}
			}
		}
		m.rel = rel
	case msgType:
		m.relID = r.u32() // the type's oid
		m.prefix = r.str() + "." + r.str()
	case msgInsert:
		m.relID = r.u32()
		if k := r.u8(); r.err == nil && k != 'N' {
			return m, fmt.Errorf("pgoutput: insert: want a new tuple ('N'), got %q", k)
		}
		m.newRow = r.tuple()
	case msgUpdate:
		m.relID = r.u32()
		k := r.u8()
		if k == 'K' || k == 'O' {
			m.oldKind = k
			m.oldRow = r.tuple()
			k = r.u8()
		}
		if r.err == nil && k != 'N' {
			return m, fmt.Errorf("pgoutput: update: want a new tuple ('N'), got %q", k)
		}
		m.newRow = r.tuple()
	case msgDelete:
		m.relID = r.u32()
		k := r.u8()
		if r.err == nil && k != 'K' && k != 'O' {
			return m, fmt.Errorf("pgoutput: delete: want a key ('K') or old tuple ('O'), got %q", k)
		}
		m.oldKind = k
		m.oldRow = r.tuple()
	case msgTruncate:
		n := r.u32()
		r.u8() // options
		if r.err == nil && uint64(n)*4 > uint64(len(r.b)) {
			r.fail()
		}
		if r.err == nil {
			m.relIDs = make([]uint32, n)
			for i := range m.relIDs {
				m.relIDs[i] = r.u32()
			}
		}
	case msgMessage:
		m.transactional = r.u8()&1 != 0
		m.lsn = r.u64()
		m.prefix = r.str()
		m.content = r.bytes(r.u32())
	default:
		return m, fmt.Errorf("pgoutput: unknown message type %q", m.typ)
	}
	if r.err != nil {
		return m, fmt.Errorf("pgoutput: %q message: %w", m.typ, r.err)
	}
	return m, nil
}
