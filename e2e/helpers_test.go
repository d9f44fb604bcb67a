//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The fake exporters and the fake Slack run in namespaces of their own, so
// they are this test binary re-executed there: TestMain turns into the
// helper named by helperEnv instead of running tests.
const (
	helperEnv = "PHAROS_E2E_HELPER"
	// helperListenEnv: for "exporter", comma-separated addr=file pairs, each
	// address serving the file (re-read per scrape, so a test changes what
	// is exposed by rewriting it); for "slack", the listen address.
	helperListenEnv = "PHAROS_E2E_LISTEN"
	// helperControlEnv is where the exporter reports its scrapes.
	helperControlEnv = "PHAROS_E2E_CONTROL"
)

var (
	pharosBin  string
	testBinary string // this binary, re-executed as a helper
)

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "exporter":
		runExporter()
		return
	case "slack":
		runSlack()
		return
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "e2e: needs root (ip netns, bridges, iptables, mounts)")
		os.Exit(1)
	}
	for _, tool := range []string{"ip", "iptables", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %s not found (apt-get install -y iproute2 iptables)\n", tool)
			os.Exit(1)
		}
	}
	var err error
	if testBinary, err = os.Executable(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	sweepStale(func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) })
	if pharosBin = os.Getenv("PHAROS_E2E_BINARY"); pharosBin == "" {
		// Built once per run, the way users get it.
		var root string
		root, err = filepath.Abs("..")
		if err == nil {
			cmd := exec.Command("make", "-C", root, "build")
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			err = cmd.Run()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e: make build:", err)
			os.Exit(1)
		}
		pharosBin = filepath.Join(root, "bin", "pharos")
	}
	os.Exit(m.Run())
}

// helperFatal ends a helper process that cannot serve.
func helperFatal(err error) {
	fmt.Fprintln(os.Stderr, "helper:", err)
	os.Exit(1)
}

// runExporter serves each configured address from its file and records
// the time of every scrape per address; GET <control>/scrapes returns them.
func runExporter() {
	var (
		mu      sync.Mutex
		scrapes = map[string][]int64{} // addr -> unix ms
	)
	for _, pair := range strings.Split(os.Getenv(helperListenEnv), ",") {
		addr, file, _ := strings.Cut(pair, "=")
		srv := &http.Server{Addr: addr, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			body, err := os.ReadFile(file)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			mu.Lock()
			scrapes[addr] = append(scrapes[addr], time.Now().UnixMilli())
			mu.Unlock()
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			_, _ = w.Write(body)
		})}
		go func() { helperFatal(srv.ListenAndServe()) }()
	}
	ctl := http.NewServeMux()
	ctl.HandleFunc("/scrapes", func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		_ = json.NewEncoder(w).Encode(scrapes)
	})
	helperFatal(http.ListenAndServe(os.Getenv(helperControlEnv), ctl))
}

// slackDelivery is one webhook call as the fake Slack saw it.
type slackDelivery struct {
	At          time.Time `json:"at"`
	Path        string    `json:"path"`
	Attachments []struct {
		Title    string `json:"title"`
		Text     string `json:"text"`
		Fallback string `json:"fallback"`
		Color    string `json:"color"`
	} `json:"attachments"`
}

// status is "firing" or "resolved", from the fallback text that Slack's
// default template starts with ([FIRING:n] or [RESOLVED]).
func (d slackDelivery) status() string {
	if len(d.Attachments) == 0 {
		return ""
	}
	switch fb := d.Attachments[0].Fallback; {
	case strings.HasPrefix(fb, "[FIRING"):
		return "firing"
	case strings.HasPrefix(fb, "[RESOLVED"):
		return "resolved"
	}
	return "unknown"
}

func (d slackDelivery) title() string {
	if len(d.Attachments) == 0 {
		return ""
	}
	return d.Attachments[0].Title
}

// runSlack answers every POST as an incoming webhook does ("ok") and
// records it; GET /deliveries returns everything recorded.
func runSlack() {
	var (
		mu   sync.Mutex
		seen []json.RawMessage
	)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /deliveries", func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		_ = json.NewEncoder(w).Encode(seen)
	})
	mux.HandleFunc("POST /", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var d map[string]any
		if err := json.Unmarshal(body, &d); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		d["at"], d["path"] = time.Now(), r.URL.Path
		rec, _ := json.Marshal(d)
		mu.Lock()
		seen = append(seen, rec)
		mu.Unlock()
		fmt.Fprintf(os.Stderr, "%s delivery %s\n", time.Now().Format(time.RFC3339Nano), body)
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "ok")
	})
	helperFatal(http.ListenAndServe(os.Getenv(helperListenEnv), mux))
}

// syscallKill is SIGKILL by pid, for processes left in a namespace.
func syscallKill(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }
