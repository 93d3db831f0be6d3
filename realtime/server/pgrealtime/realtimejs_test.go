package pgrealtime

import (
	"context"
	"strings"
	"testing"
	"time"

	"rtm/realtime/jsharness"
)

// realtime-js, as an app written the recommended way uses it: a private
// channel per user allowed by the documented policy shape (a rooms_users
// table, auth.uid(), realtime.topic(), extension), a refused channel
// with Supabase's exact reason, a broadcast without an INSERT policy that
// times out with ack (dropped, no reply), and httpSend rejected with
// Unauthorized.
func TestRealtimeJSPrivateChannels(t *testing.T) {
	t.Parallel()
	e := newEnv(t, `
		create table public.rooms_users (user_id uuid not null, topic text not null, can_send bool not null default false);
		grant select on public.rooms_users to authenticated;
		insert into public.rooms_users values ('`+alice+`', 'room:`+alice+`', false), ('`+bob+`', 'room:`+alice+`', true);
		create policy "authenticated can receive broadcast" on "realtime"."messages" for select to authenticated
		using ( exists ( select user_id from rooms_users
			where user_id = (select auth.uid()) and topic = (select realtime.topic())
			and realtime.messages.extension in ('broadcast') ) );
		create policy "authenticated can send broadcast on topic" on "realtime"."messages" for insert to authenticated
		with check ( exists ( select user_id from rooms_users
			where user_id = (select auth.uid()) and topic = (select realtime.topic()) and can_send
			and realtime.messages.extension in ('broadcast') ) );
		create policy "own room" on "realtime"."messages" for select to authenticated
		using ( realtime.topic() = 'room:' || auth.uid()::text )`)
	d := jsharness.Start(t)
	t.Cleanup(func() {
		for _, ev := range d.Events(jsharness.Match{Kind: jsharness.KindUncaught}) {
			t.Errorf("uncaught exception in the driver: %s", ev.Raw)
		}
	})
	client := func(name, sub string) *jsharness.Client {
		return d.NewClient(t, name, jsharness.Endpoint(e.srv.URL), jsharness.ClientOptions{
			APIKey: e.srv.UserToken(t, sub, time.Hour, nil), TimeoutMs: 1000, HeartbeatIntervalMs: 2000})
	}
	a, b := client("alice", alice), client("bob", bob)
	private := map[string]any{"private": true, "broadcast": map[string]any{"ack": true}}
	own := a.Channel(t, "own", "room:"+alice, private).On(t, "broadcast", map[string]any{"event": "*"})
	mark := d.Mark()
	own.Subscribe(t, 0)
	own.AwaitStatus(t, wait, mark, "SUBSCRIBED")

	other := a.Channel(t, "other", "room:"+bob, private)
	mark = d.Mark()
	start := time.Now()
	other.Subscribe(t, 0)
	st := other.AwaitStatus(t, wait, mark, "CHANNEL_ERROR")
	if want := "Unauthorized: You do not have permissions to read from this Channel topic: room:" + bob; st.Error != want {
		t.Errorf("refused channel: %q, want %q", st.Error, want)
	}
	if took := time.Since(start); took < refusalDelay {
		t.Errorf("refused after %v, before the delay %v", took, refusalDelay)
	}
	a.RemoveChannel(t, other)

	// bob reads alice's room (rooms_users) and may send; alice may not.
	bobs := b.Channel(t, "alices", "room:"+alice, private)
	mark = d.Mark()
	bobs.Subscribe(t, 0)
	bobs.AwaitStatus(t, wait, mark, "SUBSCRIBED")
	if got := own.Broadcast(t, "note", map[string]any{"from": "alice"}); got != "timed out" {
		t.Errorf("alice's broadcast without an INSERT policy, with ack: %q, want timed out", got)
	}
	mark = d.Mark()
	if got := bobs.Broadcast(t, "note", map[string]any{"from": "bob"}); got != "ok" {
		t.Errorf("bob's broadcast: %q", got)
	}
	ev := own.Await(t, wait, jsharness.Match{Kind: jsharness.KindBroadcast, After: mark})
	if !strings.Contains(string(ev.Payload), `"from":"bob"`) {
		t.Errorf("alice received %s", ev.Payload)
	}
	if n := len(d.Events(jsharness.Match{Kind: jsharness.KindBroadcast, Where: func(ev jsharness.Event) bool {
		return strings.Contains(string(ev.Payload), `"from":"alice"`)
	}})); n != 0 {
		t.Errorf("alice's dropped broadcast was delivered %d times", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := own.HTTPSend(ctx, "note", map[string]any{"rest": true}); err == nil || !strings.Contains(err.Error(), "Unauthorized") {
		t.Errorf("alice's httpSend without an INSERT policy: %v, want Unauthorized", err)
	}
}
