package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// fieldSpec is one property of an object as the API's OpenAPI document
// describes it: the console's forms take their types, choices and
// nullability from there, so that a field the API gains appears in them.
type fieldSpec struct {
	Type        string   `json:"type"`
	Format      string   `json:"format"`
	Enum        []string `json:"enum"`
	Nullable    bool     `json:"nullable"`
	ReadOnly    bool     `json:"readOnly"`
	Description string   `json:"description"`
}

// fixed reports whether the document says the field is set on create only.
func (f fieldSpec) fixed() bool { return strings.Contains(f.Description, "set on create only") }

// schema is one object of the API's OpenAPI document.
type schema struct {
	Properties map[string]fieldSpec `json:"properties"`
	Required   []string             `json:"required"`
}

// loadSchemas reads the API's OpenAPI document (a public route).
func (c *Console) loadSchemas() (map[string]schema, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://console/v1/openapi.json", nil)
	rep := &reply{header: http.Header{}}
	c.api.ServeHTTP(rep, req)
	if rep.status != 0 && rep.status != http.StatusOK {
		return nil, fmt.Errorf("console: the API's /v1/openapi.json answered %d", rep.status)
	}
	var doc struct {
		Components struct {
			Schemas map[string]schema `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(rep.body.Bytes(), &doc); err != nil {
		return nil, fmt.Errorf("console: read the API's OpenAPI document: %w", err)
	}
	for _, name := range []string{"Client", "Reseller", "Account", "RateTable", "Manager"} {
		if _, ok := doc.Components.Schemas[name]; !ok {
			return nil, fmt.Errorf("console: the API's OpenAPI document has no %s schema", name)
		}
	}
	return doc.Components.Schemas, nil
}

// layout groups an object's fields for people; fields of the schema it
// does not name land in a last group, so none is ever hidden, and fields
// it names that the schema lacks are left out.
type layout struct {
	schema   string
	groups   []layoutGroup
	skip     []string        // fields the page sets itself (a path's id)
	defaults map[string]bool // what a create form's check boxes start as
}

type layoutGroup struct {
	title  string
	fields []string
}

var (
	clientLayout = layout{schema: "Client", groups: []layoutGroup{
		{"Client", []string{"name", "reseller_id", "manager_id", "status", "currency", "timezone", "tags", "locale"}},
		{"Rating", []string{"bill_by", "orig_rate_table_id", "term_rate_table_id", "routing_plan", "orig_capacity", "term_capacity", "hidden_digits"}},
		{"Credit and terms", []string{"unlimited", "credit_limit", "vendor_credit_limit", "payment_terms_id"}},
		{"Low-balance notification", []string{"notify_client", "notify_admin", "low_balance_threshold", "capacity_under_threshold"}},
		{"Invoicing", []string{"autoinvoice", "invoice_template", "last_invoiced_at", "tax_profile_id", "invoice_rounding", "invoice_precision"}},
		{"Company", []string{"company_name", "email_main", "email_noc", "email_billing", "email_rates", "address", "zip", "tax_id", "reg_id", "account_details"}},
	}}
	resellerLayout = layout{schema: "Reseller", groups: []layoutGroup{
		{"Reseller", []string{"name", "parent_id", "currency", "status"}},
		{"Rating", []string{"orig_rate_table_id", "term_rate_table_id", "orig_capacity", "term_capacity"}},
		{"Credit", []string{"unlimited", "credit_limit"}},
		{"Invoicing", []string{"invoice_template", "invoice_number_template", "invoice_last_number"}},
		{"Company", []string{"company_name", "email", "address", "tax_id", "reg_id"}},
	}}
	accountLayout = layout{schema: "Account", skip: []string{"client_id"}, defaults: map[string]bool{"orig": true}, groups: []layoutGroup{
		{"Account", []string{"kind", "ident", "tech_prefix", "orig", "term", "orig_rate_table_id", "term_rate_table_id", "status"}},
	}}
	rateTableLayout = layout{schema: "RateTable", groups: []layoutGroup{
		{"Rate table", []string{"name", "currency", "parent_id", "reseller_id", "status", "notes"}},
	}}
	managerLayout = layout{schema: "Manager", skip: []string{"reseller_id", "status"}, groups: []layoutGroup{
		{"Manager", []string{"name", "email"}},
	}}
)

// labels are the names people read; others are derived from the field.
var labels = map[string]string{
	"reseller_id": "Reseller", "manager_id": "Manager", "parent_id": "Parent", "orig_rate_table_id": "Orig rate table",
	"term_rate_table_id": "Term rate table", "payment_terms_id": "Payment terms", "bill_by": "Bill events by",
	"unlimited": "Unlimited (postpaid)", "hidden_digits": "Hidden digits", "orig_capacity": "Orig capacity",
	"term_capacity": "Term capacity", "notify_client": "Notify client", "notify_admin": "Notify admin",
	"low_balance_threshold": "Threshold", "capacity_under_threshold": "Capacity under threshold",
	"autoinvoice": "Autoinvoicing", "last_invoiced_at": "Last invoiced date", "email_main": "Main e-mail",
	"email_noc": "NOC e-mail", "email_billing": "Billing e-mail", "email_rates": "Rates e-mail", "email": "E-mail",
	"zip": "ZIP", "tax_id": "Tax ID", "reg_id": "Reg. ID", "ident": "Identifier", "tech_prefix": "Tech prefix",
	"orig": "Orig on", "term": "Term on", "invoice_number_template": "No Tpl (numbering)", "invoice_last_number": "Last No",
	"asr_pct": "ASR %", "acd_s": "ACD (s)", "margin_pct": "Margin %", "orig_currency": "Orig cur", "term_currency": "Term cur",
	"duration_s": "Duration (s)", "orig_client": "Customer (orig)", "term_client": "Vendor (term)", "code_name": "Code name",
	"orig_calls": "Orig calls", "orig_minutes": "Orig minutes", "term_calls": "Term calls", "term_minutes": "Term minutes",
	"credit_limit": "Credit limit", "vendor_credit_limit": "Vendor credit limit", "tax_profile_id": "Tax profile",
}

// label is how a field is named on a page.
func label(name string) string {
	if l, ok := labels[name]; ok {
		return l
	}
	s := strings.ReplaceAll(strings.TrimSuffix(name, "_id"), "_", " ")
	if s == "" {
		return name
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// formField is one input of a form.
type formField struct {
	Name, Label, Help string
	Kind              string // text, checkbox, select, date, textarea
	Value             string
	Checked           bool
	Orig              string // the value shown, to send only what changed
	Options           []option
	ReadOnly          bool
	Mode              string // inputmode: decimal, numeric
	Error             string // the API's message when it names this field
}

type option struct {
	Value, Label string
	Selected     bool
}

type formGroup struct {
	Title  string
	Fields []formField
}

// form is a create or edit form of an object.
type form struct {
	Action string
	Submit string
	Create bool
	Groups []formGroup
	Err    *APIError
	Cancel string
}

// refSource names the list a reference field's choices come from.
var refSource = map[string]string{
	"reseller_id": "/v1/resellers", "manager_id": "/v1/managers", "orig_rate_table_id": "/v1/rate-tables",
	"term_rate_table_id": "/v1/rate-tables", "payment_terms_id": "/v1/payment-terms", "tax_profile_id": "/v1/tax-profiles",
}

// refOptions reads the choices of a reference field from the API; ok is
// false when the API does not answer the list (the field is then a plain
// id input).
func (c *Console) refOptions(r *http.Request, s *session, src string, cache map[string][]option) ([]option, bool) {
	if o, ok := cache[src]; ok {
		return o, o != nil
	}
	var pg page
	if err := c.get(r, s, src, url.Values{"limit": {"1000"}}, &pg); err != nil {
		cache[src] = nil
		return nil, false
	}
	var out []option
	for _, it := range pg.Items {
		l := str(it["name"])
		if cur := str(it["currency"]); cur != "" {
			l += " (" + cur + ")"
		}
		out = append(out, option{Value: str(it["id"]), Label: fmt.Sprintf("%s — #%s", l, str(it["id"]))})
	}
	if out == nil {
		out = []option{}
	}
	cache[src] = out
	return out, true
}

// buildForm lays out the fields of lay with the values of cur (nil for a
// create form, which starts from lay's defaults and init) and the API's
// error, if any.
func (c *Console) buildForm(r *http.Request, s *session, lay layout, cur obj, init map[string]string, apiErr *APIError) []formGroup {
	sc := c.schemas[lay.schema]
	seen := map[string]bool{"id": true, "created_at": true, "updated_at": true}
	for _, f := range lay.skip {
		seen[f] = true
	}
	cache := map[string][]option{}
	field := func(name string) (formField, bool) {
		spec, ok := sc.Properties[name]
		if !ok || spec.ReadOnly {
			return formField{}, false
		}
		ff := formField{Name: name, Label: label(name), Help: spec.Description, Kind: "text"}
		var v any
		if cur != nil {
			v = cur[name]
		} else if d, ok := lay.defaults[name]; ok {
			v = d
		} else if iv, ok := init[name]; ok {
			v = iv
		}
		ff.Value = str(v)
		src := refSource[name]
		if name == "parent_id" {
			src = map[string]string{"Reseller": "/v1/resellers", "RateTable": "/v1/rate-tables"}[lay.schema]
		}
		switch {
		case spec.Type == "boolean":
			ff.Kind = "checkbox"
			ff.Checked = ff.Value == "true"
			ff.Value = strconv.FormatBool(ff.Checked)
		case len(spec.Enum) > 0:
			ff.Kind = "select"
			for _, e := range spec.Enum {
				ff.Options = append(ff.Options, option{Value: e, Label: e, Selected: e == ff.Value})
			}
		case spec.Type == "integer" && src != "":
			if opts, ok := c.refOptions(r, s, src, cache); ok {
				ff.Kind = "select"
				if spec.Nullable || cur == nil {
					ff.Options = append(ff.Options, option{Value: "", Label: "—", Selected: ff.Value == ""})
				}
				found := ff.Value == ""
				for _, o := range opts {
					o.Selected = o.Value == ff.Value
					found = found || o.Selected
					ff.Options = append(ff.Options, o)
				}
				if !found { // a reference the token's lists do not show: keep it
					ff.Options = append(ff.Options, option{Value: ff.Value, Label: "#" + ff.Value, Selected: true})
				}
			} else {
				ff.Mode = "numeric"
			}
		case spec.Type == "integer":
			ff.Mode = "numeric"
		case spec.Format == "decimal":
			ff.Mode = "decimal"
		case spec.Format == "date":
			ff.Kind = "date"
		case spec.Type == "array":
			ff.Help = strings.TrimPrefix(ff.Help+"; comma separated", "; ")
		case name == "notes":
			ff.Kind = "textarea"
		}
		if cur != nil && spec.fixed() {
			ff.ReadOnly = true
		}
		ff.Orig = ff.Value
		if apiErr != nil && apiErr.Field == name {
			ff.Error = apiErr.Msg
		}
		return ff, true
	}
	var groups []formGroup
	for _, g := range lay.groups {
		fg := formGroup{Title: g.title}
		for _, name := range g.fields {
			seen[name] = true
			if ff, ok := field(name); ok {
				fg.Fields = append(fg.Fields, ff)
			}
		}
		if len(fg.Fields) > 0 {
			groups = append(groups, fg)
		}
	}
	var rest []string
	for name := range sc.Properties {
		if !seen[name] {
			rest = append(rest, name)
		}
	}
	sort.Strings(rest)
	other := formGroup{Title: "Other"}
	for _, name := range rest {
		if ff, ok := field(name); ok {
			other.Fields = append(other.Fields, ff)
		}
	}
	if len(other.Fields) > 0 {
		groups = append(groups, other)
	}
	return groups
}

// keepPosted puts what the browser sent back into a form shown again after
// the API refused it, so nothing typed is lost.
func keepPosted(groups []formGroup, r *http.Request) {
	for gi := range groups {
		for fi := range groups[gi].Fields {
			ff := &groups[gi].Fields[fi]
			if ff.ReadOnly {
				continue
			}
			if ff.Kind == "checkbox" {
				ff.Checked = r.PostFormValue(ff.Name) != ""
				ff.Orig = r.PostFormValue("_orig_" + ff.Name)
				continue
			}
			if _, ok := r.PostForm[ff.Name]; !ok {
				continue
			}
			ff.Value = r.PostFormValue(ff.Name)
			ff.Orig = r.PostFormValue("_orig_" + ff.Name)
			for oi := range ff.Options {
				ff.Options[oi].Selected = ff.Options[oi].Value == ff.Value
			}
		}
	}
}

// formBody turns a posted form into the JSON the API takes, typed as its
// document says. A create sends every field given (and every check box);
// an edit only what differs from what the form showed, so that two people
// editing different fields do not undo each other. Nothing is judged
// here: a value of the wrong shape goes to the API as text, and the API's
// refusal is what the operator reads.
func (c *Console) formBody(r *http.Request, lay layout, create bool) map[string]any {
	sc := c.schemas[lay.schema]
	out := map[string]any{}
	names := make([]string, 0, len(sc.Properties))
	for name := range sc.Properties {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		spec := sc.Properties[name]
		if spec.ReadOnly || slices.Contains(lay.skip, name) || name == "id" {
			continue
		}
		_, posted := r.PostForm["_orig_"+name]
		if !posted {
			continue // not on the form
		}
		raw := r.PostFormValue(name)
		if spec.Type == "boolean" {
			raw = strconv.FormatBool(raw != "")
		}
		if !create && raw == r.PostFormValue("_orig_"+name) {
			continue
		}
		if create && raw == "" && spec.Type != "boolean" {
			continue // the API's default
		}
		out[name] = typed(spec, raw)
	}
	return out
}

// typed is raw as the JSON value spec calls for; what does not fit goes as
// the text typed, for the API to refuse with its own message.
func typed(spec fieldSpec, raw string) any {
	t := strings.TrimSpace(raw)
	switch {
	case spec.Type == "boolean":
		return t == "true"
	case t == "" && spec.Nullable:
		return nil
	case spec.Type == "integer":
		if n, err := strconv.ParseInt(t, 10, 64); err == nil {
			return n
		}
		return raw
	case spec.Type == "array":
		tags := []string{}
		for _, p := range strings.Split(raw, ",") {
			if p = strings.TrimSpace(p); p != "" {
				tags = append(tags, p)
			}
		}
		return tags
	}
	return raw
}
