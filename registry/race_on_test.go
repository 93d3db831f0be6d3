//go:build race

package registry_test

// raceEnabled: the race detector slows the client's scanning of 30 MiB
// frames about tenfold, so the floods of huge frames send less (the
// bounds they check are the same).
const raceEnabled = true
