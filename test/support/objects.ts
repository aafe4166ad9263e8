// Reading Kubernetes objects and JSON answers in tests: obj(v) is v when it is an object, else {};
// list(v) its elements as objects when it is a list, else []. One definition, shared with the renderer's
// own checks (operator/src/render/json.ts), so a test reads an object exactly as the checklist does.
export { list, type Obj, obj } from "../../operator/src/render/json.ts";
