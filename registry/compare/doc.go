// Package compare tells what several identities (users, roles, tokens)
// received on the same topics, and live, what one received that another
// did not, with the reason where rtm can tell it.
//
// An identity is its own channel manager (its own socket and token, see
// registry/target's identity specs); a [Comparer] is fed the events of
// every identity's manager ([Comparer.Observe]: frames in, channel states,
// fault logs), or the pieces directly ([Comparer.Received],
// [Comparer.Channel], [Comparer.Fault]), each tagged with the identity's
// name.
//
// # What each received
//
// [Comparer.Columns] gives, per topic, one [Column] per identity: how
// many messages of each event ("broadcast shout", "postgres_changes
// INSERT public.notes") and kind ("broadcast", "postgres_changes",
// "presence_join", ...) it received, the presence keys it sees (joined
// minus left, reset by each presence_state), its channel's status, its
// last join error and how many broadcasts it sent. Total counts every
// message received, the ones not compared too.
//
// # Differences
//
// Messages are normalized as `rtm diff` normalizes them ([Normalize], the
// one normalizer: registry/headless uses it too) and matched by channel,
// event and value, with multiplicity. Only broadcasts, postgres changes
// and other user messages are compared ([Compared]): presence is not a
// message stream (an identity joined earlier gets presence_join diffs
// where a later one gets the same members in its presence_state; the
// member sets are side by side in the columns, and a member one sees
// and another does not is no Difference), nor are system messages
// (each join's own extensions), replies and heartbeats.
//
// A broadcast an identity sent (its manager's outbound message event,
// [Comparer.Sent]) counts as the sender's own when its channel does not
// echo (config self false, the default: the server never sends it
// back), so it is not missed by the sender, and every other identity
// holding the topic is expected to receive it. With self true the echo
// is expected like any message: a missing echo is a difference. A message one identity received
// waits [Options.Window] (default 5 s) for the others holding the topic;
// those that did not receive it by then get a [Difference] (A received
// it, B = MissingFrom did not), explained in this order:
//
//   - [ReasonTenant], "another tenant": the topic is tenant:X:... and B's
//     token is for another tenant (or none);
//   - [ReasonPrivate], "refused by a private-channel policy": B's join
//     was refused while the message came; Detail is the server's reason
//     (the channel's join error);
//   - [ReasonFault], "dropped by a fault": a fault was injected on B's
//     socket or channel within [Options.FaultWindow] (default 2 s) before
//     the message (or after it, while B was down);
//   - [ReasonNotJoined], "not joined yet": B's channel was not joined
//     when the message came (joined later, or never);
//   - [ReasonRLS], "filtered by RLS": a postgres change whose row
//     [Options.Rows] (a [RowChecker]: package main adapts the
//     postgres_changes doctor's single-row verdict; compare has no
//     database dependency) says B may not see; Detail is the verdict;
//   - [ReasonUnknown] otherwise.
//
// Only identities holding the topic (a channel state seen for it) are
// expected to receive its messages: those holding it when the message
// came, and those that start holding it within its window (they get
// "not joined yet"); a message is kept for its whole window even when
// every holder has it, and an identity's copy never matches a message
// from before it held the topic. Values are masked (registry.MaskJSON)
// before they are kept.
//
// # Bounds
//
// Everything is bounded, with documented defaults (see [Options]): at
// most MaxTopics topics (64) and MaxIdentities identities (16); per topic
// and identity, at most MaxPending unmatched messages (1,000) and
// MaxPendingBytes of their values (1 MiB; a value is kept up to
// MaxValueBytes, 4 KiB, and matched by its hash, so a large payload costs
// no more), MaxEvents distinct events counted (128; the rest under
// "other") and MaxMembers presence keys (1,000); per topic, the last
// MaxDifferences differences (256; Differences counts all), and at most
// MaxDifferences×MaxTopics decided ones waiting for Tick. An unmatched
// message over a bound is decided at once (as if its window had passed).
// Time is Options.Clock's (registry/clock; a fake in tests); aging runs
// in [Comparer.Tick], which the caller calls (about every Window/4), and
// [Comparer.Flush] decides everything at the end of a session.
// [Comparer.Between] answers at once for two identities, the decided
// differences and the still unmatched messages (the scenario
// expectation same_messages).
//
// # Who uses it
//
// `rtm watch --as A --as B` (registry/headless: the compare lines), the
// scenario expectation same_messages (registry/headless/scenario) and
// the UI's Compare tab. Source files: compare.go (types, options,
// feeding), decide.go (aging, Tick, Flush, Between, the RLS check),
// explain.go (the reasons, Observe), query.go (Columns, Differences),
// normalize.go (the normalizer).
package compare
