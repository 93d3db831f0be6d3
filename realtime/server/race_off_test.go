//go:build !race

package server_test

// Without the race detector (see race_on_test.go).
const (
	raceSlack   = 1
	raceEnabled = false
)
