package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// traceShutdownTimeout bounds flushing the spans still batched at exit.
const traceShutdownTimeout = 5 * time.Second

// newTracerProvider exports spans over OTLP/HTTP to endpoint (a URL, or
// host:port for http://host:port; an empty path is /v1/traces), sampling ratio of the traces that start
// here and following the caller's decision for the others.
func newTracerProvider(ctx context.Context, endpoint string, ratio float64, regionName, nodeID string) (*sdktrace.TracerProvider, error) {
	if ratio < 0 || ratio > 1 {
		return nil, usagef("--trace-sample-ratio %v: want 0 to 1", ratio)
	}
	if !strings.Contains(endpoint, "://") {
		endpoint = "http://" + endpoint
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, usagef("--otlp-endpoint %q: want http(s)://host:port[/path] or host:port", endpoint)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces" // OTLP/HTTP's path for traces
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(u.String()))
	if err != nil {
		return nil, usageError{fmt.Errorf("--otlp-endpoint %s: %w", endpoint, err)}
	}
	res := resource.NewSchemaless(
		attribute.String("service.name", "meridian"),
		attribute.String("meridian.region", regionName),
		attribute.String("meridian.node", nodeID),
	)
	return sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
	), nil
}
