/**
 * The indices 0..n-1 not yet taken, in order: "the r-th remaining index" after some were taken,
 * without copying or splicing the array they index. While few are taken (the usual case: k ≈ 4
 * picks) it keeps them in a sorted list, O(t) per lookup for t taken; past `sortedLimit` it
 * switches to a Fenwick tree, O(log n) per lookup and per take.
 */
export class Remaining {
  private readonly taken: number[] = [];
  private tree: Int32Array | undefined;

  constructor(
    readonly size: number,
    private readonly sortedLimit = 32,
  ) {}

  /** The index of the `r`-th (0-based) index not yet taken; `r` must be below size − taken. */
  at(r: number): number {
    if (this.tree) return this.find(r);
    let i = r;
    for (const t of this.taken) {
      if (t > i) break;
      i++;
    }
    return i;
  }

  /** Marks index `i` taken (at most once per index). */
  take(i: number): void {
    if (this.tree) return this.decrement(i);
    const taken = this.taken;
    let p = taken.length;
    while (p > 0 && taken[p - 1]! > i) p--;
    taken.splice(p, 0, i);
    if (taken.length > this.sortedLimit) this.build();
  }

  private build(): void {
    const n = this.size;
    // A Fenwick tree over n ones: node i covers (i − lowbit(i), i], so it starts at lowbit(i).
    const tree = new Int32Array(n + 1);
    for (let i = 1; i <= n; i++) tree[i] = i & -i;
    this.tree = tree;
    for (const t of this.taken) this.decrement(t);
    this.taken.length = 0;
  }

  private decrement(i: number): void {
    const tree = this.tree!;
    for (let x = i + 1; x <= this.size; x += x & -x) tree[x]! -= 1;
  }

  private find(r: number): number {
    const tree = this.tree!;
    const n = this.size;
    let pos = 0;
    let rest = r + 1;
    for (let step = n > 0 ? 1 << (31 - Math.clz32(n)) : 0; step > 0; step >>= 1) {
      const next = pos + step;
      if (next <= n && tree[next]! < rest) {
        pos = next;
        rest -= tree[next]!;
      }
    }
    return pos;
  }
}
