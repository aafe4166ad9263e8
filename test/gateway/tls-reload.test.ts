// The gateway's TLS listener on its own (test/tls has it with cert-manager): a certificate renewed in a
// Secret volume (the kubelet's atomic ..data swap) is served to new connections without a restart, found by
// watching the directory (the periodic re-read is set to an hour here, so only the watch can find it); a
// pair whose key does not match is refused and the current certificate kept; minVersion "1.2" is the
// opt-out that lets 1.2 clients in; a bad pair at start is a clear error naming the file.
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import tls from "node:tls";
import { Gateway, parseConfig } from "../../gateway/src/index.ts";
import { waitUntil } from "../support/index.ts";
import { KubeletSecretVolume } from "../tls/volume.ts";
import { MemorySink, type Toy, baseConfig, selfSignedPair, startToy, tempDir, writeKeys } from "./helpers.ts";

const HOUR = 3_600_000;
const certs = tempDir("tls-certs");
/** A self-signed EC certificate and its key for 127.0.0.1 (openssl is needed by the control plane too). */
function pair(name: string): { "tls.crt": Buffer; "tls.key": Buffer } {
  const { crt, key } = selfSignedPair(certs, name, name);
  return { "tls.crt": readFileSync(crt), "tls.key": readFileSync(key) };
}
const serialOf = (p: { "tls.crt": Buffer }) => new X509Certificate(p["tls.crt"]).serialNumber;

let toy: Toy;
const gateways: Gateway[] = [];
after(async () => {
  for (const g of gateways) await g.close();
  await toy?.close();
});

async function start(minVersion: "1.2" | "1.3", volume: KubeletSecretVolume): Promise<{ gw: Gateway; port: number; adminPort: number }> {
  toy ??= await startToy();
  const keys = tempDir("tls-keys");
  writeKeys(keys, { ops: "tls-reload-key-Xy7Qw3Lp9Rt5" });
  const cfg = baseConfig({ upstream: { transport: "streamable-http", url: toy.url }, auth: { apiKeys: { dir: keys } } });
  cfg.listen.tls = { certFile: join(volume.dir, "tls.crt"), keyFile: join(volume.dir, "tls.key"), minVersion };
  const gw = new Gateway({ config: parseConfig(cfg), auditSink: new MemorySink(), tlsRescanMs: HOUR });
  gateways.push(gw);
  return { gw, ...(await gw.start()) };
}

function handshake(port: number, opts: tls.ConnectionOptions = {}): Promise<{ protocol: string; serial: string }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false, ...opts }, () => {
      const out = { protocol: s.getProtocol() ?? "", serial: s.getPeerCertificate().serialNumber };
      s.end();
      resolve(out);
    });
    s.on("error", reject);
  });
}

const metric = async (adminPort: number, name: string) => {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  return text
    .split("\n")
    .find((l) => l.startsWith(name))
    ?.split(" ")
    .pop();
};

test("a renewed pair swapped into the volume is served to new connections; a mismatched pair is refused and the current one kept", async () => {
  const volume = new KubeletSecretVolume(tempDir("tls-volume"));
  const one = pair("one");
  volume.write(one);
  const { port, adminPort } = await start("1.3", volume);
  assert.equal((await handshake(port)).serial.toUpperCase(), serialOf(one).toUpperCase());
  const notAfter = Number(await metric(adminPort, "mcp_gateway_tls_certificate_not_after_seconds"));
  assert.ok(notAfter > Date.now() / 1000, `expiry metric: ${notAfter}`);

  // A renewal whose key belongs to another certificate (a broken issuer, a half-copied Secret).
  const two = pair("two");
  const other = pair("other");
  volume.write({ "tls.crt": two["tls.crt"], "tls.key": other["tls.key"] });
  await waitUntil(
    "the failed reload to be counted",
    () => metric(adminPort, 'mcp_gateway_tls_reloads_total{result="failed"'),
    (v) => Number(v) >= 1,
  );
  assert.equal((await handshake(port)).serial.toUpperCase(), serialOf(one).toUpperCase(), "the current certificate is kept");

  volume.write(two);
  await waitUntil(
    "a new connection to get the renewed certificate",
    async () => (await handshake(port)).serial.toUpperCase(),
    (s) => s === serialOf(two).toUpperCase(),
  );
  assert.equal(await metric(adminPort, 'mcp_gateway_tls_reloads_total{result="ok"'), "1");
  // minVersion survives the new secure context.
  await assert.rejects(handshake(port, { maxVersion: "TLSv1.2" }), /protocol version/i);
});

test('minVersion "1.2" (the opt-out) lets a 1.2-only client in; 1.1 stays refused', async () => {
  const volume = new KubeletSecretVolume(tempDir("tls-volume"));
  volume.write(pair("legacy"));
  const { port } = await start("1.2", volume);
  assert.equal((await handshake(port, { maxVersion: "TLSv1.2" })).protocol, "TLSv1.2");
  assert.equal((await handshake(port)).protocol, "TLSv1.3");
  await assert.rejects(handshake(port, { minVersion: "TLSv1", maxVersion: "TLSv1.1", ciphers: "DEFAULT:@SECLEVEL=0" }));
});

test("a key that does not match the certificate at start is an error naming the file, not a crash later", async () => {
  const volume = new KubeletSecretVolume(tempDir("tls-volume"));
  volume.write({ "tls.crt": pair("a")["tls.crt"], "tls.key": pair("b")["tls.key"] });
  await assert.rejects(start("1.3", volume), (e: Error) => {
    assert.match(e.message, /tls\.key: the key cannot be used with .*tls\.crt/);
    assert.doesNotMatch(e.message, /PRIVATE KEY/);
    return true;
  });
});
