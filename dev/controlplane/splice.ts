// Both halves of the API server relay (index.ts on the host, netns-relay.ts inside the namespace) join two
// sockets the same way: bytes both ways, and either side's end or error closes both.
import type { Socket } from "node:net";

export function splice(client: Socket, upstream: Socket): void {
  client.pipe(upstream).pipe(client);
  const close = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on("error", close);
  upstream.on("error", close);
  client.on("close", close);
  upstream.on("close", close);
}
