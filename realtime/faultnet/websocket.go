package faultnet

// serverFrame encodes msg as one unmasked final WebSocket frame.
func serverFrame(msg []byte, binary bool) []byte {
	op := byte(0x1)
	if binary {
		op = 0x2
	}
	f := []byte{0x80 | op}
	switch n := len(msg); {
	case n < 126:
		f = append(f, byte(n))
	case n <= 0xffff:
		f = append(f, 126, byte(n>>8), byte(n))
	default:
		f = append(f, 127)
		for i := 7; i >= 0; i-- {
			f = append(f, byte(uint64(n)>>(8*i)))
		}
	}
	return append(f, msg...)
}

// wsTracker follows the server-to-client byte stream to find WebSocket
// message boundaries: after the HTTP handshake response, between frames,
// and not inside a fragmented data message.
type wsTracker struct {
	handshake bool   // the "\r\n\r\n" ending the response was seen
	hsTail    uint32 // last 4 bytes of the handshake, for the end marker
	hdr       [14]byte
	hdrN      int    // header bytes collected
	need      int    // header length needed (0: unknown yet)
	left      uint64 // payload bytes left in the current frame
	inMessage bool   // inside a fragmented data message
	inFrame   bool   // header complete, payload pending
}

// atBoundary reports whether a whole message may be inserted now.
func (w *wsTracker) atBoundary() bool {
	return w.handshake && w.hdrN == 0 && !w.inFrame && !w.inMessage
}

// untilBoundary returns how many bytes of data to deliver to reach the
// next boundary (len(data) when there is none within data).
func (w *wsTracker) untilBoundary(data []byte) int {
	sim := *w
	for i := range data {
		if sim.atBoundary() && i > 0 {
			return i
		}
		sim.feed(data[i : i+1])
	}
	return len(data)
}

// feed advances the tracker over data.
func (w *wsTracker) feed(data []byte) {
	for len(data) > 0 {
		if !w.handshake {
			w.hsTail = w.hsTail<<8 | uint32(data[0])
			data = data[1:]
			if w.hsTail == 0x0d0a0d0a {
				w.handshake = true
			}
			continue
		}
		if w.inFrame {
			n := uint64(len(data))
			if n > w.left {
				n = w.left
			}
			w.left -= n
			data = data[n:]
			if w.left == 0 {
				w.inFrame = false
			}
			continue
		}
		if w.hdrN == 0 && len(data) >= 2 {
			// Fast path: whole headers in data, read in place; whole
			// frames are skipped with the state in locals.
			inMsg := w.inMessage
			for len(data) >= 2 {
				need := headerLen(data[1])
				if len(data) < need {
					break
				}
				n := frameLen(data)
				if data[0]&0x0f < 0x8 { // a data frame (control frames may interleave)
					inMsg = data[0]&0x80 == 0
				}
				data = data[need:]
				if n > uint64(len(data)) {
					w.left, w.inFrame = n-uint64(len(data)), true
					data = data[len(data):]
					break
				}
				data = data[n:]
			}
			w.inMessage = inMsg
			if len(data) == 0 {
				continue
			}
			// A partial header: collected byte by byte below.
		}
		w.hdr[w.hdrN] = data[0]
		w.hdrN++
		data = data[1:]
		if w.hdrN == 2 {
			w.need = headerLen(w.hdr[1])
		}
		if w.hdrN >= 2 && w.hdrN == w.need {
			w.endHeader(w.hdr[:w.hdrN])
		}
	}
}

// endHeader interprets a complete frame header collected in w.hdr.
func (w *wsTracker) endHeader(hdr []byte) {
	n := frameLen(hdr)
	if op := hdr[0] & 0x0f; op < 0x8 { // a data frame (control frames may interleave)
		w.inMessage = hdr[0]&0x80 == 0
	}
	w.hdrN, w.need = 0, 0
	w.left = n
	w.inFrame = n > 0
}

// headerLen returns the length of a frame header from its second byte
// (the length form and the mask bit).
func headerLen(b1 byte) int {
	n := 2
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4
	}
	return n
}

// frameLen returns the payload length of a complete frame header.
func frameLen(hdr []byte) uint64 {
	switch l := hdr[1] & 0x7f; l {
	case 126:
		return uint64(hdr[2])<<8 | uint64(hdr[3])
	case 127:
		var n uint64
		for i := 2; i < 10; i++ {
			n = n<<8 | uint64(hdr[i])
		}
		return n
	default:
		return uint64(l)
	}
}
