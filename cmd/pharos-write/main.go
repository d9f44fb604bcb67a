// Command pharos-write sends one sample to a Prometheus remote-write endpoint
// (protocol 1.0), for quickstarts and smoke tests:
//
//	pharos-write -url http://localhost:9090/api/v1/write 'demo_metric{env="dev"}' 42
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql/parser"
)

func main() {
	url := flag.String("url", "http://localhost:9090/api/v1/write", "Remote-write URL.")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: pharos-write [-url URL] 'metric{label=\"value\"}' VALUE")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 2 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*url, flag.Arg(0), flag.Arg(1)); err != nil {
		fmt.Fprintln(os.Stderr, "pharos-write:", err)
		os.Exit(1)
	}
}

func run(url, series, value string) error {
	lset, err := parser.NewParser(parser.Options{}).ParseMetric(series)
	if err != nil {
		return fmt.Errorf("parse series: %w", err)
	}
	v, err := strconv.ParseFloat(value, 64)
	if err != nil {
		return fmt.Errorf("parse value: %w", err)
	}
	ts := prompb.TimeSeries{Samples: []prompb.Sample{{Value: v, Timestamp: time.Now().UnixMilli()}}}
	lset.Range(func(l labels.Label) { ts.Labels = append(ts.Labels, prompb.Label{Name: l.Name, Value: l.Value}) })
	body, err := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts}}).Marshal()
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(snappy.Encode(nil, body)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}
