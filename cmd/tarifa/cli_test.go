package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestHelpTellsTheTruth: every help text ends in content, not an empty
// "Flags:"; a subcommand's help lists its own flags only; --version works.
func TestHelpTellsTheTruth(t *testing.T) {
	f := func(args string, wantCode int, want, wantNot []string) {
		t.Helper()
		var out, errOut bytes.Buffer
		code := run(strings.Fields(args), &out, &errOut)
		text := out.String() + errOut.String()
		if code != wantCode {
			t.Errorf("tarifa %s: exit %d, want %d\n%s", args, code, wantCode, text)
		}
		if strings.HasSuffix(strings.TrimSpace(text), "Flags:") {
			t.Errorf("tarifa %s ends in an empty Flags:\n%s", args, text)
		}
		for _, w := range want {
			if !strings.Contains(text, w) {
				t.Errorf("tarifa %s lacks %q:\n%s", args, w, text)
			}
		}
		for _, w := range wantNot {
			if strings.Contains(text, w) {
				t.Errorf("tarifa %s has %q:\n%s", args, w, text)
			}
		}
	}
	f("--version", 0, []string{"tarifa "}, nil)
	f("--help", 0, []string{"TARIFA_LOG_LEVEL", "docs/DESIGN.md", "--version"}, nil)
	f("report mismatches --help", 0, []string{"The mismatches report:", "-by string"}, []string{"Subcommands:", "origterm"})
	f("report --help", 0, []string{"Subcommands:", "origterm", "refresh"}, nil)
	f("rerate resume --help", 0, []string{"-with-current-catalog"}, nil)
	f("rerate --help", 0, []string{"-with-current-catalog", "within a minute"}, nil)
	f("catalog --help", 0, []string{"apply", "check", "docs/DESIGN.md"}, []string{"Flags:"})
	f("catalog", 2, []string{"Subcommands:"}, nil)
	f("catalog check --help", 0, []string{"-f string", "without a database"}, []string{"dry-run", "pg-dsn"})
	f("catalog apply --help", 0, []string{"-dry-run", "-pg-dsn", "catalog apply (FILE)"}, nil)
	f("token --help", 0, []string{"token list", "--expires 90d"}, nil)
	f("token create --help", 0, []string{"-expires", "90d"}, nil)
	f("token list --help", 0, []string{"-format"}, nil)
	f("worker --help", 0, []string{"-progress"}, nil)
	f("gen --help", 0, []string{"-progress", "docs/DESIGN.md"}, nil)
	f("rate --help", 0, []string{"-progress", "docs/DESIGN.md"}, nil)
	f("api --help", 0, []string{"-metrics-addr", "-write-timeout", "1 MiB", "-smtp-addr"}, nil)
	f("invoice --help", 0, []string{"Subcommands:", "statement", "docs/DOMAIN.md"}, []string{"Flags:"})
	f("invoice create --help", 0, []string{"-client", "-from", "-to"}, []string{"-smtp-addr"})
	f("billrun --help", 0, []string{"-dry-run", "-at"}, nil)
	f("mail --help", 0, []string{"Subcommands:", "mail send"}, []string{"Flags:"})
	f("mail", 2, []string{"Subcommands:"}, nil)
	f("mail list --help", 0, []string{"-state", "-limit"}, []string{"-smtp-addr"})
}
