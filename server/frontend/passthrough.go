package frontend

import (
	"encoding/json"
)

// Pass-through: an answer the frontend would only decode to encode again
// as it was (an instant query, or a range query computed in one piece
// that is not cached, neither sharded) goes to the client as the API
// wrote it. The frontend reads only its stats, which it always asks the
// API for (the slow-query log, the shard estimates), and cuts them out
// unless the client asked for them too. Decoding and encoding such an
// answer took more CPU than evaluating it: a profile of a raw query of 8
// series x 120 samples put 16 % of the node's CPU in the decoding alone,
// and most of the garbage collection's third after it (docs/design.md
// "Answers passed through").

// splitStats finds the "stats" member of the "data" object of an API
// answer: it returns the answer without that member, and the member's
// value. ok is false if the answer is not an object with a data object
// holding stats (then nothing is cut).
func splitStats(body []byte) (rest, stats []byte, ok bool) {
	var s scanner
	s.b = body
	dataStart, _, found := s.member(0, "data")
	if !found || dataStart >= len(body) || body[dataStart] != '{' {
		return body, nil, false
	}
	// Members of data: find "stats" and the span to cut (with the comma
	// before it, or after it if it is the first member).
	i := s.ws(dataStart + 1)
	first := true
	for i < len(body) && body[i] != '}' {
		memberStart := i
		key, after, ok := s.str(i)
		if !ok {
			return body, nil, false
		}
		i = s.ws(after)
		if i >= len(body) || body[i] != ':' {
			return body, nil, false
		}
		vStart := s.ws(i + 1)
		vEnd, ok := s.skip(vStart)
		if !ok {
			return body, nil, false
		}
		next := s.ws(vEnd)
		if string(key) == "stats" {
			cutFrom, cutTo := memberStart, vEnd
			switch {
			case !first:
				// ,"stats":{...}: from the comma before it.
				j := memberStart - 1
				for j > dataStart && body[j] != ',' {
					j--
				}
				cutFrom = j
			case next < len(body) && body[next] == ',':
				cutTo = next + 1
			}
			out := make([]byte, 0, len(body)-(cutTo-cutFrom))
			out = append(append(out, body[:cutFrom]...), body[cutTo:]...)
			return out, body[vStart:vEnd], true
		}
		first = false
		if next < len(body) && body[next] == ',' {
			i = s.ws(next + 1)
			continue
		}
		i = next
	}
	return body, nil, false
}

// readStats decodes the stats of an answer passed through.
func readStats(b []byte) *queryStats {
	st := new(queryStats)
	if json.Unmarshal(b, st) != nil {
		return nil
	}
	return st
}

// scanner walks JSON text without decoding it: enough to find a member
// and skip values.
type scanner struct{ b []byte }

// ws skips white space from i.
func (s *scanner) ws(i int) int {
	for i < len(s.b) {
		switch s.b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// str reads the string starting at i: its raw content (escapes kept)
// and the index after its closing quote.
func (s *scanner) str(i int) (content []byte, after int, ok bool) {
	if i >= len(s.b) || s.b[i] != '"' {
		return nil, i, false
	}
	for j := i + 1; j < len(s.b); j++ {
		switch s.b[j] {
		case '\\':
			j++
		case '"':
			return s.b[i+1 : j], j + 1, true
		}
	}
	return nil, i, false
}

// skip returns the index after the value starting at i.
func (s *scanner) skip(i int) (int, bool) {
	if i >= len(s.b) {
		return i, false
	}
	switch s.b[i] {
	case '"':
		_, after, ok := s.str(i)
		return after, ok
	case '{', '[':
		depth := 0
		for j := i; j < len(s.b); j++ {
			switch s.b[j] {
			case '"':
				_, after, ok := s.str(j)
				if !ok {
					return j, false
				}
				j = after - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1, true
				}
			}
		}
		return len(s.b), false
	}
	// A number, true, false or null.
	j := i
	for j < len(s.b) {
		switch s.b[j] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return j, j > i
		}
		j++
	}
	return j, j > i
}

// member finds the member key of the object starting at i: the bounds of
// its value.
func (s *scanner) member(i int, key string) (start, end int, ok bool) {
	i = s.ws(i)
	if i >= len(s.b) || s.b[i] != '{' {
		return 0, 0, false
	}
	i = s.ws(i + 1)
	for i < len(s.b) && s.b[i] != '}' {
		k, after, ok := s.str(i)
		if !ok {
			return 0, 0, false
		}
		i = s.ws(after)
		if i >= len(s.b) || s.b[i] != ':' {
			return 0, 0, false
		}
		vStart := s.ws(i + 1)
		vEnd, ok := s.skip(vStart)
		if !ok {
			return 0, 0, false
		}
		if string(k) == key {
			return vStart, vEnd, true
		}
		i = s.ws(vEnd)
		if i < len(s.b) && s.b[i] == ',' {
			i = s.ws(i + 1)
		}
	}
	return 0, 0, false
}
