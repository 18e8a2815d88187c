package server

import (
	"syscall"
	"time"
)

type syscallRusage struct{ syscall.Rusage }

func getRusage(r *syscallRusage) { syscall.Getrusage(syscall.RUSAGE_SELF, &r.Rusage) }

func (r *syscallRusage) cpu() time.Duration {
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}
