package ingest

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func TestDecode(t *testing.T) {
	var c CDR
	in := `{"id":"c1","switch":"sw-1","setup_time":"2024-02-15T10:00:00Z","connect_time":"2024-02-15T11:00:06+01:00",
		"disconnect_time":"2024-02-15T10:01:06.25Z","duration":60.25,"src_ip":"203.0.113.10","src_user":"acme",
		"ani":"4420","dst":"+447700900123","term_ip":"198.51.100.7","term_user":"v\u00e9ndor \"x\"","sip_code":200,"cause":16,
		"extra":{"a":[1,2,{"b":"}"}],"c":null},"flag":true,"n":-1.5e3}`
	if err := Decode([]byte(in), &c); err != nil {
		t.Fatal(err)
	}
	want := CDR{ID: "c1", Switch: "sw-1", SetupTime: ts("2024-02-15T10:00:00Z"), ConnectTime: ts("2024-02-15T10:00:06Z"),
		DisconnectTime: ts("2024-02-15T10:01:06.25Z"), Duration: 60250 * time.Millisecond, SrcIP: "203.0.113.10",
		SrcUser: "acme", ANI: "4420", Dst: "+447700900123", TermIP: "198.51.100.7", TermUser: "véndor \"x\"",
		SIPCode: 200, Cause: 16}
	c.scratch, c.spans, c.whole = nil, want.spans, false
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
}

func TestDecodeDuration(t *testing.T) {
	f := func(fields string, want time.Duration) {
		t.Helper()
		var c CDR
		in := `{"id":"x","dst":"1","setup_time":"2024-01-01T00:00:00Z",` + fields + `}`
		if err := Decode([]byte(in), &c); err != nil {
			t.Fatalf("%s: %v", fields, err)
		}
		if c.Duration != want {
			t.Fatalf("%s: got %v, want %v", fields, c.Duration, want)
		}
	}
	answered := `"connect_time":"2024-01-01T00:00:10Z","disconnect_time":"2024-01-01T00:01:10.5Z"`
	f(answered, 60500*time.Millisecond)
	f(answered+`,"duration":30.1`, 30100*time.Millisecond)
	f(answered+`,"duration":71.5`, 71500*time.Millisecond) // a second of rounding beyond setup to disconnect
	f(answered+`,"duration":0.1`, 100*time.Millisecond)
	f(answered+`,"duration":30.0000000001`, 30*time.Second+1) // finer than ns rounds up
	f(answered+`,"duration":3.01e1`, 30100*time.Millisecond)
	f(answered+`,"duration":301E-1`, 30100*time.Millisecond)
	f(answered+`,"duration":0`, 0)
	f(answered+`,"duration":-0`, 0)
	f(answered+`,"duration":null`, 60500*time.Millisecond)
	f(`"disconnect_time":"2024-01-01T00:01:10Z"`, 0)                                  // not answered
	f(`"connect_time":null,"disconnect_time":"2024-01-01T00:01:10Z","duration":5`, 0) // not answered: 0 whatever duration says
	f(`"connect_time":"","disconnect_time":"2024-01-01T00:01:10Z"`, 0)
}

func TestDecodeMalformed(t *testing.T) {
	f := func(in, wantID, wantDetail string) {
		t.Helper()
		var c CDR
		err := Decode([]byte(in), &c)
		var me *MalformedError
		if !errors.As(err, &me) || me.Detail != wantDetail || c.ID != wantID {
			t.Fatalf("%s: got %v (id %q), want %q (id %q)", in, err, c.ID, wantDetail, wantID)
		}
	}
	good := `"setup_time":"2024-01-01T00:00:00Z","disconnect_time":"2024-01-01T00:01:00Z","dst":"1"`
	f(``, "", "invalid json: empty message")
	f(`not json`, "", "invalid json: not an object")
	f(`[1]`, "", "invalid json: not an object")
	f(`{"id":"a",`, "a", "invalid json: expected a field name")
	f(`{"id":"a"} x`, "a", "invalid json: data after the object")
	f(`{"id":"a","x":[1,}`, "a", "invalid json: bad value")
	f(`{"id":"a","x":"\q"}`, "a", "invalid json: bad value")
	f(`{"id":"a\q"}`, "", "invalid json: bad string")
	f(`{`+good+`}`, "", "missing id")
	f(`{"id":"",`+good+`}`, "", "missing id")
	f(`{"id":7,`+good+`}`, "", "id: not a string")
	f(`{"id":"a","disconnect_time":"2024-01-01T00:01:00Z","dst":"1"}`, "a", "missing setup_time")
	f(`{"id":"a","setup_time":"2024-01-01T00:00:00Z","dst":"1"}`, "a", "missing disconnect_time")
	f(`{"id":"a","setup_time":"2024-01-01","disconnect_time":"2024-01-01T00:01:00Z","dst":"1"}`, "a", "setup_time: not an RFC 3339 time")
	f(`{"id":"a","setup_time":"2024-02-30T00:00:00Z","disconnect_time":"2024-03-01T00:01:00Z","dst":"1"}`, "a", "setup_time: not an RFC 3339 time")
	f(`{"id":"a","setup_time":"2024-01-01T00:02:00Z","disconnect_time":"2024-01-01T00:01:00Z","dst":"1"}`, "a", "disconnect_time before setup_time")
	f(`{"id":"a",`+good+`,"connect_time":"2023-12-31T23:59:59Z"}`, "a", "connect_time before setup_time")
	f(`{"id":"a",`+good+`,"connect_time":"2024-01-01T00:01:01Z"}`, "a", "connect_time after disconnect_time")
	f(`{"id":"a",`+good+`,"duration":-1}`, "a", "duration: negative")
	f(`{"id":"a","setup_time":"1969-12-31T23:59:59Z","disconnect_time":"1970-01-01T00:01:00Z","dst":"1"}`, "a", "times outside 1970-01-01 .. 2105-12-31")
	f(`{"id":"a","setup_time":"2200-01-01T00:00:00Z","disconnect_time":"2200-01-01T00:01:00Z","dst":"1"}`, "a", "times outside 1970-01-01 .. 2105-12-31")
	f(`{"id":"a","setup_time":"2000-01-01T00:00:00Z","connect_time":"2000-01-01T00:00:00Z","disconnect_time":"2024-01-01T00:00:00Z","dst":"1"}`, "a", "connect_time to disconnect_time longer than a year")
	f(`{"id":"a",`+good+`,"duration":"60"}`, "a", "duration: not a number")
	f(`{"id":"a",`+good+`,"duration":1e400}`, "a", "duration: out of range")
	f(`{"id":"a",`+good+`,"sip_code":200.5}`, "a", "sip_code: not an integer")
	f(`{"id":"a","setup_time":"2024-01-01T00:00:00Z","disconnect_time":"2024-01-01T00:01:00Z"}`, "a", "missing dst")
	// What a switch sends must be plausible: a duration within the call's
	// span (plus a second of rounding), text fields short, printable UTF-8.
	answered := `"setup_time":"2024-01-01T00:00:00Z","connect_time":"2024-01-01T00:00:10Z","disconnect_time":"2024-01-01T00:01:00Z","dst":"1"`
	f(`{"id":"a",`+answered+`,"duration":61.5}`, "a", "duration 61.5 s is longer than setup_time to disconnect_time (60 s)")
	f(`{"id":"a",`+answered+`,"duration":31535999}`, "a", "duration 31535999 s is longer than setup_time to disconnect_time (60 s)")
	f(`{"id":"a\u0000b",`+good+`}`, "a\x00b", "id: contains a control character")
	f(`{"id":"tab\there",`+good+`}`, "tab\there", "id: contains a control character")
	f(`{"id":"a","switch":"sw\u0000",`+good+`}`, "a", "switch: contains a control character")
	f(`{"id":"a","switch":"sw\u0085",`+good+`}`, "a", "switch: contains a control character")
	f("{\"id\":\"a\xff\","+good+"}", "a\xff", "id: not valid UTF-8")
	f(`{"id":"`+strings.Repeat("x", 257)+`",`+good+`}`, strings.Repeat("x", 257), "id: longer than 256 bytes")
	f(`{"id":"a","switch":"`+strings.Repeat("s", 100_000)+`",`+good+`}`, "a", "switch: longer than 256 bytes")
	f(`{"id":"a","ani":"`+strings.Repeat("4", 300)+`",`+good+`}`, "a", "ani: longer than 256 bytes")
	// A field given twice: which one counts would be anyone's guess.
	f(`{"id":"a","id":"b",`+good+`}`, "b", "id: given twice")
	f(`{"id":"a","switch":"s1",`+good+`,"switch":"s2"}`, "a", "switch: given twice")
	f(`{"id":"a",`+answered+`,"duration":60,"duration":null}`, "a", "duration: given twice")
	f(`{"id":"a",`+good+`,"dst":"2"}`, "a", "dst: given twice")
	// Ids that differ only in unpaired surrogates would decode alike.
	f(`{"id":"sur\ud800",`+good+`}`, "", `id: an unpaired surrogate escape (\ud800-\udfff)`)
	f(`{"id":"sur\udbff",`+good+`}`, "", `id: an unpaired surrogate escape (\ud800-\udfff)`)
}

// TestDecodeMalformedIdentified: a malformed CDR keeps naming its call (so
// a corrected re-send replaces its row) only when it was read whole and its
// id, switch and setup time are usable.
func TestDecodeMalformedIdentified(t *testing.T) {
	// A field of the wrong type no longer costs the CDR its id: the rest of
	// the message is read on.
	for _, in := range []string{
		`{"id":"a","setup_time":"2024-01-01T00:00:00Z","disconnect_time":"2024-01-01T00:01:00Z","duration":"60","dst":"1"}`,
		`{"id":"a","sip_code":200.0,"setup_time":"2024-01-01T00:00:00Z","disconnect_time":"2024-01-01T00:01:00Z","dst":"1"}`,
	} {
		var c CDR
		if err := Decode([]byte(in), &c); err == nil || !c.Identified() || c.ID != "a" {
			t.Fatalf("%s: err %v, identified %v, id %q; want malformed, still naming call a", in, err, c.Identified(), c.ID)
		}
	}
	f := func(in string, want bool) {
		t.Helper()
		var c CDR
		if err := Decode([]byte(in), &c); err == nil {
			t.Fatalf("%s: decoded", in)
		}
		if got := c.Identified(); got != want {
			t.Fatalf("%s: Identified() = %v, want %v", in, got, want)
		}
	}
	f(`{"id":"a","setup_time":"2024-01-01T00:00:00Z","disconnect_time":"2024-01-01T00:01:00Z"}`, true) // missing dst
	f(`{"id":"a","setup_time":"2024-01-01T00:02:00Z","disconnect_time":"2024-01-01T00:01:00Z","dst":"1"}`, true)
	f(`{"id":"a","setup_time":"1900-01-01T00:00:00Z","disconnect_time":"1900-01-01T00:01:00Z","dst":"1"}`, false)
	f(`{"id":"a","setup_time":"2999-01-01T00:00:00Z","disconnect_time":"2999-01-01T00:01:00Z","dst":"1"}`, false)
	f(`{"id":"a","setup_time":"0000-01-01T00:00:00Z","disconnect_time":"0000-01-01T00:01:00Z","dst":"1"}`, false)
	f(`{"id":"a","disconnect_time":"2024-01-01T00:01:00Z","dst":"1"}`, false)
	f(`{"id":"a","setup_time":"2024-01-01T00:00:00Z",`, false) // not read whole
	f(`{"id":"a\u0000","setup_time":"2024-01-01T00:00:00Z","disconnect_time":"2024-01-01T00:01:00Z","dst":"1"}`, false)
	f(`{"id":"a","switch":"`+strings.Repeat("s", 300)+`","setup_time":"2024-01-01T00:00:00Z","disconnect_time":"2024-01-01T00:01:00Z","dst":"1"}`, false)
	f(`{"id":"a","dst":"`+strings.Repeat("s", 300)+`","setup_time":"2024-01-01T00:00:00Z","disconnect_time":"2024-01-01T00:01:00Z"}`, true)
}

func TestNormalizeNumber(t *testing.T) {
	f := func(in, want string, wantOK bool) {
		t.Helper()
		got, ok := NormalizeNumber(in)
		if ok != wantOK || (ok && got != want) {
			t.Fatalf("%q: got %q %v", in, got, ok)
		}
	}
	f("+447700900123", "447700900123", true)
	f("447700900123", "447700900123", true)
	f("", "", false)
	f("+", "", false)
	f("++44", "", false)
	f("7788#447", "", false)
	f("44 77", "", false)
	f(strings.Repeat("4", 32), strings.Repeat("4", 32), true)
	f(strings.Repeat("4", 33), "", false)
	f("+"+strings.Repeat("4", 10_000), "", false)
}

// TestDecodeAgreesWithEncodingJSON checks the scanner against encoding/json
// on the string fields of tricky but valid messages.
func TestDecodeAgreesWithEncodingJSON(t *testing.T) {
	var paired CDR
	if err := Decode([]byte(`{"id":"ok","ani":"\ud83d\ude00","setup_time":"2024-01-01T00:00:00Z","disconnect_time":"2024-01-01T00:01:00Z","dst":"1"}`), &paired); err != nil || paired.ANI != "😀" {
		t.Fatalf("a surrogate pair: %v %q", err, paired.ANI)
	}
	for _, id := range []string{`a\"b`, `\u00e9\ud83d\ude00`, `\/`, `plain`} {
		in := `{"id":"` + id + `","setup_time":"2024-01-01T00:00:00Z","disconnect_time":"2024-01-01T00:00:00Z","dst":"1"}`
		var c CDR
		if err := Decode([]byte(in), &c); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		var ref struct{ ID string }
		if err := json.Unmarshal([]byte(in), &ref); err != nil {
			t.Fatal(err)
		}
		if c.ID != ref.ID {
			t.Fatalf("%s: got %q, encoding/json %q", id, c.ID, ref.ID)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"id":"c1","switch":"s","setup_time":"2024-02-15T10:00:00Z","connect_time":"2024-02-15T10:00:00Z","disconnect_time":"2024-02-15T10:01:06Z","duration":66.5,"dst":"+447700900123","sip_code":200,"x":{"y":[1,"\u0041",null,true]}}`))
	f.Add([]byte(`{"id":"c2","setup_time":"2024-02-15T10:00:00+05:30","disconnect_time":"2024-02-15T10:00:00.123456789Z","dst":"1","duration":1e-10}`))
	f.Add([]byte(`[[[[[[[[[[`))
	f.Add([]byte(`{"a":{"b":{"c":[]}},"id":null}`))
	f.Add([]byte(`"\ud83d"`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var c CDR
		err := Decode(b, &c)
		if err == nil {
			if c.ID == "" || c.Dst == "" || c.DisconnectTime.Before(c.SetupTime) || c.Duration < 0 ||
				c.Duration > c.DisconnectTime.Sub(c.SetupTime)+time.Second {
				t.Fatalf("invalid cdr accepted: %+v", c)
			}
			for _, s := range []string{c.ID, c.Switch, c.SrcIP, c.SrcUser, c.ANI, c.Dst, c.TermIP, c.TermUser} {
				if p := CheckText(s); p != "" {
					t.Fatalf("field %q accepted: %s", s, p)
				}
			}
			if !json.Valid(b) {
				t.Fatalf("invalid json accepted: %q", b)
			}
			return
		}
		var me *MalformedError
		if !errors.As(err, &me) || me.Detail == "" {
			t.Fatalf("error %v", err)
		}
	})
}

var benchLine = []byte(`{"id":"c-000123456","switch":"sw-lon-1","setup_time":"2024-02-15T10:00:00Z","connect_time":"2024-02-15T10:00:04Z","disconnect_time":"2024-02-15T10:01:10Z","duration":66.2,"src_ip":"203.0.113.10","src_user":"","ani":"442071234567","dst":"+447700900123","term_ip":"198.51.100.7","sip_code":200,"cause":16}`)

func BenchmarkDecode(b *testing.B) {
	var c CDR
	b.SetBytes(int64(len(benchLine)))
	b.ReportAllocs()
	for b.Loop() {
		if err := Decode(benchLine, &c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeEncodingJSON(b *testing.B) {
	type ref struct {
		ID, Switch                         string
		SetupTime, ConnectTime, Disconnect time.Time
		Duration                           json.Number
		SrcIP, SrcUser, ANI, Dst, TermIP   string
		SIPCode, Cause                     int
	}
	b.SetBytes(int64(len(benchLine)))
	b.ReportAllocs()
	for b.Loop() {
		var r ref
		if err := json.Unmarshal(benchLine, &r); err != nil {
			b.Fatal(err)
		}
	}
}
