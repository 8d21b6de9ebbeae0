// Package promqlhttp holds no code, only tests: Prometheus's PromQL test
// scripts and the PromQL compliance queries run over HTTP three ways,
// straight to the query API (server.QueryAPI), through the query
// frontend (server/frontend) and through the frontend with sharding on;
// the frontends must answer as the API does. `make promql-frontend` runs
// them. They live apart from the server package so that their minutes
// under -race have a test binary and timeout of their own.
package promqlhttp
