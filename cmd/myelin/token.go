package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/myelindb/myelin/server/auth"
)

// commandsUsage lists the commands besides serving.
const commandsUsage = `Commands:
  myelin token create -tenant T[,T...] -scopes S[,S...] [-name N] [-file F]
      Make an auth token: prints it once on stdout, and its entry (the hash, never
      the token) for -auth.config-file on stderr, or adds the entry to file F.
      Scopes: write, read, rules, alertmanager, metrics, admin.
  myelin secret create [-file F]
      Make a cluster secret for -raft.secret-file (64 hex digits), on stdout or
      into a new file F (mode 0600). Every node of a cluster gets the same one.
  myelin import [-url U] [-tenant T] [-token-file F] [-format prometheus|openmetrics|native] FILE|-
  myelin import [-url U] [-tenant T] [-token-file F] -tsdb DIR
      Backfill a Prometheus text / OpenMetrics file with timestamps through
      POST /api/v1/import/prometheus, or a native export or a Prometheus TSDB
      directory (read-only; staleness markers and native histograms too) through
      remote write 2.0 to /api/v1/push; shows progress on stderr and what was
      written and refused.
  myelin export [-url U] [-tenant T] [-token-file F] [-match SEL]... [-start T] [-end T] [-format prometheus|native] [-o FILE]
      Write a tenant's series in the Prometheus text format with timestamps
      (GET /api/v1/export), or in the native format with staleness markers and
      native histograms (GET /api/v1/export/native); myelin import reads both back.
`

// runCommand runs a command (args[0] is not a flag): token, secret,
// import or export.
func runCommand(args []string, stdout, stderr io.Writer) error {
	return runCommandContext(context.Background(), args, stdout, stderr)
}

// runCommandContext is runCommand, stopped early when ctx is done.
func runCommandContext(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	switch args[0] {
	case "import":
		return importCommand(ctx, args[1:], stdout, stderr)
	case "export":
		return exportCommand(ctx, args[1:], stdout, stderr)
	}
	switch strings.Join(args[:min(2, len(args))], " ") {
	case "token create":
		return tokenCreate(args[2:], stdout, stderr)
	case "secret create":
		return secretCreate(args[2:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "unknown command %q\n\n%s", strings.Join(args, " "), commandsUsage)
	return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
}

// tokenCreate runs `myelin token create`.
func tokenCreate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("myelin token create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tenants := fs.String("tenant", "", "Comma-separated `tenants` the token acts on (for write, read, rules, alertmanager).")
	scopes := fs.String("scopes", "", "Comma-separated `scopes`: write, read, rules, alertmanager, metrics, admin.")
	name := fs.String("name", "", "The token's `name` in the file and in logs; default: tenants and scopes.")
	file := fs.String("file", "", "Add the entry to this auth config `file` (created if missing) instead of printing it.")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected arguments: %q\n", fs.Args())
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	e := auth.Entry{Name: *name, Tenants: splitList(*tenants)}
	for _, s := range splitList(*scopes) {
		e.Scopes = append(e.Scopes, auth.Scope(s))
	}
	if e.Name == "" {
		parts := e.Tenants
		if len(parts) == 0 {
			parts = []string{"cluster"}
		}
		for _, s := range e.Scopes {
			parts = append(parts, string(s))
		}
		e.Name = strings.Join(parts, "-")
	}
	token, err := auth.NewToken(nil)
	if err != nil {
		return err
	}
	e.Hash = auth.Hash(token)
	// The same checks as the server's, before anything is printed.
	if _, err := auth.NewKeys([]auth.Entry{e}); err != nil {
		fmt.Fprintln(stderr, err)
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	entry, err := yaml.Marshal([]auth.Entry{e})
	if err != nil {
		return err
	}
	if *file != "" {
		if err := appendAuthEntry(*file, e, entry); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", token)
		fmt.Fprintf(stderr, "Added token %q to %s; a running node loads it at its next check of the file or on SIGHUP.\n"+
			"The token above is shown only now: store it where its client reads it.\n", e.Name, *file)
		return nil
	}
	fmt.Fprintf(stdout, "%s\n", token)
	fmt.Fprintf(stderr, "The token above is shown only now: store it where its client reads it.\n"+
		"Add this entry under \"tokens:\" in the -auth.config-file:\n\n%s", indent(entry, "  "))
	return nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func indent(b []byte, prefix string) string {
	var out strings.Builder
	for line := range strings.Lines(string(b)) {
		out.WriteString(prefix + line)
	}
	return out.String()
}

// appendAuthEntry adds e (entry is its YAML, a one-item list) to the auth
// config file at path, creating it. The file is edited as text, keeping
// its comments, then read back: if it does not hold its old tokens and e
// after them (a layout the append does not fit), it is left as it was.
// The new file replaces the old at once (a running node never reads half
// of it).
func appendAuthEntry(path string, e auth.Entry, entry []byte) error {
	old, err := os.ReadFile(path)
	mode := os.FileMode(0o600)
	switch {
	case errors.Is(err, os.ErrNotExist):
		old = []byte("# Myelin auth tokens (-auth.config-file): made by 'myelin token create'.\ntokens:\n")
	case err != nil:
		return fmt.Errorf("read auth config: %w", err)
	default:
		if st, err := os.Stat(path); err == nil {
			mode = st.Mode().Perm()
		}
	}
	f, err := parseAuthFile(old)
	if err != nil {
		return fmt.Errorf("auth config %s: %w", path, err)
	}
	if slices.ContainsFunc(f.Tokens, func(t auth.Entry) bool { return t.Name == e.Name }) {
		return fmt.Errorf("auth config %s has a token named %q already: give another -name", path, e.Name)
	}
	want := append(slices.Clone(f.Tokens), e)
	base := old
	if len(base) > 0 && base[len(base)-1] != '\n' {
		base = append(base, '\n')
	}
	if len(f.Tokens) == 0 && !bytes.Contains(base, []byte("tokens:")) {
		base = append(base, "tokens:\n"...)
	}
	// Indent like the file's list items, else two spaces, else none.
	prefixes := []string{"  ", ""}
	if m := listItemRe.FindSubmatch(base); m != nil {
		prefixes = append([]string{string(m[1])}, prefixes...)
	}
	var next []byte
	for _, prefix := range prefixes {
		b := append(slices.Clone(base), indent(entry, prefix)...)
		if got, err := parseAuthFile(b); err == nil && sameEntries(got.Tokens, want) {
			next = b
			break
		}
	}
	if next == nil {
		return fmt.Errorf("auth config %s: cannot add the entry to this file's layout; add it under \"tokens:\" by hand:\n%s", path, entry)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".auth-*.yaml")
	if err != nil {
		return fmt.Errorf("write auth config: %w", err)
	}
	_, err = tmp.Write(next)
	err = errors.Join(err, tmp.Chmod(mode), tmp.Sync(), tmp.Close())
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write auth config %s: %w", path, err)
	}
	return nil
}

// listItemRe finds the indentation of a file's first list item.
var listItemRe = regexp.MustCompile(`(?m)^( *)- `)

func sameEntries(a, b []auth.Entry) bool {
	return slices.EqualFunc(a, b, func(x, y auth.Entry) bool {
		return x.Name == y.Name && x.Hash == y.Hash && slices.Equal(x.Tenants, y.Tenants) && slices.Equal(x.Scopes, y.Scopes)
	})
}

// secretCreate runs `myelin secret create`: 32 random bytes in hex.
func secretCreate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("myelin secret create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("file", "", "Write the secret to this new `file` (mode 0600) instead of stdout.")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	secret := hex.EncodeToString(b) + "\n"
	if *file == "" {
		_, err := io.WriteString(stdout, secret)
		return err
	}
	f, err := os.OpenFile(*file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write cluster secret: %w", err)
	}
	_, err = f.WriteString(secret)
	if err = errors.Join(err, f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("write cluster secret %s: %w", *file, err)
	}
	return nil
}
