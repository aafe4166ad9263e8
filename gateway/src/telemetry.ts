// Optional OpenTelemetry traces: one span per MCP request with client, method and tool (never
// arguments), exported over OTLP/HTTP. The SDK is imported only when telemetry.otlpEndpoint is set,
// so a gateway without tracing never loads it.
import { errorKind, log } from "./log.ts";

export interface Tracer {
  start(method: string, client: string, tool: string | undefined): { end(attrs: Record<string, string | number>): void };
  shutdown(): Promise<void>;
}

export async function startTracer(endpoint: string, serverName: string): Promise<Tracer | undefined> {
  try {
    const [{ BasicTracerProvider, BatchSpanProcessor }, { OTLPTraceExporter }, { resourceFromAttributes }] = await Promise.all([
      import("@opentelemetry/sdk-trace-base"),
      import("@opentelemetry/exporter-trace-otlp-http"),
      import("@opentelemetry/resources"),
    ]);
    const url = endpoint.endsWith("/v1/traces") ? endpoint : `${endpoint.replace(/\/+$/, "")}/v1/traces`;
    const provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ "service.name": "mcp-bastion-gateway", "mcp.server": serverName }),
      spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url }))],
    });
    const tracer = provider.getTracer("mcp-bastion-gateway");
    log("info", "otlp tracing on", { endpoint: url });
    return {
      start(method, client, tool) {
        const span = tracer.startSpan(`mcp ${method}`, {
          attributes: { "mcp.method": method, "mcp.client": client, ...(tool ? { "mcp.tool": tool } : {}) },
        });
        return {
          end(attrs) {
            span.setAttributes(attrs);
            if (attrs.outcome !== "ok") span.setStatus({ code: 2 });
            span.end();
          },
        };
      },
      shutdown: () => provider.shutdown(),
    };
  } catch (e) {
    log("warn", "otlp tracing could not start; continuing without traces", { error: errorKind(e) });
    return undefined;
  }
}
