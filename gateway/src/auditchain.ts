// Tamper evidence for the audit log. Every line carries `seq` (its number in this gateway run) and
// `prev` (the sha256 of the previous line's exact bytes; the first line of a run hashes the run id), so
// removing, editing or reordering a line breaks the chain at the line after it. A chain alone can be
// recomputed by whoever edits the file, so the gateway also writes signed checkpoint lines (HMAC-SHA256
// with a secret key, or Ed25519 with a private key whose public half is enough to verify): a checkpoint
// signs the hash of the line before it, hence the whole run up to it. Lines after the last checkpoint
// are reported as unsigned: appended by someone, or the gateway stopped before signing (it signs at
// least every `everySeconds` while lines arrive, and once more with `final: true` when it stops).
//
// Limits, said plainly: removing the end of a file (lines and checkpoints together) looks like a run
// that did not stop cleanly (a warning: the final checkpoint is missing), and a whole run removed
// leaves no trace in the file itself; a central append-only store closes both.
import { createHmac, createPrivateKey, createPublicKey, hash, type KeyObject, sign, timingSafeEqual, verify } from "node:crypto";

export const CHECKPOINT_CONTEXT = "mcp-bastion-audit-checkpoint/v1";

/** The hash one line contributes to the next: sha256 of its exact bytes, base64url. */
export function lineHash(line: string): string {
  return hash("sha256", line, "base64url");
}

/** The `prev` of a run's first line. */
export function genesis(run: string): string {
  return lineHash(`mcp-bastion-audit/v1 run ${run}`);
}

export interface CheckpointKey {
  alg: "HMAC-SHA256" | "Ed25519";
  /** Short id of the key (sha256 prefix of the secret or public key), so a verifier can tell keys apart. */
  kid: string;
  sign?(data: string): string;
  verify(data: string, sig: string): boolean;
}

export class CheckpointKeyError extends Error {}

/**
 * A checkpoint key from a file's content: a PEM Ed25519 private key (signs and verifies), a PEM
 * public key (verifies only), or else the bytes of an HMAC secret (at least 32; trailing newlines are
 * not part of it). Errors say what is wrong, never the key.
 */
export function checkpointKey(material: Buffer, where: string): CheckpointKey {
  const text = material.toString("utf8");
  if (text.includes("-----BEGIN")) {
    let priv: KeyObject | undefined;
    let pub: KeyObject;
    try {
      if (/-----BEGIN (?:ENCRYPTED )?PRIVATE KEY-----/.test(text)) {
        priv = createPrivateKey(text);
        pub = createPublicKey(priv);
      } else pub = createPublicKey(text);
    } catch {
      throw new CheckpointKeyError(`${where}: not a readable PEM key (expected an Ed25519 PRIVATE KEY or PUBLIC KEY)`);
    }
    if (pub.asymmetricKeyType !== "ed25519")
      throw new CheckpointKeyError(`${where}: a ${pub.asymmetricKeyType} key; checkpoints use Ed25519 (or an HMAC secret)`);
    const kid = hash("sha256", pub.export({ type: "spki", format: "der" }), "hex").slice(0, 16);
    return {
      alg: "Ed25519",
      kid,
      ...(priv ? { sign: (data: string) => sign(null, Buffer.from(data), priv).toString("base64url") } : {}),
      verify: (data, sig) => {
        try {
          return verify(null, Buffer.from(data), pub, Buffer.from(sig, "base64url"));
        } catch {
          return false;
        }
      },
    };
  }
  let end = material.length;
  while (end > 0 && (material[end - 1] === 0x0a || material[end - 1] === 0x0d)) end--;
  const secret = material.subarray(0, end);
  if (secret.length < 32)
    throw new CheckpointKeyError(`${where}: an HMAC key needs at least 32 bytes (has ${secret.length}); e.g. head -c 32 /dev/urandom | base64`);
  const mac = (data: string) => createHmac("sha256", secret).update(data).digest();
  return {
    alg: "HMAC-SHA256",
    kid: hash("sha256", Buffer.concat([Buffer.from("hmac:"), secret]), "hex").slice(0, 16),
    sign: (data) => mac(data).toString("base64url"),
    verify: (data, sig) => {
      const want = mac(data);
      const got = Buffer.from(sig, "base64url");
      return got.length === want.length && timingSafeEqual(got, want);
    },
  };
}

export interface CheckpointFields {
  time: string;
  run: string;
  seq: number;
  prev: string;
  alg: string;
  kid: string;
  final?: boolean;
}

/** The bytes a checkpoint signs: every field of it but the signature, in a fixed order. */
export function checkpointPayload(c: CheckpointFields): string {
  return [CHECKPOINT_CONTEXT, c.run, c.seq, c.prev, c.time, c.alg, c.kid, c.final === true ? "final" : ""].join("\n");
}

export interface Verification {
  /** No problem found (warnings may remain). */
  ok: boolean;
  lines: number;
  runs: number;
  checkpoints: number;
  problems: string[];
  warnings: string[];
}

export class MissingKeyError extends Error {}

interface RunState {
  run: string;
  firstLine: number;
  lastSeq: number;
  lastHash: string;
  /** Line number up to which a verified checkpoint covers this run. */
  signedTo: number;
  lastLine: number;
  final: boolean;
}

/**
 * Pure: checks an audit file's chain and checkpoints. Throws MissingKeyError when the file has
 * checkpoints and no key is given (nothing could be verified). Each break is reported once, at the
 * line where it shows, and checking goes on from there.
 */
export function verifyAuditLog(text: string, key: CheckpointKey | undefined): Verification {
  const v: Verification = { ok: true, lines: 0, runs: 0, checkpoints: 0, problems: [], warnings: [] };
  const raw = text.split("\n");
  if (raw[raw.length - 1] === "") raw.pop();
  if (!key && raw.some((l) => l.includes('"type":"checkpoint"')))
    throw new MissingKeyError("this file has signed checkpoints: give the checkpoint key (--key FILE: the HMAC secret, or the Ed25519 public key)");
  const problem = (s: string) => {
    v.ok = false;
    if (v.problems.length < 100) v.problems.push(s);
  };
  let run: RunState | undefined;
  const endRun = (r: RunState | undefined) => {
    if (!r) return;
    if (r.signedTo < r.lastLine) {
      const from = Math.max(r.signedTo + 1, r.firstLine);
      if (key)
        problem(
          `lines ${from}-${r.lastLine} (run ${r.run}) are not covered by a signed checkpoint: appended after the last checkpoint, or the gateway stopped before signing`,
        );
    } else if (!r.final)
      v.warnings.push(`run ${r.run} (from line ${r.firstLine}) ends without its final checkpoint: the file was cut, or the gateway did not stop cleanly`);
  };
  for (let i = 0; i < raw.length; i++) {
    const n = i + 1;
    const line = raw[i]!;
    v.lines++;
    let m: Record<string, unknown>;
    try {
      m = JSON.parse(line) as Record<string, unknown>;
    } catch {
      problem(`line ${n}: not JSON`);
      continue;
    }
    if (!m || typeof m !== "object" || !Number.isInteger(m.seq) || typeof m.prev !== "string") {
      problem(`line ${n}: not an audit line (no seq and prev)`);
      continue;
    }
    const seq = m.seq as number;
    if (seq === 0) {
      endRun(run);
      if (typeof m.run !== "string" || m.prev !== genesis(m.run)) problem(`line ${n}: a run's first line whose prev is not the run's genesis hash (edited)`);
      run = { run: String(m.run), firstLine: n, lastSeq: 0, lastHash: lineHash(line), signedTo: n - 1, lastLine: n, final: false };
      v.runs++;
    } else if (!run) {
      problem(`line ${n}: seq ${seq} without the start of its run: lines before it were removed`);
      run = { run: "?", firstLine: n, lastSeq: seq, lastHash: lineHash(line), signedTo: n - 1, lastLine: n, final: false };
      v.runs++;
    } else {
      if (seq !== run.lastSeq + 1 || m.prev !== run.lastHash) {
        const what =
          seq <= run.lastSeq
            ? "reordered or repeated"
            : seq > run.lastSeq + 1
              ? `${seq - run.lastSeq - 1} line(s) before it removed`
              : "the line before it was edited, removed or replaced";
        problem(`line ${n}: does not follow line ${n - 1} (seq ${seq} after ${run.lastSeq}): ${what}`);
      }
      run.lastSeq = seq;
      run.lastHash = lineHash(line);
      run.lastLine = n;
    }
    if (m.type === "checkpoint") {
      v.checkpoints++;
      const c = m as unknown as CheckpointFields & { sig?: unknown };
      const fieldsOk =
        typeof c.sig === "string" && typeof c.time === "string" && typeof c.run === "string" && typeof c.alg === "string" && typeof c.kid === "string";
      if (!fieldsOk) problem(`line ${n}: checkpoint without its fields (time, run, alg, kid, sig)`);
      else if (c.kid !== key!.kid || c.alg !== key!.alg)
        problem(`line ${n}: checkpoint signed with another key (${c.alg} ${c.kid}; this key is ${key!.alg} ${key!.kid})`);
      else if (c.run !== run.run) problem(`line ${n}: checkpoint of run ${c.run} inside run ${run.run}`);
      else if (!key!.verify(checkpointPayload(c), c.sig as string))
        problem(`line ${n}: checkpoint signature does not verify: forged, or the checkpoint was edited`);
      else {
        run.signedTo = n;
        run.final = c.final === true;
      }
    }
  }
  endRun(run);
  if (!key) v.warnings.push("no checkpoints: the chain shows order and completeness, but whoever can write the file can recompute it");
  return v;
}
