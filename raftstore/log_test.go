package raftstore

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func decodeLines(t *testing.T, b *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		out = append(out, m)
	}
	b.Reset()
	return out
}

func TestHCLoggerForwardsToSlog(t *testing.T) {
	var buf bytes.Buffer
	sl := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo, AddSource: true}))
	hl := NewHCLogger(sl, "raft")

	hl.Named("snapshot").With("node", "n1").Info("snapshot taken", "index", 42, "dangling")
	hl.Debug("not shown")
	hl.Trace("not shown")
	lines := decodeLines(t, &buf)
	if len(lines) != 1 {
		t.Fatalf("got %d lines, want 1: %v", len(lines), lines)
	}
	l := lines[0]
	if l["msg"] != "snapshot taken" || l["level"] != "INFO" || l[SubsystemKey] != "raft.snapshot" || l["node"] != "n1" || l["index"] != float64(42) {
		t.Errorf("record %v", l)
	}
	if src, _ := l["source"].(map[string]any); !strings.HasSuffix(src["file"].(string), "log_test.go") {
		t.Errorf("source %v, want this test file", l["source"])
	}

	if hl.IsDebug() || hl.IsTrace() || !hl.IsInfo() || !hl.IsError() {
		t.Error("Is* does not follow the slog handler's level")
	}
	if hl.GetLevel() != hclog.Info {
		t.Errorf("level %v, want info", hl.GetLevel())
	}
	hl.SetLevel(hclog.Warn)
	hl.Info("filtered")
	hl.Log(hclog.Error, "kept")
	lines = decodeLines(t, &buf)
	if len(lines) != 1 || lines[0]["msg"] != "kept" || lines[0]["level"] != "ERROR" {
		t.Errorf("after SetLevel(warn): %v", lines)
	}
	hl.SetLevel(hclog.NoLevel)

	if got := hl.Named("a").ResetNamed("b").Name(); got != "b" {
		t.Errorf("ResetNamed: %q", got)
	}
	if got := hl.With("k", "v").ImpliedArgs(); len(got) != 2 || got[0] != "k" {
		t.Errorf("ImpliedArgs: %v", got)
	}

	std := hl.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})
	std.Print("[WARN] raft: disk is slow")
	std.Print("plain line")
	lines = decodeLines(t, &buf)
	if len(lines) != 2 || lines[0]["level"] != "WARN" || lines[0]["msg"] != "raft: disk is slow" || lines[1]["level"] != "INFO" {
		t.Errorf("standard logger: %v", lines)
	}

	NewHCLogger(nil, "x").Error("discarded") // must not panic
}

func TestHCLoggerFormatsFmtValues(t *testing.T) {
	var buf bytes.Buffer
	l := NewHCLogger(slog.New(slog.NewTextHandler(&buf, nil)), "raft")
	l.Info("initial configuration", "servers", hclog.Fmt("%+v", []int{1, 2}))
	if got := buf.String(); !strings.Contains(got, `servers="[1 2]"`) {
		t.Fatalf("log line %q", got)
	}
}
