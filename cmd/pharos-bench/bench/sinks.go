package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb"
)

// HTTPSink remote-writes batches to URL (…/api/v1/write).
type HTTPSink struct {
	URL    string
	Client *http.Client
	enc    []*Encoder
}

// NewHTTPSink returns a sink with one encoder per writer.
func NewHTTPSink(url string, v2 bool, writers int, client *http.Client) *HTTPSink {
	s := &HTTPSink{URL: url, Client: client}
	for range writers {
		s.enc = append(s.enc, NewEncoder(v2))
	}
	return s
}

// Prepare encodes b's first two requests ahead of time (Encoder.Prepare).
func (s *HTTPSink) Prepare(sender int, b *Batch, next []prompb.Sample) error {
	return s.enc[sender].Prepare(b, next)
}

// Write encodes b and posts it; any non-2xx answer is an error.
func (s *HTTPSink) Write(ctx context.Context, sender int, b *Batch) error {
	e := s.enc[sender]
	body, err := e.Encode(b)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Encoding", "snappy")
	if e.V2 {
		req.Header.Set("Content-Type", ContentTypeV2)
		req.Header.Set("X-Prometheus-Remote-Write-Version", VersionV2)
	} else {
		req.Header.Set("Content-Type", ContentTypeV1)
		req.Header.Set("X-Prometheus-Remote-Write-Version", VersionV1)
	}
	resp, err := s.Client.Do(req)
	if err != nil {
		return fmt.Errorf("remote write: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("remote write: %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// TSDBSink appends batches to a tsdb.DB in this process, one appender and
// commit per batch as the ingester does per request, with series
// references cached across rounds as Prometheus's scrape loop caches them:
// the fastest honest way to put these samples into a tsdb.
//
// With ByLabels it keeps no references and appends every sample by its
// labels (reference 0), as Prometheus's own remote-write receiver does: the
// head hashes the label set and finds the series in its striped map. That
// is the limit for a receiver that is handed label sets, not positions.
type TSDBSink struct {
	DB       *tsdb.DB
	ByLabels bool
}

// Write appends and commits b.
func (s TSDBSink) Write(ctx context.Context, _ int, b *Batch) error {
	app := s.DB.Appender(ctx)
	per := b.PerSeries()
	for i, ls := range b.Labels {
		// By labels, no reference is ever kept: b.Refs stays all 0.
		ref := b.Refs[i]
		for _, smp := range b.Samples[i*per : (i+1)*per] {
			got, err := app.Append(ref, ls, smp.Timestamp, smp.Value)
			if err != nil {
				_ = app.Rollback()
				return fmt.Errorf("append: %w", err)
			}
			if !s.ByLabels {
				ref = got
			}
		}
		b.Refs[i] = ref
	}
	if err := app.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
