package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

// dataShownMax bounds how much of an event's payload the human format prints.
const dataShownMax = 200

// printJSON writes m as one line of protojson.
func printJSON(w io.Writer, m proto.Message) error {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return err
	}
	// protojson randomly emits one or two spaces after separators (to stop
	// people from depending on its exact bytes): compact it for stable lines.
	var compact bytes.Buffer
	if err := json.Compact(&compact, b); err == nil {
		b = compact.Bytes()
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

// formatEvent renders one event on one line for people:
//
//	order-42 v1  OrderPlaced  {"total":10}  id=0193... origin=local/1 2026-11-22T04:20:00.123Z
func formatEvent(e *meridianv1.Event, withPosition bool) string {
	var b strings.Builder
	if withPosition {
		fmt.Fprintf(&b, "#%d ", e.GetPosition())
	}
	fmt.Fprintf(&b, "%s v%d  %s  %s  id=%s", e.GetEntity(), e.GetVersion(), e.GetType(), formatData(e.GetData(), e.GetContentType()), e.GetId())
	if o := e.GetOrigin(); o != nil {
		fmt.Fprintf(&b, " origin=%s/%d", o.GetRegion(), o.GetSeq())
	}
	if h := e.GetHlc(); h != nil && h.GetWallNanos() != 0 {
		fmt.Fprintf(&b, " at=%s", time.Unix(0, h.GetWallNanos()).UTC().Format("2006-01-02T15:04:05.000Z"))
	}
	if len(e.GetMetadata()) > 0 {
		keys := make([]string, 0, len(e.GetMetadata()))
		for k := range e.GetMetadata() {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, " %s=%q", k, e.GetMetadata()[k])
		}
	}
	if e.GetRecovered() {
		b.WriteString(" (recovered)")
	}
	if e.GetActiveActive() && !e.GetStable() {
		// Reads of a merged stream: a concurrent event may still sort
		// before this one and shift its version.
		b.WriteString(" (not stable yet)")
	}
	return b.String()
}

// formatData prints text payloads as they are and binary ones as base64.
func formatData(data []byte, contentType string) string {
	if len(data) == 0 {
		return "(no data)"
	}
	var s string
	if utf8.Valid(data) && !strings.HasPrefix(contentType, "application/octet-stream") {
		s = string(data)
		if json.Valid(data) {
			var c bytes.Buffer
			if json.Compact(&c, data) == nil {
				s = c.String()
			}
		}
		s = strings.ReplaceAll(s, "\n", `\n`)
	} else {
		s = "base64:" + base64.StdEncoding.EncodeToString(data)
	}
	if len(s) > dataShownMax {
		s = s[:dataShownMax] + fmt.Sprintf("... (%d bytes)", len(data))
	}
	return s
}

// printError writes err for people: the Connect code and message, and a hint
// when no node answered.
func printError(w io.Writer, err error, endpoints []string) {
	var ce *connect.Error
	if errors.As(err, &ce) {
		fmt.Fprintf(w, "error: %s: %s\n", ce.Code(), ce.Message())
		if ce.Code() == connect.CodeUnavailable && strings.Contains(ce.Message(), "connection refused") {
			fmt.Fprintf(w, "hint: no Meridian node answers at %s; start a local region with 'meridian dev' or set --endpoint\n",
				strings.Join(endpoints, ","))
		}
		if hint := securityHint(ce); hint != "" {
			fmt.Fprintln(w, "hint: "+hint)
		}
		return
	}
	fmt.Fprintf(w, "error: %v\n", err)
	if isUsageError(err) {
		fmt.Fprintln(w, "run 'meridian --help' for usage")
	}
}

// securityHint says what a refused or failed TLS call lacks, if that is
// what went wrong.
func securityHint(ce *connect.Error) string {
	msg := ce.Message()
	switch {
	case ce.Code() == connect.CodeUnauthenticated:
		return "the deployment requires a bearer token: set " + envAuth + " or pass --token-file ('meridian dev' prints an admin token)"
	case strings.Contains(msg, "certificate signed by unknown authority"):
		return "the node's certificate is not from a CA this client trusts: pass the deployment's CA with --tls-ca or " + envTLSCA
	case strings.Contains(msg, "server gave HTTP response to HTTPS client"):
		return "the node speaks plaintext: use an http:// endpoint"
	case (ce.Code() == connect.CodeUnavailable || ce.Code() == connect.CodeUnknown) &&
		(strings.Contains(msg, "connection reset by peer") || strings.Contains(msg, "malformed HTTP response") || strings.HasSuffix(msg, "EOF")):
		return "if the node serves TLS, use an https:// endpoint (and --tls-ca)"
	}
	return ""
}
