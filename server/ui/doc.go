// Package ui serves Myelin's built-in UI: the index page at "/" and the
// static files it loads under "/ui/". The files are the front end built
// from ../../ui (TypeScript, CodeMirror with Prometheus's PromQL
// language package, uPlot) into dist/, which is committed and embedded, so
// the binary needs neither Node.js nor a network to serve them. Everything
// the UI shows comes from the node's HTTP API, which the browser calls
// with the user's token and tenant; this package reads no data itself.
//
// It must not import the server root, engine, raftgroup, cluster, querier
// or distributor (internal/archtest): it only serves files.
//
// # Files
//
//	dist/index.html            the page; its one marker <!--myelin:node-->
//	                           becomes a JSON script with NodeInfo per request
//	dist/assets/<name>-<hash>  scripts, styles, licences: names carry a hash
//	                           of their content, so they are cached for a year
//
// `make ui` rebuilds dist/ from the sources; `make ui-check` (run by CI)
// rebuilds it into a temporary directory and fails if a byte differs from
// the committed files, so the committed bundle is what the sources give.
//
// # Caller protocol (cmd/myelin's wire.go)
//
//  1. h, err := New(node) once; err means a broken build (a marker or an
//     asset missing), a programmer's error caught by the tests.
//  2. Route GET "/{$}" to h.Index() and GET "/ui/" to h.Assets(), both
//     public: the page and its code hold no tenant data, and the index
//     says only what the old landing page said (version, node, readiness)
//     plus whether auth is on, which any request can find out.
package ui
