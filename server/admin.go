package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Membership is what the cluster admin API needs from the node's Raft
// group.
type Membership interface {
	// Status is the node's view of the group (JSON-encodable); with
	// checksum it also hashes the group's data on this replica.
	Status(ctx context.Context, checksum bool) (any, error)
	// AddVoter adds (or re-addresses) the replica id at its Raft address.
	AddVoter(ctx context.Context, id, address string) error
	// RemoveServer removes the replica id.
	RemoveServer(ctx context.Context, id string) error
	// Dump writes every sample of the group on this replica as text, one
	// line per sample, in a fixed order.
	Dump(ctx context.Context, w io.Writer) error
}

// ErrBadRequest marks Membership errors caused by the request (400).
var ErrBadRequest = errors.New("server: bad request")

// AdminHandler serves the cluster admin API (see docs/design.md,
// "Replication"):
//
//	GET    /admin/raft/status[?checksum=1]   this replica's view (JSON)
//	GET    /admin/raft/data                  this replica's samples (text)
//	POST   /admin/raft/members?id=ID&address=HOST:PORT   add a voter
//	POST   /admin/raft/members?id=ID&address=HOST:PORT&replace=OLD
//	                                         remove OLD, then add ID
//	DELETE /admin/raft/members?id=ID         remove a replica
//
// Replace removes first: with one of three voters dead, the quorum stays
// two of the two live ones, where adding first would need three of four
// (the new replica included) until it has caught up.
//
// Status and data are answered by the node asked (they are per replica);
// membership changes must reach the leader, so mount them behind
// Forwarder.Writes.
type AdminHandler struct {
	m       Membership
	timeout time.Duration
}

// NewAdminHandler returns the admin API over m; timeout bounds a
// membership change (zero means 30s).
func NewAdminHandler(m Membership, timeout time.Duration) *AdminHandler {
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	return &AdminHandler{m: m, timeout: timeout}
}

// Status serves GET /admin/raft/status.
func (h *AdminHandler) Status(w http.ResponseWriter, r *http.Request) {
	st, err := h.m.Status(r.Context(), r.URL.Query().Get("checksum") == "1")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(st)
}

// Data serves GET /admin/raft/data.
func (h *AdminHandler) Data(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := h.m.Dump(r.Context(), w); err != nil {
		// Headers are sent; the truncated body ends with the error.
		fmt.Fprintf(w, "\nerror: %v\n", err)
	}
}

// Members serves POST and DELETE /admin/raft/members.
func (h *AdminHandler) Members(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id := q.Get("id")
	if id == "" {
		http.Error(w, "missing id", http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	var err error
	switch r.Method {
	case http.MethodPost:
		addr := q.Get("address")
		if addr == "" {
			http.Error(w, "missing address (the new replica's Raft address, host:port)", http.StatusBadRequest)
			return
		}
		if old := q.Get("replace"); old != "" {
			if old == id {
				http.Error(w, "replace: the new ID must differ from the replaced one", http.StatusBadRequest)
				return
			}
			if err = h.m.RemoveServer(ctx, old); err != nil {
				err = fmt.Errorf("replace %s: %w", old, err)
				break
			}
		}
		err = h.m.AddVoter(ctx, id, addr)
	case http.MethodDelete:
		err = h.m.RemoveServer(ctx, id)
	default:
		w.Header().Set("Allow", "POST, DELETE")
		http.Error(w, "use POST to add and DELETE to remove", http.StatusMethodNotAllowed)
		return
	}
	switch {
	case err == nil:
		w.WriteHeader(http.StatusNoContent)
	case errors.Is(err, ErrBadRequest):
		http.Error(w, err.Error(), http.StatusBadRequest)
	case errors.Is(err, ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	default:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}
