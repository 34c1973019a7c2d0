// gitops-verdicts says what Argo CD and Flux would make of a Kubernetes object, using the very
// libraries they use, so that Serin's health check and status conditions are tested against them:
//
//	gitops-verdicts argocd-health SCRIPT.lua < object.json
//	    runs an Argo CD resource health script with gopher-lua, the interpreter Argo CD embeds,
//	    set up as Argo CD's util/lua sets it up (the object as the global `obj`; the package, base
//	    and table libraries; Argo CD's restricted os library, which Serin's script does not use,
//	    is left out), and prints {"status": ..., "message": ...}
//	gitops-verdicts kstatus < object.json
//	    computes the object's status with kstatus (sigs.k8s.io/cli-utils/pkg/kstatus), which Flux
//	    uses for a Kustomization's health checks, and prints {"status": ..., "message": ...}
//
// A script that fails, returns no table or returns a status Argo CD does not know is an error
// (Argo CD shows such a resource as Unknown).
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: gitops-verdicts argocd-health SCRIPT.lua | kstatus  (the object as JSON on stdin)")
	}
	object, err := readObject(os.Stdin)
	if err != nil {
		fail("reading the object from stdin: %v", err)
	}
	var result verdict
	switch os.Args[1] {
	case "argocd-health":
		if len(os.Args) != 3 {
			fail("usage: gitops-verdicts argocd-health SCRIPT.lua < object.json")
		}
		script, err := os.ReadFile(os.Args[2])
		if err != nil {
			fail("reading %s: %v", os.Args[2], err)
		}
		result, err = argocdHealth(object, string(script))
		if err != nil {
			fail("%s: %v", os.Args[2], err)
		}
	case "kstatus":
		computed, err := status.Compute(&unstructured.Unstructured{Object: object})
		if err != nil {
			fail("kstatus: %v", err)
		}
		result = verdict{Status: computed.Status.String(), Message: computed.Message}
	default:
		fail("unknown command %q", os.Args[1])
	}
	out, _ := json.Marshal(result)
	fmt.Println(string(out))
}

func readObject(r io.Reader) (map[string]interface{}, error) {
	var object map[string]interface{}
	decoder := json.NewDecoder(r)
	decoder.UseNumber()
	if err := decoder.Decode(&object); err != nil {
		return nil, err
	}
	// Unstructured objects hold whole numbers as int64, as the API client decodes them.
	return normalise(object).(map[string]interface{}), nil
}

func normalise(value interface{}) interface{} {
	switch v := value.(type) {
	case map[string]interface{}:
		for key, item := range v {
			v[key] = normalise(item)
		}
		return v
	case []interface{}:
		for i, item := range v {
			v[i] = normalise(item)
		}
		return v
	case json.Number:
		if whole, err := v.Int64(); err == nil {
			return whole
		}
		float, _ := v.Float64()
		return float
	default:
		return v
	}
}

// argocdHealth mirrors Argo CD's util/lua VM.ExecuteHealthLua with its default options.
func argocdHealth(object map[string]interface{}, script string) (verdict, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}} {
		l.Push(l.NewFunction(lib.open))
		l.Push(lua.LString(lib.name))
		l.Call(1, 0)
	}
	l.SetGlobal("obj", toLua(l, object))
	if err := l.DoString(script); err != nil {
		return verdict{}, err
	}
	table, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return verdict{}, fmt.Errorf("the script returned %s, not a table", l.Get(-1).Type())
	}
	result := verdict{Status: lua.LVAsString(table.RawGetString("status")), Message: lua.LVAsString(table.RawGetString("message"))}
	switch result.Status {
	case "Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown":
		return result, nil
	default:
		return verdict{}, fmt.Errorf("status %q is not one Argo CD knows", result.Status)
	}
}

func toLua(l *lua.LState, value interface{}) lua.LValue {
	switch v := value.(type) {
	case map[string]interface{}:
		table := l.NewTable()
		for key, item := range v {
			table.RawSetString(key, toLua(l, item))
		}
		return table
	case []interface{}:
		table := l.NewTable()
		for _, item := range v {
			table.Append(toLua(l, item))
		}
		return table
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	default:
		return lua.LNil
	}
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "gitops-verdicts: "+format+"\n", args...)
	os.Exit(2)
}
