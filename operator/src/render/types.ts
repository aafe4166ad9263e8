// Shapes shared by the renderer's modules (re-exported from index.ts, the public contract).
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: unknown[];
  };
  [k: string]: unknown;
}
