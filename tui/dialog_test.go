package tui

import "testing"

// A dialog opened by another one stays open when the first closes.
func TestDialogStack(t *testing.T) {
	m, _ := newTestModel(t, 120, 40)
	keys(m, ":")
	typeText(m, "help")
	keys(m, "enter")
	if !isTop[helpDialog](m) || len(m.dialogs) != 1 {
		t.Fatalf(":help left %d dialogs, top %T", len(m.dialogs), m.dialogs.top())
	}
	keys(m, "esc")
	if m.dialogs.top() != nil {
		t.Fatalf("esc left %T", m.dialogs.top())
	}
	// Opening a dialog of a type already open replaces it.
	m.openDialog(&confirmDialog{title: "a"})
	m.openDialog(helpDialog{})
	m.openDialog(&confirmDialog{title: "b"})
	if len(m.dialogs) != 2 {
		t.Fatalf("%d dialogs, want 2", len(m.dialogs))
	}
	if c, ok := topDialog[*confirmDialog](m); !ok || c.title != "b" {
		t.Fatalf("top %T", m.dialogs.top())
	}
}
