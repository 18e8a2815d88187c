package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/dbx-kv/dbx/node"
)

// configFileBytesMax bounds a --config file.
const configFileBytesMax = 1 << 20

// configAnnotation marks a flag set from the --config file.
const configAnnotation = "dbx-config-file"

// applyConfigFile sets, from the TOML file named by --config (or
// DBX_CONFIG), every flag that neither the command line nor the
// environment set: flags win over the environment, which wins over the
// file. Keys are flag names ("resp-addr", or "resp_addr"); values are
// strings, numbers, booleans, or arrays (joined with commas, as
// --join a,b). An unknown key, a nested table or a bad value is an error
// naming it, all of them at once.
func applyConfigFile(fs *pflag.FlagSet) error {
	f := fs.Lookup("config")
	if f == nil || f.Value.String() == "" {
		return nil
	}
	path := f.Value.String()
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	if st.Size() > configFileBytesMax {
		return fmt.Errorf("--config %s: %d bytes, over %d", path, st.Size(), configFileBytesMax)
	}
	var doc map[string]any
	if _, err := toml.DecodeFile(path, &doc); err != nil {
		return fmt.Errorf("--config %s: %w", path, err)
	}
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var errs []error
	for _, k := range keys {
		name := strings.ReplaceAll(k, "_", "-")
		fl := fs.Lookup(name)
		if fl == nil || name == "config" || name == "help" {
			errs = append(errs, fmt.Errorf("--config %s: unknown setting %q (settings are serve's flag names)", path, k))
			continue
		}
		if fl.Changed || len(fl.Annotations[envAnnotation]) > 0 {
			continue // the command line or the environment wins
		}
		v, err := configValue(doc[k])
		if err != nil {
			errs = append(errs, fmt.Errorf("--config %s: %s: %v", path, k, err))
			continue
		}
		if err := fs.Set(name, v); err != nil {
			errs = append(errs, fmt.Errorf("--config %s: %s: %v", path, k, err))
			continue
		}
		fs.SetAnnotation(name, configAnnotation, []string{path})
	}
	return errors.Join(errs...)
}

func configValue(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			s, err := configValue(e)
			if err != nil {
				return "", err
			}
			if _, nested := e.([]any); nested {
				return "", errors.New("nested arrays are not settings")
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, ","), nil
	default:
		return "", fmt.Errorf("a %T is not a setting (want a string, number, boolean or array)", v)
	}
}

// newHealthcheckCmd is what the image's HEALTHCHECK runs (the image has no
// shell, no curl): GET /healthz on the node's admin port, exit 0 on 200.
func newHealthcheckCmd() *cobra.Command {
	addr := node.DefaultHTTPAddr
	timeout := 3 * time.Second
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Exit 0 if the node's /healthz answers 200 (for Docker HEALTHCHECK and probes)",
		Long: "GET http://ADDR/healthz (no token needed) and exit 0 on 200, 1 otherwise,\n" +
			"printing the answer. --http-addr defaults to DBX_HTTP_ADDR, as serve's; an\n" +
			"unspecified host (0.0.0.0, [::]) is dialled on loopback.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			code, body, err := healthz(ctx, addr)
			msg := ""
			switch {
			case err != nil:
				msg = "unhealthy: " + err.Error()
			case code != http.StatusOK:
				msg = fmt.Sprintf("unhealthy: /healthz answered %d %s", code, body)
			default:
				fmt.Fprintf(cmd.OutOrStdout(), "%d %s\n", code, body)
				return nil
			}
			fmt.Fprintln(cmd.ErrOrStderr(), msg)
			return &exitError{code: 1, msg: msg}
		},
	}
	cmd.Flags().StringVar(&addr, "http-addr", addr, "the node's admin API address H:P")
	cmd.Flags().DurationVar(&timeout, "timeout", timeout, "give up after this long (1ms..1m)")
	cmd.PreRunE = func(*cobra.Command, []string) error {
		if timeout < time.Millisecond || timeout > time.Minute {
			return fmt.Errorf("--timeout %s must be in [1ms, 1m]", timeout)
		}
		return nil
	}
	return cmd
}

// healthz asks addr's /healthz; the body is cut to 256 bytes.
func healthz(ctx context.Context, addr string) (int, string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, "", fmt.Errorf("--http-addr %q: %v", addr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/healthz", nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}
