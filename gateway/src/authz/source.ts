// Source addresses: the client's address is the connection's peer, or - only when that peer is a
// configured trusted proxy - the address that proxy reports in X-Forwarded-For (walking right to left
// while the hops are trusted, so a client cannot prepend a forged address). Rules match it against
// CIDRs with node's net.BlockList.
import { BlockList, isIP } from "node:net";

/** "::ffff:10.1.2.3" (IPv4 on a dual-stack socket) -> "10.1.2.3"; anything else unchanged. */
export function plainAddress(a: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  return m ? m[1]! : a;
}

/** Parses "10.0.0.0/8", "2001:db8::/32" or a bare address; throws naming what is wrong. */
export function parseCidr(cidr: string): { address: string; prefix: number; family: "ipv4" | "ipv6" } {
  const [addr, len, extra] = cidr.split("/");
  const v = isIP(addr ?? "");
  if (extra !== undefined || v === 0) throw new Error(`"${cidr}" is not a CIDR (such as 10.0.0.0/8 or 2001:db8::/32)`);
  const max = v === 4 ? 32 : 128;
  const prefix = len === undefined ? max : Number(len);
  if (!/^\d{1,3}$/.test(len ?? String(max)) || prefix > max) throw new Error(`"${cidr}": prefix length must be 0-${max}`);
  return { address: addr!, prefix, family: v === 4 ? "ipv4" : "ipv6" };
}

export interface CidrSet {
  has(address: string): boolean;
  readonly size: number;
}

export function cidrSet(cidrs: readonly string[]): CidrSet {
  const list = new BlockList();
  for (const c of cidrs) {
    const p = parseCidr(c);
    list.addSubnet(p.address, p.prefix, p.family);
  }
  return {
    size: cidrs.length,
    has(address) {
      const a = plainAddress(address);
      const v = isIP(a);
      return v !== 0 && list.check(a, v === 4 ? "ipv4" : "ipv6");
    },
  };
}

/**
 * The client's address. `peer` is the socket's remote address; `xff` the X-Forwarded-For header. With
 * no trusted proxies configured, X-Forwarded-For is ignored entirely.
 */
export function clientAddress(peer: string | undefined, xff: string | string[] | undefined, trusted: CidrSet): string {
  let addr = plainAddress(peer ?? "unknown");
  if (trusted.size === 0 || xff === undefined || !trusted.has(addr)) return addr;
  const hops = (Array.isArray(xff) ? xff.join(",") : xff)
    .split(",")
    .map((h) => h.trim())
    .filter(Boolean);
  while (hops.length > 0 && trusted.has(addr)) {
    const next = plainAddress(hops.pop()!);
    if (isIP(next) === 0) break; // a malformed hop: stop at the last address we can vouch for
    addr = next;
  }
  return addr;
}
