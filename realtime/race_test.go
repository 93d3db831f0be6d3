//go:build race

package realtime

// hostileScale scales what the hostile tests send: the race detector makes
// each frame several times slower, so they send half as much (still far
// more than the bounds they check).
const hostileScale = 1
