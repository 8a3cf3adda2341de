// A proxyless grpc-go xDS client for Trellis's interop tests
// (test/interop/interop.test.ts). It reads GRPC_XDS_BOOTSTRAP, dials the
// xds:/// target in XDS_TARGET and answers commands on stdin, one JSON line
// each, with one JSON line on stdout:
//
//	{"n":10,"deadlineMs":1000,"method":"/echo.Echo/Call","metadata":{"k":"v"}}
//	-> {"counts":{"v1":7,"v2":3},"errors":{"UNAVAILABLE":1}}
//
// The backends answer with their name as raw bytes, so no generated code is
// needed: a pass-through codec sends and receives []byte.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"
	"unicode"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	_ "google.golang.org/grpc/xds" // registers the xds:/// resolver and balancers
)

type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "raw" }

type command struct {
	N          int               `json:"n"`
	DeadlineMs int               `json:"deadlineMs"`
	Method     string            `json:"method"`
	Metadata   map[string]string `json:"metadata"`
}

type result struct {
	Counts map[string]int `json:"counts"`
	Errors map[string]int `json:"errors"`
}

// upperSnake spells a code as grpc-js and Python do: "DeadlineExceeded" -> "DEADLINE_EXCEEDED".
func upperSnake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && unicode.IsUpper(r) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}

func main() {
	encoding.RegisterCodec(rawCodec{})
	target := os.Getenv("XDS_TARGET")
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(grpc.CallContentSubtype("raw")))
	if err != nil {
		fmt.Fprintf(os.Stderr, "grpc-go-xds: dial %s: %v\n", target, err)
		os.Exit(1)
	}
	defer conn.Close()
	out := json.NewEncoder(os.Stdout)
	out.Encode(map[string]bool{"ready": true})
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var c command
		if err := json.Unmarshal(in.Bytes(), &c); err != nil {
			fmt.Fprintf(os.Stderr, "grpc-go-xds: bad command: %v\n", err)
			continue
		}
		if c.Method == "" {
			c.Method = "/echo.Echo/Call"
		}
		if c.DeadlineMs <= 0 {
			c.DeadlineMs = 2000
		}
		r := result{Counts: map[string]int{}, Errors: map[string]int{}}
		for i := 0; i < c.N; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(c.DeadlineMs)*time.Millisecond)
			for k, v := range c.Metadata {
				ctx = metadata.AppendToOutgoingContext(ctx, k, v)
			}
			req := []byte("x")
			var resp []byte
			err := conn.Invoke(ctx, c.Method, &req, &resp)
			cancel()
			if err != nil {
				r.Errors[upperSnake(status.Code(err).String())]++
			} else {
				r.Counts[string(resp)]++
			}
		}
		out.Encode(r)
	}
}
