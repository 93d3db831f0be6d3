package pgcdc

import (
	"encoding/binary"
	"time"
)

// Encoding, for tests and fuzz seeds: the inverse of decodeMessage.

func appendU16(b []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(b, v) }
func appendU32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }
func appendU64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }
func appendStr(b []byte, s string) []byte { return append(append(b, s...), 0) }

func appendTuple(b []byte, vals []value) []byte {
	b = appendU16(b, uint16(len(vals)))
	for _, v := range vals {
		b = append(b, v.kind)
		if v.kind == valText || v.kind == valBinary {
			b = appendU32(b, uint32(len(v.data)))
			b = append(b, v.data...)
		}
	}
	return b
}

// encodeMessage encodes m as pgoutput would.
func encodeMessage(m walMessage) []byte {
	b := []byte{m.typ}
	pgTime := func(t time.Time) uint64 { return uint64(t.UnixMicro() - pgEpoch) }
	switch m.typ {
	case msgBegin:
		b = appendU64(b, m.lsn)
		b = appendU64(b, pgTime(m.commitTime))
		b = appendU32(b, m.xid)
	case msgCommit:
		b = append(b, 0)
		b = appendU64(b, m.lsn)
		b = appendU64(b, m.endLSN)
		b = appendU64(b, pgTime(m.commitTime))
	case msgRelation:
		b = appendU32(b, m.rel.id)
		b = appendStr(b, m.rel.namespace)
		b = appendStr(b, m.rel.name)
		b = append(b, m.rel.replicaIdentity)
		b = appendU16(b, uint16(len(m.rel.columns)))
		for _, c := range m.rel.columns {
			var f byte
			if c.key {
				f = 1
			}
			b = append(b, f)
			b = appendStr(b, c.name)
			b = appendU32(b, c.typeOID)
			b = appendU32(b, uint32(c.typmod))
		}
	case msgInsert:
		b = appendU32(b, m.relID)
		b = append(b, 'N')
		b = appendTuple(b, m.newRow)
	case msgUpdate:
		b = appendU32(b, m.relID)
		if m.oldKind != 0 {
			b = append(b, m.oldKind)
			b = appendTuple(b, m.oldRow)
		}
		b = append(b, 'N')
		b = appendTuple(b, m.newRow)
	case msgDelete:
		b = appendU32(b, m.relID)
		b = append(b, m.oldKind)
		b = appendTuple(b, m.oldRow)
	case msgTruncate:
		b = appendU32(b, uint32(len(m.relIDs)))
		b = append(b, 0)
		for _, id := range m.relIDs {
			b = appendU32(b, id)
		}
	case msgMessage:
		var f byte
		if m.transactional {
			f = 1
		}
		b = append(b, f)
		b = appendU64(b, m.lsn)
		b = appendStr(b, m.prefix)
		b = appendU32(b, uint32(len(m.content)))
		b = append(b, m.content...)
	}
	return b
}
