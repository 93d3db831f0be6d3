// Package serverctl implements registry.ServerControl, the server-side
// fault controls, for `rtm serve` or any server exposing the same /admin/
// HTTP API with its service_role key ([HTTP]), and limits.Source, the
// limits in force and the server's counters (GET /admin/limits).
//
// rtm's embedded server, started in-process, is driven through its Go API
// by an adapter in package main (embedded.go), which owns the embedded
// target: nothing under registry/ imports realtime/server.
package serverctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"rtm/registry"
	"rtm/registry/limits"
)

// ErrAdmin is wrapped by errors the admin API answered.
var ErrAdmin = errors.New("serverctl: admin API error")

// HTTP drives the /admin/ API of `rtm serve`.
type HTTP struct {
	base   *url.URL
	key    string
	client *http.Client
}

// NewHTTP returns a client of the admin API of the server at projectURL
// (http://127.0.0.1:4000, or a ws:// URL of it), authenticated with the
// service_role key. client nil means a client with a 10 s timeout.
func NewHTTP(projectURL, serviceRoleKey string, client *http.Client) (*HTTP, error) {
	u, err := url.Parse(projectURL)
	if err != nil {
		return nil, fmt.Errorf("serverctl: URL: %w", err)
	}
	switch strings.ToLower(u.Scheme) {
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	case "http", "https":
	default:
		return nil, fmt.Errorf("serverctl: URL scheme %q (want http, https, ws or wss)", u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("serverctl: URL %q has no host", projectURL)
	}
	if serviceRoleKey == "" {
		return nil, fmt.Errorf("serverctl: the admin API needs the service_role key")
	}
	u.Path, u.RawPath, u.RawQuery, u.Fragment = "", "", "", ""
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	return &HTTP{base: u, key: serviceRoleKey, client: client}, nil
}

// Target implements registry.ServerControl.
func (h *HTTP) Target() string { return "rtm serve at " + h.base.String() }

func (h *HTTP) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, h.base.String()+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+h.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return fmt.Errorf("serverctl: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("serverctl: %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Message string `json:"message"`
			Error   string `json:"error"`
		}
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &e) == nil && (e.Message != "" || e.Error != "") {
			msg = e.Message + e.Error
		}
		return fmt.Errorf("%w: %s %s: %s: %s", ErrAdmin, method, path, resp.Status, msg)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%w: %s %s: bad answer: %v", ErrAdmin, method, path, err)
		}
	}
	return nil
}

// Kick implements registry.ServerControl.
func (h *HTTP) Kick(ctx context.Context, topic string, mode registry.KickMode) (int, error) {
	var out struct {
		Kicked int `json:"kicked"`
	}
	err := h.call(ctx, http.MethodPost, "/admin/kick", map[string]string{"topic": topic, "mode": mode.String()}, &out)
	return out.Kicked, err
}

// RejectJoins implements registry.ServerControl.
func (h *HTTP) RejectJoins(ctx context.Context, r registry.Rejection) error {
	body := map[string]any{"count": r.Count, "for": r.For.String()}
	if r.Reason != "" {
		body["reason"] = r.Reason
	}
	return h.call(ctx, http.MethodPost, "/admin/reject-joins", body, nil)
}

// DropAll implements registry.ServerControl.
func (h *HTTP) DropAll(ctx context.Context) (int, error) {
	var out struct {
		Dropped int `json:"dropped"`
	}
	err := h.call(ctx, http.MethodPost, "/admin/drop", map[string]any{"ids": []string{}}, &out)
	return out.Dropped, err
}

// Restart implements registry.ServerControl.
func (h *HTTP) Restart(ctx context.Context, downtime time.Duration) error {
	return h.call(ctx, http.MethodPost, "/admin/restart", map[string]string{"downtime": downtime.String()}, nil)
}

// Connection is one socket in the server's view (the fields of GET
// /admin/connections that identify it; the answer has more).
type Connection struct {
	ID       string              `json:"id"`
	Remote   string              `json:"remote"`
	Role     string              `json:"role"`
	Sub      string              `json:"sub,omitempty"`
	TenantID string              `json:"tenant_id,omitempty"`
	Created  time.Time           `json:"created"`
	Channels []ConnectionChannel `json:"channels"`
}

// ConnectionChannel is one channel a [Connection] joined.
type ConnectionChannel struct {
	Topic   string `json:"topic"`
	Private bool   `json:"private"`
}

// Connections returns the server's view of its sockets and their
// channels (GET /admin/connections).
func (h *HTTP) Connections(ctx context.Context) ([]Connection, error) {
	var out struct {
		Connections []Connection `json:"connections"`
	}
	err := h.call(ctx, http.MethodGet, "/admin/connections", nil, &out)
	return out.Connections, err
}

// ServerLimits implements limits.Source: the limits in force and the
// default tenant's counters (GET /admin/limits).
func (h *HTTP) ServerLimits(ctx context.Context) (limits.ServerReport, error) {
	var out limits.ServerReport
	err := h.call(ctx, http.MethodGet, "/admin/limits", nil, &out)
	return out, err
}

var (
	_ registry.ServerControl = (*HTTP)(nil)
	_ limits.Source          = (*HTTP)(nil)
)
