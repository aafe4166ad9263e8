// luahealth evaluates an Argo CD resource health script the way Argo CD does, so the chart's
// McpServer health check is tested by the same Lua engine (github.com/yuin/gopher-lua, Lua 5.1)
// under the same restrictions, not by a newer Lua that would accept code Argo CD rejects.
//
// Mirrors argo-cd util/lua: only the package, base and table libraries are opened (no string,
// math or io library unless Argo CD's "useOpenLibs" is set, which we never rely on), the object
// is exposed as the global `obj`, the run is cut off after one second, and the returned table
// must carry a known health status.
//
// Usage: luahealth SCRIPT.lua < objects.json   (a JSON array of objects)
// Prints a JSON array with one {"status","message"} or {"error"} per object, in order.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
)

type result struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
}

// The health codes Argo CD accepts (gitops-engine pkg/health); anything else becomes Unknown there.
var validStatus = map[string]bool{
	"Unknown": true, "Progressing": true, "Healthy": true, "Suspended": true, "Degraded": true, "Missing": true,
}

func decodeValue(L *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case float64:
		return lua.LNumber(v)
	case []any:
		t := L.NewTable()
		for i, item := range v {
			t.RawSetInt(i+1, decodeValue(L, item))
		}
		return t
	case map[string]any:
		t := L.NewTable()
		for k, item := range v {
			t.RawSetString(k, decodeValue(L, item))
		}
		return t
	default:
		return lua.LNil
	}
}

func evaluate(script string, obj map[string]any) result {
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}} {
		L.Push(L.NewFunction(lib.open))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	L.SetContext(ctx)
	L.SetGlobal("obj", decodeValue(L, obj))
	if err := L.DoString(script); err != nil {
		return result{Error: err.Error()}
	}
	ret := L.Get(-1)
	if ret.Type() == lua.LTNil {
		return result{}
	}
	t, ok := ret.(*lua.LTable)
	if !ok {
		return result{Error: fmt.Sprintf("expect table output from Lua script, not %s", ret.Type())}
	}
	status, _ := t.RawGetString("status").(lua.LString)
	message, _ := t.RawGetString("message").(lua.LString)
	if !validStatus[string(status)] {
		return result{Status: "Unknown", Message: "Lua returned an invalid health status"}
	}
	return result{Status: string(status), Message: string(message)}
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: luahealth SCRIPT.lua < objects.json")
		os.Exit(2)
	}
	script, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "luahealth:", err)
		os.Exit(2)
	}
	var objects []map[string]any
	if err := json.NewDecoder(os.Stdin).Decode(&objects); err != nil {
		fmt.Fprintln(os.Stderr, "luahealth: stdin must be a JSON array of objects:", err)
		os.Exit(2)
	}
	results := make([]result, 0, len(objects))
	for _, obj := range objects {
		results = append(results, evaluate(string(script), obj))
	}
	if err := json.NewEncoder(os.Stdout).Encode(results); err != nil {
		fmt.Fprintln(os.Stderr, "luahealth:", err)
		os.Exit(1)
	}
}
