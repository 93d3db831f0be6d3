package realtime

import (
	"errors"
	"testing"

	"rtm/realtime/protocol"
	"rtm/realtime/server/servertest"
)

func TestTapSeesEveryFrame(t *testing.T) {
	srv := servertest.New(t)
	tap := newRec[Frame]()
	s := dial(t, srv, fast, tapOut(tap))
	b := dial(t, srv, fast)
	ch, _ := channel(t, s, "room1", ChannelConfig{})
	bch, _ := channel(t, b, "room1", ChannelConfig{})
	for _, c := range []*Channel{ch, bch} {
		if err := c.Subscribe(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	if err := bch.Send(ctxT(t), "hello", []byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	frames := tap.wait(t, "the broadcast in", func(f []Frame) bool { return len(framesOf(f, In, protocol.EventBroadcast)) == 1 })
	join := framesOf(frames, Out, protocol.EventJoin)
	reply := framesOf(frames, In, protocol.EventReply)
	in := framesOf(frames, In, protocol.EventBroadcast)[0]
	if len(join) != 1 || len(reply) != 1 || reply[0].Message.Ref != join[0].Message.Ref || join[0].Conn != 1 {
		t.Fatalf("join %+v reply %+v", join, reply)
	}
	if !in.Binary || in.Message.Broadcast == nil || in.Message.Broadcast.Event != "hello" || string(in.Message.Broadcast.Payload) != `{"a":1}` || in.Err != nil {
		t.Fatalf("broadcast frame %+v", in)
	}
	for i := 1; i < len(frames); i++ {
		if frames[i].Time.Before(frames[i-1].Time) && frames[i].Dir == frames[i-1].Dir {
			t.Fatalf("frames out of order at %d", i)
		}
	}
	if s.Stats().TapDrops != 0 {
		t.Fatalf("tap drops %d", s.Stats().TapDrops)
	}
}

func TestTapMalformedAndDrops(t *testing.T) {
	rs := newRawServer(t)
	release := make(chan struct{})
	tap := newRec[Frame]()
	s := dialURL(t, rs.URL, "anon-key", fast, func(o *Options) {
		o.HeartbeatInterval = -1
		o.TapBuffer = 4
		o.Tap = func(f Frame) {
			<-release
			tap.add(f)
		}
	})
	c := rs.accept(t)
	for i := 0; i < 50; i++ {
		c.send(t, `not json`)
	}
	eventually(t, "50 decode errors", func() bool { return s.Stats().DecodeErrors == 50 })
	close(release)
	frames := tap.wait(t, "the kept frames", func(f []Frame) bool { return uint64(len(f))+s.Stats().TapDrops == 50 })
	if s.Stats().TapDrops == 0 || len(frames) > 2*4 { // 4 waiting + a batch of at most 4 in delivery
		t.Fatalf("%d frames kept, %d dropped", len(frames), s.Stats().TapDrops)
	}
	for _, f := range frames {
		if f.Dir != In || string(f.Data) != "not json" || !errors.Is(f.Err, protocol.ErrMalformed) {
			t.Fatalf("frame %+v", f)
		}
	}
}

// SetTap installs and removes the tap while the socket runs.
func TestSetTap(t *testing.T) {
	srv := servertest.New(t)
	s := dial(t, srv, fast)
	ch, _ := channel(t, s, "room1", ChannelConfig{})
	if err := ch.Subscribe(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	tap := newRec[Frame]()
	s.SetTap(tap.add)
	if err := ch.Send(ctxT(t), "one", nil); err != nil {
		t.Fatal(err)
	}
	waitFrames(t, tap, Out, protocol.EventBroadcast, 1)
	s.SetTap(nil)
	if err := ch.Send(ctxT(t), "two", nil); err != nil {
		t.Fatal(err)
	}
	// A later round trip is not tapped either.
	if err := ch.Leave(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if n := len(framesOf(tap.all(), Out, protocol.EventBroadcast)); n != 1 || len(framesOf(tap.all(), Out, protocol.EventLeave)) != 0 {
		t.Fatalf("%d broadcasts tapped after SetTap(nil)", n)
	}
}
