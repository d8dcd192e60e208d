/**
 * Strings must be well-formed Unicode: JSON can carry a lone UTF-16 surrogate (`"\ud800"`), which
 * JavaScript accepts but Redis's cjson, many databases and other languages refuse. Input holding
 * one is refused at the door (400 naming the field), the same on every store, so it never
 * reaches a script half-way through a change.
 */

// String.prototype.isWellFormed is in Node 20 (V8 11.3); TypeScript's lib has it from ES2024.
const wellFormed = (s: string): boolean => (s as unknown as { isWellFormed(): boolean }).isWellFormed();

/** The path (`body.labels.x`) of the first string, key or value, that is not well-formed; undefined if all are. */
export function illFormedPath(value: unknown, path: string, depth = 0): string | undefined {
  if (typeof value === 'string') return wellFormed(value) ? undefined : path;
  if (value === null || typeof value !== 'object' || depth > 64) return undefined;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const bad = illFormedPath(value[i], `${path}.${i}`, depth + 1);
      if (bad) return bad;
    }
    return undefined;
  }
  for (const key of Object.keys(value)) {
    if (!wellFormed(key)) return `${path}.${JSON.stringify(key).slice(1, -1)}`; // escaped, printable
    const bad = illFormedPath((value as Record<string, unknown>)[key], `${path}.${key}`, depth + 1);
    if (bad) return bad;
  }
  return undefined;
}
