package main

import (
	"strings"
	"testing"
)

// One object per rule kstatus applies before anything kind-specific.
const objectsJSON = `[
 {"apiVersion":"backupwarden.io/v1alpha1","kind":"BackedUpDatabase","metadata":{"name":"no-status","generation":1}},
 {"apiVersion":"backupwarden.io/v1alpha1","kind":"BackedUpDatabase","metadata":{"name":"old-generation","generation":3},
  "status":{"observedGeneration":2,"conditions":[{"type":"Ready","status":"True","reason":"Compliant"}]}},
 {"apiVersion":"backupwarden.io/v1alpha1","kind":"BackedUpDatabase","metadata":{"name":"ready","generation":2},
  "status":{"observedGeneration":2,"conditions":[{"type":"Ready","status":"True","reason":"Compliant","message":"every check passes"}]}},
 {"apiVersion":"backupwarden.io/v1alpha1","kind":"BackedUpDatabase","metadata":{"name":"reconciling","generation":2},
  "status":{"observedGeneration":2,"conditions":[{"type":"Reconciling","status":"True","reason":"ReplicationStarting"}]}},
 {"apiVersion":"backupwarden.io/v1alpha1","kind":"BackedUpDatabase","metadata":{"name":"stalled","generation":2},
  "status":{"observedGeneration":2,"conditions":[{"type":"Stalled","status":"True","reason":"AccessDenied","message":"denied"}]}},
 {"apiVersion":"backupwarden.io/v1alpha1","kind":"BackedUpDatabase",
  "metadata":{"name":"deleting","generation":2,"deletionTimestamp":"2026-11-30T10:00:00Z","finalizers":["backupwarden.io/cleanup"]},
  "status":{"observedGeneration":2,"conditions":[{"type":"Ready","status":"True","reason":"Compliant"}]}}
]`

// A tiny health script: reads numbers, 1-based lists and nested fields of `obj`.
const script = `
local hs = {}
if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "no status"
  return hs
end
if obj.status.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "generation " .. tostring(obj.metadata.generation)
  return hs
end
local c = obj.status.conditions[1]
if c.type == "Stalled" then hs.status = "Degraded" elseif c.type == "Ready" then hs.status = "Healthy" else hs.status = "Progressing" end
hs.message = c.reason
return hs
`

func TestRules(t *testing.T) {
	objects, err := decodeObjects([]byte(objectsJSON))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ name, kstatus, argocd, argoMessage string }{
		{"no-status", "Current", "Progressing", "no status"},
		{"old-generation", "InProgress", "Progressing", "generation 3"},
		{"ready", "Current", "Healthy", "Compliant"},
		{"reconciling", "InProgress", "Progressing", "ReplicationStarting"},
		{"stalled", "Failed", "Degraded", "AccessDenied"},
		{"deleting", "Terminating", "Progressing", "Pending deletion"},
	}
	if len(objects) != len(want) {
		t.Fatalf("decoded %d objects, want %d", len(objects), len(want))
	}
	for i, w := range want {
		u := objects[i]
		if u.GetName() != w.name {
			t.Fatalf("object %d is %q, want %q", i, u.GetName(), w.name)
		}
		if got := kstatusHealth(u); got.Status != w.kstatus {
			t.Errorf("%s: kstatus %+v, want %s", w.name, got, w.kstatus)
		}
		got, err := argoHealth(u, script, false)
		if err != nil || got != (health{w.argocd, w.argoMessage}) {
			t.Errorf("%s: argocd %+v (err %v), want %s %q", w.name, got, err, w.argocd, w.argoMessage)
		}
	}
}

func TestListInput(t *testing.T) {
	objects, err := decodeObjects([]byte(`{"apiVersion":"v1","kind":"List","items":` + objectsJSON + `}`))
	if err != nil || len(objects) != 6 {
		t.Fatalf("got %d objects, err %v", len(objects), err)
	}
}

// What Argo CD's util/lua/lua.go does with scripts that misbehave, and its sandbox.
func TestArgoLuaRules(t *testing.T) {
	objects, err := decodeObjects([]byte(objectsJSON))
	if err != nil {
		t.Fatal(err)
	}
	u := objects[2]
	cases := []struct {
		name, script string
		openLibs     bool
		want         health
		wantErr      string
	}{
		{"invalid status", `return {status = "Fine"}`, false, health{"Unknown", "Lua returned an invalid health status"}, ""},
		{"nothing returned", `return nil`, false, health{}, ""},
		{"empty table", `return {}`, false, health{}, ""},
		{"status of the wrong type", `return {status = 1}`, false, health{}, ""},
		{"key case ignored", `return {Status = "Healthy", MESSAGE = "ok"}`, false, health{"Healthy", "ok"}, ""},
		{"not a table", `return 1`, false, health{}, "expect table output from Lua script, not number"},
		{"runtime error, no stack trace", `error("boom")`, false, health{}, "<string>:1: boom"},
		{"no string library", `return {status = string.lower("HEALTHY")}`, false, health{}, "with key 'lower'"},
		{"string library with open libs", `return {status = "Healthy", message = string.lower("OK")}`, true, health{"Healthy", "ok"}, ""},
		{"no os global", `return {status = "Healthy", message = tostring(os)}`, false, health{"Healthy", "nil"}, ""},
		{"require os gives time and date only", `local os = require("os")
			return {status = "Healthy", message = type(os.time()) .. " " .. type(os.date) .. " " .. type(os.getenv)}`,
			false, health{"Healthy", "number function nil"}, ""},
		{"endless loop stopped", `while true do end`, false, health{}, "context deadline exceeded"},
	}
	for _, c := range cases {
		got, err := argoHealth(u, c.script, c.openLibs)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s: err %v, want one containing %q", c.name, err, c.wantErr)
			}
			if got.Status != "Unknown" || got.Message != err.Error() || strings.Contains(got.Message, "stack traceback") {
				t.Errorf("%s: %+v, want Unknown with the error as message", c.name, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %+v (err %v), want %+v", c.name, got, err, c.want)
		}
	}
}
