// Command krender renders many kustomizations in one process, for fleet's hub.
//
// It reads requests from stdin, one JSON object a line: {"id": 1, "dir": "/abs/path"}, and
// answers each on stdout, one JSON object a line, in the order renders finish:
// {"id": 1, "yaml": "..."} or {"id": 1, "error": "..."}. A request with "format": "json" is
// answered {"id": 1, "objects": [...]}: the same resources in the same order, as JSON objects,
// so the client decodes JSON instead of YAML. They are exactly the YAML answer's objects, since
// kustomize makes its YAML from this very JSON (Resource.AsYAML is MarshalJSON then
// JSONToYAML). An unknown format is answered as an error; a krender older than the field
// ignores it and answers YAML, which the client still accepts. Renders run in goroutines, at
// most -j at a time. It exits when stdin closes, so it never outlives the hub that started it.
//
// A render is what `kustomize build DIR --load-restrictor=LoadRestrictionsRootOnly` does:
// krusty's default options (files load only from the kustomization's own directory tree, no
// plugins, no exec or container functions, no Helm inflation), then the resources as YAML.
// The one process-wide state krusty has is kyaml's OpenAPI schema: a kustomization that names
// its own schema (an "openapi" field) renders alone, and the schema is reset after it, so it
// never leaks into another render.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/kustomize/kyaml/openapi"
)

type request struct {
	ID     int64  `json:"id"`
	Dir    string `json:"dir"`
	Format string `json:"format,omitempty"` // "yaml" (the default) or "json"
}

type response struct {
	ID      int64           `json:"id"`
	YAML    string          `json:"yaml,omitempty"`
	Objects json.RawMessage `json:"objects,omitempty"`
	Error   string          `json:"error,omitempty"`
}

var kustomizationNames = []string{"kustomization.yaml", "kustomization.yml", "Kustomization"}

// schema guards kyaml's global OpenAPI schema: shared by ordinary renders, exclusive for one
// that sets its own.
var schema sync.RWMutex

func main() {
	jobs := flag.Int("j", runtime.NumCPU(), "renders at once")
	version := flag.Bool("version", false, "print the kustomize API version and exit")
	flag.Parse()
	if *version {
		fmt.Println(apiVersion())
		return
	}
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	send := func(r response) {
		line, err := json.Marshal(r)
		if err != nil {
			line, _ = json.Marshal(response{ID: r.ID, Error: "cannot encode the output: " + err.Error()})
		}
		mu.Lock()
		defer mu.Unlock()
		out.Write(line)
		out.WriteByte('\n')
		out.Flush()
	}
	slots := make(chan struct{}, max(*jobs, 1))
	var wg sync.WaitGroup
	in := bufio.NewReader(os.Stdin)
	for {
		line, err := in.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var req request
			if jerr := json.Unmarshal(line, &req); jerr != nil {
				send(response{ID: -1, Error: "request is not JSON: " + jerr.Error()})
			} else {
				slots <- struct{}{}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer func() { <-slots }()
					send(render(req))
				}()
			}
		}
		if err != nil {
			break
		}
	}
	wg.Wait()
}

func render(req request) (resp response) {
	resp.ID = req.ID
	defer func() {
		if p := recover(); p != nil {
			resp = response{ID: req.ID, Error: fmt.Sprintf("kustomize panicked: %v", p)}
		}
	}()
	if req.Format != "" && req.Format != "yaml" && req.Format != "json" {
		return response{ID: req.ID, Error: fmt.Sprintf("format %q is not yaml or json", req.Format)}
	}
	if !filepath.IsAbs(req.Dir) {
		return response{ID: req.ID, Error: fmt.Sprintf("dir %q is not an absolute path", req.Dir)}
	}
	if ownSchema(req.Dir) {
		schema.Lock()
		defer func() {
			openapi.ResetOpenAPI()
			schema.Unlock()
		}()
	} else {
		schema.RLock()
		defer schema.RUnlock()
	}
	options := krusty.MakeDefaultOptions()
	options.LoadRestrictions = types.LoadRestrictionsRootOnly
	options.PluginConfig = types.DisabledPluginConfig()
	options.Reorder = krusty.ReorderOptionUnspecified // as the CLI: sortOptions, else legacy
	resources, err := krusty.MakeKustomizer(options).Run(filesys.MakeFsOnDisk(), req.Dir)
	if err != nil {
		return response{ID: req.ID, Error: err.Error()}
	}
	if req.Format == "json" {
		objects, err := asJSON(resources)
		if err != nil {
			return response{ID: req.ID, Error: err.Error()}
		}
		return response{ID: req.ID, Objects: objects}
	}
	yaml, err := resources.AsYaml()
	if err != nil {
		return response{ID: req.ID, Error: err.Error()}
	}
	return response{ID: req.ID, YAML: string(yaml)}
}

// asJSON is the resources as one JSON list, in the order AsYaml prints them.
func asJSON(resources resmap.ResMap) (json.RawMessage, error) {
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i, res := range resources.Resources() {
		data, err := res.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("cannot encode %s as JSON: %w", res.CurId(), err)
		}
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(data)
	}
	buf.WriteByte(']')
	return buf.Bytes(), nil
}

// ownSchema tells whether the kustomization in dir may set its own OpenAPI schema.
func ownSchema(dir string) bool {
	for _, name := range kustomizationNames {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err == nil {
			return bytes.Contains(data, []byte("openapi"))
		}
	}
	return false
}

func apiVersion() string {
	info, ok := debug.ReadBuildInfo()
	if ok {
		for _, dep := range info.Deps {
			if dep.Path == "sigs.k8s.io/kustomize/api" {
				return dep.Path + " " + dep.Version
			}
		}
	}
	return "sigs.k8s.io/kustomize/api (unknown)"
}
