package chaos

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// dockerCallTimeout bounds one docker CLI call (builds get their own bound).
const dockerCallTimeout = 60 * time.Second

// docker runs the docker CLI.
type docker struct {
	bin string
}

func newDocker() (*docker, error) {
	bin, err := exec.LookPath("docker")
	if err != nil {
		return nil, fmt.Errorf("docker CLI not found: %w", err)
	}
	return &docker{bin: bin}, nil
}

// run runs docker args and returns its trimmed stdout; the error carries
// stderr.
func (d *docker) run(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
	defer cancel()
	return runCmd(ctx, d.bin, args...)
}

// runCmd runs name args and returns its trimmed stdout; the error carries
// stderr.
func runCmd(ctx context.Context, name string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		return "", fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, msg)
	}
	return strings.TrimSpace(stdout.String()), nil
}

// DockerAvailable reports why Docker cannot be used here (nil: it can).
func DockerAvailable(ctx context.Context) error {
	d, err := newDocker()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	_, err = d.run(ctx, "info", "--format", "{{.ServerVersion}}")
	return err
}

// execIn returns a command running name args in dir ("" = the current
// directory), killed with ctx.
func execIn(ctx context.Context, dir, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	return cmd
}
