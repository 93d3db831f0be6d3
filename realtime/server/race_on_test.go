//go:build race

package server_test

// Under the race detector: raceSlack multiplies memory bounds (its shadow
// memory grows every allocation), and raceEnabled makes the memory floods
// run at a tenth of their size (it slows byte-wise scanning tenfold; same
// ratios, same bounds).
const (
	raceSlack   = 4
	raceEnabled = true
)
