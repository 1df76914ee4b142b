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
// A request may carry the files themselves: {"id": 1, "dir": "app", "files": {"app/
// kustomization.yaml": "...", "base/x.yaml": "..."}}, repository-relative paths. The render then
// reads an in-memory filesystem holding exactly those files under /repo (the disk is not read
// at all), "dir" is relative to it, and error messages name the paths without the /repo/ prefix.
// The client sends files that way when a commit's paths are plain files (no links), which spares
// the hub a checkout on disk per render; `krender -features` prints "format files" (a build
// older than a field fails on the flag or leaves the word out, and the client keeps to the disk).
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
	"strings"
	"sync"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/kustomize/kyaml/openapi"
)

type request struct {
	ID     int64             `json:"id"`
	Dir    string            `json:"dir"`
	Format string            `json:"format,omitempty"` // "yaml" (the default) or "json"
	Files  map[string]string `json:"files,omitempty"`  // repository path -> content: render in memory
}

// memoryRoot is where a request's files are laid out in its in-memory filesystem.
const memoryRoot = "/repo"

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
	features := flag.Bool("features", false, "print the request fields this build knows and exit")
	flag.Parse()
	if *version {
		fmt.Println(apiVersion())
		return
	}
	if *features {
		fmt.Println("format files")
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
	fSys, dir, err := filesystem(req)
	if err != nil {
		return response{ID: req.ID, Error: err.Error()}
	}
	if ownSchema(fSys, dir) {
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
	resources, err := krusty.MakeKustomizer(options).Run(fSys, dir)
	if err != nil {
		return response{ID: req.ID, Error: shown(req, err.Error())}
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

// filesystem is where the request's render reads and the directory it builds: the disk and an
// absolute dir, or the request's own files in memory and dir under memoryRoot.
func filesystem(req request) (filesys.FileSystem, string, error) {
	if req.Files == nil {
		if !filepath.IsAbs(req.Dir) {
			return nil, "", fmt.Errorf("dir %q is not an absolute path", req.Dir)
		}
		return filesys.MakeFsOnDisk(), req.Dir, nil
	}
	fSys := filesys.MakeFsInMemory()
	for name, content := range req.Files {
		clean := filepath.Clean("/" + name)
		if clean == "/" || clean != "/"+name {
			return nil, "", fmt.Errorf("file %q is not a clean repository-relative path", name)
		}
		if err := fSys.WriteFile(memoryRoot+clean, []byte(content)); err != nil {
			return nil, "", fmt.Errorf("cannot lay out file %q: %v", name, err)
		}
	}
	dir := filepath.Join(memoryRoot, filepath.Clean("/"+req.Dir))
	if !fSys.IsDir(dir) {
		return nil, "", fmt.Errorf("dir %q is not among the request's files", req.Dir)
	}
	return fSys, dir, nil
}

// shown is an error message of a render with the in-memory root left out of the paths it names.
func shown(req request, message string) string {
	if req.Files == nil {
		return message
	}
	return strings.ReplaceAll(message, memoryRoot+"/", "")
}

// ownSchema tells whether the kustomization in dir may set its own OpenAPI schema.
func ownSchema(fSys filesys.FileSystem, dir string) bool {
	for _, name := range kustomizationNames {
		data, err := fSys.ReadFile(filepath.Join(dir, name))
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
