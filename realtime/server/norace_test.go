//go:build !race

package server_test

// raceSlack multiplies memory bounds under the race detector (1 without
// it).
const raceSlack = 1
