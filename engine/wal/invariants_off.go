//go:build !invariants && !race

package wal

// invariantsEnabled turns on checks too costly for production builds.
const invariantsEnabled = false
