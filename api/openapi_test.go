package api

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/tarifa/tarifa/catalog"
)

var update = flag.Bool("update", false, "rewrite openapi.json from the route and field tables")

// TestOpenAPIMatchesRoutes: the served document lists exactly the routes
// the server answers, and is the embedded file.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	e := newEnv(t)
	_, served := e.call("", "GET", "/v1/openapi.json", nil)
	if !bytes.Equal(served, openapiDoc) {
		t.Fatal("served document differs from the embedded openapi.json")
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(served, &doc); err != nil {
		t.Fatal(err)
	}
	var inDoc, inMux []string
	for p, ops := range doc.Paths {
		for m := range ops {
			inDoc = append(inDoc, strings.ToUpper(m)+" "+p)
		}
	}
	for _, rt := range e.api.routes() {
		inMux = append(inMux, rt.method+" "+rt.path)
	}
	sort.Strings(inDoc)
	sort.Strings(inMux)
	if strings.Join(inDoc, "\n") != strings.Join(inMux, "\n") {
		t.Fatalf("openapi.json paths:\n%s\n\nroutes:\n%s\n\nrun go test ./api -run OpenAPI -update", strings.Join(inDoc, "\n"), strings.Join(inMux, "\n"))
	}
}

// TestOpenAPIUpToDate regenerates the document from the route and field
// tables; -update rewrites openapi.json.
func TestOpenAPIUpToDate(t *testing.T) {
	s := &Server{}
	doc, err := json.MarshalIndent(buildOpenAPI(s.routes()), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	doc = append(doc, '\n')
	if *update {
		if err := os.WriteFile("openapi.json", doc, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !bytes.Equal(doc, openapiDoc) {
		t.Fatal("openapi.json is out of date: run go test ./api -run OpenAPIUpToDate -update")
	}
}

type obj = map[string]any

func ref(name string) obj { return obj{"$ref": "#/components/schemas/" + name} }

func fieldSchema(f catalog.Field) obj {
	var s obj
	switch f.Kind {
	case catalog.KText, catalog.KNotes, catalog.KName, catalog.KEmail, catalog.KLocale:
		s = obj{"type": "string"}
		if f.Kind == catalog.KEmail {
			s["format"] = "email"
		}
		if f.Kind == catalog.KName {
			s["minLength"] = 1
		}
	case catalog.KCurrency:
		s = obj{"type": "string", "pattern": "^[A-Z]{3}$", "description": "ISO 4217"}
	case catalog.KTimezone:
		s = obj{"type": "string", "example": "Europe/London"}
	case catalog.KMoney:
		s = obj{"type": "string", "format": "decimal", "example": "100.50"}
	case catalog.KMoneyNull:
		s = obj{"type": "string", "format": "decimal", "nullable": true}
	case catalog.KCount:
		s = obj{"type": "integer", "minimum": 0, "nullable": true}
	case catalog.KInt:
		s = obj{"type": "integer", "minimum": f.Min, "maximum": f.Max}
	case catalog.KIntNull:
		s = obj{"type": "integer", "minimum": f.Min, "maximum": f.Max, "nullable": true}
	case catalog.KBool:
		s = obj{"type": "boolean"}
	case catalog.KDate:
		s = obj{"type": "string", "format": "date", "nullable": true}
	case catalog.KTags:
		s = obj{"type": "array", "items": obj{"type": "string"}}
	case catalog.KEnum:
		s = obj{"type": "string", "enum": f.Enum}
	case catalog.KRef:
		s = obj{"type": "integer", "nullable": true}
	case catalog.KRefRequired:
		s = obj{"type": "integer"}
	}
	var notes []string
	if f.Doc != "" {
		notes = append(notes, f.Doc)
	}
	if f.Fixed {
		notes = append(notes, "set on create only")
	}
	if len(notes) > 0 {
		s["description"] = strings.Join(notes, "; ")
	}
	return s
}

func entitySchema(e *catalog.Entity) obj {
	props := obj{"id": obj{"type": "integer", "readOnly": true}}
	var required []string
	for _, f := range e.Fields {
		props[f.Name] = fieldSchema(f)
		if f.Required {
			required = append(required, f.Name)
		}
	}
	props["created_at"] = obj{"type": "string", "format": "date-time", "readOnly": true}
	props["updated_at"] = obj{"type": "string", "format": "date-time", "readOnly": true}
	s := obj{"type": "object", "properties": props}
	if len(required) > 0 {
		s["required"] = required
	}
	return s
}

func props(kv ...any) obj {
	p := obj{}
	for i := 0; i < len(kv); i += 2 {
		p[kv[i].(string)] = kv[i+1]
	}
	return obj{"type": "object", "properties": p}
}

var (
	str      = obj{"type": "string"}
	integer  = obj{"type": "integer"}
	decimalS = obj{"type": "string", "format": "decimal"}
	stamp    = obj{"type": "string", "format": "date-time"}
)

// buildOpenAPI is the OpenAPI 3 document of routes.
func buildOpenAPI(routes []route) obj {
	rateTable := entitySchema(catalog.RateTables)
	rateTable["properties"].(obj)["rates"] = obj{"type": "integer", "readOnly": true, "description": "number of rates"}
	schemas := obj{
		"Error":     props("error", str, "field", str),
		"Reseller":  entitySchema(catalog.Resellers),
		"Manager":   entitySchema(catalog.Managers),
		"Client":    entitySchema(catalog.Clients),
		"Account":   entitySchema(catalog.Accounts),
		"RateTable": rateTable,
		"Rate": props("id", integer, "rate_table_id", integer, "code", str, "code_name", str, "rate", decimalS,
			"effective_from", stamp, "end_date", obj{"type": "string", "format": "date-time", "nullable": true},
			"min_volume", integer, "interval", integer, "grace_volume", integer, "setup_fee", decimalS,
			"time_profile", str, "status", obj{"type": "string", "enum": []string{"active", "stashed"}}, "notes", str, "updated_at", stamp),
		"Transaction": props("id", integer, "client_id", integer, "kind", obj{"type": "string", "enum": []string{"payment", "adjustment", "charge"}},
			"amount", decimalS, "currency", str, "at", stamp, "ref", obj{"type": "string", "nullable": true}, "notes", str, "created_at", stamp),
		"NewTransaction": func() obj {
			s := props("client_id", integer, "kind", obj{"type": "string", "enum": []string{"payment", "adjustment", "charge"}},
				"amount", obj{"type": "string", "format": "decimal", "description": "payment and charge > 0; adjustment ≠ 0, either sign"},
				"currency", obj{"type": "string", "description": "defaults to the client's; must equal it"},
				"at", obj{"type": "string", "format": "date-time", "description": "default now"},
				"ref", obj{"type": "string", "description": "a retry with the same ref answers the stored transaction (200)"}, "notes", str)
			s["required"] = []string{"client_id", "kind", "amount"}
			return s
		}(),
		"Balance": props("client_id", integer, "currency", str, "live", decimalS, "fixed", decimalS, "credit", decimalS,
			"unlimited", obj{"type": "boolean"}, "available", obj{"type": "string", "format": "decimal", "nullable": true, "description": "null for unlimited clients"}),
		"AuthorizeRequest": func() obj {
			s := props("src_ip", str, "src_user", str, "ani", str, "dst", str, "time", obj{"type": "string", "format": "date-time", "description": "default now"})
			s["required"] = []string{"dst"}
			return s
		}(),
		"AuthorizeAnswer": props("allowed", obj{"type": "boolean"},
			"reason", obj{"type": "string", "enum": []string{"", "unknown_account", "inactive_client", "malformed", "unknown_destination", "no_rate", ReasonInsufficientBalance}},
			"client_id", integer, "account_id", integer, "number", str, "currency", str, "unlimited", obj{"type": "boolean"},
			"available", obj{"type": "string", "format": "decimal", "nullable": true},
			"rate", props("code", str, "code_name", str, "rate", decimalS, "effective_from", stamp, "end_date", stamp,
				"min_volume", integer, "interval", integer, "grace_volume", integer, "setup_fee", decimalS, "time_profile", str),
			"max_seconds", obj{"type": "integer", "description": "longest call the available balance pays for, capped at --max-call"}, "at", stamp),
		"ImportResult": props("rate_table_id", integer, "mode", obj{"type": "string", "enum": []string{"merge", "replace"}},
			"dry_run", obj{"type": "boolean"}, "applied", obj{"type": "boolean", "description": "false for a dry run, and for a replace with rejected lines (answered 422)"},
			"added_count", integer, "changed_count", integer, "removed_count", obj{"type": "integer", "description": "replace only"},
			"unchanged_count", integer, "rejected_count", integer,
			"added", obj{"type": "array", "items": props("line", integer, "code", str, "effective_from", stamp, "time_profile", str)},
			"changed", obj{"type": "array", "items": props("line", integer, "code", str, "effective_from", stamp, "time_profile", str)},
			"rejected", obj{"type": "array", "items": props("line", integer, "reason", str)}),
		"AuditRecord": props("id", integer, "at", stamp, "actor", str, "token_id", integer, "action", str, "entity", str,
			"entity_id", integer, "reseller_id", obj{"type": "integer", "nullable": true},
			"before", obj{"type": "object", "nullable": true}, "after", obj{"type": "object", "nullable": true}),
		"Caller": props("token_id", integer, "name", str, "role", obj{"type": "string", "enum": []string{RoleAdmin, RoleReseller, RoleClient}},
			"reseller_id", obj{"type": "integer", "nullable": true, "description": "reseller tokens"},
			"client_id", obj{"type": "integer", "nullable": true, "description": "client tokens"}),
		"LastInvoiced": func() obj {
			s := props("client_ids", obj{"type": "array", "items": integer}, "last_invoiced_at", obj{"type": "string", "format": "date"})
			s["required"] = []string{"client_ids", "last_invoiced_at"}
			return s
		}(),
	}
	for k, v := range billingSchemas() {
		schemas[k] = v
	}
	bodyOf := map[string]string{
		"/v1/resellers": "Reseller", "/v1/managers": "Manager", "/v1/clients": "Client", "/v1/accounts": "Account",
		"/v1/rate-tables": "RateTable", "/v1/transactions": "Transaction",
	}
	schemaFor := func(rt route) (req, resp string, list bool) {
		if req, resp, list, ok := billingSchemaFor(rt); ok {
			return req, resp, list
		}
		p := rt.path
		switch {
		case p == "/v1/authorize":
			return "AuthorizeRequest", "AuthorizeAnswer", false
		case p == "/v1/me":
			return "", "Caller", false
		case p == "/v1/audit":
			return "", "AuditRecord", true
		case p == "/v1/transactions":
			return "NewTransaction", "Transaction", false
		case p == "/v1/clients/last-invoiced":
			return "LastInvoiced", "", false
		case strings.HasSuffix(p, "/balance"):
			return "", "Balance", false
		case strings.HasSuffix(p, "/transactions"):
			return "", "Transaction", true
		case strings.HasSuffix(p, "/accounts"):
			return "Account", "Account", rt.method == "GET"
		case strings.HasSuffix(p, "/rates") && rt.method == "GET":
			return "", "Rate", true
		case strings.HasSuffix(p, "/rates"):
			return "csv", "ImportResult", false
		}
		base := strings.TrimSuffix(p, "/{id}")
		name := bodyOf[base]
		if name == "" {
			return "", "", false
		}
		list = base == p && rt.method == "GET"
		if rt.method == "POST" || rt.method == "PATCH" {
			req = name
		}
		return req, name, list
	}
	paths := obj{}
	for _, rt := range routes {
		op := obj{"summary": rt.summary, "operationId": strings.ToLower(rt.method) + strings.NewReplacer("/", "_", "{", "", "}", "", "-", "_", ".", "_").Replace(rt.path)}
		responses := obj{}
		errs := []string{"400", "401", "403", "404", "409", "413", "422"}
		if rt.roles&public != 0 {
			op["security"] = []any{}
			errs = nil
		} else {
			op["description"] = "Roles: " + roleNames(rt.roles)
		}
		for _, code := range errs {
			responses[code] = obj{"$ref": "#/components/responses/Error"}
		}
		if strings.Contains(rt.path, "{id}") {
			op["parameters"] = []any{obj{"name": "id", "in": "path", "required": true, "schema": integer}}
		}
		req, resp, list := schemaFor(rt)
		switch req {
		case "":
		case "csv":
			op["requestBody"] = obj{"required": true, "content": obj{"text/csv": obj{"schema": obj{"type": "string", "description": "deck CSV (DESIGN.md \"Rate deck CSV\")"}}}}
		default:
			op["requestBody"] = obj{"required": true, "content": obj{"application/json": obj{"schema": ref(req)}}}
		}
		status := "200"
		switch {
		case rt.method == "POST" && strings.HasPrefix(rt.summary, "create"), rt.path == "/v1/clients/{id}/accounts" && rt.method == "POST", rt.path == "/v1/transactions":
			status = "201"
		}
		var content obj
		switch {
		case rt.path == "/v1/clients.csv":
			content = obj{"text/csv": obj{"schema": str}}
		case list:
			content = obj{"application/json": obj{"schema": props("items", obj{"type": "array", "items": ref(resp)}, "total", integer, "limit", integer, "offset", integer)}}
		case resp != "":
			content = obj{"application/json": obj{"schema": ref(resp)}}
		default:
			content = obj{"application/json": obj{"schema": obj{"type": "object"}}}
		}
		responses[status] = obj{"description": "success", "content": content}
		if rt.method == "DELETE" && rt.path == "/v1/clients/{id}" {
			responses["204"] = obj{"description": "fully deleted (?full=true)"}
		}
		op["responses"] = responses
		if paths[rt.path] == nil {
			paths[rt.path] = obj{}
		}
		paths[rt.path].(obj)[strings.ToLower(rt.method)] = op
	}
	return obj{
		"openapi": "3.0.3",
		"info": obj{"title": "Tarifa management API", "version": "1",
			"description": "Resellers, managers, clients, accounts, rate tables, transactions, balances, prepaid authorization and the audit log. " +
				"Amounts are decimal strings (at most 6 decimals and 10^12). Errors are {\"error\", \"field\"}. JSON bodies are at most 1 MiB, " +
				"deck CSVs 64 MiB; a field given twice, text that is not UTF-8 and NUL bytes are refused. See the package doc of github.com/tarifa/tarifa/api."},
		"servers":  []any{obj{"url": "http://127.0.0.1:8480"}},
		"security": []any{obj{"bearer": []any{}}},
		"paths":    paths,
		"components": obj{"schemas": schemas,
			"responses": obj{"Error": obj{"description": "error: 400 bad request, 401 no or bad token, 403 role may not use the endpoint, " +
				"404 not found or outside the caller's scope, 409 conflict with stored state, 413 body too large, 422 invalid value",
				"content": obj{"application/json": obj{"schema": ref("Error")}}}}, "securitySchemes": obj{"bearer": obj{"type": "http", "scheme": "bearer"}}},
	}
}

func roleNames(r roles) string {
	var out []string
	for _, x := range []struct {
		r    roles
		name string
	}{{admin, "admin"}, {reseller, "reseller (own subtree)"}, {client, "client (own client)"}} {
		if r&x.r != 0 {
			out = append(out, x.name)
		}
	}
	return strings.Join(out, ", ")
}
