package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/pharos-tsdb/pharos/cluster"
	"github.com/pharos-tsdb/pharos/cluster/ring"
)

// registerDrain adds /ingester/readonly to an ingester process: POST puts
// the instance in READONLY (it takes no new writes but keeps serving
// reads), DELETE makes it ACTIVE again, GET shows the state. Scaling
// ingesters down without losing the only copy of recent data is: POST here,
// wait until the data it holds has been flushed or has aged past what
// queries need (every new series goes to the other replicas meanwhile),
// then stop it.
func (a *App) registerDrain(mux *http.ServeMux) {
	mux.HandleFunc("/ingester/readonly", func(w http.ResponseWriter, r *http.Request) {
		var (
			target ring.State
			change = true
		)
		switch r.Method {
		case http.MethodGet:
			change = false
		case http.MethodPost, http.MethodPut:
			target = ring.StateReadOnly
		case http.MethodDelete:
			target = ring.StateActive
		default:
			w.Header().Set("Allow", "GET, POST, PUT, DELETE")
			http.Error(w, "use GET, POST (drain) or DELETE (undo)", http.StatusMethodNotAllowed)
			return
		}
		if change {
			if err := a.setRingState(target); err != nil {
				code := http.StatusInternalServerError
				if errors.Is(err, errNotInRing) || errors.Is(err, cluster.ErrNotRunning) {
					code = http.StatusServiceUnavailable
				} else if errors.Is(err, errBadTransition) {
					code = http.StatusConflict
				}
				http.Error(w, err.Error(), code)
				return
			}
		}
		state := a.lifecycler.State()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(struct {
			State    string `json:"state"`
			ReadOnly bool   `json:"read_only"`
		}{state.String(), state == ring.StateReadOnly})
	})
}

var (
	errNotInRing     = errors.New("the ingester has not joined the ring yet")
	errBadTransition = errors.New("only an ACTIVE or READONLY ingester can change between the two")
)

// setRingState moves the ingester between ACTIVE and READONLY; the states of
// joining and leaving belong to the lifecycler alone.
func (a *App) setRingState(target ring.State) error {
	select {
	case <-a.lifecycler.Active():
	default:
		return errNotInRing
	}
	switch cur := a.lifecycler.State(); cur {
	case target:
		return nil
	case ring.StateActive, ring.StateReadOnly:
	default:
		return fmt.Errorf("%w (state %s)", errBadTransition, cur)
	}
	if err := a.lifecycler.SetState(target); err != nil {
		return fmt.Errorf("set ring state %s: %w", target, err)
	}
	a.logger.Info("ring state changed by operator", "state", target)
	return nil
}
