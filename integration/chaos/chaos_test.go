package chaos

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

var (
	flagDuration = flag.Duration("chaos.duration", 0, "fault phase: rounds of every nemesis start while it lasts (0: one round, the CI mode)")
	flagSeed     = flag.Uint64("chaos.seed", 0, "seed of the fault schedule and workloads (0: random, printed)")
	flagNemeses  = flag.String("chaos.nemeses", "", "comma-separated nemeses to run (empty: the default list; none: workloads only): "+nemesisNames())
	flagRebal    = flag.Bool("chaos.rebalance", true, "include the rebalance nemeses (join, reweight, drain, kill-migration-target, kill-migration-source) in the default list")
	flagWorkload = flag.String("chaos.workloads", "", "comma-separated workloads (empty: register,bank,set)")
	flagHold     = flag.Duration("chaos.hold", 8*time.Second, "how long each fault stays (pause: at least "+PauseHold.String()+")")
	flagNodes    = flag.Int("chaos.nodes", 5, "cluster size")
	flagResults  = flag.String("chaos.results", "results", "directory for the results of failed runs (relative: to this package)")
	flagKeep     = flag.Bool("chaos.keep", false, "keep the results directory of a passing run too")
	flagMulti    = flag.String("chaos.multi", "auto", "auto: use WATCH/MULTI/EXEC (compare-and-set, bank) if the server accepts it; off: never")
)

func nemesisNames() string {
	var s []string
	for _, n := range Nemeses() {
		s = append(s, n.Name)
	}
	return strings.Join(s, ",")
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// chaosEnv gates TestChaos: it takes minutes and needs Docker, so plain
// `go test ./...` (and make test) skip it; make chaos sets it.
const chaosEnv = "DBX_CHAOS"

// TestChaos runs a 5-node cluster in Docker under every nemesis with the
// register, bank and set workloads, and fails on any checker violation or
// a cluster that does not recover. See the package doc for the flags.
func TestChaos(t *testing.T) {
	if os.Getenv(chaosEnv) != "1" {
		t.Skipf("chaos suite not requested: set %s=1 (make chaos, make chaos-short) to run it against Docker", chaosEnv)
	}
	ctx := context.Background()
	if err := DockerAvailable(ctx); err != nil {
		t.Skipf("chaos suite skipped: docker info failed: %v", err)
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go tool not in PATH: cannot build dbx-node")
	}
	// Dial failures to killed nodes are expected; go-redis would log each.
	redis.SetLogger(quietLogger{})
	cfg := DefaultRunConfig()
	cfg.Seed = *flagSeed
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64() % 1_000_000
	}
	cfg.Duration, cfg.Hold, cfg.Nodes = *flagDuration, *flagHold, *flagNodes
	cfg.Voters = min(cfg.Nodes, 5)
	nemeses, err := SelectNemeses(splitList(*flagNemeses), *flagRebal)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Nemeses = nemeses
	cfg.Workloads = splitList(*flagWorkload)
	switch *flagMulti {
	case "auto":
	case "off":
		cfg.NoMulti = true
	default:
		t.Fatalf("-chaos.multi %q: want auto or off", *flagMulti)
	}
	cfg.Name = fmt.Sprintf("dbxchaos-%s-%d", time.Now().Format("20060102-150405"), cfg.Seed)
	cfg.Image = cfg.Name + ":image"
	cfg.LogDir = t.TempDir()
	cfg.Logf = func(format string, args ...any) {
		t.Logf("%s "+format, append([]any{time.Now().Format("15:04:05.0")}, args...)...)
	}
	t.Logf("chaos run %s, seed %d (rerun: %s=1 go test ./integration/chaos -run TestChaos -v -chaos.seed %d -chaos.duration %s)",
		cfg.Name, cfg.Seed, chaosEnv, cfg.Seed, cfg.Duration)

	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "Dockerfile")); err != nil {
		t.Fatalf("no Dockerfile at the repository root %s: %v", root, err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := RemoveImage(cctx, cfg.Image); err != nil {
			t.Logf("remove image: %v", err)
		}
	})
	start := time.Now()
	if err := BuildImage(ctx, root, cfg.Image); err != nil {
		t.Fatal(err)
	}
	t.Logf("built static dbx-node and image %s in %s", cfg.Image, time.Since(start).Round(100*time.Millisecond))

	rep, runErr := Run(ctx, cfg)
	out := rep.String()
	fmt.Println(out) // the report, also without -v
	if runErr != nil || !rep.OK() || *flagKeep {
		dir := *flagResults
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(".", dir)
		}
		dir = filepath.Join(dir, cfg.Name)
		if err := rep.Save(dir); err != nil {
			t.Errorf("saving results: %v", err)
		}
		if err := copyDir(cfg.LogDir, filepath.Join(dir, "logs")); err != nil {
			t.Errorf("saving node logs: %v", err)
		}
		abs, _ := filepath.Abs(dir)
		t.Logf("results (history, porcupine view register.html, node logs) kept in %s", abs)
	}
	if runErr != nil {
		t.Fatalf("chaos run %s (seed %d) could not complete: %v", cfg.Name, cfg.Seed, runErr)
	}
	if !rep.OK() {
		t.Fatalf("chaos run %s (seed %d) FAILED:\n  %s", cfg.Name, cfg.Seed, strings.Join(rep.Failures, "\n  "))
	}
}

func copyDir(from, to string) error {
	entries, err := os.ReadDir(from)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(to, 0o755); err != nil {
		return err
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
