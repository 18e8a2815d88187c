package server

import (
	"strconv"
	"sync"
	"time"
)

// Bounds of the introspection buffers (CONFIG SET checks against them).
const (
	// SlowlogLenMax bounds slowlog-max-len: an entry keeps at most
	// slowlogArgsMax arguments of slowlogArgBytesMax bytes (~4 KiB).
	SlowlogLenMax      = 10000
	slowlogArgsMax     = 32
	slowlogArgBytesMax = 128
	// latencyHistoryLen is how many samples LATENCY HISTORY keeps per event
	// (Redis's 160, one per second at most).
	latencyHistoryLen = 160
	// LatencyThresholdMsMax bounds latency-monitor-threshold (ms).
	LatencyThresholdMsMax = 1 << 31
)

// slowEntry is one SLOWLOG GET entry.
type slowEntry struct {
	id     int64
	at     int64 // Unix seconds
	usec   int64
	args   []string
	addr   string
	client string
}

// slowlog is Redis's SLOWLOG: the last maxLen commands that took at least
// the threshold, newest first. Only slow commands take its lock.
type slowlog struct {
	mu     sync.Mutex
	maxLen int
	nextID int64
	ring   []slowEntry // ring[(start+i)%len] oldest first
	start  int
}

func (l *slowlog) add(e slowEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.maxLen == 0 {
		return
	}
	e.id = l.nextID
	l.nextID++
	if len(l.ring) < l.maxLen {
		l.ring = append(l.ring, e)
		return
	}
	l.ring[l.start] = e
	l.start = (l.start + 1) % len(l.ring)
}

// newest returns up to n entries, newest first (n < 0: all).
func (l *slowlog) newest(n int) []slowEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n < 0 || n > len(l.ring) {
		n = len(l.ring)
	}
	out := make([]slowEntry, 0, n)
	for i := len(l.ring) - 1; i >= 0 && len(out) < n; i-- {
		out = append(out, l.ring[(l.start+i)%len(l.ring)])
	}
	return out
}

func (l *slowlog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.ring)
}

func (l *slowlog) reset() {
	l.mu.Lock()
	l.ring, l.start = nil, 0
	l.mu.Unlock()
}

// setMaxLen keeps the newest n entries.
func (l *slowlog) setMaxLen(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var keep []slowEntry
	for i := max(len(l.ring)-n, 0); i < len(l.ring); i++ {
		keep = append(keep, l.ring[(l.start+i)%len(l.ring)])
	}
	l.ring, l.start, l.maxLen = keep, 0, n
}

func (l *slowlog) getMaxLen() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.maxLen
}

// slowArgs copies a command's arguments as SLOWLOG keeps them: at most 32
// (the last replaced by "... (N more arguments)"), each at most 128 bytes
// ("... (N more bytes)"), AUTH's and HELLO's secrets redacted.
func slowArgs(cmd *command, args [][]byte) []string {
	n := min(len(args), slowlogArgsMax)
	out := make([]string, n)
	for i := range n {
		a := args[i]
		switch {
		case i == slowlogArgsMax-1 && len(args) > slowlogArgsMax:
			out[i] = "... (" + strconv.Itoa(len(args)-slowlogArgsMax+1) + " more arguments)"
		case i > 0 && cmd != nil && (cmd.name == "auth" || cmd.name == "hello"):
			out[i] = "(redacted)"
		case len(a) > slowlogArgBytesMax:
			out[i] = string(a[:slowlogArgBytesMax]) + "... (" + strconv.Itoa(len(a)-slowlogArgBytesMax) + " more bytes)"
		default:
			out[i] = string(a)
		}
	}
	return out
}

// latencySample is one LATENCY HISTORY point.
type latencySample struct{ at, ms int64 }

// latencyEvent is one event of the latency monitor.
type latencyEvent struct {
	hist  []latencySample // ring, oldest at start
	start int
	max   int64
}

func (e *latencyEvent) latest() latencySample {
	return e.hist[(e.start+len(e.hist)-1)%len(e.hist)]
}

// latencyMonitor is Redis's latency monitor: per event ("command",
// "fast-command") the worst latency of each second it was over the
// threshold, the last latencyHistoryLen of them. Only commands over the
// threshold take its lock.
type latencyMonitor struct {
	mu     sync.Mutex
	events map[string]*latencyEvent // at most the few event names below
}

func (m *latencyMonitor) add(event string, at time.Time, ms int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.events == nil {
		m.events = map[string]*latencyEvent{}
	}
	e := m.events[event]
	if e == nil {
		e = &latencyEvent{}
		m.events[event] = e
	}
	sec := at.Unix()
	e.max = max(e.max, ms)
	if len(e.hist) > 0 {
		if last := &e.hist[(e.start+len(e.hist)-1)%len(e.hist)]; last.at == sec {
			last.ms = max(last.ms, ms)
			return
		}
	}
	if len(e.hist) < latencyHistoryLen {
		e.hist = append(e.hist, latencySample{sec, ms})
		return
	}
	e.hist[e.start] = latencySample{sec, ms}
	e.start = (e.start + 1) % len(e.hist)
}

// snapshot returns a copy of every event: name → samples oldest first, max.
func (m *latencyMonitor) snapshot() map[string]latencyEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]latencyEvent, len(m.events))
	for name, e := range m.events {
		h := make([]latencySample, 0, len(e.hist))
		for i := range e.hist {
			h = append(h, e.hist[(e.start+i)%len(e.hist)])
		}
		out[name] = latencyEvent{hist: h, max: e.max}
	}
	return out
}

// reset drops the named events (all when none is named) and returns how
// many it dropped.
func (m *latencyMonitor) reset(names []string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(names) == 0 {
		n := len(m.events)
		m.events = nil
		return n
	}
	n := 0
	for _, name := range names {
		if _, ok := m.events[name]; ok {
			delete(m.events, name)
			n++
		}
	}
	return n
}
