package registry

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParseNameValid(t *testing.T) {
	tests := []struct {
		in   string
		want Name
	}{
		{"presence:contact:123", Name{Kind: KindPresence, EntityType: "contact", EntityID: "123"}},
		{"subscription:project:456", Name{Kind: KindSubscription, EntityType: "project", EntityID: "456"}},
		{"broadcast:document:789", Name{Kind: KindBroadcast, EntityType: "document", EntityID: "789"}},
		{"tenant:abc:presence:contact:123", Name{Tenant: "abc", Kind: KindPresence, EntityType: "contact", EntityID: "123"}},
		{"realtime:presence:contact:123", Name{Kind: KindPresence, EntityType: "contact", EntityID: "123"}},
		{"broadcast:doc:é-ü_1.2", Name{Kind: KindBroadcast, EntityType: "doc", EntityID: "é-ü_1.2"}},
	}
	for _, tt := range tests {
		got, err := ParseName(tt.in)
		if err != nil {
			t.Fatalf("ParseName(%q): %v", tt.in, err)
		}
		if got != tt.want {
			t.Fatalf("ParseName(%q) = %#v, want %#v", tt.in, got, tt.want)
		}
		canon := strings.TrimPrefix(tt.in, "realtime:")
		if got.String() != canon {
			t.Fatalf("String() = %q, want %q", got.String(), canon)
		}
		if got.Topic() != "realtime:"+canon {
			t.Fatalf("Topic() = %q", got.Topic())
		}
	}
}

func TestParseNameInvalid(t *testing.T) {
	tests := []struct {
		in, part, reason string
	}{
		{"", "", "parts"},
		{"presence:contact", "", "has 2"},
		{"presence:contact:12:3", "", "has 4"},
		{"presence::123", "entity type", "is empty"},
		{"presence:contact:", "entity id", "is empty"},
		{":contact:1", "type", "not subscription"},
		{"Presence:contact:1", "type", "not subscription"},
		{"chat:contact:1", "type", "not subscription"},
		{"tenant::presence:contact:1", "tenant", "is empty"},
		{"tenants:abc:presence:contact:1", "", "does not start with"},
		{"tenant:abc:presence:contact:1:2", "", "has 6"},
		{"presence:con tact:1", "entity type", "white space"},
		{"presence:contact:1\n", "entity id", "control"},
		{"presence:contact:\xff", "entity id", "UTF-8"},
		{"presence:contact:" + strings.Repeat("x", 250), "", "bytes long"},
	}
	for _, tt := range tests {
		_, err := ParseName(tt.in)
		if err == nil {
			t.Fatalf("ParseName(%q) succeeded", tt.in)
		}
		if !errors.Is(err, ErrInvalidName) {
			t.Fatalf("ParseName(%q): %v does not wrap ErrInvalidName", tt.in, err)
		}
		var ne *NameError
		if !errors.As(err, &ne) {
			t.Fatalf("ParseName(%q): %T is not *NameError", tt.in, err)
		}
		if ne.Part != tt.part || !strings.Contains(err.Error(), tt.reason) {
			t.Fatalf("ParseName(%q) = %v (part %q), want part %q and %q in the message", tt.in, err, ne.Part, tt.part, tt.reason)
		}
	}
}

func TestNewNameRejectsColonsInsteadOfColliding(t *testing.T) {
	// Without validation, these two would both print as
	// "presence:a:b:c" and collide.
	_, err1 := NewName(KindPresence, "a:b", "c", "")
	_, err2 := NewName(KindPresence, "a", "b:c", "")
	if err1 == nil || err2 == nil {
		t.Fatalf("colon parts accepted: %v, %v", err1, err2)
	}
	var ne *NameError
	if !errors.As(err1, &ne) || ne.Part != "entity type" || !strings.Contains(ne.Reason, "contains ':'") {
		t.Fatalf("err1 = %v", err1)
	}
	if !errors.As(err2, &ne) || ne.Part != "entity id" {
		t.Fatalf("err2 = %v", err2)
	}
	if _, err := NewName(KindPresence, "contact", "1", "a:b"); err == nil {
		t.Fatal("tenant with ':' accepted")
	}
	if _, err := NewName(Kind(9), "contact", "1", ""); err == nil {
		t.Fatal("invalid kind accepted")
	}
	if _, err := NewName(KindPresence, "", "1", ""); err == nil {
		t.Fatal("empty entity type accepted")
	}
	n, err := NewName(KindBroadcast, "document", "789", "abc")
	if err != nil || n.String() != "tenant:abc:broadcast:document:789" {
		t.Fatalf("NewName = %v, %v", n, err)
	}
}

func TestNameJSON(t *testing.T) {
	n := MustName(KindPresence, "contact", "123", "abc")
	b, err := json.Marshal(map[Name]int{n: 1})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"tenant:abc:presence:contact:123":1}` {
		t.Fatalf("map JSON = %s", b)
	}
	var back map[Name]int
	if err := json.Unmarshal(b, &back); err != nil || back[n] != 1 {
		t.Fatalf("round trip: %v %v", back, err)
	}
	var bad Name
	if err := json.Unmarshal([]byte(`"presence:a"`), &bad); err == nil {
		t.Fatal("bad name decoded")
	}
	if _, err := json.Marshal(Name{Kind: KindPresence, EntityType: "a:b", EntityID: "c"}); err == nil {
		t.Fatal("invalid name encoded")
	}
}

func TestNameCompare(t *testing.T) {
	a := MustName(KindPresence, "contact", "1", "")
	b := MustName(KindPresence, "contact", "2", "")
	c := MustName(KindSubscription, "contact", "1", "t")
	if a.Compare(b) >= 0 || b.Compare(a) <= 0 || a.Compare(a) != 0 || a.Compare(c) >= 0 {
		t.Fatal("Compare order wrong")
	}
}

func FuzzParseName(f *testing.F) {
	for _, s := range []string{
		"presence:contact:123", "tenant:abc:broadcast:document:789", "realtime:subscription:project:456",
		"presence::", "tenant:::::", "a:b:c:d:e", "presence:a:b:c", "\xff:\x00:1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseName(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidName) {
				t.Fatalf("error %v does not wrap ErrInvalidName", err)
			}
			if !n.IsZero() {
				t.Fatal("non-zero Name with an error")
			}
			return
		}
		if err := n.Validate(); err != nil {
			t.Fatalf("parsed name %#v does not validate: %v", n, err)
		}
		// Canonical round trip: the string form parses to the same name,
		// so two different names never share a string.
		back, err := ParseName(n.String())
		if err != nil || back != n {
			t.Fatalf("round trip of %q: %#v, %v", n.String(), back, err)
		}
		if len(n.Topic()) > MaxTopicLen {
			t.Fatalf("topic too long: %d", len(n.Topic()))
		}
		built, err := NewName(n.Kind, n.EntityType, n.EntityID, n.Tenant)
		if err != nil || built != n {
			t.Fatalf("NewName disagrees: %v", err)
		}
	})
}

func FuzzNewName(f *testing.F) {
	f.Add(uint8(1), "contact", "1", "")
	f.Add(uint8(2), "a:b", "c", "t")
	f.Add(uint8(3), "x", "y:z", "")
	f.Fuzz(func(t *testing.T, k uint8, et, id, tenant string) {
		n, err := NewName(Kind(k), et, id, tenant)
		if err != nil {
			if !errors.Is(err, ErrInvalidName) {
				t.Fatalf("error %v does not wrap ErrInvalidName", err)
			}
			return
		}
		back, err := ParseName(n.String())
		if err != nil || back != n {
			t.Fatalf("round trip of %#v via %q: %#v, %v", n, n.String(), back, err)
		}
	})
}
