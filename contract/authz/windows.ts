// Time-based rules: a rule is active only inside its windows (days of the week, HH:MM-HH:MM, IANA time
// zone) and between notBefore and notAfter (temporary elevation). Evaluated with the gateway's clock;
// `nextChange` says when the answer flips, so the gateway caches it until then and the operator can
// report it (and requeue at that time).

export const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"] as const;
export type Day = (typeof DAYS)[number];

export interface TimeWindow {
  days?: readonly Day[];
  /** "HH:MM", local time in timeZone, inclusive. */
  start: string;
  /** "HH:MM", exclusive; end <= start means the window runs past midnight into the next day. */
  end: string;
  timeZone: string;
}

export interface Schedule {
  windows?: readonly TimeWindow[];
  /** RFC 3339; inactive before. */
  notBefore?: string;
  /** RFC 3339; inactive from then on (an elevation that ends by itself). */
  notAfter?: string;
}

const HHMM = /^([01][0-9]|2[0-3]):([0-5][0-9])$/;

export function minutesOf(hhmm: string): number {
  const m = HHMM.exec(hhmm);
  if (!m) throw new Error(`"${hhmm}" is not a time of day (HH:MM, 00:00-23:59)`);
  return Number(m[1]) * 60 + Number(m[2]);
}

const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", { timeZone, hourCycle: "h23", weekday: "short", hour: "2-digit", minute: "2-digit" });
    formatters.set(timeZone, f);
  }
  return f;
}

/** Throws for a time zone the runtime does not know (validation uses this). */
export function checkTimeZone(tz: string): void {
  try {
    formatter(tz);
  } catch {
    throw new Error(`unknown time zone "${tz}" (use an IANA name such as Europe/Berlin or UTC)`);
  }
}

/** Local day of week (0 = Sunday) and minute of day at instant `ms` in `timeZone`. */
export function localTime(ms: number, timeZone: string): { day: number; minute: number } {
  let day = 0;
  let hour = 0;
  let minute = 0;
  for (const p of formatter(timeZone).formatToParts(ms)) {
    if (p.type === "weekday") day = DAYS.indexOf(p.value as Day);
    else if (p.type === "hour") hour = Number(p.value);
    else if (p.type === "minute") minute = Number(p.value);
  }
  return { day, minute: hour * 60 + minute };
}

export function inWindow(w: TimeWindow, ms: number): boolean {
  const { day, minute } = localTime(ms, w.timeZone);
  const start = minutesOf(w.start);
  const end = minutesOf(w.end);
  const dayOk = (d: number) => !w.days || w.days.length === 0 || w.days.includes(DAYS[(d + 7) % 7]!);
  if (start < end) return dayOk(day) && minute >= start && minute < end;
  // Past midnight: the part after start belongs to `day`, the part before end to the day before.
  return (minute >= start && dayOk(day)) || (minute < end && dayOk(day - 1));
}

export function isActive(s: Schedule, ms: number): boolean {
  if (s.notBefore !== undefined && ms < Date.parse(s.notBefore)) return false;
  if (s.notAfter !== undefined && ms >= Date.parse(s.notAfter)) return false;
  if (!s.windows || s.windows.length === 0) return true;
  return s.windows.some((w) => inWindow(w, ms));
}

/** The UTC instant of local time `minute` on the local date of `ms` + `dayOffset` days in `tz` (DST-aware). */
function instantAt(ms: number, dayOffset: number, minute: number, tz: string): number {
  const dtf = new Intl.DateTimeFormat("en-CA", { timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit" });
  const [y, mo, d] = dtf
    .format(ms + dayOffset * 86_400_000)
    .split("-")
    .map(Number) as [number, number, number];
  // Guess as if the zone were UTC, then correct by the zone's offset at the guess (twice, for DST edges).
  let t = Date.UTC(y, mo - 1, d, Math.floor(minute / 60), minute % 60);
  for (let i = 0; i < 2; i++) {
    const lt = localTime(t, tz);
    const want = minute;
    let diff = lt.minute - want;
    if (diff > 720) diff -= 1440;
    if (diff < -720) diff += 1440;
    t -= diff * 60_000;
  }
  return t;
}

/**
 * The first instant after `ms` at which isActive(s, ·) differs from isActive(s, ms), or undefined when
 * it never changes again (no windows and no future bound). Looks at most 8 days ahead for windows.
 */
export function nextChange(s: Schedule, ms: number): number | undefined {
  const now = isActive(s, ms);
  const candidates: number[] = [];
  for (const b of [s.notBefore, s.notAfter]) {
    if (b === undefined) continue;
    const t = Date.parse(b);
    if (t > ms) candidates.push(t);
  }
  for (const w of s.windows ?? []) {
    for (let d = -1; d <= 8; d++) {
      for (const m of [minutesOf(w.start), minutesOf(w.end)]) {
        const t = instantAt(ms, d, m, w.timeZone);
        if (t > ms) candidates.push(t);
      }
    }
  }
  candidates.sort((a, b) => a - b);
  for (const t of candidates) if (isActive(s, t) !== now) return t;
  return undefined;
}

/** Problems of a schedule, each naming its field relative to the schedule (empty when valid). */
export function scheduleProblems(s: Schedule): string[] {
  const out: string[] = [];
  for (const [k, v] of [
    ["notBefore", s.notBefore],
    ["notAfter", s.notAfter],
  ] as const) {
    if (v !== undefined && Number.isNaN(Date.parse(v))) out.push(`${k}: "${v}" is not an RFC 3339 timestamp`);
  }
  if (s.notBefore && s.notAfter && Date.parse(s.notBefore) >= Date.parse(s.notAfter)) out.push("notBefore must be before notAfter");
  (s.windows ?? []).forEach((w, i) => {
    try {
      checkTimeZone(w.timeZone);
    } catch (e) {
      out.push(`windows[${i}].timeZone: ${(e as Error).message}`);
    }
    for (const k of ["start", "end"] as const) {
      try {
        minutesOf(w[k]);
      } catch (e) {
        out.push(`windows[${i}].${k}: ${(e as Error).message}`);
      }
    }
    if (w.start === w.end) out.push(`windows[${i}]: start and end are equal (an empty window)`);
  });
  return out;
}

/** Pure: the rules active at `now` and the next change (the operator's status uses this too). */
export function ruleSchedule(
  rules: readonly { name: string; schedule?: Schedule }[],
  now: number,
): { active: string[]; inactive: string[]; nextChange?: number } {
  const active: string[] = [];
  const inactive: string[] = [];
  let next: number | undefined;
  for (const r of rules) {
    if (!r.schedule) {
      active.push(r.name);
      continue;
    }
    (isActive(r.schedule, now) ? active : inactive).push(r.name);
    const n = nextChange(r.schedule, now);
    if (n !== undefined && (next === undefined || n < next)) next = n;
  }
  return { active, inactive, ...(next !== undefined ? { nextChange: next } : {}) };
}
