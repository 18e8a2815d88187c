package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// chromium runs headless Chromium on url with args (--dump-dom,
// --screenshot=...), bounded by a minute, and returns its stdout.
func chromium(t *testing.T, bin, url string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	base := []string{"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir(), "--virtual-time-budget=4000", "--window-size=1280,820"}
	cmd := exec.CommandContext(ctx, bin, append(append(base, args...), url)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String()
}

// screenshot saves the page as PNG in dir and checks it is one.
func screenshot(t *testing.T, bin, url, dir, name string) {
	t.Helper()
	path := filepath.Join(dir, name)
	chromium(t, bin, url, "--screenshot="+path)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 1000 || !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("%s: %d bytes, not a PNG screenshot", path, len(b))
	}
}

// TestStatusPageChromium loads the admin port's status page in headless
// Chromium: a 3-node cluster shows 3 members and draws 16384 buckets, and
// a drain shows its progress. DBX_STATUS_SCREENSHOTS=DIR keeps the
// screenshots (docs/status-page*.png come from it).
func TestStatusPageChromium(t *testing.T) {
	var bin string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		t.Skip("no Chromium (Debian: apt-get install chromium)")
	}
	shots := os.Getenv("DBX_STATUS_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	c := startCluster(t, 3)
	url := "http://" + c.nodes[0].HTTPAddr() + "/"
	dom := chromium(t, bin, url, "--dump-dom")
	for _, want := range []string{`data-members="3"`, `data-buckets="16384"`, `data-buckets-drawn="16384"`, "3 members", "16384 buckets"} {
		if !strings.Contains(dom, want) {
			t.Errorf("status page lacks %s:\n%.2000s", want, dom)
		}
	}
	for _, id := range []string{"n1", "n2", "n3"} {
		if !strings.Contains(dom, "</span>"+id+"</td>") {
			t.Errorf("status page lacks member %s", id)
		}
	}
	screenshot(t, bin, url, shots, "status-page.png")

	// A slow drain: data, one move at a time at 64 KiB/s.
	ctx := context.Background()
	cl := client(t, c.nodes[0])
	for i := range 1500 {
		if err := cl.Set(ctx, fmt.Sprintf("sp-%d", i), strings.Repeat("d", 2048), 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if code, body, err := post(c.nodes[0].HTTPAddr(), "/v1/migration/limits", `{"concurrency": 1, "bytes_per_sec": 65536}`); err != nil || code != 200 {
		t.Fatalf("limits: %d %s %v", code, body, err)
	}
	if code, body, err := post(c.nodes[0].HTTPAddr(), "/v1/nodes/n3/drain", ``); err != nil || code != 200 {
		t.Fatalf("drain: %d %s %v", code, body, err)
	}
	waitFor(t, 60*time.Second, "the drain under way", func() error {
		if mg := c.nodes[0].ClusterInfo().Migration; !mg.Active || mg.Done == 0 {
			return fmt.Errorf("migration %+v", mg)
		}
		return nil
	})
	dom = chromium(t, bin, url, "--dump-dom")
	m := regexp.MustCompile(`id="moving" data-done="(\d+)" data-total="(\d+)"`).FindStringSubmatch(dom)
	if m == nil {
		t.Fatalf("status page shows no migration progress during a drain:\n%.3000s", dom)
	}
	done, _ := strconv.Atoi(m[1])
	total, _ := strconv.Atoi(m[2])
	if done <= 0 || total <= done || !strings.Contains(dom, "buckets moved") || !strings.Contains(dom, "draining") {
		t.Errorf("drain progress: done %d of %d (want 0 < done < total, n3 draining)", done, total)
	}
	screenshot(t, bin, url, shots, "status-page-drain.png")
}
