// `mcp-bastion audit verify FILE [--key KEYFILE]`: checks a gateway audit log's hash chain and signed
// checkpoints (gateway/src/auditchain.ts) and says where a line was removed, edited, reordered or
// appended. Exit code 0: nothing found; 1: tampering found; 2: usage, unreadable file, missing key.
import { readFileSync } from "node:fs";
import { CheckpointKeyError, MissingKeyError, checkpointKey, verifyAuditLog } from "../../../gateway/src/auditchain.ts";

const USAGE = `usage: mcp-bastion audit verify FILE [--key KEYFILE] [--json]
  FILE     the gateway's audit lines (its stdout, e.g. kubectl logs POD -c gateway > audit.log); - reads stdin
  --key    the checkpoint key: the HMAC secret the gateway signs with, or the Ed25519 public key
           (or private key) in PEM; required when the file has signed checkpoints
  --json   print the result as JSON
`;

function read(path: string, what: string): Buffer {
  try {
    return readFileSync(path === "-" ? 0 : path);
  } catch (e) {
    throw new CheckpointKeyError(`cannot read ${what} ${path} (${(e as NodeJS.ErrnoException).code ?? "error"})`);
  }
}

export async function run(args: string[], out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === "-h" || sub === "--help") {
    out.write(USAGE);
    return sub === undefined ? 2 : 0;
  }
  if (sub !== "verify") {
    err.write(`mcp-bastion audit: unknown subcommand "${sub}"\n${USAGE}`);
    return 2;
  }
  let file: string | undefined;
  let keyFile: string | undefined;
  let json = false;
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (a === "--key") {
      keyFile = rest[++i];
      if (keyFile === undefined) {
        err.write("mcp-bastion audit verify: --key needs a file\n");
        return 2;
      }
    } else if (a.startsWith("--key=")) keyFile = a.slice(6);
    else if (a === "--json") json = true;
    else if (a.startsWith("-") && a !== "-") {
      err.write(`mcp-bastion audit verify: unknown option "${a}"\n${USAGE}`);
      return 2;
    } else if (file === undefined) file = a;
    else {
      err.write("mcp-bastion audit verify: one FILE only\n");
      return 2;
    }
  }
  if (file === undefined) {
    err.write(`mcp-bastion audit verify: FILE is required\n${USAGE}`);
    return 2;
  }
  try {
    const key = keyFile === undefined ? undefined : checkpointKey(read(keyFile, "key file"), `--key ${keyFile}`);
    const v = verifyAuditLog(read(file, "audit file").toString("utf8"), key);
    if (json) out.write(`${JSON.stringify(v)}\n`);
    else {
      const summary = `${v.lines} line(s), ${v.runs} run(s), ${v.checkpoints} checkpoint(s)`;
      for (const p of v.problems) out.write(`TAMPERED: ${p}\n`);
      for (const w of v.warnings) out.write(`warning: ${w}\n`);
      out.write(v.ok ? `verified: ${summary}; chain and checkpoints intact\n` : `FAILED: ${summary}; ${v.problems.length} problem(s)\n`);
    }
    return v.ok ? 0 : 1;
  } catch (e) {
    if (e instanceof MissingKeyError || e instanceof CheckpointKeyError) {
      err.write(`mcp-bastion audit verify: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}
