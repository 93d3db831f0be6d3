package realtime

import (
	"errors"
	"io"
)

// Frames are read into slabs: consecutive frames are carved out of one
// 64 KiB buffer, so reading costs about one allocation per 64 KiB instead
// of one or more per frame. A frame is never overwritten once read (the
// slab only moves forward), so events may alias it and consumers may keep
// payloads; a kept payload keeps its slab alive. Frames that do not fit in
// the slab's free space get a buffer of their own.
const (
	slabSize    = 64 << 10
	slabMinFree = 2 << 10
)

type frameReader struct {
	slab []byte
	off  int
}

// read reads one message from r.
func (fr *frameReader) read(r io.Reader) ([]byte, error) {
	if len(fr.slab)-fr.off < slabMinFree {
		fr.slab, fr.off = make([]byte, slabSize), 0
	}
	buf := fr.slab[fr.off:]
	own := false
	n := 0
	for {
		m, err := r.Read(buf[n:])
		n += m
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if n == len(buf) {
			grown := make([]byte, 2*len(buf)+slabSize)
			copy(grown, buf[:n])
			buf, own = grown, true
		}
	}
	if own {
		return buf[:n:n], nil
	}
	frame := buf[:n:n]
	fr.off += n
	return frame, nil
}
