// What a fresh clone needs from the tracked files: nothing may point outside the repository (an import by
// absolute path, a path of a development machine), and nothing may be a leftover scratch file. Pure
// functions over (path, text), so test/repo/hygiene.test.ts can show on a fixture that each rule fires.
import { basename, dirname, extname, posix } from "node:path";

export interface Finding {
  file: string;
  line: number;
  rule: "absolute-import" | "import-outside-repo" | "host-path" | "clone-path" | "scratch-file" | "stray-file" | "unreferenced-script";
  text: string;
}

/** Files whose imports are resolved: JS/TS sources (tests, tools, benchmarks included). */
const CODE = /\.(ts|mts|cts|js|mjs|cjs)$/;

/**
 * Import specifiers: `import ... from "x"`, `export ... from "x"`, `import "x"`, `import("x")`,
 * `require("x")`, `import.meta.resolve("x")`. The specifier is what Node will load, so that is what is checked.
 */
const IMPORT = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|\brequire\s*\(\s*|\bimport\.meta\.resolve\s*\(\s*)(["'`])([^"'`\n]+)\1/g;

/**
 * Locations that only exist on a development machine: something below the top-level directories `work`
 * and `root`, or a user's home directory (`home/NAME`, `Users/NAME` at the top level). The bare top-level
 * `work` directory is a common in-pod mount path and does not count. Matched only where a path starts
 * (after a quote, a space, `=`, `(`, `:`, `,`, `[`, the start of the line, or `file://`), so URLs and
 * escaped regexes do not count, and neither do paths inside a container or pod (/var/run/secrets, /tmp,
 * /usr/lib/cni). This file and its test name no such path literally, or they would flag themselves.
 */
const HOST_PATH = /(?:^|[\s"'`=(:,[]|file:\/\/)(?:(?:\/work|\/root)\/[^\s"'`/]|(?:\/home|\/Users)\/[A-Za-z0-9._-]+(?=[/\s"'`),;]|$))/;

/** Import specifiers that point outside the repository, in one JS/TS file (`file` is relative to the repository). */
export function importFindings(file: string, text: string): Finding[] {
  if (!CODE.test(file)) return [];
  const out: Finding[] = [];
  text.split("\n").forEach((line, i) => {
    for (const m of line.matchAll(IMPORT)) {
      const spec = m[2]!;
      if (spec.startsWith("/") || spec.startsWith("~") || spec.startsWith("file:") || /^[A-Za-z]:[\\/]/.test(spec)) {
        out.push({ file, line: i + 1, rule: "absolute-import", text: line.trim() });
      } else if (spec.startsWith(".")) {
        // Resolved against the importing file, inside the repository (paths here are repo-relative).
        const target = posix.normalize(posix.join(posix.dirname(file), spec));
        if (target === ".." || target.startsWith("../")) out.push({ file, line: i + 1, rule: "import-outside-repo", text: line.trim() });
      }
    }
  });
  return out;
}

/** Paths of a development machine, and the clone's own absolute path, in any tracked text file. */
export function pathFindings(file: string, text: string, cloneRoot?: string): Finding[] {
  const out: Finding[] = [];
  text.split("\n").forEach((line, i) => {
    if (HOST_PATH.test(line)) out.push({ file, line: i + 1, rule: "host-path", text: line.trim().slice(0, 200) });
    if (cloneRoot && cloneRoot.length > 1 && line.includes(cloneRoot)) out.push({ file, line: i + 1, rule: "clone-path", text: line.trim().slice(0, 200) });
  });
  return out;
}

/** Names that only a scratch file has: zz-*, scratch*, tmp*, temp*, wip*, junk*, editor and patch leftovers. */
const SCRATCH_NAME = /^(zz|scratch|tmp|temp|wip|junk|untitled|copy[ _-]of)([-_. ]|\d|$)|\.(orig|rej|bak|swp|swo|tmp|log|out)$|~$|^\.#|^#.*#$/i;

/** Where each kind of tracked file belongs: source, tests, fixtures, tools, benchmarks, docs, config. */
const PLACES: RegExp[] = [
  /^(README\.md|LICENSE|Makefile|Dockerfile|package\.json|package-lock\.json|biome\.json|tsconfig(\.[a-z]+)?\.json|\.gitignore|\.dockerignore)$/,
  /^\.ci\/run$/,
  /^contract\/.+\.ts$/,
  /^operator\/src\//,
  /^gateway\/src\//,
  /^cli\/(bin|src)\//,
  /^crds\/[^/]+\.yaml$/,
  /^charts\//,
  /^examples\/[^/]+\.yaml$/,
  /^(checks|docs)\/.+\.md$/,
  /^hack\//,
  /^dev\/.+\.ts$/,
  /^bench\//,
  /^test\/.+\.test\.ts$/,
  /^test\/(.+\/)?fixtures\//,
  /^test\/.+\.(ts|sh|py)$/,
  /^test\/.+\/Dockerfile$/,
];

/** Helper scripts: a module or script in test/, bench/, hack/ or dev/ that is not itself a test file. */
const SCRIPT = /^(test|bench|hack|dev)\/.+\.(ts|js|mjs|sh|py)$/;

/**
 * Tracked files that are not source, a test, a fixture, a tool, a benchmark, docs or config: scratch names
 * anywhere, files outside the known places, and helper scripts that nothing imports or names (a script
 * someone ran once). `texts` maps every tracked text file to its content.
 */
export function fileFindings(files: string[], texts: Map<string, string>): Finding[] {
  const out: Finding[] = [];
  const imported = new Set<string>();
  for (const [file, text] of texts) {
    if (!CODE.test(file)) continue;
    for (const m of text.matchAll(IMPORT)) {
      const spec = m[2]!;
      if (!spec.startsWith(".")) continue;
      const target = posix.normalize(posix.join(posix.dirname(file), spec));
      imported.add(target);
      if (extname(target) === ".js") imported.add(`${target.slice(0, -3)}.ts`);
      if (extname(target) === "") for (const ext of [".ts", "/index.ts"]) imported.add(`${target}${ext}`);
    }
  }
  for (const file of files) {
    if (SCRATCH_NAME.test(basename(file))) {
      out.push({ file, line: 0, rule: "scratch-file", text: "a scratch file's name" });
      continue;
    }
    if (!PLACES.some((p) => p.test(file))) {
      out.push({ file, line: 0, rule: "stray-file", text: "not source, a test, a fixture, a tool, a benchmark, docs or config" });
      continue;
    }
    if (SCRIPT.test(file) && !file.endsWith(".test.ts") && !imported.has(file)) {
      // Named by a Makefile, a script, the Dockerfile or the README (e.g. "reliability/summary.ts").
      const name = `${basename(dirname(file))}/${basename(file)}`;
      // Or by its quoted file name in a sibling that starts it (e.g. join(dirname, "netns-relay.ts")).
      const quoted = `"${basename(file)}"`;
      const named = [...texts].some(([other, text]) => other !== file && (text.includes(name) || (dirname(other) === dirname(file) && text.includes(quoted))));
      if (!named) out.push({ file, line: 0, rule: "unreferenced-script", text: "imported by no tracked file and named by none" });
    }
  }
  return out;
}
