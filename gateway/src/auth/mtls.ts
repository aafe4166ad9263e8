// Istio peer identity from x-forwarded-client-cert (XFCC). The Istio sidecar sanitizes and sets this
// header for mTLS connections, so it is trusted only when config.auth.mtls is set (mesh on) and the
// pod is not reachable around the sidecar (the renderer's NetworkPolicy and PeerAuthentication STRICT).

/** Pure: the URI= value of the last XFCC element (the immediate peer), or undefined. */
export function xfccPeerUri(header: string | undefined): string | undefined {
  if (!header) return undefined;
  // Elements are comma-separated, fields `;`-separated; values may be double-quoted.
  const elements: string[] = [];
  let cur = "";
  let quoted = false;
  for (const ch of header) {
    if (ch === '"') quoted = !quoted;
    if (ch === "," && !quoted) {
      elements.push(cur);
      cur = "";
    } else cur += ch;
  }
  elements.push(cur);
  const last = elements[elements.length - 1] ?? "";
  let uri: string | undefined;
  let field = "";
  quoted = false;
  const fields: string[] = [];
  for (const ch of last) {
    if (ch === '"') quoted = !quoted;
    if (ch === ";" && !quoted) {
      fields.push(field);
      field = "";
    } else field += ch;
  }
  fields.push(field);
  for (const f of fields) {
    const eq = f.indexOf("=");
    if (eq < 0) continue;
    if (f.slice(0, eq).trim().toLowerCase() === "uri") uri = f.slice(eq + 1).trim().replace(/^"|"$/g, "");
  }
  return uri?.startsWith("spiffe://") ? uri : undefined;
}
