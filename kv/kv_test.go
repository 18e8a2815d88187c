package kv

import "testing"

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		p, s string
		want bool
	}{
		{"", "x", true}, {"*", "", true}, {"*", "abc", true},
		{"a*", "abc", true}, {"a*", "bac", false}, {"*c", "abc", true},
		{"a?c", "abc", true}, {"a?c", "ac", false}, {"h[ae]llo", "hello", true},
		{"h[ae]llo", "hillo", false}, {"h[^e]llo", "hallo", true}, {"h[^e]llo", "hello", false},
		{"h[a-b]llo", "hbllo", true}, {"h[a-b]llo", "hcllo", false}, {`h\*llo`, "h*llo", true},
		{`h\*llo`, "hallo", false}, {"*a*b*c*", "xxaxxbxxcxx", true}, {"*a*b*c*", "xxaxxcxxbxx", false},
		{"key:*", "key:1", true}, {"[abc", "b", true}, {"a**b", "ab", true},
	} {
		if got := Match([]byte(tc.p), []byte(tc.s)); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.p, tc.s, got, tc.want)
		}
	}
}

func TestParseInt(t *testing.T) {
	for in, want := range map[string]bool{
		"0": true, "-1": true, "123": true, "9223372036854775807": true, "-9223372036854775808": true,
		"9223372036854775808": false, "+1": false, "01": false, " 1": false, "": false, "-": false, "-0": false, "1a": false,
	} {
		if _, ok := ParseInt([]byte(in)); ok != want {
			t.Errorf("ParseInt(%q) ok = %v, want %v", in, ok, want)
		}
	}
}
