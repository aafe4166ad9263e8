// Figures of the reliability suite. node:test runs each file in its own process, so each file
// writes its scenarios and figures to one JSON file in a shared directory, and summary.ts prints
// the table once every file has run. The directory is $RELIABILITY_FIGURES_DIR when set (the
// Makefile sets it), else a fixed path under the OS temp dir. Each file also prints its own
// figures as test diagnostics, so running one file alone still shows them.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";

export interface Scenario {
  name: string;
  passed: boolean;
  /** e.g. "converged in 1.42 s", "peak RSS 81 MB" */
  figure?: string;
  /** Why a failed scenario failed (the first line of its error), so the summary at the end of CI says it. */
  reason?: string;
}

export interface FigureFile {
  file: string;
  scenarios: Scenario[];
  figures: Record<string, string>;
}

export function figuresDir(): string {
  return process.env.RELIABILITY_FIGURES_DIR ?? join(tmpdir(), "mcp-bastion-reliability");
}

/** Collects scenarios and figures for one test file; `flush()` (call it in `after`) writes them. */
export class Figures {
  readonly file: string;
  readonly scenarios: Scenario[] = [];
  readonly figures: Record<string, string> = {};
  constructor(testFileUrl: string) {
    this.file = basename(new URL(testFileUrl).pathname);
  }
  scenario(name: string, passed: boolean, figure?: string): void {
    this.scenarios.push(figure === undefined ? { name, passed } : { name, passed, figure });
  }
  /** A failed scenario with its reason: the error's first line, cut to 400 characters. */
  failed(name: string, err: unknown, figure?: string): void {
    const reason = (err instanceof Error ? err.message : String(err)).split("\n")[0]!.slice(0, 400);
    this.scenarios.push({ name, passed: false, reason, ...(figure === undefined ? {} : { figure }) });
  }
  figure(key: string, value: string): void {
    this.figures[key] = value;
  }
  /** Lines for t.diagnostic / console. */
  lines(): string[] {
    const passed = this.scenarios.filter((s) => s.passed).length;
    return [`${this.file}: ${this.scenarios.length} scenarios, ${passed} passed`, ...Object.entries(this.figures).map(([k, v]) => `  ${k}: ${v}`)];
  }
  flush(): void {
    const dir = figuresDir();
    mkdirSync(dir, { recursive: true });
    const out: FigureFile = { file: this.file, scenarios: this.scenarios, figures: this.figures };
    writeFileSync(join(dir, `${this.file}.json`), `${JSON.stringify(out, null, 2)}\n`);
    for (const l of this.lines()) console.log(`# ${l}`);
  }
}

export function readFigureFiles(dir = figuresDir()): FigureFile[] {
  let names: string[] = [];
  try {
    names = readdirSync(dir)
      .filter((n) => n.endsWith(".json"))
      .sort();
  } catch {
    return [];
  }
  const out: FigureFile[] = [];
  for (const n of names) {
    try {
      out.push(JSON.parse(readFileSync(join(dir, n), "utf8")) as FigureFile);
    } catch {
      // a file being written by a run that was interrupted: skip it
    }
  }
  return out;
}

/** The summary table: one row per test file, then its figures, then a total line. Pure. */
export function summaryTable(files: FigureFile[]): string {
  const rows: string[][] = [["suite", "scenarios", "passed", "failed"]];
  let total = 0;
  let passed = 0;
  for (const f of files) {
    const p = f.scenarios.filter((s) => s.passed).length;
    total += f.scenarios.length;
    passed += p;
    rows.push([f.file.replace(/\.test\.ts$/, ""), String(f.scenarios.length), String(p), String(f.scenarios.length - p)]);
  }
  rows.push(["total", String(total), String(passed), String(total - passed)]);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  const lines = ["Reliability suite", fmt(rows[0]!), ...rows.slice(1, -1).map(fmt), fmt(rows[rows.length - 1]!)];
  const figureLines: string[] = [];
  for (const f of files) {
    const entries = Object.entries(f.figures);
    if (entries.length === 0) continue;
    figureLines.push(`${f.file.replace(/\.test\.ts$/, "")}:`);
    const kw = Math.max(...entries.map(([k]) => k.length));
    for (const [k, v] of entries) figureLines.push(`  ${k.padEnd(kw)}  ${v}`);
  }
  const failedScenarios = files.flatMap((f) =>
    f.scenarios.filter((s) => !s.passed).map((s) => `  FAILED ${f.file}: ${s.name}${s.reason ? `: ${s.reason}` : ""}`),
  );
  return [...lines, ...(figureLines.length ? ["", "Figures", ...figureLines] : []), ...failedScenarios].join("\n");
}

/** Resident set size of a process in MB (from /proc; Linux only, like the rest of the suite). */
export function rssMb(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(status);
    return m ? Number(m[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** Peak resident set size (VmHWM) of a process in MB. */
export function peakRssMb(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const m = /VmHWM:\s+(\d+)\s+kB/.exec(status);
    return m ? Number(m[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}
