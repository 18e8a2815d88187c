package kv

// Match reports whether s matches the Redis glob pattern p (as KEYS and SCAN
// MATCH): '*' any run of bytes, '?' any one byte, "[abc]", "[^abc]" and
// "[a-z]" classes, '\' escaping the next byte. An empty pattern matches
// everything. It takes O(len(p)·len(s)) time at worst and never recurses.
func Match(p, s []byte) bool {
	if len(p) == 0 {
		return true
	}
	pi, si := 0, 0
	starP, starS := -1, 0 // position after the last '*' and where it resumes in s
	for si < len(s) {
		if pi < len(p) {
			switch p[pi] {
			case '*':
				for pi < len(p) && p[pi] == '*' {
					pi++
				}
				if pi == len(p) {
					return true
				}
				starP, starS = pi, si
				continue
			case '?':
				pi++
				si++
				continue
			case '[':
				if ok, next := matchClass(p, pi, s[si]); ok {
					pi = next
					si++
					continue
				}
			case '\\':
				if pi+1 < len(p) {
					if p[pi+1] == s[si] {
						pi += 2
						si++
						continue
					}
					break
				}
				if s[si] == '\\' { // trailing backslash matches itself
					pi++
					si++
					continue
				}
			default:
				if p[pi] == s[si] {
					pi++
					si++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starS++
		pi, si = starP, starS
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// matchClass matches c against the class starting at p[i] == '['. It returns
// whether c is in the class and the index after the class. A class without
// its closing ']' runs to the end of the pattern.
func matchClass(p []byte, i int, c byte) (bool, int) {
	i++
	not := false
	if i < len(p) && p[i] == '^' {
		not = true
		i++
	}
	match := false
	for i < len(p) && p[i] != ']' {
		switch {
		case p[i] == '\\' && i+1 < len(p):
			i++
			if p[i] == c {
				match = true
			}
			i++
		case i+2 < len(p) && p[i+1] == '-' && p[i+2] != ']':
			lo, hi := p[i], p[i+2]
			if lo > hi {
				lo, hi = hi, lo
			}
			if c >= lo && c <= hi {
				match = true
			}
			i += 3
		default:
			if p[i] == c {
				match = true
			}
			i++
		}
	}
	if i < len(p) {
		i++ // the ']'
	}
	return match != not, i
}
