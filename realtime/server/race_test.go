//go:build race

package server_test

// raceSlack multiplies memory bounds under the race detector, whose
// shadow memory grows every allocation.
const raceSlack = 4
