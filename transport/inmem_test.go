package transport

import (
	"context"
	"errors"
	"testing"
	"time"
)

func inmemTrio(t *testing.T) (*InmemNetwork, []*Inmem) {
	t.Helper()
	n := NewInmemNetwork()
	var ts []*Inmem
	for _, addr := range []string{"n1", "n2", "n3"} {
		tr, err := NewInmem(n, addr, tcfg())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tr.Close() })
		tr.Serve(echoHandler)
		ts = append(ts, tr)
	}
	return n, ts
}

func TestInmemPartitionAndHeal(t *testing.T) {
	n, ts := inmemTrio(t)
	call := func(from, to int) error {
		_, err := ts[from].Call(testCtx(t, 5*time.Second), ts[to].LocalAddr(), "m", []byte("x"))
		return err
	}
	n.Partition([]string{"n1"}, []string{"n2", "n3"})
	for _, c := range [][2]int{{0, 1}, {1, 0}, {0, 2}} {
		if err := call(c[0], c[1]); !errors.Is(err, ErrUnreachable) {
			t.Errorf("across the partition %v: %v, want ErrUnreachable", c, err)
		}
	}
	if err := call(1, 2); err != nil {
		t.Errorf("within a side: %v", err)
	}
	n.Heal()
	if err := call(0, 1); err != nil {
		t.Errorf("after Heal: %v", err)
	}
	n.Disconnect("n1", "n3")
	if err := call(2, 0); !errors.Is(err, ErrUnreachable) {
		t.Errorf("after Disconnect: %v", err)
	}
	n.Reconnect("n3", "n1")
	if err := call(2, 0); err != nil {
		t.Errorf("after Reconnect: %v", err)
	}
}

func TestInmemCutFailsCallsInFlight(t *testing.T) {
	n, ts := inmemTrio(t)
	started, ended := make(chan struct{}, 1), make(chan error, 1)
	ts[1].Serve(func(ctx context.Context, _, _ string, _ []byte) ([]byte, error) {
		started <- struct{}{}
		<-ctx.Done()
		ended <- ctx.Err()
		return nil, ctx.Err()
	})
	errc := make(chan error, 1)
	go func() {
		_, err := ts[0].Call(testCtx(t, 20*time.Second), "n2", "m", nil)
		errc <- err
	}()
	<-started
	n.Disconnect("n1", "n2")
	if err := <-errc; !errors.Is(err, ErrConnClosed) {
		t.Errorf("call over a cut link: %v, want ErrConnClosed", err)
	}
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Error("the handler was not cancelled when its link was cut")
	}
}

func TestInmemDelay(t *testing.T) {
	n, ts := inmemTrio(t)
	n.SetDelay("n1", "n2", 50*time.Millisecond)
	n.SetDelay("n2", "n1", 30*time.Millisecond)
	start := time.Now()
	if _, err := ts[0].Call(testCtx(t, 5*time.Second), "n2", "m", nil); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 80*time.Millisecond {
		t.Errorf("round trip took %s, want at least the 80ms of delays", took)
	}
	// A deadline shorter than the delay ends the call.
	if _, err := ts[0].Call(testCtx(t, 20*time.Millisecond), "n2", "m", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("deadline within the delay: %v", err)
	}
	n.SetDelay("n1", "n2", 0)
	n.SetDelay("n2", "n1", 0)
	start = time.Now()
	if _, err := ts[0].Call(testCtx(t, 5*time.Second), "n2", "m", nil); err != nil || time.Since(start) > time.Second {
		t.Errorf("without delay: %v after %s", err, time.Since(start))
	}
}

func TestInmemAddressInUse(t *testing.T) {
	n := NewInmemNetwork()
	a, err := NewInmem(n, "x", tcfg())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewInmem(n, "x", tcfg()); !errors.Is(err, ErrBadConfig) {
		t.Errorf("second transport at x: %v, want ErrBadConfig", err)
	}
	_ = a.Close()
	b, err := NewInmem(n, "x", tcfg())
	if err != nil {
		t.Fatalf("address reused after Close: %v", err)
	}
	_ = b.Close()
}

func TestInmemBackpressure(t *testing.T) {
	n := NewInmemNetwork()
	cfg := tcfg()
	cfg.HandlerConcurrencyMax = 1
	a, _ := NewInmem(n, "a", cfg)
	b, _ := NewInmem(n, "b", cfg)
	defer a.Close()
	defer b.Close()
	release, started := make(chan struct{}), make(chan struct{})
	b.Serve(func(context.Context, string, string, []byte) ([]byte, error) {
		close(started)
		<-release
		return nil, nil
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = a.Call(testCtx(t, 5*time.Second), "b", "m", nil)
	}()
	<-started
	if _, err := a.Call(testCtx(t, 5*time.Second), "b", "m", nil); !errors.Is(err, ErrBackpressure) {
		t.Errorf("call above HandlerConcurrencyMax: %v, want ErrBackpressure", err)
	}
	close(release)
	<-done
}
