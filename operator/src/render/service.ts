// The Service: exposes only the gateway's MCP port. The admin port (metrics, probes) and the MCP
// server's own port stay unexposed.
import type { Chart } from "cdk8s";
import * as kplus from "cdk8s-plus-27";
import { GATEWAY_PORTS } from "../../../contract/gateway-config.ts";
import type { McpServer } from "../api/v1alpha1.ts";
import { relaysSessions } from "./gateway-config.ts";
import { childNames, selectorLabels } from "./labels.ts";

export function service(chart: Chart, server: McpServer): void {
  const svc = new kplus.Service(chart, "service", {
    metadata: { name: childNames(server).service },
    type: kplus.ServiceType.CLUSTER_IP,
    ports: [
      {
        // Istio picks the protocol from the port name: the gateway speaks HTTP (TLS when spec.tls is set).
        name: server.spec.tls ? "https-mcp" : "http-mcp",
        port: GATEWAY_PORTS.mcp,
        targetPort: GATEWAY_PORTS.mcp,
        protocol: kplus.Protocol.TCP,
      },
    ],
  });
  // Label-based selection instead of `selector: deployment`, which would add a hashed label.
  for (const [k, v] of Object.entries(selectorLabels(server))) svc.selectLabel(k, v);
  if (relaysSessions(server)) peersService(chart, server);
}

/** The ready replicas' addresses, as DNS A records: only a current replica is ever relayed to. */
function peersService(chart: Chart, server: McpServer): void {
  const svc = new kplus.Service(chart, "peers", {
    metadata: { name: childNames(server).peers },
    clusterIP: "None",
    ports: [{ name: "http-mcp", port: GATEWAY_PORTS.mcp, targetPort: GATEWAY_PORTS.mcp, protocol: kplus.Protocol.TCP }],
  });
  for (const [k, v] of Object.entries(selectorLabels(server))) svc.selectLabel(k, v);
}
