package main

import (
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
)

//go:embed web
var webFiles embed.FS

// NewHandler returns the Metrics UI's HTTP handler: the page (for "/",
// "/apps/{app}" and "/apps/{app}/{kind}/{name}"), its static files under
// "/static/", and the JSON API:
//
//	GET /api/apps                       []AppSummary
//	GET /api/apps/{app}                 Dashboard
//	GET /api/apps/{app}/{kind}/{name}   Detail (kind: pipelines, workers, computations)
//
// Path segments are URL-escaped names. The handler only reads store.
func NewHandler(store *Store, log *slog.Logger) http.Handler {
	web, err := fs.Sub(webFiles, "web")
	if err != nil {
		panic("metrics_ui: embedded web directory missing: " + err.Error()) // a build bug
	}
	index, err := fs.ReadFile(web, "index.html")
	if err != nil {
		panic("metrics_ui: embedded index.html missing: " + err.Error())
	}
	page := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(index)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", page)
	mux.HandleFunc("GET /apps/{app}", page)
	mux.HandleFunc("GET /apps/{app}/{kind}/{name}", page)
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(web)))
	mux.HandleFunc("GET /api/apps", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, log, store.Apps())
	})
	mux.HandleFunc("GET /api/apps/{app}", func(w http.ResponseWriter, r *http.Request) {
		d, err := store.Dashboard(r.PathValue("app"))
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, log, d)
	})
	mux.HandleFunc("GET /api/apps/{app}/{kind}/{name}", func(w http.ResponseWriter, r *http.Request) {
		kind := Kind(r.PathValue("kind"))
		if !slices.Contains(Kinds, kind) {
			http.Error(w, "unknown kind "+string(kind)+": want pipelines, workers or computations", http.StatusNotFound)
			return
		}
		d, err := store.Detail(r.PathValue("app"), kind, r.PathValue("name"))
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, log, d)
	})
	return mux
}

func writeError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	if errors.Is(err, ErrNotFound) {
		code = http.StatusNotFound
	}
	http.Error(w, err.Error(), code)
}

func writeJSON(w http.ResponseWriter, log *slog.Logger, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		log.Debug("writing a JSON response: " + err.Error())
	}
}
