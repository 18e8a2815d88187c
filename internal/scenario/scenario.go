// Package scenario runs the scenario scripts of dbx's protocol packages
// (twophase, rebalancer, replica): files of blocks
//
//	# comments and blank lines, kept on rewrite
//	command args...
//	----
//	expected output lines
//
// each ended by a blank line. The package parses the blocks, hands each
// command to the test's interpreter, compares its output with the
// expected lines and, when asked, writes the file back with the outputs
// (-rewrite). The commands themselves are each package's own.
//
// It is test support only: nothing outside _test.go files imports it.
package scenario

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Block is one command of a script with what it is expected to print.
type Block struct {
	// Pre are the comment and blank lines before the command.
	Pre []string
	Cmd string
	// Want are the expected output lines.
	Want []string
	// Line is the command's line number in the file.
	Line int
}

// Files lists the scripts in testdata/ (*.txt); none is an error.
func Files() ([]string, error) {
	files, err := filepath.Glob("testdata/*.txt")
	if err == nil && len(files) == 0 {
		err = fmt.Errorf("scenario: no testdata/*.txt")
	}
	return files, err
}

// Parse reads the script at path: its blocks and the comment lines after
// the last one.
func Parse(path string) (blocks []Block, tail []string, err error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	var pre []string
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			pre = append(pre, l)
			continue
		}
		b := Block{Pre: pre, Cmd: l, Line: i + 1}
		pre = nil
		if i+1 >= len(lines) || lines[i+1] != "----" {
			return nil, nil, fmt.Errorf("%s:%d: command without a ---- line", path, i+1)
		}
		for i += 2; i < len(lines) && lines[i] != ""; i++ {
			b.Want = append(b.Want, lines[i])
		}
		blocks = append(blocks, b)
	}
	return blocks, pre, nil
}

// Play runs every block of the script at path through do, which returns
// the command's output ("ok" stands for none), and returns a problem per
// block whose output differs from the expected one. With rewrite it
// reports none and writes the file back with the outputs instead
// (comment lines kept, one blank line after each block).
func Play(path string, rewrite bool, do func(b Block) []string) ([]string, error) {
	blocks, tail, err := Parse(path)
	if err != nil {
		return nil, err
	}
	var problems []string
	var out strings.Builder
	for _, b := range blocks {
		got := do(b)
		if len(got) == 0 {
			got = []string{"ok"}
		}
		for _, l := range b.Pre {
			if l != "" {
				out.WriteString(l + "\n")
			}
		}
		out.WriteString(b.Cmd + "\n----\n" + strings.Join(got, "\n") + "\n\n")
		if !rewrite && strings.Join(got, "\n") != strings.Join(b.Want, "\n") {
			problems = append(problems, fmt.Sprintf("%s:%d: %s\ngot:\n  %s\nwant:\n  %s", path, b.Line, b.Cmd,
				strings.Join(got, "\n  "), strings.Join(b.Want, "\n  ")))
		}
	}
	if rewrite {
		for _, l := range tail {
			out.WriteString(l + "\n")
		}
		if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
			return nil, err
		}
	}
	return problems, nil
}

// Args splits a command line "name a b k=v" into its name, positional
// arguments and key=value arguments.
func Args(cmd string) (name string, pos []string, kv map[string]string) {
	f := strings.Fields(cmd)
	kv = map[string]string{}
	if len(f) == 0 {
		return "", nil, kv
	}
	for _, a := range f[1:] {
		if k, v, ok := strings.Cut(a, "="); ok {
			kv[k] = v
		} else {
			pos = append(pos, a)
		}
	}
	return f[0], pos, kv
}
