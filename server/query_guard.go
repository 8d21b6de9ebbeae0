package server

import (
	"errors"
	"fmt"
	"net/http"
)

// Errors of the expression guard (checkExpr). The API answers them 400.
var (
	ErrExpressionTooLarge = errors.New("server: query expression too large")
	ErrExpressionTooDeep  = errors.New("server: query expression nested too deeply")
)

// Defaults of the expression guard. Both bound the work of the PromQL
// parser, which neither the query timeout nor a client going away can
// stop: it takes no context.
//
// The parser's time grows with the square of the depth of the tree it
// builds (its type checks walk each node's subtree: BinaryExpr.Type and
// ParenExpr.Type recurse), and brackets are not the only thing that
// nests: a chain of binary operators, 1+1+...+1, is a tree as deep as the
// chain is long. BenchmarkParseDepth, the parser alone (AMD EPYC, 2
// cores shared with other work, best of 3):
//
//	depth    (((1)))   1+1+...+1
//	  256     0.2 ms      0.3 ms
//	 1024       2 ms        3 ms
//	 4096      33 ms       90 ms
//	16384     0.4 s       1.5 s
//	65536     7.3 s        13 s    (the chain is then 128 KiB)
//
// Through the API before the guard, a 120 KB chain took 64 s and the
// issue's 200 KB of parentheses 53 s. A size limit alone does not bound
// the time, so there is a depth limit too, and with both the costliest
// expression is one of the maximum size whose ~30,000 leaves all sit at
// the maximum depth (BenchmarkParseLimits, "broom", best of 5):
//
//	depth limit    125     250     500    1000    2000
//	worst parse   50 ms   90 ms  145 ms  255 ms  500 ms
//
// DefaultMaxExpressionDepth is 500: a dashboard query is typically 3 to
// 10 deep (TestExprDepth's "real" is 4), generated "or" chains over a
// few hundred alternatives still fit, and the worst case costs ~0.15 s of
// CPU, which the query gate allows MaxConcurrent requests at once. The
// scan itself takes 0.3 ms for 128 KiB. Rejected: measuring the depth
// with the parser (that is what takes the time); counting brackets only,
// which lets the 128 KiB chain through.
const (
	// DefaultMaxExpressionBytes bounds an expression to 128 KiB, larger
	// than any hand-written or Grafana-templated query we have seen. It
	// is Mimir's -query-frontend.max-query-expression-size-bytes, which
	// Mimir leaves unlimited by default.
	DefaultMaxExpressionBytes = 128 << 10
	// DefaultMaxExpressionDepth: see above.
	DefaultMaxExpressionDepth = 500
)

// checkExpr returns an error wrapping ErrExpressionTooLarge or
// ErrExpressionTooDeep if expr is larger than maxBytes or nests deeper than
// maxDepth (exprDepth), nil otherwise. It runs before the PromQL parser
// sees expr, in time linear in len(expr).
func checkExpr(expr string, maxBytes, maxDepth int) error {
	if len(expr) > maxBytes {
		return fmt.Errorf("%w: %d bytes, the limit is %d bytes", ErrExpressionTooLarge, len(expr), maxBytes)
	}
	const how = "each level of brackets and each operator chained at one level adds one"
	switch d, at := exprDepth(expr, maxDepth); {
	case at >= 0:
		return fmt.Errorf("%w: more than %d levels at byte %d, the limit is %d levels (%s)", ErrExpressionTooDeep, maxDepth, at, maxDepth, how)
	case d > maxDepth:
		return fmt.Errorf("%w: %d levels, the limit is %d levels (%s)", ErrExpressionTooDeep, d, maxDepth, how)
	}
	return nil
}

// CheckExpression is the API's expression guard (checkExpr) for the query
// frontend in front of the API, which must not parse what the API would
// refuse to.
func CheckExpression(expr string, maxBytes, maxDepth int) error {
	if maxBytes == 0 {
		maxBytes = DefaultMaxExpressionBytes
	}
	if maxDepth == 0 {
		maxDepth = DefaultMaxExpressionDepth
	}
	return checkExpr(expr, maxBytes, maxDepth)
}

// exprDepth returns the nesting depth of expr, found in one pass without
// parsing, as follows:
//
//   - a group in ( ), [ ] or { } is one level deeper than its enclosing
//     group;
//   - a binary or unary operator (+ - * / % ^ == != < <= > >= and or
//     unless atan2) adds one level to the group it is in, whatever its
//     precedence: a chain of n operators is a tree at most n deep, and
//     an operand of the chain sits below at most n of them;
//   - so a group's depth is 1 + its operators + the depth of its deepest
//     subgroup; the expression's is that without the 1.
//
// The parser's tree is at most twice as deep, plus two (a call, a range
// selector or a subquery is two nodes for one bracket;
// TestExprDepthBoundsParser), so bounding this bounds the tree.
//
// String literals (in double, single or back quotes) and comments (# to
// the end of the line) are skipped; operators inside { } (label matchers)
// do not count. Counting a '-' in 1e-3 or offset -5m, or a label named
// "or", overestimates by one, which is harmless; nothing is
// underestimated.
//
// If more than maxDepth groups are open at once, exprDepth stops there and
// returns the byte offset as stoppedAt (the depth is over maxDepth); the
// stack of open groups stays at most maxDepth deep. Otherwise stoppedAt is
// -1.
func exprDepth(expr string, maxDepth int) (depth, stoppedAt int) {
	stack := []exprGroup{{}} // stack[0] is the whole expression
	for i := 0; i < len(expr); i++ {
		g := &stack[len(stack)-1]
		switch c := expr[i]; c {
		case '"', '\'':
			for i++; i < len(expr) && expr[i] != c; i++ {
				if expr[i] == '\\' {
					i++
				}
			}
		case '`':
			for i++; i < len(expr) && expr[i] != '`'; i++ {
			}
		case '#':
			for i++; i < len(expr) && expr[i] != '\n'; i++ {
			}
		case '(', '[', '{':
			if len(stack) > maxDepth {
				return len(stack), i
			}
			stack = append(stack, exprGroup{matchers: c == '{'})
		case ')', ']', '}':
			if len(stack) > 1 { // unbalanced closers are the parser's to report
				stack = closeGroup(stack)
			}
		case '+', '-', '*', '/', '%', '^', '<', '>':
			if !g.matchers {
				g.ops++
			}
			if i+1 < len(expr) && expr[i+1] == '=' { // <= >=
				i++
			}
		case '=', '!': // == !=; = and =~ are matchers, !~ too
			if i+1 < len(expr) && expr[i+1] == '=' {
				if !g.matchers {
					g.ops++
				}
				i++
			}
		default:
			if !identChar(c) {
				continue
			}
			j := i + 1
			for j < len(expr) && identChar(expr[j]) {
				j++
			}
			if !g.matchers && isOperatorKeyword(expr[i:j]) {
				g.ops++
			}
			i = j - 1
		}
	}
	for len(stack) > 1 { // unclosed groups: the parser will refuse them
		stack = closeGroup(stack)
	}
	return stack[0].ops + stack[0].sub, -1
}

// exprGroup is an open group of exprDepth.
type exprGroup struct {
	ops, sub int  // operators in the group, depth of its deepest subgroup
	matchers bool // a { } group: its operators are label matchers
}

// closeGroup pops the innermost group and records its depth in its parent.
func closeGroup(stack []exprGroup) []exprGroup {
	g := stack[len(stack)-1]
	stack = stack[:len(stack)-1]
	p := &stack[len(stack)-1]
	p.sub = max(p.sub, 1+g.ops+g.sub)
	return stack
}

// identChar reports whether c may be part of an identifier, a number or a
// duration (5m, 1.5e3, 0x1f); bytes of UTF-8 sequences count too.
func identChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == ':' || c == '.' || c >= 0x80
}

// isOperatorKeyword reports whether w is one of PromQL's binary operator
// keywords, which the parser matches in any case.
func isOperatorKeyword(w string) bool {
	if len(w) < 2 || len(w) > 6 {
		return false
	}
	var b [6]byte
	for i := 0; i < len(w); i++ {
		c := w[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
	}
	switch string(b[:len(w)]) {
	case "and", "or", "unless", "atan2":
		return true
	}
	return false
}

// readForm parses r's form, from the URL and from a urlencoded or
// multipart body of at most maxBytes, into r.Form: Prometheus's handlers
// read it from there (FormValue, ParseForm) without reading the body
// again. The server removes a multipart form's temporary files after the
// request, as it parses into r itself.
func readForm(w http.ResponseWriter, r *http.Request, maxBytes int64) error {
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, maxBytes)
	}
	// ParseMultipartForm alone would drop ParseForm's errors for a body
	// that is not multipart.
	err := r.ParseForm()
	if err == nil {
		err = r.ParseMultipartForm(maxBytes)
	}
	var tooLarge *http.MaxBytesError
	switch {
	case err == nil, errors.Is(err, http.ErrNotMultipart):
		return nil
	case errors.As(err, &tooLarge):
		return fmt.Errorf("server: request body larger than %d bytes", tooLarge.Limit)
	}
	return fmt.Errorf("server: read form: %w", err)
}
