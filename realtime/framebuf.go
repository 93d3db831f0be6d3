package realtime

import (
	"errors"
	"io"
)

// Frames are read into slabs: consecutive frames are carved out of one
// 64 KiB buffer, so reading costs about one allocation per 64 KiB instead
// of one or more per frame. A frame is never overwritten once read (the
// slab only moves forward), so events may alias it and consumers may keep
// payloads; a kept payload keeps its slab alive (copy small payloads kept
// for long).
//
// A frame that does not fit in the slab's free space gets a buffer of its
// own of exactly its size: a big frame costs its size, whatever keeps a
// part of it. So a frame larger than slabSize, and any payload larger
// than slabSize, is never in a slab. The length of a frame is not known
// before it is read (a WebSocket message may come in fragments), so the
// part that overflows the slab is read into chunks, which grow from
// chunkMin to chunkMax, and the chunks are then copied into the frame's
// buffer: reading a frame of n bytes holds at most about 2n+chunkMax
// bytes for the time of the copy, and n after it. Growing one buffer by
// doubling would keep up to 2n for as long as any part of the frame is
// kept (and hold up to 3n while growing).
const (
	slabSize    = 64 << 10
	slabMinFree = 2 << 10
	chunkMin    = 64 << 10
	chunkMax    = 1 << 20
)

type frameReader struct {
	slab   []byte
	off    int
	chunks [][]byte // the overflow of the frame being read; reused
}

// read reads one message from r.
func (fr *frameReader) read(r io.Reader) ([]byte, error) {
	if len(fr.slab)-fr.off < slabMinFree {
		fr.slab, fr.off = make([]byte, slabSize), 0
	}
	buf := fr.slab[fr.off:]
	n, eof, err := fill(r, buf)
	if err != nil {
		return nil, err
	}
	if !eof {
		// The slab's free space is full and the frame goes on.
		return fr.readBig(r, buf)
	}
	frame := buf[:n:n]
	fr.off += n
	return frame, nil
}

// readBig reads the rest of a frame whose first bytes filled head (the
// slab's free space) and returns the frame in a buffer of its own, of
// exactly its size. The slab is left as it was: head is reused by the
// next frame.
func (fr *frameReader) readBig(r io.Reader, head []byte) ([]byte, error) {
	defer func() {
		clear(fr.chunks)
		fr.chunks = fr.chunks[:0]
	}()
	total := len(head)
	size := chunkMin
	for {
		chunk := make([]byte, size)
		n, eof, err := fill(r, chunk)
		if err != nil {
			return nil, err
		}
		fr.chunks = append(fr.chunks, chunk[:n])
		total += n
		if eof {
			break
		}
		size = min(2*size, chunkMax)
	}
	frame := make([]byte, total)
	off := copy(frame, head)
	for _, c := range fr.chunks {
		off += copy(frame[off:], c)
	}
	return frame, nil
}

// fill reads from r into buf until buf is full or r ends (eof). A full
// buf is not eof: r may have more.
func fill(r io.Reader, buf []byte) (n int, eof bool, err error) {
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if errors.Is(err, io.EOF) {
			return n, true, nil
		}
		if err != nil {
			return n, false, err
		}
	}
	return n, false, nil
}
