//go:build race

package server_test

// raceEnabled: the race detector slows byte-wise scanning tenfold, so the
// memory floods run at a tenth of their size (same ratios, same bounds).
const raceEnabled = true
