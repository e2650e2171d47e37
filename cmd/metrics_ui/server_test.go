package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, srv *httptest.Server, path string, wantCode int) []byte {
	t.Helper()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantCode {
		t.Fatalf("GET %s: %d %s, want %d", path, resp.StatusCode, body, wantCode)
	}
	return body
}

func TestHandler(t *testing.T) {
	c := &clock{t0.Add(time.Second)}
	store := NewStore(c.now)
	const P = "Split and Count"
	mustAdd(t, store, "word count", rec("start-to-end", P, "w1", P, t0, 1000, 2000))
	mustAdd(t, store, "word count", rec("pipeline-ingestion", P+" source", "w1", P, t0, 0))
	mustAdd(t, store, "word count", rec("computation", "Split/Words", "w1", P, t0, 500))
	srv := httptest.NewServer(NewHandler(store, slog.New(slog.DiscardHandler)))
	defer srv.Close()

	var apps []AppSummary
	if err := json.Unmarshal(get(t, srv, "/api/apps", 200), &apps); err != nil {
		t.Fatal(err)
	}
	if len(apps) != 1 || apps[0].Name != "word count" || apps[0].Pipelines != 1 || apps[0].Computations != 1 {
		t.Fatalf("/api/apps = %+v", apps)
	}

	var d Dashboard
	if err := json.Unmarshal(get(t, srv, "/api/apps/word%20count", 200), &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Pipelines) != 1 || d.Pipelines[0].Name != P || d.Pipelines[0].Count != 2 || d.Pipelines[0].Ingested != 1 ||
		d.Pipelines[0].Latency.P50 != 1023 || d.PeriodMS != 2000 || len(d.Ends) != 150 {
		t.Fatalf("dashboard = %+v", d)
	}

	var det Detail
	path := "/api/apps/word%20count/computations/" + url.PathEscape("Split/Words")
	if err := json.Unmarshal(get(t, srv, path, 200), &det); err != nil {
		t.Fatal(err)
	}
	if det.Element.Name != "Split/Words" || det.Element.Count != 1 || len(det.Bins) != 12 || det.Bins[0].Percent != 100 ||
		len(det.By) != 1 || det.By[0].Sub != P+"@w1" {
		t.Fatalf("detail = %+v", det)
	}
	raw := string(get(t, srv, path, 200))
	for _, field := range []string{`"p99_9":`, `"p99_99":`, `"p50":[null,`, `"by_label":"pipeline@worker"`} {
		if !strings.Contains(raw, field) {
			t.Errorf("detail JSON lacks %s", field)
		}
	}

	get(t, srv, "/api/apps/nope", 404)
	get(t, srv, "/api/apps/word%20count/pipelines/nope", 404)
	get(t, srv, "/api/apps/word%20count/bogus/x", 404)

	for _, p := range []string{"/", "/apps/word%20count", "/apps/word%20count/pipelines/x"} {
		if body := string(get(t, srv, p, 200)); !strings.Contains(body, `<script src="/static/app.js">`) {
			t.Errorf("GET %s is not the page", p)
		}
	}
	if js := string(get(t, srv, "/static/vendor/uPlot.iife.min.js", 200)); !strings.Contains(js, "uPlot") {
		t.Errorf("uPlot not served")
	}
	get(t, srv, "/static/vendor/uPlot.min.css", 200)
	get(t, srv, "/static/app.js", 200)
	get(t, srv, "/nothing/here", 404)
}
