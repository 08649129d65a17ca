package console_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// The tests of this file come from attacking the console (issue 14's red
// team, redteam/console): each is a hole that was found, shown closed.

// TestSignInStaysOnThisSite: a link to the sign-in page whose next hides a
// second slash behind a tab (/%09/evil) or a backslash does not send the
// person who signs in to another site, where a fake "session expired,
// paste your token again" page would wait; Chromium drops the tab and
// follows what is left.
func TestSignInStaysOnThisSite(t *testing.T) {
	e := newEnv(t)
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "<title>evil</title>paste your token again")
	}))
	t.Cleanup(evil.Close)
	host := strings.TrimPrefix(evil.URL, "http://")
	b := newBrowser(t, e.srv.URL)
	for _, next := range []string{"/\t/" + host + "/phish", "/\n/" + host + "/phish", "/\\" + host + "/phish"} {
		p := b.person(t)
		p.open("/signin?next=" + url.QueryEscape(next))
		p.fill("#token", e.admin)
		p.click("form[action='/signin'] button")
		if loc := run(p, chromedp.Location()); !strings.HasPrefix(loc, e.srv.URL+"/") {
			t.Errorf("signed in with next %q, the browser is at %s", next, loc)
		}
		// Signed in, the sign-in page sends on at once: the same link must
		// not leave the site either.
		p.open("/signin?next=" + url.QueryEscape(next))
		if loc := run(p, chromedp.Location()); !strings.HasPrefix(loc, e.srv.URL+"/") {
			t.Errorf("already signed in, next %q sent the browser to %s", next, loc)
		}
	}
	v := e.visitor()
	for _, next := range []string{"/\t/" + host, "/ /" + host, "/%09/" + host} {
		code, loc, _ := v.post("/signin", url.Values{"token": {e.admin}, "next": {next}})
		if code != http.StatusSeeOther {
			t.Fatalf("sign-in: %d", code)
		}
		if u, err := url.Parse(loc); err != nil || u.Host != "" || strings.ContainsAny(loc, "\t\r\n\\") {
			t.Errorf("next %q: Location %q", next, fmt.Sprint(loc))
		}
	}
}
