package failpoint

import (
	"strings"
	"testing"
)

func TestParseAndHit(t *testing.T) {
	s, err := Parse("part-after-prepare:3, mig-source-fence")
	if err != nil {
		t.Fatal(err)
	}
	var got []bool
	for range 4 {
		got = append(got, s.Hit("part-after-prepare"))
	}
	if want := []bool{false, false, true, false}; !equal(got, want) {
		t.Errorf("hits of part-after-prepare:3: %v, want %v", got, want)
	}
	if !s.Hit("mig-source-fence") || s.Hit("mig-source-fence") {
		t.Error("mig-source-fence (default 1) must fire on the first hit only")
	}
	if s.Hit("coord-before-decide") {
		t.Error("an unarmed failpoint fired")
	}
	var none *Set
	if none.Hit("part-after-prepare") {
		t.Error("a nil Set fired")
	}
	if s, err := Parse(" "); s != nil || err != nil {
		t.Errorf("empty spec: %v, %v", s, err)
	}
}

func TestParseRefusesBadSpecs(t *testing.T) {
	_, err := Parse("nope,part-after-prepare:x,mig-target-copy:0,coord-before-commit:2")
	for _, want := range []string{`"nope" unknown`, `"part-after-prepare": hit count "x"`, `"mig-target-copy": hit count "0"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not report %s", err, want)
		}
	}
}

func equal(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
