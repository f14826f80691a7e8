package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"

	"github.com/cairn-kv/cairn/server"
)

// health is the body of /health.
type health struct {
	Health string `json:"health"`
	Reason string `json:"reason"`
}

func (a *API) serveHealth(w http.ResponseWriter, r *http.Request) {
	if !allowGet(w, r) {
		return
	}
	// serializable=true checks this member alone: no leader check, and a
	// local read instead of a linearizable one.
	serializable := r.URL.Query().Get("serializable") == "true"
	h := a.checkHealth(r.Context(), querySet(r, "exclude"), serializable)
	body, err := json.Marshal(h)
	if err != nil {
		panic(fmt.Sprintf("httpapi: marshal %+v: %v", h, err))
	}
	if h.Health != "true" {
		a.healthFailures.Inc()
		a.lg.Warn("/health error", zap.String("output", string(body)), zap.Int("status-code", http.StatusServiceUnavailable))
		http.Error(w, string(body), http.StatusServiceUnavailable)
		return
	}
	a.healthSuccess.Inc()
	// What etcd's unset content type sniffs to.
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

func (a *API) checkHealth(ctx context.Context, excluded map[string]bool, serializable bool) health {
	for _, al := range a.m.Alarms() {
		if excluded[al.Alarm.String()] {
			continue
		}
		reason := "ALARM UNKNOWN"
		switch al.Alarm {
		case pb.AlarmType_NOSPACE:
			reason = "ALARM NOSPACE"
		case pb.AlarmType_CORRUPT:
			reason = "ALARM CORRUPT"
		}
		return health{Health: "false", Reason: reason}
	}
	if !serializable && a.m.Status().Leader == 0 {
		return health{Health: "false", Reason: "RAFT NO LEADER"}
	}
	if err := readCheck(a.m, serializable)(ctx); err != nil {
		return health{Health: "false", Reason: "RANGE ERROR:" + err.Error()}
	}
	return health{Health: "true"}
}

// check is one named check of /livez or /readyz.
type check struct {
	name string
	run  func(context.Context) error
}

// checkSet is the checks under one root path.
type checkSet struct {
	kind   string // "livez" or "readyz": the path and the metrics' type label
	checks []check
}

func (s *checkSet) root() string { return "/" + s.kind }

// checkSets returns etcd v3.7's /livez and /readyz checks.
func (a *API) checkSets() (livez, readyz checkSet) {
	livez = checkSet{kind: "livez", checks: []check{
		{"serializable_read", readCheck(a.m, true)},
	}}
	readyz = checkSet{kind: "readyz", checks: []check{
		{"data_corruption", alarmCheck(a.m, pb.AlarmType_CORRUPT)},
		// Both reads: a failing linearizable read with a working
		// serializable one points at consensus, not at the local store.
		{"serializable_read", readCheck(a.m, true)},
		{"linearizable_read", readCheck(a.m, false)},
		{"non_learner", learnerCheck(a.m)},
	}}
	return livez, readyz
}

func readCheck(m Member, serializable bool) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := m.Range(ctx, &pb.RangeRequest{KeysOnly: true, Limit: 1, Serializable: serializable})
		return etcdError(err)
	}
}

func alarmCheck(m Member, t pb.AlarmType) func(context.Context) error {
	return func(context.Context) error {
		for _, al := range m.Alarms() {
			if al.Alarm == t {
				return fmt.Errorf("alarm activated: %s", t)
			}
		}
		return nil
	}
}

func learnerCheck(m Member) func(context.Context) error {
	return func(context.Context) error {
		for _, mb := range m.Members() {
			if mb.ID == m.ID() && mb.IsLearner {
				return errors.New("not supported for learner")
			}
		}
		return nil
	}
}

// checkHandler serves one check (c), or the whole set minus ?exclude= when
// c is nil.
func (a *API) checkHandler(set *checkSet, c *check) http.HandlerFunc {
	path := set.root()
	if c != nil {
		path += "/" + c.name
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if !allowGet(w, r) {
			return
		}
		var checks []check
		if c != nil {
			checks = []check{*c}
		} else {
			checks = a.filterChecks(set, querySet(r, "exclude"))
		}
		ok, report := a.runChecks(r.Context(), set.kind, checks)
		if !ok {
			// Failures always show every check's line.
			a.lg.Error("Health check error", zap.String("path", path), zap.String("reason", report), zap.Int("status-code", http.StatusServiceUnavailable))
			http.Error(w, report, http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if _, verbose := r.URL.Query()["verbose"]; verbose {
			fmt.Fprint(w, report)
		}
		fmt.Fprint(w, "ok\n")
	}
}

// filterChecks drops the excluded checks; excluding a check that does not
// exist is ignored (with a warning), as etcd does for compatibility.
func (a *API) filterChecks(set *checkSet, excluded map[string]bool) []check {
	var out []check
	for _, c := range set.checks {
		if excluded[c.name] {
			delete(excluded, c.name)
			continue
		}
		out = append(out, c)
	}
	if len(excluded) > 0 {
		var missing []string
		for name := range excluded {
			missing = append(missing, fmt.Sprintf("%q", name))
		}
		a.lg.Warn("some health checks cannot be excluded", zap.String("missing-health-checks", strings.Join(missing, ",")))
	}
	return out
}

// runChecks runs checks in order and reports one line per check.
func (a *API) runChecks(ctx context.Context, kind string, checks []check) (ok bool, report string) {
	var b strings.Builder
	ok = true
	for _, c := range checks {
		status, result := "success", 1.0
		if err := c.run(ctx); err != nil {
			ok, status, result = false, "error", 0
			fmt.Fprintf(&b, "[-]%s failed: %v\n", c.name, err)
		} else {
			fmt.Fprintf(&b, "[+]%s ok\n", c.name)
		}
		a.checkResult.With(prometheus.Labels{"type": kind, "name": c.name}).Set(result)
		a.checkTotal.With(prometheus.Labels{"type": kind, "name": c.name, "status": status}).Inc()
	}
	return ok, b.String()
}

// querySet returns the non-empty values of query parameter key.
func querySet(r *http.Request, key string) map[string]bool {
	set := map[string]bool{}
	for _, v := range r.URL.Query()[key] {
		if v != "" {
			set[v] = true
		}
	}
	return set
}

// etcdMessages are etcd's texts for the server errors a read can return;
// etcd's health answers quote them.
var etcdMessages = []struct {
	err error
	msg string
}{
	{server.ErrTimeout, rpctypes.ErrorDesc(rpctypes.ErrGRPCTimeout)},
	{server.ErrNoLeader, rpctypes.ErrorDesc(rpctypes.ErrGRPCNoLeader)},
	{server.ErrLeaderChanged, rpctypes.ErrorDesc(rpctypes.ErrGRPCLeaderChanged)},
	{server.ErrStopped, rpctypes.ErrorDesc(rpctypes.ErrGRPCStopped)},
	{server.ErrCanceled, rpctypes.ErrorDesc(rpctypes.ErrGRPCCanceled)},
}

// etcdError gives err etcd's text, keeping it wrapped for errors.Is.
func etcdError(err error) error {
	if err == nil {
		return nil
	}
	for _, e := range etcdMessages {
		if errors.Is(err, e.err) {
			return &withText{msg: e.msg, err: err}
		}
	}
	return err
}

// withText is an error shown with another text.
type withText struct {
	msg string
	err error
}

func (e *withText) Error() string { return e.msg }
func (e *withText) Unwrap() error { return e.err }
