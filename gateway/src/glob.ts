// Glob patterns for authorization rules and tool names: `*` matches any run of characters, `?` one
// character, everything else is literal. Compiled once per pattern.
const cache = new Map<string, RegExp>();

export function globToRegExp(pattern: string): RegExp {
  let re = cache.get(pattern);
  if (re) return re;
  const body = pattern
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  re = new RegExp(`^${body}$`, "s");
  cache.set(pattern, re);
  return re;
}

export function globMatch(pattern: string, value: string): boolean {
  return pattern === "*" || pattern === value || globToRegExp(pattern).test(value);
}

export function anyGlob(patterns: readonly string[] | undefined, value: string): boolean {
  if (!patterns) return false;
  for (const p of patterns) if (globMatch(p, value)) return true;
  return false;
}
