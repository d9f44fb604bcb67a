package app

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The UI shares the mux with the APIs and the notifier: its page at
// /alertmanager/ must leave API v2 below it alone, and "/" must lead to it.
func TestAllInOneServesUI(t *testing.T) {
	a, _ := startApp(t, "")
	base := "http://" + a.HTTPAddr()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct {
		path, ctype string
		code        int
	}{
		{"/", "", http.StatusFound},
		{"/graph", "text/html", http.StatusOK},
		{"/cluster", "text/html", http.StatusOK},
		{"/alertmanager/", "text/html", http.StatusOK},
		{"/alertmanager/api/v2/status", "application/json", http.StatusOK},
		{"/api/v1/status/buildinfo", "application/json", http.StatusOK},
		{"/assets/app/main.js", "text/javascript", http.StatusOK},
		{"/ring?format=json", "application/json", http.StatusOK},
	} {
		resp, err := client.Get(base + tc.path)
		require.NoError(t, err, tc.path)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.Equal(t, tc.code, resp.StatusCode, tc.path)
		require.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), tc.ctype), "%s: %s", tc.path, resp.Header.Get("Content-Type"))
		if tc.path == "/" {
			require.Equal(t, "/graph", resp.Header.Get("Location"))
		}
	}
}
