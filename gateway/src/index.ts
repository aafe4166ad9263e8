// The gateway's public surface: load a config, start, stop.
export { type GatewayConfig, type GatewayConfigInput, GatewayConfigSchema, GATEWAY_PATHS, GATEWAY_PORTS } from "../../contract/gateway-config.ts";
export { ConfigError, loadConfig, parseConfig } from "./load.ts";
export { Gateway, type GatewayOptions } from "./server.ts";
