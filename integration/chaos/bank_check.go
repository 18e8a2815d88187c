package chaos

import (
	"fmt"
	"strconv"
	"strings"
)

// BankRead is one read of every account in one transaction (MULTI, MGET,
// EXEC), as ParseBankRead made it from the reply.
type BankRead struct {
	Client   int     `json:"client"`
	Node     string  `json:"node"`
	Time     int64   `json:"time"` // ns since the run started, at the reply
	Final    bool    `json:"final,omitempty"`
	Balances []int64 `json:"balances"`
	// Problems lists accounts that were missing or not integers.
	Problems []string `json:"problems,omitempty"`
}

// ParseBankRead builds a BankRead from the MGET reply for accounts (nil
// for a missing key, else a string).
func ParseBankRead(accounts []string, vals []any) BankRead {
	var r BankRead
	if len(vals) != len(accounts) {
		r.Problems = append(r.Problems, fmt.Sprintf("MGET returned %d values for %d accounts", len(vals), len(accounts)))
		return r
	}
	r.Balances = make([]int64, len(accounts))
	for i, v := range vals {
		switch v := v.(type) {
		case nil:
			r.Problems = append(r.Problems, accounts[i]+" missing")
		case string:
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				r.Problems = append(r.Problems, fmt.Sprintf("%s = %q: not an integer", accounts[i], v))
			}
			r.Balances[i] = n
		default:
			r.Problems = append(r.Problems, fmt.Sprintf("%s = %v: unexpected %T", accounts[i], v, v))
		}
	}
	return r
}

// BankResult is the verdict of CheckBank.
type BankResult struct {
	Reads      int
	Violations []string // at most bankViolationsMax, then a count
	Bad        int      // reads with a violation
}

const bankViolationsMax = 20

// OK reports whether every read conserved the total with no negative
// balance and no missing or garbled account.
func (r BankResult) OK() bool { return r.Bad == 0 }

func (r BankResult) String() string {
	if r.OK() {
		return fmt.Sprintf("every read conserves the total: %d reads, 0 violations", r.Reads)
	}
	return fmt.Sprintf("%d of %d reads VIOLATE the invariants:\n    %s", r.Bad, r.Reads, strings.Join(r.Violations, "\n    "))
}

// CheckBank checks that every read of accounts accounts sums to total with
// no negative balance and no problem.
func CheckBank(total int64, accounts int, reads []BankRead) BankResult {
	res := BankResult{Reads: len(reads)}
	for i, r := range reads {
		var why []string
		why = append(why, r.Problems...)
		if len(r.Balances) != accounts && len(r.Problems) == 0 {
			why = append(why, fmt.Sprintf("%d balances, want %d", len(r.Balances), accounts))
		}
		var sum int64
		for a, b := range r.Balances {
			sum += b
			if b < 0 {
				why = append(why, fmt.Sprintf("account %d is negative: %d", a, b))
			}
		}
		if len(r.Problems) == 0 && sum != total {
			why = append(why, fmt.Sprintf("sum %d, want %d", sum, total))
		}
		if len(why) == 0 {
			continue
		}
		res.Bad++
		if len(res.Violations) < bankViolationsMax {
			final := ""
			if r.Final {
				final = " (final read)"
			}
			res.Violations = append(res.Violations, fmt.Sprintf("read %d by client %d via %s at %s%s: %s %v",
				i, r.Client, r.Node, nsString(r.Time), final, strings.Join(why, "; "), r.Balances))
		}
	}
	if res.Bad > len(res.Violations) {
		res.Violations = append(res.Violations, fmt.Sprintf("... and %d more", res.Bad-len(res.Violations)))
	}
	return res
}
