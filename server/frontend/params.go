package frontend

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/timestamp"
)

// The parameter parsers below are the query API's own
// (web/api/v1: parseTime, parseDuration), so that the frontend reads a
// request as the API would; a request either cannot read goes to the API
// unchanged, which answers the error.

var (
	minTime = time.Unix(math.MinInt64/1000+62135596801, 0).UTC()
	maxTime = time.Unix(math.MaxInt64/1000-62135596801, 999999999).UTC()

	minTimeFormatted = minTime.Format(time.RFC3339Nano)
	maxTimeFormatted = maxTime.Format(time.RFC3339Nano)
)

func parseTime(s string) (time.Time, error) {
	if t, err := strconv.ParseFloat(s, 64); err == nil {
		s, ns := math.Modf(t)
		ns = math.Round(ns*1000) / 1000
		return time.Unix(int64(s), int64(ns*float64(time.Second))).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	switch s {
	case minTimeFormatted:
		return minTime, nil
	case maxTimeFormatted:
		return maxTime, nil
	}
	return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp", s)
}

func parseDuration(s string) (time.Duration, error) {
	if d, err := strconv.ParseFloat(s, 64); err == nil {
		ts := d * float64(time.Second)
		if ts > float64(math.MaxInt64) || ts < float64(math.MinInt64) {
			return 0, fmt.Errorf("cannot parse %q to a valid duration. It overflows int64", s)
		}
		return time.Duration(ts), nil
	}
	if d, err := model.ParseDuration(s); err == nil {
		return time.Duration(d), nil
	}
	return 0, fmt.Errorf("cannot parse %q to a valid duration", s)
}

// formatTime writes a time in milliseconds so that parseTime reads it
// back exactly: RFC 3339 (a decimal number of seconds would go through
// a float64).
func formatTime(ms int64) string {
	return timestamp.Time(ms).Format(time.RFC3339Nano)
}

// errNotForm: the request's body is not a form the frontend reads.
var errNotForm = errors.New("frontend: not a url-encoded form")

// readForm returns the request's parameters (URL and url-encoded body)
// without consuming the request: the body read is put back in front of
// what is left of it, so a request the frontend does not take goes on
// unchanged. A body over maxBytes, or one of another content type, is
// an error (the API will answer it).
func readForm(r *http.Request, maxBytes int64) (url.Values, error) {
	form, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, err
	}
	if r.Body == nil || r.Body == http.NoBody || r.Method != http.MethodPost && r.Method != http.MethodPut && r.Method != http.MethodPatch {
		return form, nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBytes+1))
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > maxBytes {
		return nil, fmt.Errorf("frontend: body over %d bytes", maxBytes)
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" && len(body) == 0 {
		return form, nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, errNotForm
	}
	bodyForm, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, err
	}
	// Body values first, as http.Request.ParseForm orders them.
	for k, vs := range form {
		bodyForm[k] = append(bodyForm[k], vs...)
	}
	return bodyForm, nil
}
