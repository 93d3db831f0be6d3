package tui

// rect is a region of the screen in cells.
type rect struct{ x, y, w, h int }

// layout holds the sizes of every area, computed by computeLayout on
// WindowSizeMsg (and when the footer or zoom changes), never in View.
type layout struct {
	width, height int
	// header, body (channels + main), log, status line and footer rows.
	header, channels, main, log, status, footer rect
	// narrow is true below 100 columns: the channels table shows fewer
	// columns.
	narrow bool
	// tiny is true when the terminal is too small to draw the panes.
	tiny bool
}

// Minimum terminal size for the full layout.
const (
	minWidth  = 60
	minHeight = 16
)

// computeLayout splits a w x h terminal. headerRows is the height of the
// header (2, 3 with the replay row), footerRows of the help footer; zoom
// gives the focused pane the whole body.
func computeLayout(w, h, headerRows, footerRows, statusRows int, zoom bool, f focus) layout {
	l := layout{width: w, height: h}
	if w < minWidth || h < minHeight {
		l.tiny = true
		return l
	}
	l.narrow = w < 100
	headerRows = max(2, headerRows)
	l.header = rect{0, 0, w, headerRows}
	if footerRows < 1 {
		footerRows = 1
	}
	if footerRows > h/2 {
		footerRows = h / 2
	}
	l.footer = rect{0, h - footerRows, w, footerRows}
	statusRows = max(1, min(statusRows, 2))
	l.status = rect{0, l.footer.y - statusRows, w, statusRows}
	bodyTop := headerRows
	bodyH := l.status.y - bodyTop
	if zoom {
		full := rect{0, bodyTop, w, bodyH}
		switch f {
		case focusChannels:
			l.channels = full
		case focusLog:
			l.log = full
		default:
			l.main = full
		}
		return l
	}
	logH := bodyH * 3 / 10
	logH = max(5, min(logH, 16))
	topH := bodyH - logH
	if topH < 8 {
		topH = 8
		logH = bodyH - topH
	}
	chW := w * 42 / 100
	chW = max(34, min(chW, 92))
	l.channels = rect{0, bodyTop, chW, topH}
	l.main = rect{chW, bodyTop, w - chW, topH}
	l.log = rect{0, bodyTop + topH, w, logH}
	return l
}
