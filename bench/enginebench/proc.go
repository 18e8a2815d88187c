package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// memStatus is the process's resident set size and its peak, from
// /proc/self/status, in bytes.
type memStatus struct {
	RSS  int64 `json:"rss_bytes"`
	Peak int64 `json:"peak_rss_bytes"`
}

func readMemStatus() (memStatus, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return memStatus{}, err
	}
	var m memStatus
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch name {
		case "VmRSS":
			dst = &m.RSS
		case "VmHWM":
			dst = &m.Peak
		default:
			continue
		}
		f := strings.Fields(rest) // "123456 kB"
		if len(f) != 2 || f[1] != "kB" {
			return memStatus{}, fmt.Errorf("/proc/self/status: unexpected %s line %q", name, sc.Text())
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return memStatus{}, fmt.Errorf("/proc/self/status: %s: %w", name, err)
		}
		*dst = kb << 10
	}
	if m.RSS == 0 || m.Peak == 0 {
		return memStatus{}, fmt.Errorf("/proc/self/status: no VmRSS/VmHWM")
	}
	return m, nil
}

// resetPeakRSS resets VmHWM to the current RSS (Linux >= 4.0), so the peak
// read later covers only what follows. It reports whether it worked.
func resetPeakRSS() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// diskInfo describes the file system holding dir: device, mount point,
// type, size and free space.
func diskInfo(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err.Error()
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(abs, &st); err != nil {
		return fmt.Sprintf("%s: statfs: %v", abs, err)
	}
	size := int64(st.Blocks) * st.Bsize
	free := int64(st.Bavail) * st.Bsize
	dev, mnt, typ := mountOf(abs)
	return fmt.Sprintf("%s on %s (mount %s, %s), %s free of %s", abs, dev, mnt, typ, gib(free), gib(size))
}

// mountOf finds the mount holding path in /proc/self/mountinfo (the
// longest mount point that is a prefix of path).
func mountOf(path string) (dev, mnt, typ string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "?", "?", "?"
	}
	dev, mnt, typ = "?", "?", "?"
	for _, line := range strings.Split(string(data), "\n") {
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 2 {
			continue
		}
		mp := f[4]
		inside := path == mp || mp == "/" || strings.HasPrefix(path, mp+"/")
		if inside && (mnt == "?" || len(mp) >= len(mnt)) {
			dev, mnt, typ = g[1], mp, g[0]
		}
	}
	return dev, mnt, typ
}

func gib(n int64) string { return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30)) }
