package server

import (
	"bytes"
	"cmp"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/myelindb/myelin/raftgroup/cluster"
)

// RingStatus is the cluster's state as the metadata leader sees it,
// served by RingHandler at GET /ring. Its JSON shape is an API (bench and
// tests decode it, operators script against it); server owns it, apart
// from the cluster's own status (raftgroup/cluster.Status, which travels
// between nodes and may change with the cluster): RingStatusOf converts.
type RingStatus struct {
	NodeID            string `json:"node_id"`    // the node answering
	Generation        uint64 `json:"generation"` // metadata state version
	ReplicationFactor int    `json:"replication_factor"`
	GroupsPerNode     int    `json:"groups_per_node"`
	MetadataLeader    string `json:"metadata_leader"`
	// Converged: every node is active; every group has its target number
	// of replicas, all voters, caught up, and led by its preferred leader;
	// the placement has nothing left to do; the metadata group's voters
	// are min(3, active nodes) active ones.
	Converged bool          `json:"converged"`
	Nodes     []NodeStatus  `json:"nodes"`
	Groups    []GroupStatus `json:"groups"`
	Epochs    []EpochStatus `json:"epochs"`
	Errors    []string      `json:"errors,omitempty"` // nodes without a recent report
}

// NodeStatus is one node of RingStatus.
type NodeStatus struct {
	ID               string `json:"id"`
	Address          string `json:"address"`
	State            string `json:"state"` // "active", "draining", "dead"
	Replicas         int    `json:"replicas"`
	Leaders          int    `json:"leaders"`
	PreferredLeaders int    `json:"preferred_leaders"`
	MetadataVoter    bool   `json:"metadata_voter"`
	// LastSeen: the node's last heartbeat to the metadata leader; nil if
	// none since it took over.
	LastSeen *time.Time `json:"last_seen,omitempty"`
}

// GroupStatus is one group of RingStatus.
type GroupStatus struct {
	ID              uint32          `json:"id"`
	Ownership       float64         `json:"ownership"` // share of the hash space, 0..1
	Tokens          int             `json:"tokens"`
	PreferredLeader string          `json:"preferred_leader"`
	Leader          string          `json:"leader"` // the current Raft leader, "" unknown
	Replicas        []ReplicaStatus `json:"replicas"`
}

// ReplicaStatus is one replica of a group: placed by the metadata, in the
// Raft configuration, or both.
type ReplicaStatus struct {
	Node         string `json:"node"`
	Desired      bool   `json:"desired"` // placed by the metadata
	Voter        bool   `json:"voter"`   // a voter in the leader's configuration
	State        string `json:"state"`   // Leader, Follower, Candidate; "" unreported
	AppliedIndex uint64 `json:"applied_index"`
	Lag          uint64 `json:"lag"` // the leader's applied index minus this one's
}

// EpochStatus is one ring epoch: from From on, writes are placed over
// Groups groups.
type EpochStatus struct {
	Generation uint64    `json:"generation"`
	From       time.Time `json:"from"`
	Groups     int       `json:"groups"`
}

// RingStatusOf converts the cluster's status into the page's.
func RingStatusOf(st *cluster.Status) *RingStatus {
	out := &RingStatus{
		NodeID: st.NodeID, Generation: st.Generation, ReplicationFactor: st.ReplicationFactor,
		GroupsPerNode: st.GroupsPerNode, MetadataLeader: st.MetadataLeader, Converged: st.Converged,
		Errors: st.Errors,
	}
	for _, n := range st.Nodes {
		out.Nodes = append(out.Nodes, NodeStatus{ID: n.ID, Address: n.Address, State: n.State, Replicas: n.Replicas,
			Leaders: n.Leaders, PreferredLeaders: n.PreferredLeaders, MetadataVoter: n.MetadataVoter, LastSeen: n.LastSeen})
	}
	for _, g := range st.Groups {
		gs := GroupStatus{ID: g.ID, Ownership: g.Ownership, Tokens: g.Tokens, PreferredLeader: g.PreferredLeader, Leader: g.Leader}
		for _, r := range g.Replicas {
			gs.Replicas = append(gs.Replicas, ReplicaStatus(r))
		}
		out.Groups = append(out.Groups, gs)
	}
	for _, e := range st.Epochs {
		out.Epochs = append(out.Epochs, EpochStatus(e))
	}
	return out
}

// TenantStatus is one tenant's ingest, served by TenantsHandler.
type TenantStatus struct {
	Tenant           string  `json:"tenant"`
	Series           int     `json:"series"`
	Samples          int64   `json:"samples"`
	SamplesPerSecond float64 `json:"samples_per_second"`
}

//go:embed status.html
var statusHTML string

// statusTemplates holds the "ring" and "tenants" pages (the UI, server/ui,
// serves "/"). html/template
// escapes every value by context, so node IDs, addresses and error texts
// from other nodes cannot inject markup.
var statusTemplates = template.Must(template.New("status").Parse(statusHTML))

// RingHandler serves GET /ring: the status returned by status, as JSON
// with ?format=json or when the Accept header prefers application/json,
// as an HTML page otherwise (?format=html forces it). An error from
// status is a 503 with its text: the status is assembled from other
// nodes, and asking again may succeed.
//
// Nodes and groups are shown sorted by ID; the RingStatus returned by
// status is not modified.
func RingHandler(status func(ctx context.Context) (*RingStatus, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asJSON, ok := negotiate(w, r)
		if !ok {
			return
		}
		st, err := status(r.Context())
		if err != nil {
			http.Error(w, "ring status: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		if st == nil {
			st = &RingStatus{}
		}
		sorted := sortedRing(st)
		if asJSON {
			writeStatusJSON(w, sorted)
			return
		}
		writeStatusHTML(w, "ring", newRingPage(sorted, time.Now()))
	})
}

// TenantsHandler serves GET /status/tenants: the tenants returned by stats,
// sorted by tenant, as a JSON array or an HTML page, negotiated like
// RingHandler. An error from stats is a 503 with its text.
func TenantsHandler(stats func(ctx context.Context) ([]TenantStatus, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asJSON, ok := negotiate(w, r)
		if !ok {
			return
		}
		ts, err := stats(r.Context())
		if err != nil {
			http.Error(w, "tenant stats: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		ts = slices.Clone(ts)
		if ts == nil {
			ts = []TenantStatus{} // [] rather than null
		}
		slices.SortStableFunc(ts, func(a, b TenantStatus) int { return cmp.Compare(a.Tenant, b.Tenant) })
		if asJSON {
			writeStatusJSON(w, ts)
			return
		}
		writeStatusHTML(w, "tenants", newTenantsPage(ts, time.Now()))
	})
}

// negotiate checks the method and picks the format: JSON for ?format=json
// or an Accept header that ranks application/json above text/html, HTML
// otherwise. It answers the request itself (405, 400) and returns ok false
// when the request is not servable.
func negotiate(w http.ResponseWriter, r *http.Request) (asJSON, ok bool) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "use GET", http.StatusMethodNotAllowed)
		return false, false
	}
	w.Header().Add("Vary", "Accept")
	switch f := r.URL.Query().Get("format"); f {
	case "json":
		return true, true
	case "html":
		return false, true
	case "":
		return prefersJSON(r.Header.Values("Accept")), true
	default:
		http.Error(w, fmt.Sprintf("format %q: want json or html", f), http.StatusBadRequest)
		return false, false
	}
}

// prefersJSON reports whether the Accept header values rank
// application/json strictly above text/html. Each type takes the quality
// of its most specific matching range (RFC 9110, section 12.5.1). A tie,
// as for "*/*" or no header at all, goes to HTML: browsers send text/html
// explicitly, and an API client that wants JSON says so.
func prefersJSON(accept []string) bool {
	if len(accept) == 0 {
		return false
	}
	var ranges []mediaRange
	for _, v := range accept {
		for _, part := range strings.Split(v, ",") {
			if mr, ok := parseMediaRange(part); ok {
				ranges = append(ranges, mr)
			}
		}
	}
	return quality(ranges, "application", "json") > quality(ranges, "text", "html")
}

type mediaRange struct {
	typ, sub string // lower case; "*" is a wildcard
	q        float64
}

func parseMediaRange(s string) (mediaRange, bool) {
	params := strings.Split(s, ";")
	typ, sub, ok := strings.Cut(strings.ToLower(strings.TrimSpace(params[0])), "/")
	if !ok || typ == "" || sub == "" {
		return mediaRange{}, false
	}
	mr := mediaRange{typ: strings.TrimSpace(typ), sub: strings.TrimSpace(sub), q: 1}
	for _, p := range params[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(strings.TrimSpace(k), "q") {
			q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || q < 0 || q > 1 {
				q = 0
			}
			mr.q = q
		}
	}
	return mr, true
}

// quality is the q of the most specific range matching typ/sub, 0 if none.
func quality(ranges []mediaRange, typ, sub string) float64 {
	best, q := -1, 0.0
	for _, mr := range ranges {
		var spec int
		switch {
		case mr.typ == typ && mr.sub == sub:
			spec = 2
		case mr.typ == typ && mr.sub == "*":
			spec = 1
		case mr.typ == "*" && mr.sub == "*":
			spec = 0
		default:
			continue
		}
		if spec > best {
			best, q = spec, mr.q
		}
	}
	return q
}

func writeStatusJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v) // the status is sent; a write error means the client left
}

// writeStatusHTML renders into a buffer first so that a template error is
// a clean 500, not half a page.
func writeStatusHTML(w http.ResponseWriter, name string, data any) {
	var buf bytes.Buffer
	if err := statusTemplates.ExecuteTemplate(&buf, name, data); err != nil {
		http.Error(w, "render "+name+" page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(buf.Bytes())
}

// sortedRing returns a copy of st with nodes and groups sorted by ID; the
// slices are never nil, so JSON has [] rather than null.
func sortedRing(st *RingStatus) *RingStatus {
	c := *st
	c.Nodes = append([]NodeStatus{}, st.Nodes...)
	slices.SortStableFunc(c.Nodes, func(a, b NodeStatus) int { return cmp.Compare(a.ID, b.ID) })
	c.Groups = append([]GroupStatus{}, st.Groups...)
	slices.SortStableFunc(c.Groups, func(a, b GroupStatus) int { return cmp.Compare(a.ID, b.ID) })
	c.Epochs = append([]EpochStatus{}, st.Epochs...)
	for i := range c.Groups {
		if c.Groups[i].Replicas == nil {
			c.Groups[i].Replicas = []ReplicaStatus{}
		}
	}
	return &c
}

// ringPage is what the "ring" template shows: the status plus the
// decisions the template should not make (ages, warnings).
type ringPage struct {
	Status *RingStatus
	Now    string
	Nodes  []nodeRow
	Groups []groupRow
	Epochs []EpochStatus
}

type nodeRow struct {
	NodeStatus
	Seen string // age of LastSeen, "never" if nil
	Warn bool   // not active
}

type groupRow struct {
	GroupStatus
	OwnershipPct string
	Replicas     []replicaRow
	Problems     []string // empty when the group is as desired
}

type replicaRow struct {
	ReplicaStatus
	Warn bool
}

// newRingPage computes the rows of the ring page at now. A group is
// flagged when its leader is not its preferred leader, or when a replica is
// lagging (any Lag above zero: the page is a snapshot, and a flag that
// clears on reload is still true), unreachable, not desired, or desired
// but not a voter.
func newRingPage(st *RingStatus, now time.Time) ringPage {
	p := ringPage{Status: st, Now: now.UTC().Format(time.RFC3339), Epochs: st.Epochs}
	for _, n := range st.Nodes {
		p.Nodes = append(p.Nodes, nodeRow{
			NodeStatus: n,
			Seen:       lastSeenAge(n.LastSeen, now),
			Warn:       n.State != "active",
		})
	}
	for _, g := range st.Groups {
		row := groupRow{GroupStatus: g, OwnershipPct: fmt.Sprintf("%.2f%%", g.Ownership*100)}
		switch {
		case g.Leader == "":
			row.Problems = append(row.Problems, "no leader")
		case g.Leader != g.PreferredLeader:
			row.Problems = append(row.Problems, fmt.Sprintf("led by %s, preferred %s", g.Leader, g.PreferredLeader))
		}
		for _, r := range g.Replicas {
			var probs []string
			if r.State == "" {
				probs = append(probs, r.Node+" unreachable")
			}
			if r.Lag > 0 {
				probs = append(probs, fmt.Sprintf("%s lags %d", r.Node, r.Lag))
			}
			if !r.Desired {
				probs = append(probs, r.Node+" not desired")
			} else if !r.Voter {
				probs = append(probs, r.Node+" not a voter")
			}
			row.Replicas = append(row.Replicas, replicaRow{ReplicaStatus: r, Warn: len(probs) > 0})
			row.Problems = append(row.Problems, probs...)
		}
		p.Groups = append(p.Groups, row)
	}
	return p
}

// lastSeenAge formats how long before now t was: "never" for nil, "0s" for
// a time after now (clock skew between nodes).
func lastSeenAge(t *time.Time, now time.Time) string {
	if t == nil || t.IsZero() {
		return "never"
	}
	d := now.Sub(*t)
	switch {
	case d <= 0:
		return "0s ago"
	case d < time.Second:
		return d.Round(time.Millisecond).String() + " ago"
	default:
		return d.Round(time.Second).String() + " ago"
	}
}

type tenantsPage struct {
	Now     string
	Tenants []tenantRow
}

type tenantRow struct {
	TenantStatus
	Rate string
}

func newTenantsPage(ts []TenantStatus, now time.Time) tenantsPage {
	p := tenantsPage{Now: now.UTC().Format(time.RFC3339)}
	for _, t := range ts {
		p.Tenants = append(p.Tenants, tenantRow{TenantStatus: t, Rate: strconv.FormatFloat(t.SamplesPerSecond, 'f', 1, 64)})
	}
	return p
}

// defaultRateWindow is how far back RateTracker looks. One minute spans
// four observations at Prometheus's default 15s scrape interval, enough to
// smooth one late scrape without hiding a change for long.
const defaultRateWindow = time.Minute

// RateTracker turns cumulative per-tenant sample counters into rates. It
// keeps each tenant's observations of the last Window and reports
// (newest - oldest) / (their time apart). It starts no goroutines and
// reads no clock: the caller passes the time of each observation.
//
// Safe for concurrent use; the zero value is ready with a one-minute
// window.
type RateTracker struct {
	// Window: rates span the observations this far back. Zero means one
	// minute. Set before the first Observe.
	Window time.Duration

	mu struct {
		sync.Mutex
		// obs holds each tenant's observations, oldest first.
		// INVARIANT: times are increasing and totals non-decreasing.
		obs map[string][]rateObs
	}
}

type rateObs struct {
	at    time.Time
	total int64
}

// Observe records the cumulative totals per tenant at now and returns each
// of those tenants' rate in samples per second over the window: 0 with
// fewer than two observations in it. A total below the tenant's previous
// one (a counter reset, as after a restart) or a time before the previous
// one restarts the tenant's window from this observation; a second
// observation at the same time replaces the first.
// Tenants absent from totals are forgotten. The returned map is the
// caller's.
func (r *RateTracker) Observe(now time.Time, totals map[string]int64) map[string]float64 {
	window := r.Window
	if window <= 0 {
		window = defaultRateWindow
	}
	cutoff := now.Add(-window)

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.obs == nil {
		r.mu.obs = make(map[string][]rateObs, len(totals))
	}
	for tenant := range r.mu.obs {
		if _, ok := totals[tenant]; !ok {
			delete(r.mu.obs, tenant)
		}
	}
	rates := make(map[string]float64, len(totals))
	for tenant, total := range totals {
		o := r.mu.obs[tenant]
		n := len(o)
		switch {
		case n > 0 && (total < o[n-1].total || now.Before(o[n-1].at)):
			o = append(o[:0], rateObs{at: now, total: total})
		case n > 0 && now.Equal(o[n-1].at):
			o[n-1].total = total
		default:
			o = append(o, rateObs{at: now, total: total})
		}
		i := 0
		for i < len(o)-1 && o[i].at.Before(cutoff) {
			i++
		}
		if i > 0 {
			o = append(o[:0], o[i:]...) // copy down: keeps the backing array bounded
		}
		r.mu.obs[tenant] = o
		rates[tenant] = rateOf(o)
	}
	return rates
}

func rateOf(o []rateObs) float64 {
	if len(o) < 2 {
		return 0
	}
	first, last := o[0], o[len(o)-1]
	dt := last.at.Sub(first.at).Seconds()
	if dt <= 0 {
		return 0
	}
	return float64(last.total-first.total) / dt
}

// ReadyHandler serves GET /ready: 200 "ready" when ready returns nil,
// else 503 with its reason.
func ReadyHandler(ready func() error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
}

// ConfigHandler serves GET /config: every flag's effective value, as
// YAML by flag name.
func ConfigHandler(effective map[string]string) http.Handler {
	b, err := yaml.Marshal(effective)
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/yaml; charset=utf-8")
		w.Write(b)
	})
}
