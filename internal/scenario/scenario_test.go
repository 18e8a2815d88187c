package scenario

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A script's blocks reach the interpreter in order; a differing output is
// a problem naming the line; rewrite writes the outputs back, comments
// kept, so the next play has none.
func TestPlayComparesAndRewrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.txt")
	script := "# first\necho a b\n----\na b\n\n\necho c k=v\n----\nwrong\n\n# end\n"
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	var seen []string
	echo := func(b Block) []string {
		seen = append(seen, b.Cmd)
		_, pos, kv := Args(b.Cmd)
		if kv["k"] != "" {
			pos = append(pos, "k="+kv["k"])
		}
		return []string{strings.Join(pos, " ")}
	}
	problems, err := Play(path, false, echo)
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 || seen[1] != "echo c k=v" {
		t.Fatalf("commands seen: %q", seen)
	}
	if len(problems) != 1 || !strings.Contains(problems[0], ":7: echo c k=v") || !strings.Contains(problems[0], "c k=v") {
		t.Fatalf("problems: %q", problems)
	}
	if _, err := Play(path, true, echo); err != nil {
		t.Fatal(err)
	}
	if problems, err = Play(path, false, echo); err != nil || len(problems) != 0 {
		t.Fatalf("after rewrite: %q, %v", problems, err)
	}
	raw, _ := os.ReadFile(path)
	if !strings.Contains(string(raw), "# first\n") || !strings.Contains(string(raw), "# end\n") {
		t.Fatalf("comments lost on rewrite:\n%s", raw)
	}
}

func TestParseRefusesACommandWithoutOutput(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.txt")
	if err := os.WriteFile(path, []byte("echo a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Parse(path); err == nil || !strings.Contains(err.Error(), ":1: command without") {
		t.Fatalf("Parse = %v", err)
	}
}
