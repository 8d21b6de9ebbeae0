package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/myelindb/myelin/server/auth"
)

// TestTokenCreate: the token goes to stdout once, the entry (its hash,
// never the token) to stderr, and the entry is what the server loads.
func TestTokenCreate(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := runCommand([]string{"token", "create", "-tenant", "team-a,team-b", "-scopes", "read,write"}, &stdout, &stderr); err != nil {
		t.Fatalf("%v: %s", err, stderr.String())
	}
	tok := strings.TrimSpace(stdout.String())
	if !regexp.MustCompile(`^myelin_[0-9a-f]{64}$`).MatchString(tok) {
		t.Fatalf("token %q", tok)
	}
	if strings.Contains(stderr.String(), tok) {
		t.Fatal("the entry holds the token")
	}
	_, yamlPart, ok := strings.Cut(stderr.String(), "\n\n")
	if !ok {
		t.Fatalf("no entry in %q", stderr.String())
	}
	f, err := parseAuthFile([]byte("tokens:\n" + yamlPart))
	if err != nil {
		t.Fatalf("the printed entry does not parse: %v\n%s", err, yamlPart)
	}
	want := auth.Entry{Name: "team-a-team-b-read-write", Hash: auth.Hash(tok), Tenants: []string{"team-a", "team-b"}, Scopes: []auth.Scope{"read", "write"}}
	if len(f.Tokens) != 1 || !sameEntries(f.Tokens, []auth.Entry{want}) {
		t.Fatalf("entry %+v, want %+v", f.Tokens, want)
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown scope", []string{"-tenant", "a", "-scopes", "root"}, `unknown scope "root"`},
		{"tenant scope without tenant", []string{"-scopes", "write"}, "acts on tenants"},
		{"bad tenant", []string{"-tenant", "a/b", "-scopes", "read"}, "unsupported character"},
		{"no scopes", []string{"-tenant", "a"}, "no scopes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := runCommand(append([]string{"token", "create"}, tc.args...), &stdout, &stderr)
			if err == nil || !strings.Contains(stderr.String(), tc.want) || stdout.Len() > 0 {
				t.Fatalf("err %v, stdout %q, stderr %q; want an error with %q and no token", err, stdout.String(), stderr.String(), tc.want)
			}
		})
	}
}

// TestTokenCreateFile: -file adds the entry to files of several layouts,
// keeping their comments, or refuses and leaves the file alone.
func TestTokenCreateFile(t *testing.T) {
	for _, tc := range []struct {
		name, old string // "" means no file yet
		wantErr   string
		wantNames []string
	}{
		{"new file", "", "", []string{"new"}},
		{"two-space list", "# ours\ntokens:\n  - name: x\n    hash: " + auth.Hash("x") + "\n    scopes: [admin]\n", "", []string{"x", "new"}},
		{"flush list", "tokens:\n- name: x\n  hash: " + auth.Hash("x") + "\n  scopes: [admin]", "", []string{"x", "new"}},
		{"four-space list", "tokens:\n    - name: x\n      hash: " + auth.Hash("x") + "\n      scopes: [admin]\n", "", []string{"x", "new"}},
		{"empty file", "", "", []string{"new"}},
		{"flow list", "tokens: [{name: x, hash: " + auth.Hash("x") + ", scopes: [admin]}]\n", "cannot add the entry", nil},
		{"name taken", "tokens:\n  - name: new\n    hash: " + auth.Hash("x") + "\n    scopes: [admin]\n", "has a token named", nil},
		{"broken file", "tokens: [\n", "auth config", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "auth.yaml")
			if tc.old != "" || tc.name == "empty file" {
				if err := os.WriteFile(path, []byte(tc.old), 0o640); err != nil {
					t.Fatal(err)
				}
			}
			var stdout, stderr bytes.Buffer
			err := runCommand([]string{"token", "create", "-name", "new", "-scopes", "metrics", "-file", path}, &stdout, &stderr)
			b, _ := os.ReadFile(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				if string(b) != tc.old {
					t.Fatalf("file changed after a refusal:\n%s", b)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			f, err := parseAuthFile(b)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range f.Tokens {
				names = append(names, e.Name)
			}
			if strings.Join(names, ",") != strings.Join(tc.wantNames, ",") {
				t.Fatalf("tokens %v, want %v:\n%s", names, tc.wantNames, b)
			}
			if f.Tokens[len(f.Tokens)-1].Hash != auth.Hash(strings.TrimSpace(stdout.String())) {
				t.Fatal("the entry's hash is not the printed token's")
			}
			if strings.HasPrefix(tc.old, "# ours") && !strings.HasPrefix(string(b), "# ours\n") {
				t.Fatal("comment lost")
			}
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			wantMode := os.FileMode(0o600)
			if tc.old != "" || tc.name == "empty file" {
				wantMode = 0o640
			}
			if st.Mode().Perm() != wantMode {
				t.Fatalf("mode %v, want %v", st.Mode().Perm(), wantMode)
			}
			if _, _, err := loadAuthFile(path); err != nil {
				t.Fatalf("the server does not load the file: %v", err)
			}
		})
	}
}

func TestSecretCreate(t *testing.T) {
	var stdout bytes.Buffer
	if err := runCommand([]string{"secret", "create"}, &stdout, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}\n$`).MatchString(stdout.String()) {
		t.Fatalf("secret %q", stdout.String())
	}
	path := filepath.Join(t.TempDir(), "secret")
	if err := runCommand([]string{"secret", "create", "-file", path}, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v %v", st, err)
	}
	if err := runCommand([]string{"secret", "create", "-file", path}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Fatal("an existing secret file was overwritten")
	}
}
