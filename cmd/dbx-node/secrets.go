package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
)

// Secrets (the RESP password, the admin token, the gossip key) are best
// given in a file (--requirepass-file, ...) or in the environment
// (DBX_REQUIREPASS, ...): a flag's value is visible to every user of the
// machine in ps and /proc/PID/cmdline. (The admin API's
// /debug/pprof/cmdline redacts them either way.)

// envAnnotation marks a flag that applyEnv set from the environment; its
// value is the variable's name.
const envAnnotation = "dbx-env"

// flagSource names where a set flag came from: "--name" or its variable.
func flagSource(fs *pflag.FlagSet, name string) string {
	if f := fs.Lookup(name); f != nil {
		if v := f.Annotations[envAnnotation]; len(v) > 0 {
			return v[0]
		}
		if v := f.Annotations[configAnnotation]; len(v) > 0 {
			return name + " in " + v[0]
		}
	}
	return "--" + name
}

// secretFlag is a secret given either as --NAME or read from --NAME-file.
type secretFlag struct {
	name  string  // e.g. "requirepass"
	value *string // the flag's variable, set from the file
	file  string  // --NAME-file
}

func addSecretFlag(fs *pflag.FlagSet, value *string, name, usage string) *secretFlag {
	s := &secretFlag{name: name, value: value}
	fs.StringVar(value, name, "", usage+" (visible in ps: prefer --"+name+"-file or "+envName(name)+")")
	fs.StringVar(&s.file, name+"-file", "", "file holding the "+usage+" (trailing newline and spaces removed)")
	return s
}

// resolve reads the file if one is given. Both the flag (or its
// variable) and its file given is an error, as is an empty file or one
// that cannot be read. warn receives a warning for a world-readable file.
func (s *secretFlag) resolve(fs *pflag.FlagSet, warn func(msg string, args ...any)) error {
	fileFlag := s.name + "-file"
	if !fs.Changed(fileFlag) {
		return nil
	}
	if fs.Changed(s.name) {
		return fmt.Errorf("%s and %s both given: use one", flagSource(fs, s.name), flagSource(fs, fileFlag))
	}
	v, err := readSecretFile(s.file, warn)
	if err != nil {
		return fmt.Errorf("%s: %w", flagSource(fs, fileFlag), err)
	}
	*s.value = v
	return nil
}

// readSecretFile returns the content of path without trailing whitespace
// (the newline an editor or echo adds). It refuses an empty file and one
// of several lines, and warns (not refuses: container secrets are often
// mounted 0644) when others may read it.
func readSecretFile(path string, warn func(msg string, args ...any)) (string, error) {
	if path == "" {
		return "", errors.New("empty file name")
	}
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	if st.Size() > 64<<10 {
		return "", fmt.Errorf("%s is %d bytes: too large for a secret (at most 64 KiB)", path, st.Size())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	v := strings.TrimRight(string(b), " \t\r\n")
	if v == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	if strings.ContainsAny(v, "\r\n") {
		return "", fmt.Errorf("%s holds more than one line; a secret is one line", path)
	}
	if perm := st.Mode().Perm(); perm&0o004 != 0 && warn != nil {
		warn("secret file is readable by every user of the machine; chmod 600 it", "file", path, "mode", fmt.Sprintf("%#o", perm))
	}
	return v, nil
}
