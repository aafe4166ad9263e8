// TLS termination: the certificate pair as a secure context, its minimum version, and a reloader that
// picks up a renewed certificate without a restart and without touching open connections.
//
// The files are a kubernetes.io/tls Secret mounted as a volume. The kubelet never rewrites such a file:
// it writes the new contents into a fresh timestamped directory, points a temporary symlink at it and
// renames that over `..data` (one atomic rename), while `tls.crt` and `tls.key` stay symlinks through
// `..data`. Watching the files themselves would miss that (their inode never changes); watching their
// directory sees the rename. A periodic re-read backs the watch up (inotify can drop events).
// server.setSecureContext() changes what new handshakes get; established TLS sessions keep theirs.
import { createHash, X509Certificate } from "node:crypto";
import { type FSWatcher, readFileSync, watch } from "node:fs";
import { dirname } from "node:path";
import { createSecureContext, type SecureContextOptions, type SecureVersion } from "node:tls";
import { Counter, Gauge, type Registry } from "prom-client";
import { errorKind, log } from "./log.ts";

export type TlsMinVersion = "1.2" | "1.3";

export interface TlsFiles {
  certFile: string;
  keyFile: string;
  minVersion: TlsMinVersion;
}

/** Node's name for a TLS version of the config. */
export function nodeTlsVersion(v: TlsMinVersion): SecureVersion {
  return v === "1.3" ? "TLSv1.3" : "TLSv1.2";
}

/** One loaded, checked certificate pair. */
export interface CertificatePair {
  cert: Buffer;
  key: Buffer;
  /** SHA-256 of the leaf certificate (what a client would see change). */
  fingerprint: string;
  /** SHA-256 of both files: a new key with the same certificate is a change too. */
  digest: string;
  serialNumber: string;
  notAfterMs: number;
}

/**
 * Reads and checks the pair: both PEM files parse and the key belongs to the certificate. Throws an
 * error naming the file and the problem (never the key material).
 */
export function loadCertificatePair(files: Pick<TlsFiles, "certFile" | "keyFile">): CertificatePair {
  const cert = readFileSync(files.certFile);
  const key = readFileSync(files.keyFile);
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch (e) {
    throw new Error(`${files.certFile}: not a PEM certificate (${errorKind(e)})`);
  }
  try {
    // Loads both into an OpenSSL context, which checks that the key matches the certificate.
    createSecureContext({ cert, key });
  } catch (e) {
    throw new Error(`${files.keyFile}: the key cannot be used with ${files.certFile} (${errorKind(e)})`);
  }
  return {
    cert,
    key,
    fingerprint: leaf.fingerprint256,
    digest: createHash("sha256").update(cert).update("\0").update(key).digest("hex"),
    serialNumber: leaf.serialNumber,
    notAfterMs: Date.parse(leaf.validTo),
  };
}

/** The options of https.createServer / setSecureContext for a pair. */
export function secureContextOptions(pair: CertificatePair, minVersion: TlsMinVersion): SecureContextOptions {
  return { cert: pair.cert, key: pair.key, minVersion: nodeTlsVersion(minVersion), maxVersion: "TLSv1.3" };
}

export interface ReloaderOptions {
  /** How often the files are re-read besides directory events (default 60 s). */
  rescanMs?: number;
  /** How long after an event to read (the kubelet's swap is several renames; default 100 ms). */
  settleMs?: number;
}

/**
 * Watches the pair's directory and hands a changed, valid pair to `apply` (server.setSecureContext).
 * A pair that fails to load (half-written, key and certificate from different renewals) is logged and
 * the current one kept; the next event or rescan tries again.
 */
export class CertificateReloader {
  #current: CertificatePair;
  readonly #files: TlsFiles;
  readonly #apply: (options: SecureContextOptions) => void;
  readonly #rescanMs: number;
  readonly #settleMs: number;
  #watchers: FSWatcher[] = [];
  #timer: NodeJS.Timeout | undefined;
  #rescan: NodeJS.Timeout | undefined;
  #stopped = false;
  /** Failed loads in a row: the retry backs off and the warning is not repeated on every attempt. */
  #streak = 0;
  reloads = 0;
  failures = 0;

  constructor(files: TlsFiles, initial: CertificatePair, apply: (options: SecureContextOptions) => void, opts: ReloaderOptions = {}) {
    this.#files = files;
    this.#current = initial;
    this.#apply = apply;
    this.#rescanMs = opts.rescanMs ?? 60_000;
    this.#settleMs = opts.settleMs ?? 100;
  }

  get current(): CertificatePair {
    return this.#current;
  }

  start(): void {
    for (const dir of new Set([dirname(this.#files.certFile), dirname(this.#files.keyFile)])) {
      try {
        const w = watch(dir, { persistent: false }, () => this.#schedule());
        w.on("error", (e) => log("warn", "tls: watching the certificate directory failed; relying on the periodic re-read", { error: errorKind(e) }));
        this.#watchers.push(w);
      } catch (e) {
        log("warn", "tls: cannot watch the certificate directory; relying on the periodic re-read", { error: errorKind(e) });
      }
    }
    this.#rescan = setInterval(() => this.reload(), this.#rescanMs);
    this.#rescan.unref();
  }

  stop(): void {
    this.#stopped = true;
    for (const w of this.#watchers) w.close();
    this.#watchers = [];
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#rescan) clearInterval(this.#rescan);
  }

  #schedule(delayMs = this.#settleMs): void {
    if (this.#stopped || this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.reload();
    }, delayMs);
    this.#timer.unref();
  }

  /** Reads the files now; applies them when they changed and are valid. True when a new pair was applied. */
  reload(): boolean {
    if (this.#stopped) return false;
    let next: CertificatePair;
    try {
      next = loadCertificatePair(this.#files);
    } catch (e) {
      this.failures++;
      this.#streak++;
      if (this.#streak === 1 || this.#streak % 20 === 0) {
        log("warn", "tls: could not load the certificate files; keeping the current certificate", {
          // loadCertificatePair's messages name a file and a problem, never key material.
          error: e instanceof Error ? e.message : errorKind(e),
          serial: this.#current.serialNumber,
          attempts: this.#streak,
        });
      }
      // A swap caught half-way settles within moments: look again soon (backing off while it stays
      // broken) rather than only at the next rescan.
      this.#schedule(Math.min(this.#settleMs * 2 ** Math.min(this.#streak, 16), this.#rescanMs));
      return false;
    }
    this.#streak = 0;
    if (next.digest === this.#current.digest) return false;
    try {
      this.#apply(secureContextOptions(next, this.#files.minVersion));
    } catch (e) {
      this.failures++;
      log("warn", "tls: the new certificate was refused; keeping the current certificate", { error: errorKind(e) });
      return false;
    }
    const previous = this.#current;
    this.#current = next;
    this.reloads++;
    log("info", "tls: certificate reloaded", {
      serial: next.serialNumber,
      previousSerial: previous.serialNumber,
      notAfter: new Date(next.notAfterMs).toISOString(),
    });
    return true;
  }
}

/** Expiry of the served certificate and reload outcomes, on the gateway's /metrics. */
export function registerTlsMetrics(registry: Registry, reloader: CertificateReloader): void {
  new Gauge({
    name: "mcp_gateway_tls_certificate_not_after_seconds",
    help: "Expiry (Unix time) of the certificate the gateway serves now",
    registers: [registry],
    collect() {
      this.set(Math.floor(reloader.current.notAfterMs / 1000));
    },
  });
  new Counter({
    name: "mcp_gateway_tls_reloads_total",
    help: "Certificate reloads from the mounted files, by result (failed: the current certificate was kept)",
    labelNames: ["result"],
    registers: [registry],
    collect() {
      this.reset();
      this.inc({ result: "ok" }, reloader.reloads);
      this.inc({ result: "failed" }, reloader.failures);
    },
  });
}
