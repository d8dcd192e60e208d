/**
 * Strings must be well-formed Unicode: JSON can carry a lone UTF-16 surrogate (`"\ud800"`), which
 * JavaScript accepts but Redis's cjson, many databases and other languages refuse. Input holding
 * one is refused at the door (400 naming the field), the same on every store, so it never
 * reaches a script half-way through a change; a media server's answer holding one is refused too.
 */

declare global {
  interface String {
    /** ES2024 (TypeScript's lib has it from ES2024); in Node 20 (V8 11.3). */
    isWellFormed(): boolean;
  }
}

/**
 * The path (`body.labels.x`) of the first string, key or value, that is not well-formed; undefined
 * if all are. An explicit stack, not recursion: a 64 KB body of `[[[[...` nests 32,000 deep, and no
 * depth is left unchecked.
 */
export function illFormedPath(value: unknown, path: string): string | undefined {
  const stack: [unknown, string][] = [[value, path]];
  while (stack.length > 0) {
    const [v, at] = stack.pop()!;
    if (typeof v === 'string') {
      if (!v.isWellFormed()) return at;
    } else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push([v[i], `${at}.${i}`]);
    } else if (typeof v === 'object' && v !== null) {
      const keys = Object.keys(v);
      for (let i = keys.length - 1; i >= 0; i--) {
        const key = keys[i]!;
        if (!key.isWellFormed()) return `${at}.${JSON.stringify(key).slice(1, -1)}`; // escaped, printable
        stack.push([(v as Record<string, unknown>)[key], `${at}.${key}`]);
      }
    }
  }
  return undefined;
}
