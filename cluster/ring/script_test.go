package ring

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestScripts replays the ring scenarios in testdata/*.txt. Each block is a
// command, a "----" line and the expected output, separated from the next
// block by a blank line. PHAROS_REWRITE=1 rewrites the expected outputs.
//
// Commands (the clock is fixed; heartbeat timeout is one minute):
//
//	add <id> [zone=<z>] [state=<STATE>] tokens=<t>,<t>...
//	state <id> <STATE>     stale <id>     leave <id>
//	get <key> [rf=<n>] [op=read|write]
//	all [rf=<n>] [op=read|write]
//	shares
func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) { runScript(t, f) })
	}
}

func runScript(t *testing.T, path string) {
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	d := NewDesc()
	var out strings.Builder
	blocks := strings.Split(strings.TrimSpace(string(raw)), "\n\n")
	rewrite := os.Getenv("PHAROS_REWRITE") == "1"
	for _, b := range blocks {
		cmd, want, ok := strings.Cut(b, "\n----\n")
		if !ok {
			cmd, want, _ = strings.Cut(strings.TrimSuffix(b, "\n----"), "\n----")
		}
		var comments, command []string
		for _, line := range strings.Split(cmd, "\n") {
			if strings.HasPrefix(line, "#") {
				comments = append(comments, line)
			} else {
				command = append(command, line)
			}
		}
		require.Len(t, command, 1, "one command per block: %q", cmd)
		got := strings.TrimRight(execScript(t, d, command[0]), "\n")
		if !rewrite {
			require.Equal(t, strings.TrimSpace(want), got, "%s: %s", path, command[0])
		}
		for _, c := range comments {
			out.WriteString(c + "\n")
		}
		fmt.Fprintf(&out, "%s\n----\n%s\n\n", command[0], got)
	}
	if rewrite {
		require.NoError(t, os.WriteFile(path, []byte(strings.TrimRight(out.String(), "\n")+"\n"), 0o644))
	}
}

func execScript(t *testing.T, d *Desc, line string) string {
	f := strings.Fields(line)
	args := map[string]string{}
	var pos []string
	for _, a := range f[1:] {
		if k, v, ok := strings.Cut(a, "="); ok {
			args[k] = v
		} else {
			pos = append(pos, a)
		}
	}
	now := testNow.UnixMilli()
	set := func(in Instance) string {
		d.Merge(&Desc{Instances: map[string]Instance{in.ID: in}})
		return "ok"
	}
	get := func(id string) Instance {
		in, ok := d.Get(id)
		require.True(t, ok, "unknown instance %s", id)
		in.Timestamp++ // a newer version of the same instance
		return in
	}
	rf, op := 3, Write
	if v, ok := args["rf"]; ok {
		var err error
		rf, err = strconv.Atoi(v)
		require.NoError(t, err)
	}
	if args["op"] == "read" {
		op = Read
	}
	switch f[0] {
	case "add":
		in := Instance{ID: pos[0], Addr: pos[0] + ":9095", Zone: args["zone"], State: StateActive, Timestamp: now}
		if s, ok := args["state"]; ok {
			st, err := ParseState(s)
			require.NoError(t, err)
			in.State = st
		}
		for tok := range strings.SplitSeq(args["tokens"], ",") {
			v, err := strconv.ParseUint(tok, 10, 32)
			require.NoError(t, err)
			in.Tokens = append(in.Tokens, uint32(v))
		}
		slices.Sort(in.Tokens)
		return set(in)
	case "state":
		in := get(pos[0])
		st, err := ParseState(pos[1])
		require.NoError(t, err)
		in.State = st
		return set(in)
	case "stale":
		in := get(pos[0])
		in.Timestamp = testNow.Add(-2 * testTimeout).UnixMilli()
		d.Instances[in.ID] = in // going back in time is not a merge
		return "ok"
	case "leave":
		return set(d.Tombstone(pos[0], testNow))
	case "get":
		key, err := strconv.ParseUint(pos[0], 10, 32)
		require.NoError(t, err)
		rs, err := NewView(d, testTimeout).ReplicationSet(uint32(key), rf, op, testNow, nil)
		return formatSet(rs, err)
	case "all":
		rs, err := NewView(d, testTimeout).AllHealthy(rf, op, testNow)
		return formatSet(rs, err)
	case "shares":
		shares := NewView(d, testTimeout).TokenShares()
		var lines []string
		for id, s := range shares {
			lines = append(lines, fmt.Sprintf("%s %.4f", id, s))
		}
		slices.Sort(lines)
		return strings.Join(lines, "\n")
	}
	t.Fatalf("unknown command %q", line)
	return ""
}

func formatSet(rs ReplicationSet, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	var b strings.Builder
	for i, in := range rs.Instances {
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString(in.ID)
		if in.Zone != "" {
			b.WriteString("@" + in.Zone)
		}
	}
	fmt.Fprintf(&b, " (max errors %d", rs.MaxErrors)
	if rs.MaxUnavailableZones > 0 {
		fmt.Fprintf(&b, ", max unavailable zones %d", rs.MaxUnavailableZones)
	}
	b.WriteString(")")
	return b.String()
}
