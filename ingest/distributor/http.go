package distributor

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/pharos-tsdb/pharos/ingest/remotewrite"
)

// Response headers of remote write 2.0. A 1.0 answer goes without them,
// as Prometheus's receiver's does: 1.0 defines none, and a 1.0 client that
// reads them anyway (client_golang's, before its fix) took counts on a
// 1.0 answer for a partial write.
const (
	headerSamplesWritten    = "X-Prometheus-Remote-Write-Samples-Written"
	headerHistogramsWritten = "X-Prometheus-Remote-Write-Histograms-Written"
	headerExemplarsWritten  = "X-Prometheus-Remote-Write-Exemplars-Written"
)

// maxRejectionsInMessage bounds the 400 body; the count of the rest is given.
const maxRejectionsInMessage = 10

// RemoteWriteHandler serves POST /api/v1/write: Prometheus remote write 1.0
// and 2.0, snappy block compressed.
//
// It answers 204 when everything was written; 400 when some series were
// rejected (the others are written, as Prometheus's receiver does) or the body
// is malformed; 413 over distributor.max-request-body-size; 415 for a
// Content-Type or Content-Encoding the protocol does not define; 429 on
// overload and 5xx when the ingesters could not take the write, so that the
// sender retries.
func (d *Distributor) RemoteWriteHandler() http.Handler {
	return http.HandlerFunc(d.serveWrite)
}

func (d *Distributor) serveWrite(w http.ResponseWriter, r *http.Request) {
	code, msg := d.write(w, r)
	d.requests.WithLabelValues(strconv.Itoa(code)).Inc()
	if code/100 == 2 {
		w.WriteHeader(code)
		return
	}
	if code/100 == 5 {
		d.logger.Warn("remote write failed", "code", code, "err", msg)
	} else {
		d.logger.Debug("remote write rejected", "code", code, "err", msg)
	}
	http.Error(w, msg, code)
}

func (d *Distributor) write(w http.ResponseWriter, r *http.Request) (int, string) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return http.StatusMethodNotAllowed, "remote write takes POST"
	}
	version, err := remotewrite.ParseContentType(r.Header.Get("Content-Type"))
	if err != nil {
		return httpStatus(err), err.Error()
	}
	if err := remotewrite.CheckContentEncoding(r.Header.Get("Content-Encoding")); err != nil {
		return httpStatus(err), err.Error()
	}

	req := remotewrite.NewRequest()
	defer req.Release()
	if err := req.ReadBody(r.Body, r.ContentLength, d.cfg.MaxRequestBodySize); err != nil {
		return httpStatus(err), err.Error()
	}
	if err := req.Decode(version); err != nil {
		return httpStatus(err), err.Error()
	}

	var invalid []Rejection
	for _, s := range req.Invalid {
		rej := Rejection{Index: s.Index, Reason: ReasonInvalidSymbolRef, Series: fmt.Sprintf("#%d", s.Index),
			Message: s.Err.Error(), Samples: s.Samples, Histograms: s.Histograms}
		if errors.Is(s.Err, remotewrite.ErrNoSamples) {
			rej.Reason, rej.Series = ReasonNoSamples, FormatSeries(s.Labels)
			rej.Message = fmt.Sprintf("%v (%d exemplars)", s.Err, s.Exemplars)
		}
		d.discard(tenantOf(r.Context()), rej.Reason, rej.Samples+rej.Histograms)
		invalid = append(invalid, rej)
	}

	res, err := d.push(r.Context(), &req.Push, req.LabelSpans())
	if err != nil {
		if rl := (*RateLimitError)(nil); errors.As(err, &rl) {
			w.Header().Set("Retry-After", strconv.Itoa(rl.retryAfterSeconds()))
		}
		return httpStatus(err), err.Error()
	}
	if version == remotewrite.V2 {
		h := w.Header()
		h.Set(headerSamplesWritten, strconv.FormatUint(res.SamplesWritten, 10))
		h.Set(headerHistogramsWritten, strconv.FormatUint(res.HistogramsWritten, 10))
		h.Set(headerExemplarsWritten, strconv.FormatUint(res.ExemplarsWritten, 10))
	}
	if res.Deduplicated {
		// Accepted, not written: the sender must not retry (Mimir's answer).
		return http.StatusAccepted, ""
	}

	rejected := res.Rejected
	if len(invalid) > 0 {
		// Undecodable series first: their indexes count the request's
		// series, Push's count those of req.Push.
		rejected = append(invalid, rejected...)
	}
	if len(rejected) == 0 {
		return http.StatusNoContent, ""
	}
	return http.StatusBadRequest, rejectionMessage(rejected)
}

func rejectionMessage(rs []Rejection) string {
	var b strings.Builder
	for i, r := range rs {
		if i == maxRejectionsInMessage {
			fmt.Fprintf(&b, "\nand %d more rejected series", len(rs)-i)
			break
		}
		if i > 0 {
			b.WriteByte('\n')
		}
		if r.Reason == ReasonInvalidSymbolRef {
			fmt.Fprintf(&b, "series %d: %s", r.Index, r.Message)
			continue
		}
		b.WriteString(r.Error())
	}
	return b.String()
}

// httpStatus maps an error of the write path to an HTTP status. It is the
// only place that does.
func httpStatus(err error) int {
	switch {
	case errors.Is(err, remotewrite.ErrUnsupportedMediaType):
		return http.StatusUnsupportedMediaType
	case errors.Is(err, remotewrite.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, remotewrite.ErrMalformed):
		return http.StatusBadRequest
	}
	if retry, overload := retryable(err); overload {
		return http.StatusTooManyRequests
	} else if retry {
		return http.StatusServiceUnavailable
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusInternalServerError
}
