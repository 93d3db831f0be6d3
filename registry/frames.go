package registry

import (
	"fmt"

	"rtm/realtime"
)

// SetFrameCapture turns the per-channel frame rings on or off at run
// time (they start on unless Options.NoFrames or a negative FrameRing).
// The client's frame tap runs only while the rings are on or a
// subscriber asked for frames: it costs CPU on every frame. It has no
// effect with Options.NoFrames.
func (m *Manager) SetFrameCapture(on bool) {
	if m.opts.NoFrames || m.opts.FrameRing < 0 {
		return
	}
	m.capture.Store(on)
	m.updateTap()
}

// updateTap installs or removes the client's tap as needed.
func (m *Manager) updateTap() {
	want := m.capture.Load() || m.broker.wantFrames()
	m.tapMu.Lock()
	defer m.tapMu.Unlock()
	if want == m.tapOn {
		return
	}
	m.tapOn = want
	if want {
		m.sock.SetTap(m.onFrame)
	} else {
		m.sock.SetTap(nil)
	}
}

// onFrame keeps raw frames per channel and publishes them to the
// subscribers that asked for frames. Secrets are masked before anything
// leaves the manager.
func (m *Manager) onFrame(f realtime.Frame) {
	want := m.broker.wantFrames()
	keep := m.capture.Load()
	if !keep && !want {
		return
	}
	topic := f.Message.Topic
	// Frames have their own lock: the tap must not contend with the
	// channels' events for the manager's.
	m.fmu.Lock()
	e := m.lastFrame
	if e == nil || e.topic != topic {
		e = m.topics[topic]
		m.lastFrame = e
	}
	// The frame's own strings are short on any sane server; a hostile
	// one's are cut, as the frame's bytes are (the rings copy them).
	raw := rawFrame{at: f.Time, dir: Direction(f.Dir), event: clipText(f.Message.Event, maxFrameField),
		joinRef: clipText(f.Message.JoinRef, maxFrameField), ref: clipText(f.Message.Ref, maxFrameField),
		binary: f.Binary, wireSize: len(f.Data)}
	var name Name
	if e != nil {
		if keep {
			e.frames.add(raw, "", f.Data)
		}
		name = e.name
	}
	m.fmu.Unlock()
	if !want {
		return
	}
	if name.IsZero() {
		name, _ = ParseName(clipText(topic, maxFrameField))
	}
	raw.data = f.Data
	// The event (a masked copy of the frame) is made only if a
	// subscriber has room for it.
	m.broker.publishFrame(name, len(f.Data), func() FrameEvent { return m.frameEvent(name, clipText(topic, maxFrameField), raw) })
}

// maxFrameField bounds the topic, event and refs kept of a frame.
const maxFrameField = 512

// frameEvent masks a raw frame into a FrameEvent.
func (m *Manager) frameEvent(name Name, topic string, r rawFrame) FrameEvent {
	fe := FrameEvent{Time: r.at, Direction: r.dir, Channel: name, Topic: topic, Event: r.event,
		JoinRef: r.joinRef, Ref: r.ref, Size: r.wireSize}
	if r.binary {
		fe.Data = append([]byte(nil), MaskBinaryFrame(r.data)...)
	} else {
		fe.Text = m.mask.mask(string(r.data))
	}
	return fe
}

// Frames returns up to the last n raw frames of the named channel (all
// kept when n <= 0), oldest first, secrets masked.
func (m *Manager) Frames(name Name, n int) ([]FrameEvent, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entries[name]
	if e == nil {
		return nil, fmt.Errorf("frames %s: %w", name, ErrNotFound)
	}
	m.fmu.Lock()
	raw := frames(&e.frames, n)
	m.fmu.Unlock()
	out := make([]FrameEvent, len(raw))
	for i, r := range raw {
		out[i] = m.frameEvent(e.name, e.topic, r)
	}
	return out, nil
}
