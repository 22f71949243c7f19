// Command gitops-health tells what Flux (kstatus) and Argo CD (a Lua health check) would
// say about live Kubernetes objects, so that tests can feed real objects through the real
// rules instead of re-implementing them.
//
//	gitops-health --lua health.lua [--open-libs] < objects.json > health.json
//
// stdin: a JSON array of full objects (the items of `kubectl get -o json`; a List object
// is accepted too). stdout: a JSON array, one entry per object, in order:
//
//	{"name": "...", "kstatus": {"status": "...", "message": "..."},
//	 "argocd": {"status": "...", "message": "..."}}
//
// A broken script is not a crash: like Argo CD, the object's health becomes Unknown with
// the error as its message (also printed on stderr). Exit 2 on unusable input or flags.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	luajson "layeh.com/gopher-json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type health struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

type result struct {
	Name    string `json:"name"`
	Kstatus health `json:"kstatus"`
	ArgoCD  health `json:"argocd"`
}

func main() {
	luaPath := flag.String("lua", "", "Argo CD Lua health script (the resource.customizations.health.<group>_<Kind> value)")
	openLibs := flag.Bool("open-libs", false, "open all Lua standard libraries, as resource.customizations.useOpenLibs.<group>_<Kind>: \"true\" does")
	flag.Parse()
	if *luaPath == "" || flag.NArg() != 0 {
		fail("usage: gitops-health --lua <health.lua> [--open-libs] < objects.json")
	}
	script, err := os.ReadFile(*luaPath)
	if err != nil {
		fail(err.Error())
	}
	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("reading stdin: " + err.Error())
	}
	objects, err := decodeObjects(input)
	if err != nil {
		fail(err.Error())
	}

	results := make([]result, 0, len(objects))
	for _, u := range objects {
		argo, err := argoHealth(u, string(script), *openLibs)
		if err != nil {
			fmt.Fprintf(os.Stderr, "gitops-health: %s %s/%s: %v\n", u.GetKind(), u.GetNamespace(), u.GetName(), err)
		}
		results = append(results, result{Name: u.GetName(), Kstatus: kstatusHealth(u), ArgoCD: argo})
	}
	out := json.NewEncoder(os.Stdout)
	out.SetIndent("", "  ")
	if err := out.Encode(results); err != nil {
		fail("writing stdout: " + err.Error())
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "gitops-health:", msg)
	os.Exit(2)
}

// decodeObjects reads a JSON array of objects, or a List's items. Each is decoded the way
// client-go decodes what the API server sends (integers become int64), which is what
// both kstatus and Argo CD's controller see; plain encoding/json would give float64 and
// kstatus could not read metadata.generation.
func decodeObjects(input []byte) ([]*unstructured.Unstructured, error) {
	var raws []json.RawMessage
	if trimmed := bytes.TrimSpace(input); len(trimmed) > 0 && trimmed[0] == '{' {
		var list struct {
			Items []json.RawMessage `json:"items"`
		}
		if err := json.Unmarshal(trimmed, &list); err != nil {
			return nil, fmt.Errorf("stdin is not a JSON list of objects: %w", err)
		}
		raws = list.Items
	} else if err := json.Unmarshal(input, &raws); err != nil {
		return nil, fmt.Errorf("stdin is not a JSON array of objects: %w", err)
	}
	objects := make([]*unstructured.Unstructured, 0, len(raws))
	for i, raw := range raws {
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw); err != nil {
			return nil, fmt.Errorf("object %d: %w", i, err)
		}
		objects = append(objects, u)
	}
	return objects, nil
}

// kstatusHealth is what Flux computes: kustomize-controller and helm-controller wait with
// kstatus from github.com/fluxcd/cli-utils, a fork whose generic rules (deletion,
// observedGeneration, Reconciling, Stalled; pkg/kstatus/status generic.go, core.go,
// status.go) are identical to upstream sigs.k8s.io/cli-utils used here.
func kstatusHealth(u *unstructured.Unstructured) health {
	res, err := status.Compute(u)
	if err != nil {
		return health{Status: status.UnknownStatus.String(), Message: err.Error()}
	}
	return health{Status: res.Status.String(), Message: res.Message}
}

// Argo CD's health status codes (gitops-engine/pkg/health/health.go).
var argoStatuses = []string{"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}

// argoHealth follows GetResourceHealth in Argo CD's gitops-engine/pkg/health/health.go:
// an object being deleted (without Argo CD's hook finalizer) is Progressing before any
// health check runs, and a failing health check makes the object Unknown with the error
// as its message.
func argoHealth(u *unstructured.Unstructured, script string, openLibs bool) (health, error) {
	if u.GetDeletionTimestamp() != nil && !slices.Contains(u.GetFinalizers(), "argocd.argoproj.io/hook-finalizer") {
		return health{Status: "Progressing", Message: "Pending deletion"}, nil
	}
	h, err := executeHealthLua(u, script, openLibs)
	if err != nil {
		return health{Status: "Unknown", Message: err.Error()}, err
	}
	return h, nil
}

// executeHealthLua runs a health script as Argo CD does: VM.runLua and VM.ExecuteHealthLua
// in Argo CD's util/lua/lua.go (gopher-lua, i.e. Lua 5.1; the layeh.com/gopher-json version
// Argo CD pins to read the result back).
func executeHealthLua(u *unstructured.Unstructured, script string, openLibs bool) (health, error) {
	// Custom health checks from argocd-cm get only package, base and table (and a safe os
	// library, see below); string, math, os and io need useOpenLibs.
	l := lua.NewState(lua.Options{SkipOpenLibs: !openLibs})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), Protect: true}, lua.LString(lib.name)); err != nil {
			return health{}, err
		}
	}
	// Argo CD's OpenSafeOs (util/lua/oslib_safe.go) registers its os.time/os.date under
	// the table library's name, which is already loaded, so no `os` global appears; only
	// its preload makes `require("os")` return {time, date}.
	l.PreloadModule(lua.OsLibName, func(l *lua.LState) int {
		l.Push(l.SetFuncs(l.NewTable(), safeOs))
		return 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("actionParams", l.NewTable()) // set for every script; empty for health
	l.SetGlobal("obj", toLua(l, u.Object))

	fn, err := l.LoadString(script)
	if err == nil {
		l.Push(fn)
		err = l.PCall(0, lua.MultRet, nil)
	}
	if err != nil {
		// Argo CD drops the Lua stack trace of runtime errors before showing them.
		var apiErr *lua.ApiError
		if errors.As(err, &apiErr) && apiErr.Type == lua.ApiErrorRun {
			apiErr.StackTrace = ""
		}
		return health{}, err
	}

	ret := l.Get(-1)
	switch ret.Type() {
	case lua.LTNil:
		return health{}, nil // no health: Argo CD shows none
	case lua.LTTable:
	default:
		return health{}, fmt.Errorf("expect table output from Lua script, not %s", ret.Type())
	}
	// Read back through JSON, as Argo CD does: keys match case-insensitively, an empty
	// table encodes as [], and a value of the wrong type gives an empty health, no error.
	encoded, err := luajson.Encode(ret)
	if err != nil {
		return health{}, err
	}
	var h health
	if err := json.Unmarshal(encoded, &h); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return health{}, nil
		}
		return health{}, err
	}
	if !slices.Contains(argoStatuses, h.Status) {
		return health{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	return h, nil
}

// safeOs holds gopher-lua's own os.time and os.date, the functions Argo CD's safe os
// library was copied from; nothing else of os (exit, getenv, remove, ...) is reachable.
var safeOs = func() map[string]lua.LGFunction {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	if err := l.CallByParam(lua.P{Fn: l.NewFunction(lua.OpenOs), NRet: 1, Protect: true}); err != nil {
		panic(err)
	}
	osLib := l.Get(-1).(*lua.LTable)
	funcs := map[string]lua.LGFunction{}
	for _, name := range []string{"time", "date"} {
		funcs[name] = osLib.RawGetString(name).(*lua.LFunction).GFunction
	}
	return funcs
}()

// toLua builds the Lua global `obj` from the object, like decodeValue in Argo CD's
// util/lua/lua.go: maps become tables with string keys, lists 1-based arrays, every number
// a Lua number; null (and a null list item, which Append skips) is nil.
func toLua(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case map[string]any:
		t := l.CreateTable(0, len(v))
		for key, item := range v {
			t.RawSetH(lua.LString(key), toLua(l, item))
		}
		return t
	case []any:
		t := l.CreateTable(len(v), 0)
		for _, item := range v {
			t.Append(toLua(l, item))
		}
		return t
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case json.Number: // Argo CD keeps these as strings; the decoder above never makes one
		return lua.LString(v)
	}
	return lua.LNil
}
