//go:build !race

package realtime

// hostileScale scales what the hostile tests send (see race_test.go).
const hostileScale = 2
