package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// safeNext keeps a post-sign-in destination on this site: a local path,
// never another host ("//evil" or "/\evil" included). A browser drops
// tabs and line breaks from a Location before it reads it, and reads a
// backslash as a slash, so "/\t/evil" would land on evil: a destination
// with any control character or backslash is refused whole.
func safeNext(next string) string {
	if strings.ContainsFunc(next, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }) {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" ||
		!strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/signin") {
		return "/"
	}
	return next
}

type signinData struct {
	Next    string
	Expired bool
}

func (c *Console) signinPage(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	next := safeNext(r.URL.Query().Get("next"))
	if c.session(r) != nil {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	c.render(w, r, nil, http.StatusOK, "signin", &view{Title: "Sign in", Data: signinData{Next: next, Expired: r.URL.Query().Get("expired") != ""}})
}

// signin checks the token with GET /v1/me and, when the API accepts it,
// starts a session holding it. The browser gets only the session id.
func (c *Console) signin(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	token := strings.TrimSpace(r.PostFormValue("token"))
	next := safeNext(r.PostFormValue("next"))
	refuse := func(status int, msg string) {
		c.signins.WithLabelValues("refused").Inc()
		c.render(w, r, nil, status, "signin", &view{Title: "Sign in", Err: &APIError{Status: status, Msg: msg}, Data: signinData{Next: next}})
	}
	if token == "" {
		refuse(http.StatusUnprocessableEntity, "paste an API token (tarifa token create prints one)")
		return
	}
	rep, err := c.call(r, token, http.MethodGet, "/v1/me", nil, "")
	switch {
	case errors.Is(err, errSignedOut):
		refuse(http.StatusUnauthorized, "the API refused this token: it is unknown, expired or revoked, or its reseller is archived or its client deleted")
		return
	case err != nil:
		c.log.Error("console sign-in failed", "err", err)
		refuse(http.StatusInternalServerError, "internal error (logged by the server)")
		return
	}
	if e := rep.asError(); e != nil {
		refuse(rep.status, e.Error())
		return
	}
	var me struct {
		TokenID    int64  `json:"token_id"`
		Name       string `json:"name"`
		Role       string `json:"role"`
		ResellerID *int64 `json:"reseller_id"`
		ClientID   *int64 `json:"client_id"`
	}
	if err := decode(rep.body.Bytes(), &me); err != nil {
		c.log.Error("console sign-in: /v1/me", "err", err)
		refuse(http.StatusInternalServerError, "internal error (logged by the server)")
		return
	}
	id := identity{TokenID: me.TokenID, TokenName: me.Name, Role: me.Role}
	tmp := &session{token: token}
	var owner obj
	switch {
	case me.ResellerID != nil:
		id.ResellerID = *me.ResellerID
		err = c.get(r, tmp, fmt.Sprintf("/v1/resellers/%d", id.ResellerID), nil, &owner)
	case me.ClientID != nil:
		id.ClientID = *me.ClientID
		err = c.get(r, tmp, fmt.Sprintf("/v1/clients/%d", id.ClientID), nil, &owner)
	}
	if err != nil {
		refuse(http.StatusForbidden, "the API does not let this token read its own reseller or client: "+err.Error())
		return
	}
	id.Owner = str(owner["name"])
	if old := c.session(r); old != nil {
		c.sessions.drop(old)
	}
	s := c.sessions.create(token, id)
	setCookie(w, r, s.id, 0)
	c.signins.WithLabelValues("ok").Inc()
	c.log.Info("console sign-in", "token_id", id.TokenID, "role", id.Role)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) signout(w http.ResponseWriter, r *http.Request, s *session) error {
	c.sessions.drop(s)
	setCookie(w, r, "", -1)
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
	return nil
}

// setTimezone chooses the timezone the session's dates and reports use.
func (c *Console) setTimezone(w http.ResponseWriter, r *http.Request, s *session) error {
	tz := strings.TrimSpace(r.PostFormValue("tz"))
	if _, err := time.LoadLocation(tz); err != nil || tz == "" || tz == "Local" {
		c.sessions.addFlash(s, "error", fmt.Sprintf("unknown timezone %q: want an IANA name such as Europe/London", tz))
	} else {
		c.sessions.setTZ(s, tz)
	}
	return c.redirect(w, r, s, safeNext(r.PostFormValue("next")), "")
}
