package scenario_test

import (
	"strings"
	"testing"

	"rtm/registry/headless/scenario"
)

// TestLimitsExpectation: a client holding 9 channels against a limit of
// 10 (the scenario's, over the server's 100) is over 80 %, so "under:
// 80%" fails, naming the gauge, and "over: 80%" holds; a scenario's
// plan gives limits too.
func TestLimitsExpectation(t *testing.T) {
	const src = `name: limits
limits: {channels_per_connection: 10}
plan: free
continue_on_failure: true
steps:
  - connect: {user: alice}
  - join: {channel: broadcast:room:1}
  - expect:
      limits: {name: channels_per_connection, under: 80%}
  - join: {channel: broadcast:room:2}
  - join: {channel: broadcast:room:3}
  - join: {channel: broadcast:room:4}
  - join: {channel: broadcast:room:5}
  - join: {channel: broadcast:room:6}
  - join: {channel: broadcast:room:7}
  - join: {channel: broadcast:room:8}
  - join: {channel: broadcast:room:9}
  - expect:
      limits: {name: channels_per_connection, over: 80%, within: 5s}
  - expect:
      limits: {name: max_channels_per_client, under: 80%, within: 300ms}
  - expect:
      limits: {name: payload_size, under: 1%, for: 100ms}
`
	sc, err := scenario.Parse("limits.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	rep := run(t, sc)
	if rep.Passed != len(sc.Steps)-1 || rep.Failed != 1 || rep.FirstFailure == nil {
		t.Fatalf("%d passed, %d failed; first failure %+v", rep.Passed, rep.Failed, rep.FirstFailure)
	}
	f := rep.FirstFailure
	if f.Step != "expect limits" || !strings.Contains(f.Observed, "channels_per_connection 9 of 10 (90%, warning, limit from scenario)") {
		t.Fatalf("failure: %+v", f)
	}
	last := rep.Steps[len(rep.Steps)-1]
	if !strings.Contains(last.Observed, "limit from server") {
		t.Fatalf("the server's payload limit over the plan's: %+v", last)
	}
}

func TestLimitsExpectationInvalid(t *testing.T) {
	for src, want := range map[string]string{
		"limits: {name: channels_per_connection}":                          "needs one of under or over",
		"limits: {name: nope, under: 80%}":                                 `name "nope"`,
		"limits: {under: 80%}":                                             "needs name",
		"limits: {name: payload_size, under: lots}":                        "not a percentage",
		"limits: {name: payload_size, under: 80%, over: 90%}":              "needs one of under or over",
		"limits: {name: payload_size, over: 80%, for: 1s}":                 "for goes with under",
		"limits: {name: payload_size, under: 80%, channel: broadcast:a:1}": "unknown key",
	} {
		_, err := scenario.Parse("x.yaml", []byte("steps:\n  - connect: {user: a}\n  - expect:\n      "+src+"\n"))
		if err == nil || !strings.Contains(err.Error(), want) || !scenario.IsInvalid(err) {
			t.Errorf("%s: %v, want %q", src, err, want)
		}
	}
	for src, want := range map[string]string{
		"plan: gold":                     `plan "gold"`,
		"limits: {channels: 5}":          `unknown name "channels"`,
		"limits: {joins_per_second: -1}": "whole number",
		"limits: [joins_per_second]":     "must be a mapping",
	} {
		_, err := scenario.Parse("x.yaml", []byte(src+"\nsteps:\n  - connect: {user: a}\n"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", src, err, want)
		}
	}
}
