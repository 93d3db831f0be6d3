//go:build !race

package registry_test

// raceEnabled: see race_on_test.go.
const raceEnabled = false
