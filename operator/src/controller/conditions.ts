// Conditions as Kubernetes API conventions want them: one per type, and lastTransitionTime moves
// only when the status flips (a new reason or message alone does not move it).
import type { Condition } from "../api/v1alpha1.ts";

export type ConditionInput = Omit<Condition, "lastTransitionTime">;

export function mergeConditions(previous: readonly Condition[] | undefined, next: readonly ConditionInput[], now: string): Condition[] {
  return next.map((c) => {
    const prev = previous?.find((p) => p.type === c.type);
    const lastTransitionTime = prev && prev.status === c.status && prev.lastTransitionTime ? prev.lastTransitionTime : now;
    return { ...c, lastTransitionTime };
  });
}

export interface Transition {
  type: string;
  status: Condition["status"];
  reason: string;
  message: string;
}

/** Conditions whose status or reason changed (what deserves a Kubernetes Event). */
export function transitions(previous: readonly Condition[] | undefined, next: readonly Condition[]): Transition[] {
  const out: Transition[] = [];
  for (const c of next) {
    const prev = previous?.find((p) => p.type === c.type);
    if (!prev || prev.status !== c.status || prev.reason !== c.reason) out.push({ type: c.type, status: c.status, reason: c.reason, message: c.message });
  }
  return out;
}
