package cluster

import (
	"net"
	"net/http"
)

type httpServer struct{ h http.Handler }

func (s *httpServer) serve(l net.Listener) { (&http.Server{Handler: s.h}).Serve(l) }
