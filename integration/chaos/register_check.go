package chaos

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// RegisterKind is a register operation.
type RegisterKind string

const (
	RegGet RegisterKind = "get"
	RegSet RegisterKind = "set"
	RegCAS RegisterKind = "cas" // compare-and-set: WATCH, GET, MULTI, SET, EXEC
)

// RegisterOp is one register operation as a client saw it. Values are
// unique per write and never empty; "" means the key is absent.
type RegisterOp struct {
	Client int          `json:"client"`
	Node   string       `json:"node"`
	Key    string       `json:"key"`
	Kind   RegisterKind `json:"kind"`
	// Value is what a get read or what a set/cas wrote.
	Value string `json:"value,omitempty"`
	// Expect is the value a cas required.
	Expect string `json:"expect,omitempty"`
	// Swapped reports, for an OK cas, whether EXEC applied the write
	// (false: EXEC answered nil, a watched key had changed).
	Swapped bool    `json:"swapped,omitempty"`
	Outcome Outcome `json:"outcome"`
	// Call and Return are nanoseconds since the run started. Return is
	// meaningless when Outcome is Unknown: the operation stays open.
	Call   int64  `json:"call"`
	Return int64  `json:"return"`
	Err    string `json:"err,omitempty"`
}

type regInput struct {
	Key    string
	Kind   RegisterKind
	Value  string
	Expect string
}

type regOutput struct {
	Value   string
	Swapped bool
	Unknown bool
}

// registerStep is the sequential specification of one key: a register
// holding a string ("" = absent). An unknown cas is decided by the state
// at the point porcupine linearizes it (so also "never", by placing it last).
func registerStep(state, input, output any) (bool, any) {
	s := state.(string)
	in := input.(regInput)
	out := output.(regOutput)
	switch in.Kind {
	case RegGet:
		return out.Unknown || out.Value == s, s
	case RegSet:
		return true, in.Value
	case RegCAS:
		switch {
		case out.Unknown:
			if s == in.Expect {
				return true, in.Value
			}
			return true, s
		case out.Swapped:
			return s == in.Expect, in.Value
		default:
			return s != in.Expect, s
		}
	}
	return false, s
}

// RegisterModel is the porcupine model of a set of independent registers,
// partitioned by key.
var RegisterModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		idx := map[string]int{}
		var out [][]porcupine.Operation
		for _, op := range history {
			k := op.Input.(regInput).Key
			i, ok := idx[k]
			if !ok {
				i = len(out)
				idx[k] = i
				out = append(out, nil)
			}
			out[i] = append(out[i], op)
		}
		return out
	},
	Init: func() any { return "" },
	Step: registerStep,
	DescribeOperation: func(input, output any) string {
		in, out := input.(regInput), output.(regOutput)
		res := ""
		switch {
		case out.Unknown:
			res = " → ?"
		case in.Kind == RegCAS && out.Swapped:
			res = " → ok"
		case in.Kind == RegCAS:
			res = " → no"
		}
		switch in.Kind {
		case RegGet:
			return fmt.Sprintf("%s get → %q", in.Key, out.Value)
		case RegSet:
			return fmt.Sprintf("%s set %q%s", in.Key, in.Value, res)
		default:
			return fmt.Sprintf("%s cas %q→%q%s", in.Key, in.Expect, in.Value, res)
		}
	},
	DescribeState: func(state any) string { return fmt.Sprintf("%q", state.(string)) },
}

// RegisterResult is the verdict of CheckRegister.
type RegisterResult struct {
	Result porcupine.CheckResult
	Info   porcupine.LinearizationInfo
	// Keys, Ops and Open count the partitions, the operations given to
	// porcupine and those left open (unknown outcome).
	Keys, Ops, Open int
	// Dropped counts operations left out: failed ones and reads whose
	// outcome is unknown (neither has an effect).
	Dropped int
	// BadKeys and UnknownKeys name, when the verdict is not Ok, the keys
	// whose own history porcupine found illegal or could not decide.
	BadKeys, UnknownKeys []string
	Took                 time.Duration
}

// OK reports whether porcupine proved the history linearizable. Unknown
// (porcupine ran out of time) is not OK.
func (r RegisterResult) OK() bool { return r.Result == porcupine.Ok }

func (r RegisterResult) String() string {
	verdict := map[porcupine.CheckResult]string{
		porcupine.Ok:      "linearizable",
		porcupine.Illegal: "NOT LINEARIZABLE",
		porcupine.Unknown: "INCONCLUSIVE (porcupine timed out)",
	}[r.Result]
	s := fmt.Sprintf("%s: %d keys, %d operations (%d open, %d failed/unknown reads left out), checked in %s",
		verdict, r.Keys, r.Ops, r.Open, r.Dropped, r.Took.Round(time.Millisecond))
	if len(r.BadKeys) > 0 {
		s += fmt.Sprintf("; not linearizable on %d keys: %s", len(r.BadKeys), strings.Join(firstN(r.BadKeys, 10), " "))
	}
	if len(r.UnknownKeys) > 0 {
		s += fmt.Sprintf("; undecided on %d keys: %s", len(r.UnknownKeys), strings.Join(firstN(r.UnknownKeys, 10), " "))
	}
	return s
}

// RegisterOperations turns a register history into porcupine operations:
// failed operations and unknown reads are left out; unknown writes and
// compare-and-sets stay open (they return after everything else).
func RegisterOperations(ops []RegisterOp) (hist []porcupine.Operation, open, dropped int) {
	end := int64(0)
	for _, op := range ops {
		end = max(end, op.Call, op.Return)
	}
	end++
	for _, op := range ops {
		if op.Outcome == Failed || (op.Outcome == Unknown && op.Kind == RegGet) {
			dropped++
			continue
		}
		in := regInput{Key: op.Key, Kind: op.Kind, Value: op.Value, Expect: op.Expect}
		out := regOutput{Value: op.Value, Swapped: op.Swapped, Unknown: op.Outcome == Unknown}
		ret := op.Return
		if out.Unknown {
			ret = end
			open++
		}
		hist = append(hist, porcupine.Operation{ClientId: op.Client, Input: in, Call: op.Call, Output: out, Return: ret})
	}
	return hist, open, dropped
}

// CheckRegister checks a register history for linearizability, per key,
// giving porcupine at most timeout.
func CheckRegister(ops []RegisterOp, timeout time.Duration) RegisterResult {
	hist, open, dropped := RegisterOperations(ops)
	keys := map[string]bool{}
	for _, op := range ops {
		keys[op.Key] = true
	}
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(RegisterModel, hist, timeout)
	r := RegisterResult{Result: res, Info: info, Keys: len(keys), Ops: len(hist), Open: open, Dropped: dropped}
	if res != porcupine.Ok {
		// Name the culprits: each key on its own, within the same budget.
		for _, part := range RegisterModel.Partition(hist) {
			key := part[0].Input.(regInput).Key
			left := timeout - time.Since(start)
			if left <= 0 {
				r.UnknownKeys = append(r.UnknownKeys, key)
				continue
			}
			switch porcupine.CheckOperationsTimeout(RegisterModel, part, min(left, 10*time.Second)) {
			case porcupine.Illegal:
				r.BadKeys = append(r.BadKeys, key)
			case porcupine.Unknown:
				r.UnknownKeys = append(r.UnknownKeys, key)
			}
		}
		slices.Sort(r.BadKeys)
		slices.Sort(r.UnknownKeys)
	}
	r.Took = time.Since(start)
	return r
}
