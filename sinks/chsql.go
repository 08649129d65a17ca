package sinks

import "strings"

// sqlTok is one token of a ClickHouse statement, as the migration
// translator sees it: enough to find keywords, names and parenthesised
// groups without ever rewriting inside a string or a comment.
type sqlTok struct {
	kind byte // ' ' space or comment, 'w' word (keyword, name, number), 'q' quoted name, 'l' string literal, 'p' punctuation
	text string
}

// tokenize splits sql into tokens; joining their texts gives sql back.
func tokenize(sql string) []sqlTok {
	var out []sqlTok
	for i := 0; i < len(sql); {
		c := sql[i]
		j := i + 1
		kind := byte('p')
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			kind = ' '
			for j < len(sql) && strings.IndexByte(" \t\n\r", sql[j]) >= 0 {
				j++
			}
		case c == '-' && j < len(sql) && sql[j] == '-':
			kind = ' '
			for j < len(sql) && sql[j] != '\n' {
				j++
			}
		case c == '/' && j < len(sql) && sql[j] == '*':
			kind = ' '
			if k := strings.Index(sql[j+1:], "*/"); k >= 0 {
				j += k + 3
			} else {
				j = len(sql)
			}
		case c == '\'' || c == '`' || c == '"':
			kind = 'l'
			if c != '\'' {
				kind = 'q'
			}
			for j < len(sql) && sql[j] != c {
				if sql[j] == '\\' {
					j++
				}
				j++
			}
			j = min(j+1, len(sql))
		case isWordByte(c):
			kind = 'w'
			for j < len(sql) && isWordByte(sql[j]) {
				j++
			}
		}
		out = append(out, sqlTok{kind: kind, text: sql[i:j]})
		i = j
	}
	return out
}

func isWordByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

func joinToks(ts []sqlTok) string {
	var b strings.Builder
	for _, t := range ts {
		b.WriteString(t.text)
	}
	return b.String()
}

// is reports whether t is the keyword kw (any case).
func (t sqlTok) is(kw string) bool { return t.kind == 'w' && strings.EqualFold(t.text, kw) }

// name returns the identifier t spells (a word, or a quoted name
// unquoted), and whether t is one.
func (t sqlTok) name() (string, bool) {
	switch t.kind {
	case 'w':
		return t.text, true
	case 'q':
		return strings.ReplaceAll(t.text[1:len(t.text)-1], `\`, ""), true
	}
	return "", false
}

// sqlStmt is a tokenized statement with a cursor over its significant
// tokens (spaces and comments skipped).
type sqlStmt struct {
	toks []sqlTok
	sig  []int // indexes of significant tokens
}

func parseStmt(sql string) *sqlStmt {
	s := &sqlStmt{toks: tokenize(sql)}
	for i, t := range s.toks {
		if t.kind != ' ' {
			s.sig = append(s.sig, i)
		}
	}
	return s
}

// at returns the k-th significant token, or a zero token past the end.
func (s *sqlStmt) at(k int) sqlTok {
	if k < 0 || k >= len(s.sig) {
		return sqlTok{}
	}
	return s.toks[s.sig[k]]
}

// keywords reports whether the significant tokens from k spell kws.
func (s *sqlStmt) keywords(k int, kws ...string) bool {
	for i, kw := range kws {
		if !s.at(k + i).is(kw) {
			return false
		}
	}
	return true
}

// close returns the significant index of the parenthesis closing the one
// opened at k, or -1.
func (s *sqlStmt) close(k int) int {
	depth := 0
	for ; k < len(s.sig); k++ {
		switch s.at(k).text {
		case "(", "[":
			depth++
		case ")", "]":
			depth--
			if depth == 0 {
				return k
			}
		}
	}
	return -1
}

// text returns the source text of significant tokens [from, to), spaces
// and comments between them included.
func (s *sqlStmt) text(from, to int) string {
	if from >= to || from >= len(s.sig) {
		return ""
	}
	return joinToks(s.toks[s.sig[from] : s.sig[to-1]+1])
}

// tableName reads [db.]name at k and returns the name and the significant
// index after it.
func (s *sqlStmt) tableName(k int) (string, int, bool) {
	name, ok := s.at(k).name()
	if !ok {
		return "", k, false
	}
	if s.at(k+1).text == "." {
		if n, ok := s.at(k + 2).name(); ok {
			return n, k + 3, true
		}
		return "", k, false
	}
	return name, k + 1, true
}

// quoteName quotes an identifier for ClickHouse.
func quoteName(n string) string { return "`" + strings.ReplaceAll(n, "`", "\\`") + "`" }

// quoteString quotes a string literal for ClickHouse.
func quoteString(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", `\'`) + "'"
}
