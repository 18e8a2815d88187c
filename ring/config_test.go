package ring

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestDefaultConfigValid(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings of the error, all present; nil = valid
	}{
		{"default", DefaultConfig(), nil},
		{"exact quotas", Config{VnodesPerNode: 64, RF: 1, LoadEpsilon: 0}, nil},
		{"limits", Config{VnodesPerNode: MaxVnodesPerNode, RF: MaxRF, LoadEpsilon: MaxLoadEpsilon}, nil},
		{"zero vnodes", Config{VnodesPerNode: 0, RF: 1, LoadEpsilon: 0.1}, []string{"VnodesPerNode (0)"}},
		{"too many vnodes", Config{VnodesPerNode: MaxVnodesPerNode + 1, RF: 1}, []string{"VnodesPerNode (65537) must be in [1, 65536]"}},
		{"rf 0", Config{VnodesPerNode: 8, RF: 0}, []string{"RF (0) must be in [1, 16]"}},
		{"rf too big", Config{VnodesPerNode: 8, RF: 17}, []string{"RF (17)"}},
		{"negative epsilon", Config{VnodesPerNode: 8, RF: 1, LoadEpsilon: -0.1}, []string{"LoadEpsilon (-0.1)"}},
		{"NaN epsilon", Config{VnodesPerNode: 8, RF: 1, LoadEpsilon: math.NaN()}, []string{"LoadEpsilon (NaN)"}},
		{"all at once", Config{VnodesPerNode: -1, RF: 99, LoadEpsilon: 2}, []string{"VnodesPerNode (-1)", "RF (99)", "LoadEpsilon (2)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrBadConfig) {
				t.Fatalf("Validate() = %v, want ErrBadConfig", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, missing %q", err, w)
				}
			}
		})
	}
}
