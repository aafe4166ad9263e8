// A Secret volume laid out the way the kubelet writes one, so the gateway sees exactly what it sees in a
// pod, including the atomic swap on update (test/tls and test/gateway/tls-reload.test.ts).
import { mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * A Secret volume as the kubelet keeps it (its AtomicWriter): the files live in a `..<timestamp>`
 * directory, `..data` is a symlink to it, and each key is a symlink `KEY -> ..data/KEY`. An update
 * writes a new timestamped directory, points `..data_tmp` at it, renames that over `..data` (atomic)
 * and removes the old directory.
 */
export class KubeletSecretVolume {
  readonly dir: string;
  #version = 0;
  #current: string | undefined;

  constructor(dir: string) {
    this.dir = dir;
  }

  write(data: Record<string, Buffer | string>): void {
    const name = `..${new Date().toISOString().replace(/[-:.TZ]/g, "_")}${++this.#version}`;
    mkdirSync(join(this.dir, name), { mode: 0o755 });
    for (const [key, value] of Object.entries(data)) writeFileSync(join(this.dir, name, key), value, { mode: 0o644 });
    symlinkSync(name, join(this.dir, "..data_tmp"));
    renameSync(join(this.dir, "..data_tmp"), join(this.dir, "..data"));
    for (const key of Object.keys(data)) {
      try {
        symlinkSync(join("..data", key), join(this.dir, key));
      } catch {
        // the key's link exists since the first version: it follows ..data
      }
    }
    if (this.#current) rmSync(join(this.dir, this.#current), { recursive: true, force: true });
    this.#current = name;
  }
}
