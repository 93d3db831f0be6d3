package token_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"rtm/realtime/token"
)

// handSigned is HS256 written out: what the server's verifier expects.
func handSigned(secret []byte, claims map[string]any) string {
	body, _ := json.Marshal(claims)
	signing := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + base64.RawURLEncoding.EncodeToString(body)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(signing))
	return signing + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func TestSignIsPlainHS256(t *testing.T) {
	secret := []byte("secret")
	claims := map[string]any{"role": "anon", "iat": 1767225600, "exp": 4102444800, "iss": "rtm", "x": 1.5}
	got, err := token.Sign(secret, claims)
	if err != nil || got != handSigned(secret, claims) {
		t.Fatalf("Sign = %q, %v; want %q", got, err, handSigned(secret, claims))
	}
	if _, err := token.Sign(nil, claims); err == nil {
		t.Fatal("signed with an empty secret")
	}
}

func TestUser(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	got, err := token.User([]byte("s"), "u1", now, time.Hour, map[string]any{"tenant_id": "acme", "iss": "other"})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := base64.RawURLEncoding.DecodeString(strings.Split(got, ".")[1])
	want := `{"aud":"authenticated","exp":1800003600,"iat":1800000000,"iss":"other","role":"authenticated","sub":"u1","tenant_id":"acme"}`
	if string(body) != want {
		t.Fatalf("claims %s, want %s", body, want)
	}
}

func TestSigner(t *testing.T) {
	if token.Signer(nil) != nil {
		t.Fatal("a signer without a secret")
	}
	claims := map[string]any{"role": "anon"}
	got, err := token.Signer([]byte("s"))(claims)
	if want, _ := token.Sign([]byte("s"), claims); err != nil || got != want {
		t.Fatalf("Signer = %q, %v; want %q", got, err, want)
	}
}
