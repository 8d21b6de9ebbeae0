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
	sc := &seriesScanner{b: body}
	cutFrom, cutTo := -1, -1
	err := sc.object(func(key []byte) error {
		if string(key) != "data" || cutFrom >= 0 {
			_, err := sc.value()
			return err
		}
		sc.ws()
		open := sc.i // the data object's '{'
		prevEnd := -1
		return sc.object(func(key []byte) error {
			v, err := sc.value()
			if err != nil {
				return err
			}
			if string(key) == "stats" {
				stats = v
				if prevEnd >= 0 {
					cutFrom, cutTo = prevEnd, sc.i // ,"stats":{...}
				} else {
					// The first member: from the '{', and the comma after
					// it if another member follows.
					cutFrom, cutTo = open+1, sc.i
					if sc.ws(); sc.peek() == ',' {
						cutTo = sc.i + 1
					}
				}
			}
			prevEnd = sc.i
			return nil
		})
	})
	if err != nil || cutFrom < 0 {
		return body, nil, false
	}
	out := make([]byte, 0, len(body)-(cutTo-cutFrom))
	out = append(append(out, body[:cutFrom]...), body[cutTo:]...)
	return out, stats, true
}

// readStats decodes the stats of an answer passed through.
func readStats(b []byte) *queryStats {
	st := new(queryStats)
	if json.Unmarshal(b, st) != nil {
		return nil
	}
	return st
}
